"""The call families: the two independent generators' own checks, then every family through the registry."""
import json

import numpy as np
import pytest

from owlfinder.synth import contours, fm, sourcefilter, syrinx
from owlfinder.synth.calls import sample_owl_params_wide
from owlfinder.synth.families import FAMILIES, family

MODULES = [sourcefilter, contours, fm, syrinx]
SEEDS = range(12)
SRS = (8000, 16000, 22050, 48000)


def _case(mod, seed, **kw):
    return mod.sample_params(np.random.default_rng(seed), **kw)


def _note_pitch(y, sr, on, off):
    """Spectral-peak pitch (Hz) of the later part of a note (after the glide)."""
    dur = off - on
    seg = y[int((on + 0.35 * dur) * sr):int((on + 0.85 * dur) * sr)].astype(float)
    seg = seg * np.hanning(len(seg))
    nfft = 1 << 17
    P = np.abs(np.fft.rfft(seg, nfft))
    f = np.fft.rfftfreq(nfft, 1 / sr)
    band = (f > 250) & (f < 720)
    return f[band][np.argmax(P[band])]


def _segments(y, sr, thr_db=-30.0, hop_s=0.01):
    hop = int(hop_s * sr)
    n = len(y) // hop
    rms = np.sqrt(np.mean(y[:n * hop].astype(float).reshape(n, hop) ** 2, axis=1))
    db = 20 * np.log10(rms / rms.max() + 1e-12)
    act = db > thr_db
    segs, start = [], None
    for i, a in enumerate(act):
        if a and start is None:
            start = i
        if not a and start is not None:
            segs.append((start * hop_s, i * hop_s))
            start = None
    if start is not None:
        segs.append((start * hop_s, n * hop_s))
    merged = []                      # bridge threshold flicker (< 60 ms gaps)
    for a, b in segs:
        if merged and a - merged[-1][1] < 0.06:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.FAMILY)
def test_api_and_json(mod):
    assert isinstance(mod.FAMILY, str)
    p = _case(mod, 0)
    q = json.loads(json.dumps(p))
    assert q == p
    with pytest.raises(ValueError):
        mod.sample_params(np.random.default_rng(0), n_notes=7)
    with pytest.raises(ValueError):
        mod.sample_params(np.random.default_rng(0), sex="x")


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.FAMILY)
def test_render_basic_and_band(mod):
    for seed in SEEDS:
        p = _case(mod, seed)
        sr = SRS[seed % len(SRS)]
        y = mod.render(p, sr)
        assert y.dtype == np.float32 and y.ndim == 1
        assert np.all(np.isfinite(y))
        assert np.isclose(np.max(np.abs(y)), 1.0, atol=1e-6)
        P = np.abs(np.fft.rfft(y.astype(float))) ** 2
        f = np.fft.rfftfreq(len(y), 1 / sr)
        ratio = P[(f >= 280) & (f <= 620)].sum() / P.sum()
        assert ratio > 0.6, (seed, sr, ratio)
        # essentially nothing near Nyquist
        assert P[f > 0.45 * sr].sum() / P.sum() < 1e-4
        # call starts after ~0.05 s lead-in, array ends after last note
        ns = mod.notes(p)
        assert 0.04 <= ns[0][0] <= 0.06
        assert len(y) / sr >= ns[-1][1]


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.FAMILY)
def test_note_count_distribution_and_ranges(mod):
    rng = np.random.default_rng(123)
    counts = [len(mod.sample_params(rng)["notes"]) for _ in range(400)]
    hist = np.bincount(counts, minlength=7)
    assert hist[0] == 0 and set(counts) <= set(range(1, 7))
    assert hist[2] == hist.max()              # mostly 2
    assert hist[1] > 0 and hist[3:].sum() > 0
    for seed in range(50):
        for sex, lo, hi in (("male", 350, 430), ("female", 450, 550)):
            p = _case(mod, seed, sex=sex)
            assert lo <= p["f0_hz"] <= hi
            for n in p["notes"]:
                assert 0.2 <= n["dur_s"] <= 1.0
            on = [n["onset_s"] for n in p["notes"]]
            assert np.all(np.diff(on) >= 0.6 - 1e-9) and np.all(np.diff(on) <= 1.3 + 1e-9)


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.FAMILY)
def test_notes_match_audio_and_pitch_ratio(mod):
    sr = 16000
    for seed in SEEDS:
        n_notes = [1, 2, 2, 3, 4, 5, 6, 2, 2, 3, 2, 6][seed]
        p = _case(mod, seed, n_notes=n_notes)
        ns = mod.notes(p)
        assert len(ns) == n_notes
        y = mod.render(p, sr)
        segs = _segments(y, sr)
        assert len(segs) == n_notes, (seed, segs, ns)
        for (a, b), (on, off) in zip(segs, ns, strict=False):
            assert abs(a - on) < 0.06, (seed, a, on)
            assert abs(b - off) < 0.12, (seed, b, off)
        if n_notes >= 2:
            f1 = _note_pitch(y, sr, *ns[0])
            f2 = _note_pitch(y, sr, *ns[1])
            assert 0.95 <= f2 / f1 <= 1.12, (seed, f1, f2)
            assert 0.95 <= p["notes"][1]["pitch_ratio"] <= 1.12


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.FAMILY)
def test_deterministic(mod):
    for seed in (0, 5):
        p = _case(mod, seed)
        assert p == _case(mod, seed)
        a = mod.render(p, 22050)
        b = mod.render(json.loads(json.dumps(p)), 22050)
        assert np.array_equal(a, b)


def test_contours_table():
    tab = contours.load_table()
    assert len(tab["calls"]) >= 10
    for c in tab["calls"]:
        for n in c["notes"]:
            assert len(n["shape"]) == tab["calibration"]["n_shape"]
            assert 0.6 < min(n["shape"]) and max(n["shape"]) < 1.3


# ------------------------------------------------------------------------------------- the registry


@pytest.mark.parametrize("name", list(FAMILIES))
def test_registry_family_renders_dry_calls_matching_its_notes(name):
    fam = family(name)
    for seed in range(8):
        n_notes = [1, 2, 3, 2, 4, 2, 6, 5][seed]
        p = fam.sample(np.random.default_rng(seed), n_notes=n_notes)
        assert json.loads(json.dumps(p)) == p
        sr = (8000, 16000, 22050)[seed % 3]
        y = fam.render(p, sr)
        assert y.dtype == np.float32 and np.isclose(np.abs(y).max(), 1.0, atol=1e-6)
        ns = fam.notes(p)
        assert len(ns) == n_notes and 0.04 <= ns[0][0] <= 0.06 and len(y) / sr >= ns[-1][1]
        segs = _segments(y, sr)
        assert len(segs) == n_notes, (name, seed, segs, ns)
        for (a, _b), (on, _off) in zip(segs, ns, strict=False):
            assert abs(a - on) < 0.06
        assert np.array_equal(y, fam.render(json.loads(json.dumps(p)), sr))


def test_unknown_family_names_the_known_ones():
    with pytest.raises(ValueError, match="additive"):
        family("nope")


def test_wide_additive_sampler_spans_the_soft_edges():
    ps = [sample_owl_params_wide(np.random.default_rng(s)) for s in range(400)]
    doubles = [p for p in ps if len(p.note_onsets_s) == 2]
    singles = len(ps) - len(doubles)
    assert 20 <= singles <= 80  # about 12 % single hoots
    longer = sum(p.note_durations_s[1] > p.note_durations_s[0] * 1.05 for p in doubles)
    shorter = sum(p.note_durations_s[1] < p.note_durations_s[0] * 0.95 for p in doubles)
    assert longer > 30 and shorter > 30  # the second note is shorter OR longer
    ratios = np.array([p.note_f0_ratios[1] for p in doubles])
    assert ratios.min() < 1.0 and ratios.max() > 1.08 and ratios.max() <= 1.10
    glides = np.array([p.glide_depth for p in ps])
    assert (glides == 0).mean() > 0.08 and glides.max() > 0.22
    noise = np.array([p.noise for p in ps])
    assert noise.min() < 0.01 and noise.max() > 0.2  # pure to breathy
    gains_db = 20 * np.log10([p.note_gains[1] for p in doubles])
    assert gains_db.min() < -4 and gains_db.max() > 2


def test_syrinx_oscillator_is_born_above_threshold_at_its_prewarped_pitch():
    """The physical model's premises: below the phonation threshold the labia fall still; above it they settle on
    the van der Pol amplitude ``2 sqrt(r)`` at the requested pitch (the pre-warp undoes the integrator's error)."""
    sr, n = syrinx.SIM_SR, syrinx.SIM_SR // 2
    f = 500.0
    w = np.full(n, 2.0 * sr * np.sin(np.pi * f / sr))
    quiet = syrinx._oscillate(np.full(n, -0.15), w, 0.5, np.zeros(n), 0.05)
    assert np.abs(quiet[-800:]).max() < 1e-3 * 0.05
    loud = syrinx._oscillate(np.full(n, 0.5), w, 0.5, np.zeros(n), 0.05)
    tail = loud[n // 2:]
    assert abs(np.abs(tail).max() - 2.0 * np.sqrt(0.5)) < 0.1
    crossings = np.flatnonzero((tail[:-1] < 0) & (tail[1:] >= 0))
    measured = sr / np.mean(np.diff(crossings))
    assert abs(measured / (f * (1.0 - (0.5 * 0.5) ** 2 / 16)) - 1.0) < 0.005  # van der Pol's own slowing only


def test_syrinx_calls_sit_at_their_drawn_pitch():
    for seed in range(6):
        p = syrinx.sample_params(np.random.default_rng(seed), n_notes=2)
        p["voice"]["coupling"] = 0.0  # no pressure-pitch glide: the held pitch is f0
        y = syrinx.render(p, 16000)
        f1 = _note_pitch(y, 16000, *syrinx.notes(p)[0])
        assert abs(f1 / p["f0_hz"] - 1.0) < 0.02, (seed, f1, p["f0_hz"])
