"""scripts/docs_screenshots.py's recording: the real night, calls mixed in only where asked, time in the name.

(The browser half of the script is what made docs/img/; the browser tests cover the same page flows.)
"""

from __future__ import annotations

import importlib.util

import numpy as np

from owlfinder import audio
from owlfinder.timestamps import parse_recording_start

from conftest import REPO_ROOT


def _script():
    spec = importlib.util.spec_from_file_location("docs_screenshots", REPO_ROOT / "scripts" / "docs_screenshots.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_real_night_gets_calls_only_where_asked(shared_data, tmp_path):
    shots = _script()
    rec = shots.make_recording(shared_data, tmp_path, [38.0], snr_db=10.0, seed=11)
    assert parse_recording_start(rec.name) is not None  # wall-clock times in the Space
    src, sr = audio.load(shared_data / shots.NIGHT, 22050), 22050
    mix = audio.load(rec, sr)
    assert len(mix) == len(src)
    changed = np.flatnonzero(np.abs(mix - src) > 1e-3) / sr
    assert changed.min() >= 38.0 and changed.max() < 38.0 + 6.0  # one call (and its echoes) at 38 s
