"""Call synthesizer and synthetic nights: determinism, published ranges, band SNR, files and the CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from owlfinder.synth.backgrounds import BackgroundPool, make_clip, pink_noise
from owlfinder.synth.calls import (
    OWL_BAND,
    OwlCallParams,
    SynthError,
    band_power,
    mix_at_snr,
    render_owl_call,
    sample_bout,
    sample_owl_params,
)
from owlfinder.synth.confusers import (
    render_barking_owl,
    render_boobook,
    sample_barking_owl_params,
    sample_boobook_params,
)
from owlfinder.synth.nights import GroundTruth, a2o_filename, make_night, read_ground_truth, truth_paths

SR = 16000
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "synth.py"


def _dry(p: OwlCallParams) -> OwlCallParams:
    """The same call without echoes, so note edges can be measured."""
    return dataclasses.replace(p, echo_delays_s=(), echo_gains=(), reverb_gain=0.0)


def _peak_hz(y: np.ndarray, sr: int) -> float:
    """Frequency of the strongest spectral peak (Hann window, zero-padded to 0.25 Hz bins)."""
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y)), n=4 * sr))
    return float(np.fft.rfftfreq(4 * sr, 1 / sr)[np.argmax(spec)])


def _note_pitch(p: OwlCallParams, y: np.ndarray, sr: int, i: int) -> float:
    """Measured pitch of note ``i``'s held part (after the glide, before the fall)."""
    on, d = p.note_onsets_s[i], p.note_durations_s[i]
    a = int((on + p.glide_s) * sr)
    b = int((on + d * (1 - p.fall_frac)) * sr)
    return _peak_hz(y[a:max(b, a + sr // 20)], sr)


def _notes(y: np.ndarray, sr: int, rel: float = 0.1) -> list[tuple[float, float]]:
    """(onset_s, duration_s) of the stretches whose 10 ms RMS exceeds ``rel`` of the loudest frame."""
    hop = sr // 100
    rms = np.sqrt(np.mean(y[: len(y) // hop * hop].reshape(-1, hop).astype(np.float64) ** 2, axis=1))
    on = np.flatnonzero(np.diff(np.concatenate([[0], (rms > rel * rms.max()).astype(int), [0]])))
    return [(s * hop / sr, (e - s) * hop / sr) for s, e in zip(on[::2], on[1::2], strict=True)]


# ------------------------------------------------------------------------------------------ determinism


def test_same_seed_same_call_different_seed_different():
    a = render_owl_call(sample_owl_params(np.random.default_rng(7)), SR)
    b = render_owl_call(sample_owl_params(np.random.default_rng(7)), SR)
    c = render_owl_call(sample_owl_params(np.random.default_rng(8)), SR)
    assert a.dtype == np.float32 and np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)
    assert np.isclose(np.abs(a).max(), 1.0, atol=1e-6)  # documented level: peak 1.0
    for render in (render_boobook, render_barking_owl):
        assert np.array_equal(render(np.random.default_rng(1), SR), render(np.random.default_rng(1), SR))
    x, mx = make_clip(np.random.default_rng(3), None, SR, "owl", snr_db=5.0)
    y, my = make_clip(np.random.default_rng(3), None, SR, "owl", snr_db=5.0)
    z, _ = make_clip(np.random.default_rng(4), None, SR, "owl", snr_db=5.0)
    assert np.array_equal(x, y) and mx == my and not np.array_equal(x, z)


# ------------------------------------------------------------------------------------ published ranges


@pytest.mark.parametrize("sex,lo,hi", [("male", 340.0, 440.0), ("female", 440.0, 560.0)])
def test_owl_pitch_durations_and_spacing(sex, lo, hi):
    rng = np.random.default_rng(11)
    ratios = []
    for _ in range(12):
        p = sample_owl_params(rng, sex=sex)
        assert p.kind == "owl" and p.sex == sex and len(p.note_onsets_s) == 2
        y = render_owl_call(_dry(p), SR)
        f1, f2 = _note_pitch(p, y, SR, 0), _note_pitch(p, y, SR, 1)
        assert lo <= f1 <= hi and lo <= f2 <= hi, (f1, f2)
        ratios.append(f2 / f1)
        notes = _notes(y, SR)
        assert len(notes) == 2, notes
        (on1, d1), (on2, d2) = notes
        assert 0.25 <= d1 <= 1.0 and 0.25 <= d2 <= 1.0  # 0.3-0.6 s, now and then up to about 1 s
        assert 0.75 <= on2 - on1 <= 1.25  # onset to onset about 0.9 s
    if sex == "female":  # the second note is higher, clearly so in females
        assert min(ratios) > 1.0
    else:  # some males keep the same pitch; none drop much
        assert min(ratios) > 0.98 and np.median(ratios) > 1.0


def test_owl_energy_lies_in_the_owl_band():
    rng = np.random.default_rng(5)
    for _ in range(10):
        y = render_owl_call(sample_owl_params(rng), SR)
        assert band_power(y, SR, (250.0, 700.0)) / band_power(y, SR, (1.0, SR / 2)) > 0.8


def test_bout_has_at_most_six_syllables_and_gaps_of_seconds():
    rng = np.random.default_rng(2)
    for _ in range(20):
        bout = sample_bout(rng, "owl")
        assert 1 <= len(bout) and sum(len(p.note_onsets_s) for _, p in bout) <= 6
        assert len({p.sex for _, p in bout}) == 1
        onsets = [t for t, _ in bout]
        assert all(2.0 <= b - a <= 15.0 for a, b in zip(onsets, onsets[1:], strict=False))


def test_boobook_is_higher_with_a_falling_second_note():
    rng = np.random.default_rng(9)
    owl_pitch = [_note_pitch(p, render_owl_call(_dry(p), SR), SR, 0)
                 for p in (sample_owl_params(rng, sex="male") for _ in range(5))]
    for _ in range(8):
        p = sample_boobook_params(rng)
        y = render_owl_call(_dry(p), SR)
        f1, f2 = _note_pitch(p, y, SR, 0), _note_pitch(p, y, SR, 1)
        assert 540.0 <= f1 <= 780.0 and f2 < f1 * 0.98
        assert f1 > max(owl_pitch)
        assert max(p.note_durations_s) < 0.3  # shorter notes than the Powerful Owl's


def test_barking_owl_is_short_harsh_and_rich_in_harmonics():
    rng = np.random.default_rng(4)
    for _ in range(6):
        owl = render_owl_call(_dry(sample_owl_params(rng)), SR)
        p = sample_barking_owl_params(rng)
        bark = render_owl_call(_dry(p), SR)
        assert 380.0 <= _note_pitch(p, bark, SR, 0) <= 620.0
        assert max(p.note_durations_s) <= 0.2
        high = lambda y: band_power(y, SR, (700.0, 4000.0)) / band_power(y, SR, (1.0, SR / 2))  # noqa: E731
        assert high(bark) > 3 * high(owl)


# ------------------------------------------------------------------------------------------------ mixing


def _band_db(x: np.ndarray, band: tuple[float, float]) -> float:
    """Independent band power: filter in the frequency domain and take the mean square."""
    spec = np.fft.rfft(x.astype(np.float64))
    f = np.fft.rfftfreq(len(x), 1 / SR)
    spec[(f < band[0]) | (f > band[1])] = 0
    return 10 * np.log10(np.mean(np.fft.irfft(spec, len(x)) ** 2))


@pytest.mark.parametrize("snr_db", [-6.0, 0.0, 7.5, 20.0])
def test_mix_at_snr_hits_the_band_snr(snr_db):
    rng = np.random.default_rng(1)
    bg = pink_noise(rng, 8 * SR) * 0.01
    call = render_owl_call(sample_owl_params(rng), SR)
    mix = mix_at_snr(bg, call, SR, snr_db, offset_s=2.0)
    assert mix.dtype == np.float32 and mix.shape == bg.shape
    i = 2 * SR
    span = slice(i, i + len(call))
    got = _band_db(mix[span] - bg[span], OWL_BAND) - _band_db(bg[span], OWL_BAND)
    assert abs(got - snr_db) < 0.5
    assert np.array_equal(mix[:i], bg[:i])  # nothing outside the call's span changes


def test_mix_at_snr_scales_down_instead_of_clipping():
    rng = np.random.default_rng(2)
    bg = pink_noise(rng, 6 * SR) * 0.3
    call = render_owl_call(sample_owl_params(rng), SR)
    mix = mix_at_snr(bg, call, SR, 25.0, offset_s=1.0)
    assert np.abs(mix).max() <= 1.0
    scale = mix[: SR] @ bg[: SR] / (bg[: SR] @ bg[: SR])
    assert scale < 1.0
    span = slice(SR, SR + len(call))
    got = _band_db(mix[span] - scale * bg[span], OWL_BAND) - _band_db(scale * bg[span], OWL_BAND)
    assert abs(got - 25.0) < 0.5


def test_mix_at_snr_rejects_bad_offsets_and_silence():
    call = render_owl_call(OwlCallParams(), SR)
    with pytest.raises(SynthError):
        mix_at_snr(np.zeros(SR, np.float32) + 0.01, call, SR, 0.0, offset_s=2.0)
    with pytest.raises(SynthError):
        mix_at_snr(np.zeros(3 * SR, np.float32), call, SR, 0.0, offset_s=0.5)


# ------------------------------------------------------------------------------------------- backgrounds


def _write_tone(path: Path, seconds: float, sr: int, channels: int = 1) -> None:
    t = np.arange(int(seconds * sr)) / sr
    y = 0.1 * np.sin(2 * np.pi * 440 * t) + 0.01 * np.random.default_rng(0).standard_normal(len(t))
    sf.write(path, np.repeat(y[:, None], channels, axis=1), sr)


def test_background_pool_skips_a_corrupt_file(tmp_path):
    _write_tone(tmp_path / "a.wav", 3.0, 22050)
    (tmp_path / "sub").mkdir()
    _write_tone(tmp_path / "sub" / "b.flac", 4.0, 48000, channels=2)
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 20)
    (tmp_path / "notes.txt").write_text("not audio")
    pool = BackgroundPool(tmp_path)
    assert len(pool.files) == 3
    rng = np.random.default_rng(0)
    for _ in range(4):
        y, sources = pool.crop(rng, 10.0, 16000)  # longer than any file: tiled with crossfades
        assert y.shape == (160000,) and y.dtype == np.float32 and np.isfinite(y).all()
        assert all("bad" not in s for s in sources) and np.sqrt(np.mean(y**2)) > 1e-4
    assert list(pool.skipped) == [str(tmp_path / "bad.wav")]
    assert pool.group(tmp_path / "sub" / "b.flac") == "sub"


def test_background_pool_with_nothing_readable_fails_clearly(tmp_path):
    with pytest.raises(SynthError, match="not found"):
        BackgroundPool(tmp_path / "missing")
    with pytest.raises(SynthError, match="no audio"):
        BackgroundPool(tmp_path)
    (tmp_path / "bad.flac").write_bytes(b"fLaC" + bytes(100))
    with pytest.raises(SynthError, match="no readable audio"):
        BackgroundPool(tmp_path).crop(np.random.default_rng(0), 5.0, SR)


def test_make_clip_on_real_backgrounds(shared_data):
    pool = BackgroundPool(shared_data)
    assert not any("French Fiddle" in str(p) for p in pool.files)  # MANIFEST: negatives only
    rng = np.random.default_rng(0)
    for kind in ("owl", "boobook", "barking_owl", "background"):
        y, meta = make_clip(rng, pool, 16000, kind, snr_db=None if kind != "owl" else 10.0)
        assert y.shape == (80000,) and y.dtype == np.float32 and np.abs(y).max() <= 1.0
        assert meta["label"] == ("owl" if kind == "owl" else "not_owl") and meta["kind"] == kind
        assert meta["group"] and meta["sources"]
        if kind == "background":
            assert meta["snr_db"] is None and meta["f0_hz"] is None
        else:
            assert 0.0 < meta["start_s"] < meta["end_s"] < 5.0
    assert meta["sex"] is None


# ------------------------------------------------------------------------------------------------ nights


def test_make_night_writes_audio_and_ground_truth(tmp_path):
    path = tmp_path / "night.flac"
    truth = make_night(path, 120.0, sr=44100, channels=2, backgrounds=None, seed=3, calls_per_hour=240,
                       confusers_per_hour=120, snr_db_range=(6.0, 15.0), progress=False)
    info = sf.info(str(path))
    assert (info.format, info.samplerate, info.channels, info.frames) == ("FLAC", 44100, 2, 120 * 44100)
    assert isinstance(truth, GroundTruth) and truth.duration_s == 120.0 and truth.seed == 3
    ev = truth.events
    assert len(truth.owl_events) >= 3 and {e["kind"] for e in ev} <= {"owl", "boobook", "barking_owl"}
    assert all(0.0 <= e["start_s"] < e["end_s"] <= 120.0 for e in ev)
    assert all(a["end_s"] < b["start_s"] for a, b in zip(ev, ev[1:], strict=False))
    assert all(6.0 <= e["snr_db"] <= 15.0 for e in ev)
    assert all(e["sex"] in ("male", "female") for e in truth.owl_events)
    json_path, raven_path = truth_paths(path)
    assert json_path.name == "night.truth.json" and raven_path.name == "night.truth.raven.txt"
    doc = json.loads(json_path.read_text())
    assert {"file", "duration_s", "sample_rate", "channels", "seed", "events"} <= set(doc)
    assert doc["file"] == "night.flac"
    assert read_ground_truth(json_path) == ev == read_ground_truth(raven_path) == read_ground_truth(path)
    header = raven_path.read_text().splitlines()[0].split("\t")
    assert header[:8] == ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
                          "High Freq (Hz)", "Kind"]
    # The calls are really there: each owl call raises the owl-band power over the second before it.
    y, sr = sf.read(str(path), dtype="float32")
    for e in truth.owl_events:
        a, b = int(e["start_s"] * sr), int(e["end_s"] * sr)
        assert band_power(y[a:b, 0], sr) > 2 * band_power(y[a - sr:a, 0], sr)
    again = make_night(tmp_path / "again.flac", 120.0, backgrounds=None, seed=3, calls_per_hour=240,
                       confusers_per_hour=120, snr_db_range=(6.0, 15.0), progress=False)
    assert again.events == ev


def test_make_night_on_real_backgrounds_as_wav(shared_data, tmp_path):
    truth = make_night(tmp_path / "n", 60.0, sr=16000, channels=1, backgrounds=shared_data, seed=1,
                       calls_per_hour=120, subtype="WAV", progress=False)
    info = sf.info(str(tmp_path / "n.wav"))
    assert (info.format, info.samplerate, info.channels, info.frames) == ("WAV", 16000, 1, 60 * 16000)
    assert truth.file == "n.wav"


def test_a2o_names():
    assert a2o_filename("20210603T200000+1000", "Site-Name", 7) == "20210603T200000+1000_Site-Name_7.flac"
    with pytest.raises(SynthError):
        a2o_filename("2021-06-03 20:00", "Site-Name", 7)
    with pytest.raises(SynthError):
        a2o_filename("20210603T200000+1000", "Site_Name", 7)


# -------------------------------------------------------------------------------------------------- CLI


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_cli_missing_folder_is_a_one_line_error(tmp_path):
    r = _cli("night", "--backgrounds", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--duration", "10")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert "nope" in r.stderr and not (tmp_path / "o").exists()


def _main():
    import importlib.util

    spec = importlib.util.spec_from_file_location("synth_cli", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def test_cli_folder_without_audio_and_bad_start(tmp_path, capsys):
    main = _main()
    (tmp_path / "empty").mkdir()
    assert main(["clips", "--backgrounds", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "-n", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no audio" in err
    assert main(["night", "--out", str(tmp_path), "--duration", "5", "--start", "yesterday", "--site", "X"]) == 2


def test_cli_clips_and_a2o_night(tmp_path, capsys):
    main = _main()
    assert main(["clips", "--out", str(tmp_path / "clips"), "-n", "6", "--seed", "1", "--owl-fraction", "0.5"]) == 0
    rows = list(csv.DictReader((tmp_path / "clips" / "clips.csv").open()))
    assert len(rows) == 6 and list(rows[0]) == ["filename", "label", "kind", "snr_db", "f0_hz", "sex", "group"]
    for r in rows:
        assert r["filename"].startswith(r["label"] + "/")
        info = sf.info(str(tmp_path / "clips" / r["filename"]))
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, 80000)
    assert main(["night", "--out", str(tmp_path / "n"), "--duration", "20", "--sr", "22050", "--seed", "4",
                 "--start", "20210603T200000+1000", "--site", "Site-Name", "--no-progress"]) == 0
    audio = tmp_path / "n" / "20210603T200000+1000_Site-Name_4.flac"
    assert sf.info(str(audio)).frames == 20 * 22050
    assert truth_paths(audio)[0].is_file() and truth_paths(audio)[1].is_file()
