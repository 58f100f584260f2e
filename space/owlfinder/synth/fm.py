"""Frequency-modulation Powerful Owl call generator ("fm" family).

Construction, different from the other families (no sum of partials, no pulse source, no traced contour):

1. **Pitch.** Each note's instantaneous frequency is a smooth random curve: an upward onset glide whose depth
   (0-25 %, a quarter of the draws flat) and length (30-160 ms) are drawn per bout and per note, then a hold
   that wanders slowly (a random walk of well under 1 %), an optional end droop, and light vibrato.
2. **Timbre.** A two-operator FM voice: a sine carrier at the pitch, phase-modulated by a sine at the same
   pitch (so the spectrum is harmonic) with a modulation index that follows the note's loudness, as a blown
   voice brightens when louder. The index (0-0.8: the second harmonic at most about 7 dB down) sets how much
   energy goes to the harmonics, from pure to moderately bright. A breath component, low-passed noise
   amplitude-modulated by the carrier's own waveform, sits 18-45 dB down.
3. **Envelope.** A random attack (power-law rise of 20-140 ms), a sustain that sags or swells by up to 3 dB,
   and a release over 25-45 % of the note (power-law, linear or cosine), with slow shimmer.

The published description sets the ranges: male 350-430 Hz (most 350-380), female 450-550 Hz; notes
0.25-0.95 s; the second note -3..+10 % in pitch, 0.6-1.4 times as long, -6..+4 dB; onset to onset about 0.9 s
(0.62-1.25); bouts of 1-6 notes, mostly the double hoot. Dry: no echo, reverb or distance
(:mod:`owlfinder.synth.channel` adds those).

API (shared with the other families)::

    FAMILY = "fm"
    sample_params(rng, *, sex=None, n_notes=None) -> dict   # JSON-serialisable
    render(params, sr) -> np.ndarray                         # float32, peak 1.0
    notes(params) -> list[(onset_s, offset_s)]
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from owlfinder.synth.description import draw_bout, draw_f0, draw_n_notes, draw_sex, note_times

__all__ = ["FAMILY", "notes", "render", "sample_params"]

FAMILY = "fm"
LEAD_IN_S = 0.05
TAIL_S = 0.12
_NOTES_P = {1: 0.12, 2: 0.6, 3: 0.1, 4: 0.07, 5: 0.06, 6: 0.05}


def _r(x: float, nd: int = 5) -> float:
    return float(round(float(x), nd))


def sample_params(rng: np.random.Generator, *, sex: str | None = None, n_notes: int | None = None) -> dict:
    """Draw one call (a bout of 1-6 notes).

    Args:
        rng: the only source of randomness.
        sex: ``"male"`` or ``"female"``; ``None`` draws male with p = 0.6.
        n_notes: 1..6; ``None`` draws mostly 2.

    Returns:
        JSON-serialisable parameters: ``f0_hz``, the bout's ``voice`` and one dict per note in ``notes``
        (``onset_s``, ``dur_s``, ``pitch_ratio``, ``gain_db`` and its contour and envelope). Times in s,
        frequencies in Hz, levels in dB.
    """
    sex = draw_sex(rng, sex)
    n_notes = draw_n_notes(rng, n_notes, _NOTES_P)
    f0 = draw_f0(rng, sex)
    flat = rng.random() < 0.25
    voice = {
        "index": _r(rng.uniform(0.0, 0.8)),             # FM brightness at full loudness
        "index_floor": _r(rng.uniform(0.0, 0.3)),        # ... at the start and end of a note
        "breath_db": _r(rng.uniform(-45.0, -18.0)),
        "glide_depth": 0.0 if flat else _r(rng.uniform(0.02, 0.25)),
        "wander": _r(rng.uniform(0.0, 0.006)),
        "vibrato_hz": _r(rng.uniform(3.0, 7.0)),
        "vibrato_depth": _r(rng.uniform(0.0, 0.006)),
        "shimmer_db": _r(rng.uniform(0.0, 1.5)),
        "seed": int(rng.integers(0, 2**31 - 1)),
    }
    d1 = rng.uniform(0.3, 0.85) if rng.random() < 0.85 else rng.uniform(0.25, 0.95)
    ratio2 = rng.uniform(0.97, 1.10) if sex == "female" else rng.uniform(0.97, 1.07)
    d2 = float(np.clip(d1 * rng.uniform(0.6, 1.4), 0.25, 0.95))
    gain2 = rng.uniform(-6.0, 4.0)
    spacing = float(np.clip(rng.normal(0.9, 0.12), 0.62, 1.25))
    out = draw_bout(rng, n_notes, d1, d2, ratio2, gain2, spacing, lambda rng: {
        "glide_depth": _r(voice["glide_depth"] * rng.uniform(0.7, 1.3)) if voice["glide_depth"] else 0.0,
        "glide_s": _r(rng.uniform(0.03, 0.16)),
        "droop": _r(rng.uniform(0.0, 0.04) if rng.random() < 0.5 else 0.0),
        "attack_s": _r(rng.uniform(0.02, 0.14)),
        "attack_pow": _r(rng.uniform(0.6, 2.5)),
        "sag_db": _r(rng.uniform(-3.0, 3.0)),
        "release_frac": _r(rng.uniform(0.25, 0.45)),
        "release_kind": str(rng.choice(["power", "linear", "cos"])),
    })
    return {"family": FAMILY, "sex": sex, "f0_hz": _r(f0, 3), "voice": voice, "notes": out,
            "lead_in_s": LEAD_IN_S, "tail_s": TAIL_S}


def notes(params: dict) -> list[tuple[float, float]]:
    """Each note's (onset, offset) in s within the rendered array."""
    return note_times(params, LEAD_IN_S)


def _envelope(n: dict, t: np.ndarray, rng: np.random.Generator, shimmer_db: float, sr: int) -> np.ndarray:
    dur = n["dur_s"]
    u = t / dur
    att = np.clip(t / max(n["attack_s"], 1e-3), 0.0, 1.0) ** n["attack_pow"]
    sustain = 10.0 ** (n["sag_db"] * u / 20.0)
    r0 = 1.0 - n["release_frac"]
    v = np.clip((u - r0) / max(n["release_frac"], 1e-3), 0.0, 1.0)
    rel = {"power": (1.0 - v) ** 1.3, "linear": 1.0 - v, "cos": 0.5 + 0.5 * np.cos(np.pi * v)}[n["release_kind"]]
    k = max(4, int(dur * 12))  # shimmer: a slow random curve of a few tenths of a dB
    shim = 10.0 ** (np.interp(u, np.linspace(0, 1, k), rng.standard_normal(k)) * shimmer_db / 20.0)
    return att * sustain * rel * shim


def _pitch(n: dict, f: float, t: np.ndarray, rng: np.random.Generator, voice: dict) -> np.ndarray:
    dur = n["dur_s"]
    g, tg = n["glide_depth"], min(n["glide_s"], 0.4 * dur)
    glide = 1.0 - g * (1.0 - np.clip(t / tg, 0.0, 1.0)) ** 2 if g else np.ones_like(t)
    k = max(4, int(dur * 8))
    wander = 1.0 + voice["wander"] * np.interp(t / dur, np.linspace(0, 1, k), np.cumsum(rng.standard_normal(k)) / k ** 0.5)
    droop = 1.0 - n["droop"] * np.clip((t / dur - 0.7) / 0.3, 0.0, 1.0) ** 2
    vib = 1.0 + voice["vibrato_depth"] * np.sin(2 * np.pi * voice["vibrato_hz"] * t + rng.uniform(0, 2 * np.pi))
    return f * n["pitch_ratio"] * glide * wander * droop * vib


def render(params: dict, sr: int) -> np.ndarray:
    """The dry call at ``sr`` Hz (8-48 kHz), float32 with peak 1; a pure function of ``params``."""
    voice = params["voice"]
    rng = np.random.default_rng(voice["seed"])
    ns = notes(params)
    total = int(np.ceil((ns[-1][1] + float(params.get("tail_s", TAIL_S))) * sr))
    y = np.zeros(total)
    lp = signal.butter(2, min(3.0 * params["f0_hz"], 0.45 * sr), "lowpass", fs=sr, output="sos")
    for n, (on, _off) in zip(params["notes"], ns, strict=True):
        t = np.arange(int(round(n["dur_s"] * sr))) / sr
        f = _pitch(n, params["f0_hz"], t, rng, voice)
        env = _envelope(n, t, rng, voice["shimmer_db"], sr)
        phase = 2 * np.pi * np.cumsum(f) / sr
        index = voice["index_floor"] + (voice["index"] - voice["index_floor"]) * env / max(env.max(), 1e-9)
        # Keep every sideband below Nyquist: the k-th harmonic carries about J_k(index), negligible past 5.
        index = np.where(f * 6 < 0.45 * sr, index, 0.0)
        tone = np.sin(phase + index * np.sin(phase))
        breath = signal.sosfilt(lp, rng.standard_normal(len(t))) * (0.6 + 0.4 * np.sin(phase))
        breath *= 10.0 ** (voice["breath_db"] / 20.0) * np.std(tone) / (np.std(breath) + 1e-12)
        i = int(round(on * sr))
        seg = (tone + breath) * env * 10.0 ** (n["gain_db"] / 20.0)
        y[i:i + len(seg)] += seg[: total - i]
    y -= y.mean()
    return (y / (np.abs(y).max() + 1e-12)).astype(np.float32)
