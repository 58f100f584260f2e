"""Shared fixtures. Tests never reach the network or the Hub."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
# tests/ holds helpers (models.py) that tests import by name.
sys.path.insert(0, str(Path(__file__).resolve().parent))
#: Real field recordings beside the project (negatives only); used by path, never copied. ``OWL_SHARED_DATA``
#: points elsewhere (a git worktree does not sit beside ``shared/``).
SHARED_DATA = Path(os.environ.get("OWL_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"{SHARED_DATA} is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny wav2vec2 classifier (random weights, labels owl/not_owl) saved as a local model folder."""
    from models import save_tiny

    return save_tiny("wav2vec2", "owl_first", tmp_path_factory.mktemp("tiny-w2v2"))


def write_tone_file(path: Path, seconds: float, sr: int = 16000, channels: int = 1, freq: float = 440.0,
                    subtype: str | None = None, seed: int = 0) -> Path:
    """A tone plus noise, written with soundfile in the format its suffix names."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(len(t))
    data = np.stack([y * (0.5 + 0.5 * c / max(1, channels - 1)) for c in range(channels)], axis=1)
    sf.write(path, data.astype(np.float32), sr, subtype=subtype)
    return path
