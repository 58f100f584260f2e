"""Window grid, streamed framing, event merging and recorder-name parsing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from owlfinder.detect.events import merge_events
from owlfinder.detect.windows import fill_to_length, frame_stream, window_grid
from owlfinder.timestamps import offset_time, parse_recording_start


@pytest.mark.parametrize("n", [1, 79_999, 80_000, 80_001, 120_000, 123_457, 1_000_000])
@pytest.mark.parametrize("hop", [40_000, 80_000, 33_333])
def test_grid_covers_file_exactly(n, hop):
    window = 80_000
    starts = window_grid(n, window, hop)
    covered = np.zeros(n, dtype=bool)
    for s in starts:
        covered[s: s + window] = True
    assert covered.all()
    assert (np.diff(starts) > 0).all()
    ends = np.minimum(starts + window, n)
    assert ends[-1] == n  # the tail is covered by a window that ends at the end of the file
    if n >= window:
        assert (starts + window <= n).all()  # no window reaches past the audio (no padding)


@pytest.mark.parametrize("n", [5, 80_000, 80_001, 200_017])
def test_frame_stream_matches_grid_for_any_blocking(n):
    rng = np.random.default_rng(n)
    signal = rng.standard_normal(n).astype(np.float32)
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(7, n - 1), replace=False)) if n > 8 else []
    blocks = np.split(signal, cuts)
    out = list(frame_stream(iter(blocks), 80_000, 40_000))
    assert [s for s, _ in out] == list(window_grid(n, 80_000, 40_000))
    for start, win in out:
        assert len(win) == 80_000
        if n >= 80_000:
            np.testing.assert_array_equal(win, signal[start: start + 80_000])


def test_short_audio_is_filled_with_its_own_samples_not_zeros():
    y = np.linspace(0.1, 1.0, 1000, dtype=np.float32)
    out = fill_to_length(y, 80_000)
    assert len(out) == 80_000 and (out != 0).all()
    np.testing.assert_array_equal(out[:1000], y)
    assert set(np.round(out, 6)) <= set(np.round(y, 6))


def _ev(starts, scores, window=5.0, **kw):
    starts = np.asarray(starts, dtype=float)
    return merge_events(starts, starts + window, np.asarray(scores), kw.pop("threshold", 0.5), **kw)


def test_merging_overlap_gap_and_min_duration():
    # Overlapping positives merge; the score is the max and the mean is over the merged windows.
    evs = _ev([0, 2.5, 5, 7.5, 10], [0.9, 0.7, 0.1, 0.1, 0.6])
    assert [(e.start_s, e.end_s, e.n_windows) for e in evs] == [(0, 7.5, 2), (10, 15, 1)]
    assert evs[0].score == 0.9 and evs[0].mean_score == pytest.approx(0.8)
    # A gap at most gap_s is bridged, a larger one is not.
    assert len(_ev([0, 5.5], [0.9, 0.9], gap_s=0.7)) == 1
    assert len(_ev([0, 5.8], [0.9, 0.9], gap_s=0.7)) == 2
    # Short events are dropped.
    assert _ev([0], [0.9], window=1.0, min_duration_s=2.0) == []
    # The threshold is inclusive; order of the input does not matter.
    assert len(_ev([10, 0], [0.5, 0.5])) == 2
    assert _ev([0], [0.49]) == []


def test_a2o_and_audiomoth_names():
    a2o = parse_recording_start("20210603T080000+1000_Site-Name_12345.flac")
    assert a2o == datetime(2021, 6, 3, 8, 0, 0, tzinfo=timezone(timedelta(hours=10)))
    assert parse_recording_start("/x/20210603T200000Z_Bago_1.flac").tzinfo == timezone.utc
    moth = parse_recording_start("20240101_203000.WAV")
    assert moth == datetime(2024, 1, 1, 20, 30, 0) and moth.tzinfo is None
    assert parse_recording_start("SITE3_20240101_203000.wav") == moth
    assert parse_recording_start("recording.flac") is None
    assert parse_recording_start("20241399_999999.wav") is None  # not a date
    assert offset_time(a2o, 3725.5) == "2021-06-03T09:02:05.500+10:00"
