"""Physical-model Powerful Owl call generator ("syrinx" family).

Construction, different from the other families (no sum of partials, no pulse train, no traced contour, no FM):
the sound *emerges* from a driven nonlinear oscillator, as in the normal-form syrinx models of birdsong
(Gardner, Cecchi, Magnasco, Laje & Mindlin 2001; Amador & Mindlin 2008).

1. **Labia.** A van der Pol oscillator ``x'' = w g (r - x^2) x' - w^2 x``, integrated sample by sample
   (symplectic Euler at 16 kHz, its frequency pre-warped). ``r`` stands for air-sac pressure above the phonation
   threshold: while it is negative the labia are still; when it rises through zero the oscillation is born (a Hopf
   bifurcation) and grows from the labia's first displacement and turbulence noise, its amplitude following
   ``sqrt(r)``; when it falls below zero the note dies. Attack, sustain and release are shapes of ``r``, not of an
   amplitude envelope. The nonlinearity ``g`` (0.3-0.8) bends the waveform (odd harmonics).
2. **Pitch.** ``w`` follows the tension of the labia, which is coupled to pressure: the note glides up while the
   pressure rises and sags while it falls (coupling 0-20 %, a fifth of the bouts uncoupled), plus a slow random
   wander and turbulent jitter in both pressure and tension.
3. **Flow and tract.** The sound source is the airflow through the labial gap, ``max(0, x + x0)``: a gap (it
   opens with the pressure) that never closes (large ``x0``) gives a near-pure tone, one that closes each cycle
   gives even harmonics too. The flow, with aspiration noise, drives the inflated throat (a resonance near the
   fundamental, Q 0.7-4) and a partly open beak (direct radiation, a differentiator, mixed in at 0-40 %); 0-70 %
   of the flow bypasses the throat.

The published description sets the ranges: male 350-430 Hz, female 450-550 Hz; notes 0.25-0.95 s; the second
note -3..+10 % in pitch, 0.6-1.4 times as long, -6..+4 dB; onset to onset about 0.9 s (0.62-1.25); bouts of 1-6
notes, mostly the double hoot. Dry: no echo, reverb or distance (:mod:`owlfinder.synth.channel` adds those).

API (shared with the other families)::

    FAMILY = "syrinx"
    sample_params(rng, *, sex=None, n_notes=None) -> dict   # JSON-serialisable
    render(params, sr) -> np.ndarray                         # float32, peak 1.0
    notes(params) -> list[(onset_s, offset_s)]
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

from owlfinder.synth.description import draw_bout, draw_f0, draw_n_notes, draw_sex, note_times

__all__ = ["FAMILY", "notes", "render", "sample_params"]

FAMILY = "syrinx"
LEAD_IN_S = 0.05
TAIL_S = 0.12
SIM_SR = 16000  # the oscillator's own rate; the output is resampled to the caller's
_HP = signal.butter(2, 150.0, "highpass", fs=SIM_SR, output="sos")
_NOTES_P = {1: 0.1, 2: 0.62, 3: 0.1, 4: 0.08, 5: 0.05, 6: 0.05}


def _r(x: float, nd: int = 5) -> float:
    return float(round(float(x), nd))


def sample_params(rng: np.random.Generator, *, sex: str | None = None, n_notes: int | None = None) -> dict:
    """Draw one call (a bout of 1-6 notes).

    Args:
        rng: the only source of randomness.
        sex: ``"male"`` or ``"female"``; ``None`` draws male with p = 0.6.
        n_notes: 1..6; ``None`` draws mostly 2.

    Returns:
        JSON-serialisable parameters: ``f0_hz``, the bird's ``voice`` (oscillator, tract) and one dict per note
        in ``notes`` (``onset_s``, ``dur_s``, ``pitch_ratio``, ``gain_db`` and its pressure shape). Times in s,
        frequencies in Hz, levels in dB.
    """
    sex = draw_sex(rng, sex)
    n_notes = draw_n_notes(rng, n_notes, _NOTES_P)
    f0 = draw_f0(rng, sex)
    voice = {
        "gamma": _r(rng.uniform(0.3, 0.8)),               # van der Pol nonlinearity: growth and brightness
        "coupling": 0.0 if rng.random() < 0.2 else _r(rng.uniform(0.02, 0.2)),  # pitch rise with pressure
        "gap": _r(rng.uniform(0.1, 1.3)),                 # x0 / amplitude: < 1 closes the labia each cycle
        "throat_ratio": _r(rng.uniform(0.85, 1.25)),      # throat resonance / fundamental
        "throat_q": _r(rng.uniform(0.7, 4.0)),
        "throat_mix": _r(rng.uniform(0.3, 1.0)),          # share of the sound that passes the throat
        "beak": _r(rng.uniform(0.0, 0.4)),                # direct radiation mixed in
        "aspiration_db": _r(rng.uniform(-45.0, -20.0)),
        "jitter": _r(rng.uniform(0.0, 0.004)),            # turbulent tension noise (relative)
        "wander": _r(rng.uniform(0.0, 0.008)),
        "seed": int(rng.integers(0, 2**31 - 1)),
    }
    d1 = float(np.clip(rng.lognormal(np.log(0.5), 0.3), 0.25, 0.95))
    d2 = float(np.clip(d1 * rng.uniform(0.6, 1.4), 0.25, 0.95))
    ratio2 = rng.uniform(0.97, 1.10) if sex == "female" else rng.uniform(0.97, 1.08)
    gain2 = rng.uniform(-6.0, 4.0)
    spacing = float(np.clip(rng.normal(0.9, 0.1), 0.62, 1.25))
    out = draw_bout(rng, n_notes, d1, d2, ratio2, gain2, spacing, lambda rng: {
        "rise_s": _r(rng.uniform(0.02, 0.15)),        # pressure rise
        "rise_pow": _r(rng.uniform(0.5, 2.0)),
        "swell": _r(rng.uniform(-0.3, 0.3)),          # pressure drift over the hold (relative)
        "fall_frac": _r(rng.uniform(0.15, 0.45)),     # pressure fall, as a share of the note
    })
    return {"family": FAMILY, "sex": sex, "f0_hz": _r(f0, 3), "voice": voice, "notes": out,
            "lead_in_s": LEAD_IN_S, "tail_s": TAIL_S}


def notes(params: dict) -> list[tuple[float, float]]:
    """Each note's (onset, offset) in s within the rendered array."""
    return note_times(params, LEAD_IN_S)


def _pressure(n: dict, t: np.ndarray) -> np.ndarray:
    """Relative pressure above threshold, 1 at the top of the rise; below 0 before the note and after it."""
    dur = n["dur_s"]
    rise = np.clip(t / max(n["rise_s"], 1e-3), 0.0, 1.0) ** n["rise_pow"]
    hold = 1.0 + n["swell"] * np.clip(t / dur, 0.0, 1.0)
    t_fall = dur * (1.0 - n["fall_frac"])
    fall = np.clip(1.0 - (t - t_fall) / (dur - t_fall), 0.0, 1.0)
    p = rise * hold * fall ** 1.5
    # Below threshold outside the note, so the oscillation is born at the onset and dies at the offset.
    return np.where((t >= 0) & (t <= dur), p, 0.0) - 0.15 * ((t < 0) | (t > dur * 0.98))


def _oscillate(r: np.ndarray, w: np.ndarray, gamma: float, noise: np.ndarray, x0: float) -> np.ndarray:
    """Van der Pol labia at ``SIM_SR``: ``x'' = w g (r - x^2) x' - w^2 x`` from ``x = x0``.

    Symplectic Euler, with the damping by the trapezoid rule.
    """
    dt = 1.0 / SIM_SR
    x, v = x0, 0.0
    out = np.empty(len(r))
    for i in range(len(r)):  # sample by sample: a nonlinear ODE; ~20k steps a note
        wi = w[i]
        a = 0.5 * dt * wi * gamma * (r[i] - x * x)  # trapezoidal: explicit damping would raise the pitch
        v = (v * (1.0 + a) - dt * wi * wi * x) / (1.0 - a) + noise[i]
        x += dt * v
        out[i] = x
    return out


def render(params: dict, sr: int) -> np.ndarray:
    """The dry call at ``sr`` Hz (8-48 kHz), float32 with peak 1; a pure function of ``params``."""
    voice = params["voice"]
    rng = np.random.default_rng(voice["seed"])
    ns = notes(params)
    total_s = ns[-1][1] + float(params.get("tail_s", TAIL_S))
    n_sim = int(math.ceil(total_s * SIM_SR))
    y = np.zeros(n_sim)
    pad = 0.005  # s before each note
    for n, (on, _off) in zip(params["notes"], ns, strict=True):
        i0 = max(0, int(round((on - pad) * SIM_SR)))
        m = int(round((n["dur_s"] + pad + 0.04) * SIM_SR))
        t = (i0 + np.arange(m)) / SIM_SR - on
        r = _pressure(n, t) * (1.0 + 0.05 * rng.standard_normal(m))
        a = np.clip(r, 0.0, 1.0)
        k = max(4, int(n["dur_s"] * 8))
        wander = voice["wander"] * np.interp(t, np.linspace(t[0], t[-1], k), np.cumsum(rng.standard_normal(k)) / k**0.5)
        f = params["f0_hz"] * n["pitch_ratio"] * (1.0 - voice["coupling"] * (1.0 - a)) * (1.0 + wander)
        f *= 1.0 + voice["jitter"] * signal.lfilter([0.05], [1, -0.95], rng.standard_normal(m))
        # Pre-warp: symplectic Euler at step h turns w into 2 asin(w h / 2) / h; van der Pol runs ~(g r)^2/16 slow.
        slow = 1.0 - (voice["gamma"] * np.clip(r, 0.0, 1.5)) ** 2 / 16.0
        w = 2.0 * SIM_SR * np.sin(np.pi * f / SIM_SR) / slow
        # The pressure's first push opens the labia a little: the oscillation grows from there.
        x = _oscillate(r, w, voice["gamma"], 2e-3 * rng.standard_normal(m), 0.05 * (1.0 + 0.2 * rng.random()))
        env = np.sqrt(np.maximum(r, 0.0))  # the resting gap and the aspiration follow the pressure
        amp = 2.0
        flow = np.maximum(0.0, x + voice["gap"] * amp * env)
        flow += 10.0 ** (voice["aspiration_db"] / 20.0) * amp * env * rng.standard_normal(m)
        seg = signal.sosfiltfilt(_HP, flow)  # the flow's mean and slow swell are not sound
        j = min(n_sim, i0 + m)
        y[i0:j] += seg[: j - i0] * 10.0 ** (n["gain_db"] / 20.0)
    fc = min(params["f0_hz"] * voice["throat_ratio"], 0.4 * SIM_SR)
    b, a = signal.iirpeak(fc, voice["throat_q"], fs=SIM_SR)
    throat = signal.lfilter(b, a, y)
    beak = np.gradient(y) * SIM_SR / (2 * np.pi * params["f0_hz"])
    dry = y / (np.std(y) + 1e-12)
    z = voice["throat_mix"] * throat / (np.std(throat) + 1e-12) + (1.0 - voice["throat_mix"]) * dry
    z = z + voice["beak"] * beak / (np.std(beak) + 1e-12)
    lp = signal.butter(4, min(4.5 * params["f0_hz"], 3000.0), "lowpass", fs=SIM_SR, output="sos")
    z = signal.sosfiltfilt(lp, z)
    if sr != SIM_SR:
        g = math.gcd(sr, SIM_SR)
        z = signal.resample_poly(z, sr // g, SIM_SR // g)
    z = z[: int(math.ceil(total_s * sr))]
    z -= z.mean()
    return (z / (np.abs(z).max() + 1e-12)).astype(np.float32)
