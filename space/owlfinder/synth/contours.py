"""Powerful Owl call generator following traced real contours ("contours" family).

Note shapes (relative pitch vs relative time, 16 points), amplitude profiles,
relative onsets, durations, note-to-note pitch ratios and levels come from
``contours.json``, which ``trace_contours.py`` derives from 19 spectrogram
images of real calls. Absolute pitch is *not* taken from the images: it is
drawn at synthesis time from the published ranges (male 350-430 Hz, female
450-550 Hz).

Synthesis: phase integration of the instantaneous-frequency contour
(PCHIP-interpolated traced shape, randomly perturbed and depth-scaled, with
optional vibrato), a fundamental plus weak 2nd-4th harmonics (each kept below
0.45*sr), and an optional breath component = low-pass noise ring-modulated
onto the same phase (a narrow noise band that follows the contour).

API (shared with the other families)::

    FAMILY = "contours"
    sample_params(rng, *, sex=None, n_notes=None) -> dict   # JSON-serialisable
    render(params, sr) -> np.ndarray                         # float32, peak 1.0
    notes(params) -> list[(onset_s, offset_s)]
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
from scipy import signal
from scipy.interpolate import PchipInterpolator

from owlfinder.synth.description import draw_f0, draw_n_notes, draw_sex

FAMILY = "contours"
LEAD_IN_S = 0.05
CONTOURS_PATH = os.environ.get("OWL_CONTOURS_JSON",
                               str(Path(__file__).with_name("contours.json")))
_NOTE_COUNT_P = {1: 0.12, 2: 0.58, 3: 0.10, 4: 0.08, 5: 0.06, 6: 0.06}
RATIO2_RANGE = (0.96, 1.10)     # allowed 2nd/1st note pitch ratio


@functools.lru_cache(maxsize=4)
def load_table(path: str = CONTOURS_PATH) -> dict:
    """Load the traced contour table (``contours.json``)."""
    with open(path) as fh:
        return json.load(fh)


def _r(x: float, nd: int = 5) -> float:
    return float(round(float(x), nd))


def _smooth_noise(rng, n: int, sd: float, k: int = 5) -> np.ndarray:
    """n-point smooth random perturbation with standard deviation ~sd."""
    x = rng.normal(0, 1, n + 2 * k)
    w = np.hanning(2 * k + 1)
    y = np.convolve(x, w / w.sum(), mode="same")[k:k + n]
    return sd * y / (y.std() + 1e-9)


def sample_params(rng: np.random.Generator, *, sex: str | None = None,
                  n_notes: int | None = None) -> dict:
    """Draw a random parameter set for one call following a traced contour.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (the only one used).
    sex : {"male", "female"} or None
        None draws male with p=0.6. Male hold pitch 350-430 Hz (60 % in
        350-380 Hz), female 450-550 Hz.
    n_notes : int in 1..6 or None
        None draws from {1: .12, 2: .58, 3: .10, 4: .08, 5: .06, 6: .06}.
        Traced notes are cycled (woo-hoo, woo-hoo, ...) to reach the count.

    Returns
    -------
    dict
        JSON-serialisable; times in s, frequencies in Hz, levels in dB,
        ``notes[i]["shape"]`` = pitch/hold-pitch at 16 equally spaced times.
    """
    tab = load_table()
    calls = tab["calls"]
    sex = draw_sex(rng, sex)
    n_notes = draw_n_notes(rng, n_notes, _NOTE_COUNT_P)
    f0 = draw_f0(rng, sex)

    ci = int(rng.integers(len(calls)))
    pattern = calls[ci]["notes"]
    all_notes = [n for c in calls for n in c["notes"]]
    traced_r2 = [c["notes"][1]["pitch_ratio_to_first"] for c in calls if len(c["notes"]) > 1]
    traced_sp = [c["notes"][1]["onset_s"] for c in calls if len(c["notes"]) > 1]

    # bout-level variation
    stretch = rng.uniform(0.8, 1.2)                 # time-stretch +-20 %
    depth = rng.uniform(0.6, 1.5)                   # glide/arch depth scaling
    if len(pattern) > 1:
        r2 = pattern[1]["pitch_ratio_to_first"]
        sp = pattern[1]["onset_s"]
    else:
        r2 = float(rng.choice(traced_r2))
        sp = float(rng.choice(traced_sp))
    r2 = float(np.clip(r2 * rng.normal(1.0, 0.01), *RATIO2_RANGE))
    sp = float(np.clip(sp * stretch, 0.6, 1.3))

    out = []
    onset = 0.0
    for k in range(n_notes):
        src = pattern[k % len(pattern)] if len(pattern) > 1 or k == 0 else \
            all_notes[int(rng.integers(len(all_notes)))]
        if rng.random() < 0.15:                     # occasionally borrow a shape
            src = all_notes[int(rng.integers(len(all_notes)))]
        shape = np.asarray(src["shape"], float)
        shape = 1.0 + (shape - 1.0) * depth * rng.uniform(0.85, 1.15)
        shape = shape * (1.0 + _smooth_noise(rng, len(shape), 0.006))
        shape = np.clip(shape / np.median(shape), 0.7, 1.15)
        # normalise to the "hold" pitch = median over 35-85 % of the note
        u16 = np.linspace(0, 1, len(shape))
        hold = np.median(PchipInterpolator(u16, shape)(np.linspace(0.35, 0.85, 64)))
        shape = shape / hold
        amp = np.clip(np.asarray(src["amp"], float) + rng.normal(0, 0.04, len(src["amp"])),
                      0.2, 1.0)
        dur = float(np.clip(src["dur_s"] * stretch * rng.uniform(0.92, 1.08), 0.2, 1.0))
        pair = k % 2
        if k == 0:
            ratio, lvl = 1.0, 0.0
        else:
            ratio = r2 if pair == 1 else 1.0
            if k >= 2:
                ratio *= 1.0 + rng.normal(0, 0.004)
            ratio = float(np.clip(ratio, *RATIO2_RANGE))
            lr = pattern[1]["level_rel_first"] if (pair == 1 and len(pattern) > 1) else 1.0
            lvl = float(np.clip(12.0 * (lr - 1.0), -8, 6) + rng.normal(0, 1.5)
                        - 0.7 * (k // 2))
        if k > 0:
            prev = out[-1]
            gap = sp * rng.uniform(0.94, 1.06)
            onset = prev["onset_s"] + float(np.clip(max(gap, prev["dur_s"] + 0.12), 0.6, 1.3))
        out.append(dict(onset_s=_r(onset), dur_s=_r(dur), pitch_ratio=_r(ratio),
                        level_db=_r(lvl), shape=[_r(v) for v in shape],
                        amp=[_r(v, 4) for v in amp], traced_from=src.get("id", ci)))

    return dict(
        family=FAMILY, sex=sex, f0_hz=_r(f0, 3), call_index=ci,
        call_source=calls[ci]["source"], notes=out,
        harm_db=[_r(rng.uniform(-35, -10), 2), _r(rng.uniform(-45, -18), 2),
                 _r(rng.uniform(-55, -25), 2)],
        amp_range_db=_r(rng.uniform(8, 20), 2),     # traced amp profile -> dB
        breath_db=_r(rng.uniform(-40, -6), 2),
        breath_bw_hz=_r(rng.uniform(20, 120), 2),
        vibrato_rate_hz=_r(rng.uniform(3, 8)), vibrato_depth=_r(rng.uniform(0, 0.008)),
        attack_s=_r(rng.uniform(0.01, 0.05)), release_s=_r(rng.uniform(0.03, 0.12)),
        tail_s=_r(rng.uniform(0.1, 0.35)), lead_in_s=LEAD_IN_S,
        seed=int(rng.integers(0, 2**31 - 1)),
    )


def notes(params: dict) -> list[tuple[float, float]]:
    """Note boundaries (onset_s, offset_s), seconds from the array start."""
    lead = float(params.get("lead_in_s", LEAD_IN_S))
    return [(lead + n["onset_s"], lead + n["onset_s"] + n["dur_s"])
            for n in params["notes"]]


def duration(params: dict) -> float:
    """Total rendered duration in seconds."""
    return notes(params)[-1][1] + float(params["tail_s"])


def render(params: dict, sr: int) -> np.ndarray:
    """Render the dry call.

    Parameters
    ----------
    params : dict
        Output of :func:`sample_params`.
    sr : int
        Sample rate in Hz (8000..48000 supported).

    Returns
    -------
    numpy.ndarray
        float32 mono waveform peak-normalised to 1.0; first note starts at
        ``lead_in_s`` (0.05 s). No background, reverb or distance filtering.
    """
    sr = int(sr)
    rng = np.random.default_rng(int(params["seed"]))
    n_total = int(round(duration(params) * sr))
    y = np.zeros(n_total)
    lead = float(params.get("lead_in_s", LEAD_IN_S))
    harm_amp = [1.0] + [10 ** (h / 20) for h in params["harm_db"]]
    breath_g = 10 ** (params["breath_db"] / 20)
    b_sos = signal.butter(2, min(params["breath_bw_hz"], 0.4 * sr) / (sr / 2), output="sos")

    for n in params["notes"]:
        i0 = int(round((lead + n["onset_s"]) * sr))
        m = min(int(round(n["dur_s"] * sr)), n_total - i0)
        t = np.arange(m) / sr
        u = np.linspace(0, 1, len(n["shape"]))
        x = t / n["dur_s"]
        shape = PchipInterpolator(u, n["shape"])(x)
        f = params["f0_hz"] * n["pitch_ratio"] * shape * (
            1 + params["vibrato_depth"] * np.sin(2 * np.pi * params["vibrato_rate_hz"] * t))
        phase = 2 * np.pi * np.cumsum(f) / sr + rng.uniform(0, 2 * np.pi)
        amp_db = (PchipInterpolator(u, n["amp"])(x) - 1.0) * params["amp_range_db"]
        env = 10 ** (amp_db / 20)
        ta, tr = params["attack_s"], min(params["release_s"], 0.4 * n["dur_s"])
        env *= 0.5 - 0.5 * np.cos(np.pi * np.clip(t / ta, 0, 1))
        env *= 0.5 - 0.5 * np.cos(np.pi * np.clip((n["dur_s"] - t) / tr, 0, 1))
        env *= 10 ** (n["level_db"] / 20)
        tone = np.zeros(m)
        for h, a in enumerate(harm_amp, start=1):
            if h * f.max() < 0.45 * sr:
                tone += a * np.sin(h * phase)
        # breath: narrow noise band riding on the contour
        nb = signal.sosfilt(b_sos, rng.standard_normal(m))
        nb *= 1.0 / (nb.std() + 1e-12)
        tone += breath_g * nb * np.cos(phase)
        y[i0:i0 + m] += tone * env

    peak = np.max(np.abs(y))
    if not np.isfinite(peak) or peak <= 0:
        raise RuntimeError("degenerate render")
    return (y / peak).astype(np.float32)
