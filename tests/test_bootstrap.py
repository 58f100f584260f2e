"""scripts/bootstrap.sh stays quiet: pip's per-requirement warnings are shown once, failures still fail."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import REPO_ROOT

FLOOD = "\n".join(["WARNING: Location '/opt/wheels' is ignored: it is either a non-existing path or lacks a "
                   "specific scheme."] * 14 + ["WARNING: Running pip as the 'root' user can result in broken "
                                               "permissions."] * 3 + ["real problem: keep me"])


def _run(tmp_path: Path, pip_rc: int) -> subprocess.CompletedProcess:
    """Run bootstrap.sh with a fake python (pip prints the flood) and fake ffmpeg/chromium on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (tmp_path / "flood.txt").write_text(FLOOD + "\n")
    fake_py = bin_dir / "fake-python"
    fake_py.write_text(f'#!/bin/sh\nif [ "$2" = pip ]; then cat "{tmp_path}/flood.txt" >&2; exit {pip_rc}; fi\n'
                       "exit 0\n")
    for name in ("ffmpeg", "chromium"):
        (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": str(fake_py)}
    return subprocess.run(["bash", str(REPO_ROOT / "scripts" / "bootstrap.sh")], capture_output=True, text=True,
                          env=env, timeout=60, cwd=tmp_path)


def test_pip_warnings_are_said_once(tmp_path):
    proc = _run(tmp_path, 0)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert "real problem: keep me" in lines
    assert not any(line.startswith("WARNING") for line in lines), lines
    assert lines.count("note: pip's configuration names find-links locations that do not exist here, "
                       "ignored: /opt/wheels") == 1 and len(lines) == 2


def test_a_failed_install_still_fails(tmp_path):
    proc = _run(tmp_path, 3)
    assert proc.returncode == 3 and "error: pip install -r requirements.txt failed (exit 3)" in proc.stderr
