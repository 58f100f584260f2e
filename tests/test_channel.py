"""Tests for channel.py and confusers.py (pytest, a few seconds)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from owlfinder.synth import channel as C
from owlfinder.synth import confusers as K

SR = 16000


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return 0.1 * np.random.default_rng(seed).standard_normal(n)


def _band_energy(y: np.ndarray, sr: int, lo: float, hi: float) -> float:
    s = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(len(y), 1 / sr)
    return float(s[(f >= lo) & (f < hi)].mean())


def _test_signal(sr: int, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Tone with a harmonic + noise bursts: tonal like the use case, but with an unambiguous xcorr peak."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.2 * np.sin(2 * np.pi * 370 * t) + 0.05 * np.sin(2 * np.pi * 740 * t)
    env = (rng.random(len(t) // 400 + 1) < 0.3).repeat(400)[: len(t)]
    return x + 0.1 * env * rng.standard_normal(len(t))


def _lag(y: np.ndarray, x: np.ndarray, max_lag: int = 2000) -> int:
    c = np.correlate(y, x[max_lag:-max_lag], mode="valid")  # lag l at index l + max_lag
    return int(np.argmax(c)) - max_lag


# ----------------------------------------------------------------------------------------- channel


@pytest.mark.parametrize("seed", range(6))
def test_propagate_length_finite_deterministic(seed):
    params = C.sample_propagation(np.random.default_rng(seed))
    json.dumps(params)
    call = _noise(SR // 2, seed)
    y1 = C.propagate(call, SR, params)
    y2 = C.propagate(call, SR, C.sample_propagation(np.random.default_rng(seed)))
    assert y1.dtype == np.float32 and np.all(np.isfinite(y1))
    assert len(y1) == len(call) + round(C.propagation_tail_s(params) * SR)
    np.testing.assert_array_equal(y1, y2)


def test_propagate_without_reverb_keeps_length_and_rng_path_deterministic():
    p = {"lowpass": {"cutoff_hz": 1000.0, "order": 3}, "air": {"distance_m": 100.0, "foliage_db_per_100m_khz": 1.0},
         "reverb": None}
    call = _noise(SR)
    assert len(C.propagate(call, SR, p)) == len(call)
    rv = dict(p, reverb={"rt60_s": 0.5, "drr_db": 0.0, "n_reflections": 5, "reflection_window_s": [0.02, 0.2],
                         "hf_damping": 0.5, "predelay_s": 0.01})  # no "seed": the rng is used
    a = C.propagate(call, SR, rv, np.random.default_rng(7))
    b = C.propagate(call, SR, rv, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("sr,cutoff", [(16000, 600.0), (16000, 1500.0), (8000, 1000.0), (48000, 3000.0)])
def test_lowpass_removes_energy_above_cutoff(sr, cutoff):
    p = {"lowpass": {"cutoff_hz": cutoff, "order": 4}, "air": None, "reverb": None, "seed": 0}
    x = _noise(2 * sr)
    y = C.propagate(x, sr, p).astype(np.float64)
    passband = _band_energy(y, sr, 0.1 * cutoff, 0.7 * cutoff)
    stop = _band_energy(y, sr, 3 * cutoff, 0.45 * sr)
    assert 10 * np.log10(passband / stop) > 40
    # pass band kept (within 1 dB)
    assert abs(10 * np.log10(passband / _band_energy(x, sr, 0.1 * cutoff, 0.7 * cutoff))) < 1.0


def test_air_absorption_tilts_highs():
    p = {"lowpass": None, "air": {"distance_m": 400.0, "foliage_db_per_100m_khz": 2.0}, "reverb": None, "seed": 0}
    x = _noise(2 * SR)
    y = C.propagate(x, SR, p).astype(np.float64)
    lo = 10 * np.log10(_band_energy(y, SR, 200, 600) / _band_energy(x, SR, 200, 600))
    hi = 10 * np.log10(_band_energy(y, SR, 4000, 6000) / _band_energy(x, SR, 4000, 6000))
    assert lo > -5 and hi < lo - 20


@pytest.mark.parametrize("seed", range(8))
def test_record_length_finite_deterministic(seed):
    params = C.sample_recorder(np.random.default_rng(seed), p_codec=0.5)
    json.dumps(params)
    x = _test_signal(SR, 1.5, seed)
    y1 = C.record(x, SR, params)
    y2 = C.record(x, SR, C.sample_recorder(np.random.default_rng(seed), p_codec=0.5))
    assert len(y1) == len(x) and y1.dtype == np.float32 and np.all(np.isfinite(y1))
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("sr", [8000, 16000, 44100])
@pytest.mark.parametrize("codec,br", [("mp3", 32), ("mp3", 64), ("mp3", 128), ("aac", 32), ("aac", 96)])
def test_codec_roundtrip_aligned(sr, codec, br):
    x = _test_signal(sr, 1.5)
    y = C.codec_roundtrip(x, sr, codec, br)
    assert len(y) == len(x) and np.all(np.isfinite(y))
    assert abs(_lag(y, x)) <= 4
    assert np.corrcoef(x, y)[0, 1] > 0.6


@pytest.mark.parametrize("codec", ["mp3", "aac"])
def test_record_with_codec_and_bandwidth_aligned(codec):
    x = _test_signal(SR, 1.5, 3)
    y = C.record(x, SR, {"highpass": {"cutoff_hz": 100.0, "order": 2}, "clip": None,
                         "bandwidth": {"source_sr": 11025}, "codec": {"codec": codec, "bitrate_kbps": 32}})
    assert abs(_lag(y.astype(np.float64), x)) <= 4


@pytest.mark.parametrize("sr,src", [(16000, 8000), (16000, 11025), (48000, 22050), (44100, 16000)])
def test_bandwidth_removes_energy_above_simulated_nyquist(sr, src):
    x = _noise(2 * sr)
    y = C.record(x, sr, {"bandwidth": {"source_sr": src}}).astype(np.float64)
    assert len(y) == len(x)
    passband = _band_energy(y, sr, 100, 0.4 * src)
    stop = _band_energy(y, sr, 0.55 * src, 0.48 * sr)
    assert 10 * np.log10(passband / stop) > 40
    assert abs(_lag(y, x)) <= 1


def test_bandwidth_noop_when_source_rate_higher():
    x = _noise(SR)
    np.testing.assert_allclose(C.record(x, SR, {"bandwidth": {"source_sr": 48000}}), x.astype(np.float32))


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_clipping_limits_peak_and_keeps_level(mode):
    x = _test_signal(SR, 1.0)
    y = C.record(x, SR, {"clip": {"drive_db": 12.0, "mode": mode}}).astype(np.float64)
    assert np.max(np.abs(y)) < np.max(np.abs(x)) * 10 ** (-6 / 20)   # peaks flattened
    small = np.abs(x) < 0.05 * np.max(np.abs(x))
    np.testing.assert_allclose(y[small], x[small], atol=0.02 * np.max(np.abs(x)))


def test_highpass_removes_lows():
    x = _noise(2 * SR)
    y = C.record(x, SR, {"highpass": {"cutoff_hz": 250.0, "order": 4}}).astype(np.float64)
    assert 10 * np.log10(_band_energy(y, SR, 1000, 4000) / _band_energy(y, SR, 10, 60)) > 40


# --------------------------------------------------------------------------------------- confusers


@pytest.mark.parametrize("name", list(K.CONFUSERS))
def test_confuser_finite_peak_deterministic(name):
    sample, render = K.CONFUSERS[name]
    p = sample(np.random.default_rng(11))
    json.dumps(p)
    y = render(p, SR)
    assert y.dtype == np.float32 and y.ndim == 1 and len(y) > SR
    assert np.all(np.isfinite(y))
    assert abs(float(np.max(np.abs(y))) - 1.0) < 1e-6
    np.testing.assert_array_equal(y, render(sample(np.random.default_rng(11)), SR))
    for sr in (8000, 48000):
        z = render(p, sr)
        assert np.all(np.isfinite(z)) and abs(float(np.max(np.abs(z))) - 1.0) < 1e-6


@pytest.mark.parametrize("name", list(K.CONFUSERS))
def test_confuser_is_never_a_double_hoot(name):
    sample, _ = K.CONFUSERS[name]
    raw = getattr(sample, "__wrapped__", sample)  # without the rejection loop
    assert not any(K.po_like(raw(np.random.default_rng(s))["notes"]) for s in range(200))


def test_po_rule_accepts_real_double_hoots():
    assert K.po_like([{"t": 0.0, "dur": 0.5, "f0": 370.0}, {"t": 0.9, "dur": 0.4, "f0": 375.0}])
    assert not K.po_like([{"t": 0.0, "dur": 0.5, "f0": 370.0}, {"t": 0.9, "dur": 0.4, "f0": 375.0},
                          {"t": 1.6, "dur": 0.4, "f0": 375.0}])  # a third note right after: not a pair
    from owlfinder.synth import calls as synth

    hits = 0
    for s in range(100):
        bout = synth.sample_bout(np.random.default_rng(s), "owl")
        notes = [{"t": t0 + o, "dur": d, "f0": p.f0_hz * r} for t0, p in bout
                 for o, d, r in zip(p.note_onsets_s, p.note_durations_s, p.note_f0_ratios, strict=False)]
        hits += K.po_like(notes)
    assert hits == 100
