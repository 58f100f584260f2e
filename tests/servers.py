"""Test servers shared by the test files: a free loopback port and ``python space/app.py`` in a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import REPO_ROOT

__all__ = ["SpaceProcess", "free_port"]

#: Settings that would change what the Space does (the gate, the Hub push); never inherited.
_SPACE_SETTINGS = ("HF_TOKEN", "OWL_DATASET", "OWL_LABELLERS", "OWL_LABEL_TOKEN", "SPACE_ID")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SpaceProcess:
    """``python space/app.py`` in a subprocess, on a loopback port, with the tiny model and a CPU.

    Args:
        tmp: folder for its data (``data/``), scratch (``scratch/``) and log (``app-<port>.log``).
        model: the model folder.
        strip_env: start from an environment without any ``HF_*``, ``OWL_*`` or ``HUGGING*`` variable (for
            the secrets tests, so nothing from the shell leaks in); otherwise only the Space's own
            settings (:data:`_SPACE_SETTINGS`) are dropped.
        offline: set ``HF_HUB_OFFLINE=1`` (an ``extra_env`` value wins).
        **extra_env: more variables for the app.
    """

    def __init__(self, tmp: Path, model: Path, *, strip_env: bool = False, offline: bool = True,
                 **extra_env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        if strip_env:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "OWL_", "HUGGING"))}
        else:
            env = {k: v for k, v in os.environ.items() if k not in _SPACE_SETTINGS}
        env.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(self.port),
                   GRADIO_ANALYTICS_ENABLED="False", OWL_MODEL=str(model), OWL_DATA_DIR=str(tmp / "data"),
                   OWL_TMP_DIR=str(tmp / "scratch"), OWL_DEVICE="cpu", HF_HUB_DISABLE_TELEMETRY="1")
        if offline:
            env["HF_HUB_OFFLINE"] = "1"
        env.update(extra_env)
        self.log = open(tmp / f"app-{self.port}.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "space/app.py"], cwd=REPO_ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                tail = Path(self.log.name).read_text()[-3000:]
                raise RuntimeError(f"the app exited ({self.proc.returncode}): {tail}")
            try:
                with urllib.request.urlopen(self.url + "gradio_api/info", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError("the app did not start in 120 s")

    def client(self, **kw):
        from gradio_client import Client

        return Client(self.url, verbose=False, download_files=False, **kw)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
