"""The Space's pure helpers: time formatting, the timeline figure, the events table, spectrograms, summaries,
settings and GPU slicing. No gradio server, no model."""

from __future__ import annotations

import numpy as np
import pytest

from owlfinder.detect.engine import Detection
from owlfinder.ui import plots
from owlfinder.ui import zerogpu as gpu
from owlfinder.ui.config import AppConfig, ConfigError, parse_size
from owlfinder.ui.detect_service import safe_stem, summary_markdown

A2O_START = "2021-06-03T20:00:00+10:00"


def make_det(scores, *, hop=2.5, win=5.0, threshold=0.5, recorded_at=None, status="complete",
             duration=None) -> Detection:
    scores = np.asarray(scores, dtype=np.float32)
    starts = np.arange(len(scores)) * hop
    ends = starts + win
    det = Detection(file="night.flac", duration_s=float(duration or ends[-1]), sample_rate=16000, model="m",
                    threshold=threshold, window_s=win, hop_s=hop, gap_s=0.7, min_duration_s=0.0,
                    recorded_at=recorded_at, starts_s=starts, ends_s=ends, scores=scores, events=[],
                    status=status)
    return det.rethreshold(threshold)


# ------------------------------------------------------------------------------------------ formatting


@pytest.mark.parametrize("seconds, decimals, text", [
    (0, 0, "00:00:00"), (59.4, 0, "00:00:59"), (3661.5, 1, "01:01:01.5"), (59.96, 1, "00:01:00.0"),
    (86400, 0, "24:00:00"), (90000, 0, "25:00:00"), (-3, 0, "00:00:00"), (12.25, 2, "00:00:12.25"),
])
def test_fmt_hms(seconds, decimals, text):
    assert plots.fmt_hms(seconds, decimals) == text


def test_wall_clock_from_a2o_start():
    assert plots.wall_clock(A2O_START, 3725) == "21:02:05"
    assert plots.wall_clock(A2O_START, 4 * 3600 + 1.2, with_date=True) == "2021-06-04 00:00:01"
    assert plots.wall_clock(None, 10) == ""
    assert plots.wall_clock("not a time", 10) == ""


def test_decimate_keeps_peaks_and_bounds_points():
    y = np.zeros(100_000)
    y[12_345] = 0.99
    idx = plots.decimate_max(y, 1000)
    assert len(idx) <= 1000 and 12_345 in idx and np.all(np.diff(idx) > 0)
    assert list(plots.decimate_max(y[:10], 1000)) == list(range(10))


# ------------------------------------------------------------------------------------------- timeline


def test_timeline_placeholder():
    fig = plots.timeline_figure(None)
    assert not fig.data and "Upload a recording" in fig.layout.annotations[0].text


def test_timeline_traces_threshold_events_and_hover():
    scores = [0.1, 0.2, 0.9, 0.95, 0.3, 0.1, 0.8, 0.1]
    det = make_det(scores, threshold=0.6, recorded_at=A2O_START)
    assert len(det.events) == 2
    fig = plots.timeline_figure(det)
    names = [t.name for t in fig.data]
    assert names[0] == "owl score" and "events (2)" in names and "threshold 0.600" in names
    thr = next(t for t in fig.data if t.name.startswith("threshold"))
    assert list(thr.y) == [0.6, 0.6]
    score = fig.data[0]
    assert len(score.x) == len(scores)
    # Hover: hh:mm:ss into the recording and the wall-clock time from the file name.
    assert score.customdata[2][0] == "00:00:05–00:00:10" and score.customdata[2][1] == "20:00:05–20:00:10"
    assert "wall-clock" in score.hovertemplate
    assert str(score.x[0]).startswith("2021-06-03T20:00:02.500")  # wall-clock axis, window centres
    assert "UTC+10:00" in fig.layout.xaxis.title.text
    events = next(t for t in fig.data if t.name.startswith("events"))
    assert sum(v is None for v in events.x) == 2  # one closed polygon per event
    peaks = next(t for t in fig.data if t.name == "event peak")
    assert "event 1" in peaks.text[0] and "20:00:05" in peaks.text[0]


def test_timeline_without_wall_clock_uses_elapsed_time():
    fig = plots.timeline_figure(make_det([0.1, 0.7, 0.2]))
    assert fig.layout.xaxis.title.text.startswith("time into the recording")
    assert str(fig.data[0].x[0]).startswith("1970-01-01T00:00:02.500")
    assert "wall-clock" not in fig.data[0].hovertemplate


def test_timeline_running_greys_the_rest_and_selection_is_drawn():
    det = make_det([0.2, 0.9, 0.1], status="running", duration=600.0)
    fig = plots.timeline_figure(det)
    assert any(a.text == "scanning…" for a in fig.layout.annotations)
    assert fig.layout.xaxis.range[1].startswith("1970-01-01T00:10:00")  # the whole recording from the start
    done = make_det([0.2, 0.9, 0.1])
    assert len(plots.timeline_figure(done, selected=1).layout.shapes) == 1
    assert len(plots.timeline_figure(done, selected=5).layout.shapes) == 0


def test_timeline_of_a_whole_night_is_decimated():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 0.3, 34_560)  # 24 h at a 2.5 s hop
    scores[20_000] = 0.97
    fig = plots.timeline_figure(make_det(scores, threshold=0.9))
    assert len(fig.data[0].y) <= plots.MAX_POINTS and max(fig.data[0].y) == pytest.approx(0.97)
    assert len(fig.to_json()) < 2_000_000


# ---------------------------------------------------------------------------------------------- table


def test_event_rows():
    det = make_det([0.1, 0.9, 0.95, 0.1, 0.1, 0.7], threshold=0.6, recorded_at=A2O_START)
    rows = plots.event_rows(det)
    assert [r[0] for r in rows] == [1, 2]
    assert rows[0][1:] == ["00:00:02.5", "00:00:10.0", "7.5", "0.950", "20:00:02"]  # 0.950, never 0.95
    assert len(rows[0]) == len(plots.EVENT_COLUMNS)
    assert plots.event_rows(make_det([0.1], threshold=0.5))[:1] == []
    assert plots.event_rows(None) == []
    assert plots.event_columns(det) == plots.EVENT_COLUMNS


def test_no_wall_clock_column_when_the_name_gives_no_time():
    det = make_det([0.1, 0.9, 0.1], threshold=0.6)  # recorded_at unknown
    assert plots.event_columns(det) == ["#", "start", "end", "length (s)", "score"]
    assert [len(r) for r in plots.event_rows(det)] == [5]
    assert plots.event_columns(None) == plots.EVENT_COLUMNS[:-1]


def test_summary_markdown():
    det = make_det([0.1, 0.9, 0.95, 0.1], threshold=0.6, recorded_at=A2O_START)
    text = summary_markdown(det, "20210603T200000+1000_Site.flac", done=True, queued=3)
    assert "**1 event**" in text and "0.60" in text and "recorded 2021-06-03 20:00:00" in text
    assert "3 new clips queued for labelling" in text
    assert "threshold 0.600" in text and "best score 0.950" in text  # three decimals everywhere
    running = make_det([0.1, 0.9], status="running", duration=100.0)
    text = summary_markdown(running, "x.wav", done=False)
    # How far the scan is lives in the progress bar only: the summary never shows a second, lagging number.
    assert "Scanning… **1 event** so far above threshold 0.500" in text and "%" not in text and "of 00:" not in text


def test_safe_stem():
    assert safe_stem("20210603T200000+1000_Site_1.flac") == "20210603T200000+1000_Site_1"
    assert safe_stem("../../etc/pass wd.WAV") == "pass_wd"
    assert safe_stem("..") == "recording" and safe_stem("ñ.mp3") == "recording"


# ------------------------------------------------------------------------------------------ spectrogram


def test_spectrogram_finds_a_tone():
    sr = 16000
    t = np.arange(sr * 2) / sr
    times, freqs, db = plots.spectrogram(np.sin(2 * np.pi * 440 * t).astype(np.float32), sr)
    assert freqs.max() <= 2000 and db.shape == (len(freqs), len(times))
    assert abs(freqs[np.argmax(db.mean(axis=1))] - 440) < 10
    assert times[-1] < 2.0


def test_spectrogram_png(tmp_path):
    sr = 8000
    y = np.random.default_rng(0).standard_normal(sr * 3).astype(np.float32) * 0.1
    out = plots.spectrogram_png(y, sr, tmp_path / "s.png", offset_s=3600, event=(3601, 3602), title="Event 1",
                                recorded_at=A2O_START)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


# --------------------------------------------------------------------------------------------- config


def test_config_from_env(tmp_path):
    cfg = AppConfig.from_env({"OWL_MODEL": "me/owl", "OWL_DATA_DIR": str(tmp_path), "OWL_MAX_UPLOAD": "500mb",
                              "OWL_MAX_HOURS": "12", "GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7861",
                              "OWL_LABEL_QUEUE": "0", "OWL_TMP_DIR": str(tmp_path / "t")})
    assert cfg.model == "me/owl" and cfg.data_dir == tmp_path and cfg.max_upload_bytes == 500_000_000
    assert cfg.max_duration_s == 12 * 3600 and cfg.server_name == "0.0.0.0" and cfg.server_port == 7861
    assert not cfg.label_queue and cfg.tmp_dir == tmp_path / "t" and cfg.max_upload_text == "500 MB"
    default = AppConfig.from_env({})
    assert default.model is None and default.max_hours == 24 and default.max_upload_bytes == 4 * 10**9
    assert str(default.data_dir) == "owl_data" and default.server_port == 7860


@pytest.mark.parametrize("env, name", [({"OWL_MAX_HOURS": "lots"}, "OWL_MAX_HOURS"),
                                       ({"OWL_MAX_UPLOAD": "big"}, "OWL_MAX_UPLOAD"),
                                       ({"GRADIO_SERVER_PORT": "0"}, "GRADIO_SERVER_PORT"),
                                       ({"OWL_DEVICE": "tpu"}, "OWL_DEVICE"),
                                       ({"OWL_LABEL_QUEUE": "maybe"}, "OWL_LABEL_QUEUE")])
def test_config_errors_name_the_variable(env, name):
    with pytest.raises(ConfigError, match=name):
        AppConfig.from_env(env)


def test_parse_size():
    assert parse_size("4gb") == 4 * 10**9 and parse_size("2 GiB") == 2 * 2**30 and parse_size("123") == 123
    with pytest.raises(ValueError):
        parse_size("4 parsecs")


# ------------------------------------------------------------------------------------------------ gpu


def test_spaces_gpu_is_a_no_op_off_spaces(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert not gpu.on_zero_gpu()
    assert gpu.on_zero_gpu({"SPACES_ZERO_GPU": "true"})

    def f(x):
        return x + 1

    assert gpu.gpu_task(30)(f) is f
    assert gpu.gpu_task(lambda *a: 30)(f) is f
    if gpu.SPACES_AVAILABLE:
        import spaces

        assert spaces.GPU(duration=10)(f) is f  # what gpu_task relies on


@pytest.mark.parametrize("duration", [3.0, 30.0, 3599.0, 3600.0, 86400.0, 7211.3])
def test_plan_slices_cover_the_grid(duration):
    hop, win, slice_s = 2.5, 5.0, 600.0
    plan = gpu.plan_slices(duration, slice_s, hop, win)
    assert plan[0][0] == 0 and plan[-1][1] is None
    for (a0, a1), (b0, _) in zip(plan, plan[1:], strict=False):
        assert a1 == b0 and a1 > a0  # contiguous, no gaps or overlaps
    last = plan[-1][0]
    assert len(plan) == 1 or duration - last * hop >= win + hop
    assert all((b - a) * hop <= slice_s for a, b in plan[:-1])


def test_gpu_seconds():
    assert gpu.gpu_seconds(0) == 15
    assert gpu.gpu_seconds(3600, rtf=150) == 15 + 24
    assert gpu.gpu_seconds(24 * 3600, rtf=150, max_s=120) == 120
    assert 60 <= gpu.slice_seconds(150, max_s=120, cap_s=3600) <= 3600
