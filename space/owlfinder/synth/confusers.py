"""Hard negatives for the Powerful Owl detector: sounds that share its band or its tonality but not its call.

The Powerful Owl (*Ninox strenua*) call, as used by the project's synthesizer, is a **double hoot**
("woo-hoo"): two tonal notes of about 0.3-0.6 s (first note up to about 1 s), onset to onset about 0.9 s
(0.78-1.05 s), fundamental 350-550 Hz, the second note slightly higher (ratio about 1.0-1.05), each opening
with a short upward glide, then holding and fading; pairs repeated 3-12 s apart.

Every confuser here breaks that description in at least one documented way (rhythm, note count, note length,
pitch, tonality, contour), and each sampler **rejects** any draw in which some consecutive pair of tonal
notes would pass a loose Powerful-Owl rule (:func:`po_like`), so no confuser is itself a valid owl call.

API (one entry per confuser in :data:`CONFUSERS`)::

    sample_params(rng: np.random.Generator) -> dict      # JSON-serialisable, includes "seed"
    render(params: dict, sr: int) -> np.ndarray          # float32 mono, peak 1.0, dry (no reverb)

Rendering is a pure function of ``(params, sr)``; sample rates 8000-48000 Hz; harmonics above 0.45 ``sr``
are dropped. Times in s, frequencies in Hz. ``params["notes"]`` lists the tonal notes as
``{"t": onset s, "dur": s, "f0": Hz, ...}`` so callers can make selection boxes or check fairness.

The Southern Boobook "mo-poke" (550-750 Hz, second note lower, short notes) and the Barking Owl "wook-wook"
(400-600 Hz, short harsh notes with strong harmonics) are rendered with the owl's own generator
(:func:`owlfinder.synth.calls.render_owl_call`): :func:`render_boobook`, :func:`render_barking_owl`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import signal

from owlfinder.synth.calls import OwlCallParams, _distance_lowpass, _echoes, render_owl_call
from owlfinder.synth.calls import _seed as _owl_seed

__all__ = ["CONFUSERS", "po_like", "render", "render_barking_owl", "render_boobook", "sample",
           "sample_barking_owl_params", "sample_boobook_params"]

#: Loose Powerful Owl rule used to reject confuser draws (wider than the synthesizer's ranges).
PO_RULE = {
    "dur_s": (0.25, 1.0),          # each note of the pair
    "spacing_s": (0.72, 1.25),     # onset to onset
    "f0_hz": (330.0, 580.0),       # held fundamental of each note
    "ratio": (0.97, 1.07),         # second / first
    "isolation_s": 1.2,            # no other note this close before the pair or after its end
    "max_am_depth": 0.35,          # notes pulsed more deeply than this are not tonal hoots
}


def po_like(notes: list[dict]) -> bool:
    """True if some consecutive pair of ``notes`` could pass as a Powerful Owl double hoot.

    Deliberately loose (it ignores the onset glide and the harmonic content): a pair of tonal notes
    (``am_depth <= 0.35``) with durations 0.25-1.0 s, onset spacing 0.72-1.25 s, fundamentals 330-580 Hz,
    pitch ratio 0.97-1.07, and no other note within 1.2 s before the first or after the second.
    """
    r = PO_RULE
    ns = sorted(notes, key=lambda n: n["t"])
    for i in range(len(ns) - 1):
        a, b = ns[i], ns[i + 1]
        if any(n.get("am_depth", 0.0) > r["max_am_depth"] for n in (a, b)):
            continue
        if not all(r["dur_s"][0] <= n["dur"] <= r["dur_s"][1] for n in (a, b)):
            continue
        if not r["spacing_s"][0] <= b["t"] - a["t"] <= r["spacing_s"][1]:
            continue
        if not all(r["f0_hz"][0] <= n["f0"] <= r["f0_hz"][1] for n in (a, b)):
            continue
        if not r["ratio"][0] <= b["f0"] / a["f0"] <= r["ratio"][1]:
            continue
        before_ok = i == 0 or a["t"] - (ns[i - 1]["t"] + ns[i - 1]["dur"]) > r["isolation_s"]
        after_ok = i + 2 >= len(ns) or ns[i + 2]["t"] - (b["t"] + b["dur"]) > r["isolation_s"]
        if before_ok and after_ok:
            return True
    return False


# ------------------------------------------------------------------------------------------ helpers


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def _rc(x: np.ndarray) -> np.ndarray:
    """Raised cosine 0 -> 1 over x in [0, 1]."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


def _slow(rng: np.random.Generator, n: int, sr: int, rate_hz: float) -> np.ndarray:
    """Unit-variance random curve varying at about ``rate_hz``."""
    k = max(2, int(math.ceil(n / sr * rate_hz)) + 2)
    return np.interp(np.arange(n) / sr * rate_hz, np.arange(k), rng.standard_normal(k))


def _harmonic_tone(f: np.ndarray, sr: int, harmonics: list[float], rng: np.random.Generator) -> np.ndarray:
    """Sum of harmonics of the instantaneous frequency ``f`` (Hz); ``harmonics[0]`` is the fundamental."""
    phase = 2 * np.pi * np.cumsum(f) / sr
    y = np.zeros(len(f))
    fmax = float(np.max(f)) if len(f) else 0.0
    for k, a in enumerate(harmonics, start=1):
        if a > 0 and k * fmax < 0.45 * sr:
            y += a * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    return y


def _bandnoise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float, order: int = 2) -> np.ndarray:
    hi = min(hi, 0.45 * sr)
    lo = min(lo, 0.5 * hi)
    x = signal.sosfilt(signal.butter(order, [lo, hi], "bandpass", fs=sr, output="sos"), rng.standard_normal(n))
    return x / (x.std() + 1e-12)


def _note(nd: dict, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Render one tonal note described by ``nd``.

    Keys: ``dur`` (s), ``f0`` (held Hz), ``f_start``/``f_end`` (pitch at the note's start/end as a ratio of
    ``f0``, default 1.0: linear in log-frequency between them), ``harm`` (amplitudes of harmonics 1..K),
    ``attack``/``release`` (s), ``am_hz``/``am_depth`` (amplitude pulsing), ``vib_hz``/``vib_depth``,
    ``jitter`` (slow pitch wander fraction), ``noise`` (breath relative to tone), ``gain``.
    """
    n = max(2, int(round(nd["dur"] * sr)))
    t = np.arange(n) / sr
    u = t / max(nd["dur"], 1e-6)
    lf = (1 - u) * math.log(nd.get("f_start", 1.0)) + u * math.log(nd.get("f_end", 1.0))
    rel = np.exp(lf)
    if nd.get("vib_depth", 0.0) > 0:
        rel *= 1 + nd["vib_depth"] * np.sin(2 * np.pi * nd.get("vib_hz", 5.0) * t + rng.uniform(0, 6.28))
    if nd.get("jitter", 0.0) > 0:
        rel *= 1 + nd["jitter"] * _slow(rng, n, sr, 15.0)
    f = nd["f0"] * rel
    y = _harmonic_tone(f, sr, list(nd.get("harm", [1.0])), rng)
    if nd.get("noise", 0.0) > 0:
        y += nd["noise"] * _bandnoise(rng, n, sr, 0.6 * nd["f0"], 3.0 * nd["f0"])
    env = _rc(t / max(nd.get("attack", 0.02), 1e-4))
    rel_s = max(nd.get("release", 0.05), 1e-4)
    env *= 1 - _rc((t - (nd["dur"] - rel_s)) / rel_s)
    if nd.get("am_depth", 0.0) > 0:
        env *= 1 - nd["am_depth"] * (0.5 + 0.5 * np.cos(2 * np.pi * nd["am_hz"] * t))
    return nd.get("gain", 1.0) * y * env


def _place(notes: list[dict], sr: int, rng: np.random.Generator, total_s: float | None = None) -> np.ndarray:
    end = max(nd["t"] + nd["dur"] for nd in notes)
    n_total = int(math.ceil((total_s if total_s is not None else end + 0.05) * sr)) + 1
    y = np.zeros(n_total)
    for nd in notes:
        x = _note(nd, sr, rng)
        i = int(round(nd["t"] * sr))
        if i >= n_total:
            continue
        y[i:i + len(x)] += x[: n_total - i]
    return y


def _finish(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    y = y - np.mean(y) if len(y) > 1 else y
    m = float(np.max(np.abs(y))) if len(y) else 0.0
    return (y / m if m > 0 else y).astype(np.float32)


def _reject(sampler: Callable[[np.random.Generator], dict]) -> Callable[[np.random.Generator], dict]:
    """Wrap a sampler so draws that :func:`po_like` accepts are redrawn (fair negatives only)."""
    def wrapped(rng: np.random.Generator) -> dict:
        for _ in range(50):
            p = sampler(rng)
            if not po_like(p["notes"]):
                return p
        raise RuntimeError(f"{sampler.__name__} kept drawing Powerful-Owl-like calls")
    wrapped.__name__ = sampler.__name__
    wrapped.__doc__ = sampler.__doc__
    wrapped.__wrapped__ = sampler  # the raw sampler (no rejection), for tests
    return wrapped


def _harm(rng: np.random.Generator, k: int, lo: float, hi: float, decay: tuple[float, float]) -> list[float]:
    """Harmonic amplitudes [1, a2, a3, ...] with a random per-harmonic decay."""
    d = rng.uniform(*decay)
    return [1.0] + [float(rng.uniform(lo, hi) * d ** (j - 1)) for j in range(1, k)]


# ---------------------------------------------------------------------------------- tawny frogmouth


@_reject
def sample_tawny_frogmouth(rng: np.random.Generator) -> dict:
    """Tawny Frogmouth (*Podargus strigoides*) "oom-oom-oom": a long, even train of short deep pulses.

    Fundamental 150-320 Hz (mostly below the owl band), notes 0.1-0.25 s, 2-4 notes per second with small
    timing jitter (<5 %), 10-45 notes, soft attacks, almost no harmonics, loudness building up over the first
    few notes. Not a Powerful Owl: notes shorter than 0.25 s, onset spacing 0.25-0.5 s (not ~0.9 s) and a
    long uniform train instead of an isolated pair.
    """
    f0 = float(rng.uniform(150.0, 320.0))
    rate = float(rng.uniform(2.0, 4.0))
    n = int(rng.integers(10, 46))
    dur = float(rng.uniform(0.1, min(0.25, 0.7 / rate)))
    build = int(rng.integers(1, 6))
    notes, t = [], 0.0
    for i in range(n):
        notes.append({"t": t, "dur": dur * float(rng.uniform(0.9, 1.1)), "f0": f0 * float(rng.uniform(0.985, 1.015)),
                      "f_start": float(rng.uniform(0.97, 1.0)), "f_end": float(rng.uniform(0.94, 0.99)),
                      "harm": [1.0, float(rng.uniform(0.02, 0.12)), float(rng.uniform(0.0, 0.03))],
                      "attack": dur * 0.35, "release": dur * 0.45, "noise": float(rng.uniform(0.0, 0.06)),
                      "gain": float(min(1.0, (i + 1) / build) * rng.uniform(0.9, 1.0)), "jitter": 0.003})
        t += (1.0 / rate) * float(rng.uniform(0.95, 1.05))
    return {"kind": "tawny_frogmouth", "f0_hz": f0, "rate_hz": rate, "notes": notes, "seed": _seed(rng)}


def render_tawny_frogmouth(params: dict, sr: int) -> np.ndarray:
    """Render :func:`sample_tawny_frogmouth` parameters (float32, peak 1)."""
    return _finish(_place(params["notes"], sr, np.random.default_rng(params["seed"])))


# ------------------------------------------------------------------------------------- koala bellow


def sample_koala_bellow(rng: np.random.Generator) -> dict:
    """Male koala bellow: alternating snore-like inhalations and belch-like exhalations, 4-15 s.

    Source: a glottal-like pulse train at 20-45 Hz (inhalation, the koala's very low velar-fold f0) or
    35-70 Hz with strong jitter (exhalation), shaped by 2-3 broad formants at 150-1200 Hz, plus noisy
    turbulence bursts. Energy is a dense harmonic comb from ~30 Hz to ~1 kHz that covers the owl band
    broadly. Not a Powerful Owl: no isolated tonal note at 350-550 Hz (the fundamental is < 70 Hz), cycles
    last 0.4-1.5 s back to back, and it is noisy and pulsed. It has no tonal "notes", so ``notes`` is empty.
    """
    cycles = []
    t = 0.0
    total = float(rng.uniform(4.0, 15.0))
    while t < total - 0.5:
        inh = float(rng.uniform(0.5, 1.5))
        exh = float(rng.uniform(0.3, 0.9))
        cycles.append({"t": t, "phase": "inhale", "dur": inh, "f0": float(rng.uniform(20.0, 45.0))})
        t += inh + float(rng.uniform(0.02, 0.1))
        cycles.append({"t": t, "phase": "exhale", "dur": exh, "f0": float(rng.uniform(35.0, 70.0))})
        t += exh + float(rng.uniform(0.05, 0.3))
    formants = sorted(float(f) for f in rng.uniform([150, 350, 700], [350, 700, 1200]))
    return {"kind": "koala_bellow", "cycles": cycles, "formants_hz": formants,
            "bandwidths_hz": [float(b) for b in rng.uniform(60, 250, 3)],
            "noise": float(rng.uniform(0.2, 0.8)), "notes": [], "seed": _seed(rng)}


def render_koala_bellow(params: dict, sr: int) -> np.ndarray:
    """Render :func:`sample_koala_bellow` parameters (float32, peak 1)."""
    rng = np.random.default_rng(params["seed"])
    end = max(c["t"] + c["dur"] for c in params["cycles"])
    y = np.zeros(int(math.ceil((end + 0.1) * sr)) + 1)
    for c in params["cycles"]:
        n = int(round(c["dur"] * sr))
        tt = np.arange(n) / sr
        inh = c["phase"] == "inhale"
        # Pulse train with jittered periods; inhalation pitch rises slightly, exhalation falls.
        f = c["f0"] * (1 + (0.25 if inh else -0.3) * tt / c["dur"]) * (1 + (0.04 if inh else 0.12) * _slow(rng, n, sr, 20))
        ph = np.cumsum(f) / sr
        src = np.zeros(n)
        idx = np.nonzero(np.diff(np.floor(ph)) > 0)[0] + 1
        src[idx] = rng.uniform(0.6, 1.0, len(idx))
        src = signal.lfilter([1.0], [1.0, -0.9], src)  # glottal-ish pulses (low-pass tilt)
        src += params["noise"] * (1.5 if not inh else 1.0) * 0.05 * rng.standard_normal(n)
        out = np.zeros(n)
        for fc, bw in zip(params["formants_hz"], params["bandwidths_hz"], strict=False):
            if fc + bw < 0.45 * sr:
                sos = signal.butter(2, [max(20.0, fc - bw / 2), fc + bw / 2], "bandpass", fs=sr, output="sos")
                out += signal.sosfilt(sos, src)
        out += 0.3 * signal.sosfilt(signal.butter(2, 300.0, "lowpass", fs=sr, output="sos"), src)
        env = _rc(tt / 0.08) * (1 - _rc((tt - (c["dur"] - 0.12)) / 0.12))
        env *= 1 + 0.3 * _slow(rng, n, sr, 6)
        i = int(round(c["t"] * sr))
        y[i:i + n] += (out * np.clip(env, 0, None))[: len(y) - i]
    return _finish(y)


# --------------------------------------------------------------------------------------- frog chorus


@_reject
def sample_frog_chorus(rng: np.random.Generator) -> dict:
    """A chorus of 3-12 frogs, each repeating pulsed or trilled notes, 5-15 s.

    Each caller has a carrier 300-2000 Hz (log-uniform), notes 0.05-0.8 s, amplitude pulsed at 8-80 Hz with
    depth 0.6-1.0 (trills) or, for a third of callers, short tonal "bonk"/"tok" notes under 0.2 s; callers
    repeat every 0.3-3 s with jitter and overlap one another. Not a Powerful Owl: notes are pulsed (not a
    held tone) or very short, and many overlapping regular callers replace an isolated pair.
    """
    total = float(rng.uniform(5.0, 15.0))
    notes = []
    callers = []
    for c in range(int(rng.integers(3, 13))):
        fc = float(math.exp(rng.uniform(math.log(300.0), math.log(2000.0))))
        pulsed = rng.random() < 0.67
        dur = float(rng.uniform(0.1, 0.8)) if pulsed else float(rng.uniform(0.05, 0.2))
        period = float(rng.uniform(0.3, 3.0)) + dur
        am_hz = float(rng.uniform(8.0, 80.0)) if pulsed else 0.0
        am_depth = float(rng.uniform(0.6, 1.0)) if pulsed else 0.0
        gain = float(10 ** (rng.uniform(-15, 0) / 20))
        harm = _harm(rng, 4, 0.1, 0.6, (0.3, 0.8))
        callers.append({"f0": fc, "pulsed": bool(pulsed), "period_s": period})
        t = float(rng.uniform(0, period))
        while t < total - dur:
            notes.append({"t": t, "dur": dur * float(rng.uniform(0.9, 1.1)), "f0": fc * float(rng.uniform(0.98, 1.02)),
                          "f_start": float(rng.uniform(0.95, 1.05)), "f_end": float(rng.uniform(0.95, 1.05)),
                          "harm": harm, "attack": min(0.02, dur / 4), "release": min(0.05, dur / 3),
                          "am_hz": am_hz, "am_depth": am_depth, "noise": float(rng.uniform(0, 0.2)),
                          "gain": gain, "caller": c})
            t += period * float(rng.uniform(0.85, 1.15))
    return {"kind": "frog_chorus", "duration_s": total, "callers": callers, "notes": notes, "seed": _seed(rng)}


def render_frog_chorus(params: dict, sr: int) -> np.ndarray:
    """Render :func:`sample_frog_chorus` parameters (float32, peak 1)."""
    return _finish(_place(params["notes"], sr, np.random.default_rng(params["seed"]), params["duration_s"]))


# --------------------------------------------------------------------------------------- engine hum


def sample_engine_hum(rng: np.random.Generator) -> dict:
    """Engine, generator or pump hum: a steady harmonic tone with slow drift, 4-20 s.

    Either a low firing frequency 25-150 Hz with many harmonics (a harmonic comb up to ~600 Hz) or, in 40 %
    of draws, a dominant tonal line at 300-450 Hz (generator whine, a harmonic of the engine) with a weaker
    2nd harmonic. Pitch drifts slowly (0.1-1 Hz wander of 0.2-2 %); 30 % are passing vehicles with a Doppler
    glide (2-6 % drop) and a rise-fall envelope. Not a Powerful Owl: continuous for seconds with no note
    structure, no onset glide, no gaps. ``notes`` holds the whole hum as one long note (>= 4 s).
    """
    dur = float(rng.uniform(4.0, 20.0))
    whine = rng.random() < 0.4
    if whine:
        f0 = float(rng.uniform(300.0, 450.0))
        harm = [1.0, float(rng.uniform(0.1, 0.5)), float(rng.uniform(0.0, 0.2))]
        sub = {"f0": f0 / int(rng.integers(4, 9)), "level": float(rng.uniform(0.0, 0.5))}
    else:
        f0 = float(rng.uniform(25.0, 150.0))
        k = max(2, int(600.0 / f0))
        harm = [float(a) for a in rng.uniform(0.2, 1.0, k) * np.exp(-np.arange(k) / rng.uniform(3.0, 12.0))]
        sub = None
    return {"kind": "engine_hum", "f0_hz": f0, "whine": bool(whine), "harmonics": harm, "subharmonic": sub,
            "drift_depth": float(rng.uniform(0.002, 0.02)), "drift_rate_hz": float(rng.uniform(0.1, 1.0)),
            "passing": bool(rng.random() < 0.3), "doppler": float(rng.uniform(0.02, 0.06)),
            "noise": float(rng.uniform(0.05, 0.4)),
            "notes": [{"t": 0.0, "dur": dur, "f0": f0}], "seed": _seed(rng)}


def render_engine_hum(params: dict, sr: int) -> np.ndarray:
    """Render :func:`sample_engine_hum` parameters (float32, peak 1)."""
    rng = np.random.default_rng(params["seed"])
    dur = params["notes"][0]["dur"]
    n = int(round(dur * sr))
    t = np.arange(n) / sr
    rel = 1 + params["drift_depth"] * _slow(rng, n, sr, params["drift_rate_hz"])
    env = 1 + 0.1 * _slow(rng, n, sr, 0.5)
    if params["passing"]:
        tc = dur * rng.uniform(0.3, 0.7)
        x = (t - tc) / (0.15 * dur)
        rel *= 1 - params["doppler"] * (0.5 + 0.5 * np.tanh(x))
        env *= 0.1 + 1 / (1 + x ** 2)
    f = params["f0_hz"] * rel
    y = _harmonic_tone(f, sr, params["harmonics"], rng)
    if params["subharmonic"]:
        s = params["subharmonic"]
        y += s["level"] * _harmonic_tone(s["f0"] / params["f0_hz"] * f, sr, [1.0, 0.5, 0.3, 0.2], rng)
    y += params["noise"] * _bandnoise(rng, n, sr, 40.0, 2000.0) * 0.3
    fade = min(0.5, dur / 4)
    y *= env * _rc(t / fade) * (1 - _rc((t - (dur - fade)) / fade))
    return _finish(y)


# ------------------------------------------------------------------------------- steady tone repeat


@_reject
def sample_steady_tone_repeat(rng: np.random.Generator) -> dict:
    """The measured real false positive: a flat ~330-480 Hz note with a harmonic, repeated irregularly.

    2-6 notes, each 0.8-3 s, fundamental 330-480 Hz held flat (pitch wander < 0.3 %, no onset glide, no end
    fall), 2nd harmonic at 0.1-0.6 of the fundamental (sometimes a weak 3rd), quick 10-40 ms attack and
    50-200 ms release, gaps 0.4-6 s drawn log-uniform (irregular). Same pitch for all notes (+-1 %). Not a
    Powerful Owl: notes are long (>= 0.8 s, and a pair of them can never have ~0.9 s onset spacing with a
    gap between), flat with no upward onset glide, and repeated at irregular intervals, not in pairs.
    """
    f0 = float(rng.uniform(330.0, 480.0))
    h2 = float(rng.uniform(0.1, 0.6))
    h3 = float(rng.uniform(0.0, 0.15)) if rng.random() < 0.5 else 0.0
    notes, t = [], 0.0
    for _ in range(int(rng.integers(2, 7))):
        d = float(rng.uniform(0.8, 3.0))
        notes.append({"t": t, "dur": d, "f0": f0 * float(rng.uniform(0.99, 1.01)), "harm": [1.0, h2, h3],
                      "attack": float(rng.uniform(0.01, 0.04)), "release": float(rng.uniform(0.05, 0.2)),
                      "jitter": float(rng.uniform(0.0005, 0.003)), "noise": float(rng.uniform(0.0, 0.03)),
                      "gain": float(rng.uniform(0.8, 1.0))})
        t += d + float(math.exp(rng.uniform(math.log(0.4), math.log(6.0))))
    return {"kind": "steady_tone_repeat", "f0_hz": f0, "notes": notes, "seed": _seed(rng)}


def render_steady_tone_repeat(params: dict, sr: int) -> np.ndarray:
    """Render :func:`sample_steady_tone_repeat` parameters (float32, peak 1)."""
    return _finish(_place(params["notes"], sr, np.random.default_rng(params["seed"])))


# -------------------------------------------------------------------------------------- foreign owls


@_reject
def sample_great_horned_owl(rng: np.random.Generator) -> dict:
    """Great Horned Owl style territorial hoot: 3-6 hoots in a stuttering rhythm, 250-450 Hz.

    "hoo h'hoo -- hoo -- hoo": the hoots are 0.12-0.5 s, the gaps mix quick stutters (0.05-0.2 s) and
    pauses (0.3-0.7 s); the pitch is flat or falls 2-8 % with a soft attack (no upward glide); the last
    hoot is often the longest. Not a Powerful Owl: 3-6 notes in one phrase with uneven onset spacing
    (draws with an isolated ~0.9 s-spaced tonal pair are rejected), falling rather than rising onsets.
    """
    f0 = float(rng.uniform(250.0, 450.0))
    harm = _harm(rng, 4, 0.1, 0.4, (0.3, 0.7))
    k = int(rng.integers(3, 7))
    notes, t = [], 0.0
    for i in range(k):
        d = float(rng.uniform(0.12, 0.3)) if i < k - 1 else float(rng.uniform(0.3, 0.5))
        notes.append({"t": t, "dur": d, "f0": f0 * float(rng.uniform(0.97, 1.03)), "harm": harm,
                      "f_start": float(rng.uniform(1.0, 1.03)), "f_end": float(rng.uniform(0.92, 0.98)),
                      "attack": float(rng.uniform(0.03, 0.06)), "release": d * 0.4,
                      "noise": float(rng.uniform(0.0, 0.05)), "jitter": 0.003, "gain": float(rng.uniform(0.7, 1.0))})
        stutter = rng.random() < 0.5
        t += d + (float(rng.uniform(0.05, 0.2)) if stutter else float(rng.uniform(0.3, 0.7)))
    return {"kind": "great_horned_owl", "f0_hz": f0, "notes": notes, "seed": _seed(rng)}


@_reject
def sample_tawny_owl(rng: np.random.Generator) -> dict:
    """Tawny Owl (*Strix aluco*) style song: a long hoot, a pause, a short hoot, then a quavering tremolo.

    "hoooo ... hu ... hu-hu-hu-hoooo": first hoot 0.5-1.0 s at 300-450 Hz with a falling end; pause 1.5-4 s;
    a short 0.1-0.2 s hoot; 0.2-0.6 s later a tremolo of 4-9 rapid pulses (8-14 Hz, deep amplitude and
    small pitch modulation) running into a final long wavering hoot 0.6-1.2 s. Not a Powerful Owl: the pair
    spacing is 1.5-4 s, the second element is very short and followed by a tremolo, and the long notes
    waver (tremolo/vibrato) instead of holding steady.
    """
    f0 = float(rng.uniform(300.0, 450.0))
    harm = _harm(rng, 3, 0.05, 0.3, (0.3, 0.6))
    d1 = float(rng.uniform(0.5, 1.0))
    notes = [{"t": 0.0, "dur": d1, "f0": f0, "harm": harm, "f_start": 0.97, "f_end": float(rng.uniform(0.88, 0.95)),
              "attack": 0.05, "release": d1 * 0.4, "vib_hz": float(rng.uniform(4, 7)), "vib_depth": 0.01}]
    t = d1 + float(rng.uniform(1.5, 4.0))
    notes.append({"t": t, "dur": float(rng.uniform(0.1, 0.2)), "f0": f0 * 0.97, "harm": harm, "attack": 0.02,
                  "release": 0.05})
    t += notes[-1]["dur"] + float(rng.uniform(0.2, 0.6))
    trem_hz = float(rng.uniform(8.0, 14.0))
    d3 = float(rng.integers(4, 10)) / trem_hz + float(rng.uniform(0.6, 1.2))
    notes.append({"t": t, "dur": d3, "f0": f0 * 1.02, "harm": harm, "f_start": 0.95, "f_end": 0.9,
                  "attack": 0.03, "release": 0.3, "am_hz": trem_hz, "am_depth": float(rng.uniform(0.6, 0.95)),
                  "vib_hz": trem_hz, "vib_depth": float(rng.uniform(0.01, 0.03))})
    return {"kind": "tawny_owl", "f0_hz": f0, "notes": notes, "seed": _seed(rng)}


def _render_notes(params: dict, sr: int) -> np.ndarray:
    return _finish(_place(params["notes"], sr, np.random.default_rng(params["seed"])))


render_great_horned_owl = _render_notes
render_tawny_owl = _render_notes


# ------------------------------------------------------------------------------------------ dove coo


@_reject
def sample_dove_coo(rng: np.random.Generator) -> dict:
    """Dove/pigeon cooing, 400-700 Hz: a rhythmic phrase of 3-5 coos, repeated 2-5 times.

    Phrase types: ``"spotted"`` ("coo-coo-crrroo": two short coos then a long rolled coo with 20-40 Hz
    amplitude roll), ``"rising_series"`` (3-5 evenly spaced short coos 0.15-0.3 s, 0.3-0.5 s apart, each
    rising then falling), ``"accent"`` (short grace note, long coo, 1-3 short trailing coos). Coos have a
    breathy, arched contour with a strong down-slur at the end. Not a Powerful Owl: 3-5 notes per phrase
    with 0.25-0.6 s onset spacing (not a ~0.9 s pair), rolled or very short notes, phrases 1.5-5 s apart.
    """
    f0 = float(rng.uniform(400.0, 700.0))
    harm = _harm(rng, 3, 0.05, 0.25, (0.3, 0.6))
    kind = str(rng.choice(["spotted", "rising_series", "accent"]))
    phrase: list[dict] = []
    if kind == "spotted":
        t = 0.0
        for _ in range(2):
            d = float(rng.uniform(0.12, 0.22))
            phrase.append({"t": t, "dur": d, "f0": f0, "f_start": 0.95, "f_end": 0.92})
            t += d + float(rng.uniform(0.08, 0.2))
        d = float(rng.uniform(0.5, 0.9))
        phrase.append({"t": t, "dur": d, "f0": f0 * 1.03, "f_start": 0.97, "f_end": 0.85,
                       "am_hz": float(rng.uniform(20, 40)), "am_depth": float(rng.uniform(0.5, 0.9))})
    elif kind == "rising_series":
        k = int(rng.integers(3, 6))
        step = float(rng.uniform(0.3, 0.5))
        for i in range(k):
            phrase.append({"t": i * step, "dur": float(rng.uniform(0.15, 0.28)), "f0": f0 * (1 + 0.01 * i),
                           "f_start": 0.9, "f_end": 0.88})
    else:
        phrase.append({"t": 0.0, "dur": float(rng.uniform(0.06, 0.12)), "f0": f0 * 0.95})
        d = float(rng.uniform(0.4, 0.8))
        phrase.append({"t": float(rng.uniform(0.15, 0.25)), "dur": d, "f0": f0, "f_start": 0.93, "f_end": 0.82})
        t = phrase[-1]["t"] + d + float(rng.uniform(0.05, 0.15))
        for _ in range(int(rng.integers(1, 4))):
            dd = float(rng.uniform(0.1, 0.2))
            phrase.append({"t": t, "dur": dd, "f0": f0 * 0.9, "f_end": 0.9})
            t += dd + float(rng.uniform(0.08, 0.2))
    for nd in phrase:
        nd.update({"harm": harm, "attack": min(0.04, nd["dur"] / 4), "release": nd["dur"] * 0.35,
                   "noise": 0.08, "jitter": 0.004})
    notes, t0 = [], 0.0
    for _ in range(int(rng.integers(2, 6))):
        s = float(rng.uniform(0.97, 1.03))
        notes += [dict(nd, t=t0 + nd["t"] * s, dur=nd["dur"] * s) for nd in phrase]
        t0 = notes[-1]["t"] + notes[-1]["dur"] + float(rng.uniform(1.5, 5.0))
    return {"kind": "dove_coo", "phrase": kind, "f0_hz": f0, "notes": notes, "seed": _seed(rng)}


render_dove_coo = _render_notes


# ------------------------------------------------------------------------------------- coucal series


@_reject
def sample_coucal(rng: np.random.Generator) -> dict:
    """Coucal (e.g. Pheasant Coucal, Bay Coucal) "oop-oop-oop" series: low hoots, descending, 8-25 notes.

    Notes 0.08-0.2 s at 280-550 Hz falling 15-35 % over the series, spacing that first accelerates from
    0.35-0.5 s to 0.12-0.2 s then (sometimes) slows again -- the dawn "low hooting bird" of tropical forest
    edges. Not a Powerful Owl: a long evenly-falling series of short notes, never an isolated pair.
    """
    f0 = float(rng.uniform(280.0, 550.0))
    k = int(rng.integers(8, 26))
    drop = float(rng.uniform(0.15, 0.35))
    s0, s1 = float(rng.uniform(0.35, 0.5)), float(rng.uniform(0.12, 0.2))
    slow_end = rng.random() < 0.5
    harm = _harm(rng, 3, 0.05, 0.3, (0.3, 0.6))
    notes, t = [], 0.0
    for i in range(k):
        u = i / max(k - 1, 1)
        d = float(rng.uniform(0.08, 0.2))
        notes.append({"t": t, "dur": d, "f0": f0 * (1 - drop * u), "harm": harm, "f_start": 1.02, "f_end": 0.95,
                      "attack": 0.015, "release": d * 0.4, "noise": 0.03})
        sp = s0 + (s1 - s0) * min(1.0, 2 * u) if not slow_end else s0 + (s1 - s0) * (1 - abs(2 * u - 1))
        t += max(sp, d + 0.03)
    return {"kind": "coucal", "f0_hz": f0, "notes": notes, "seed": _seed(rng)}


render_coucal = _render_notes


# ---------------------------------------------------------------------------------- tonal near-misses

#: The ways :func:`sample_tonal_near_miss` breaks the call description, one per draw.
NEAR_MISS_MODES = ("short", "long", "low", "high", "fast")


@_reject
def sample_tonal_near_miss(rng: np.random.Generator) -> dict:
    """Tonal notes like a Powerful Owl's in every respect but one that the published description rules out.

    The boundary of the description, taught by example: arched, gliding or flat harmonic notes with the owl's
    timbre range (pure to breathy, weak to strong harmonics), drawn in one of :data:`NEAR_MISS_MODES`:

    - ``short``: notes 0.04-0.2 s (owl notes are 0.3-0.6 s, rarely under 0.25), 250-900 Hz, 1-12 of them;
    - ``long``: notes 1.3-6 s, 150-900 Hz, pitch wandering or sweeping by up to an octave (machines,
      passing vehicles, insects);
    - ``low`` / ``high``: owl-length notes (0.25-1 s) in pairs or short series, but at 140-290 Hz or 680-1600 Hz;
    - ``fast``: owl-length notes at owl pitch in a run of 3-8, onset to onset 0.3-0.6 s (owl pairs are ~0.9 s
      apart).

    Not a Powerful Owl by construction (every draw breaks the length, pitch or spacing rule of
    :func:`po_like`, and no note is an owl-length single hoot at owl pitch).
    """
    mode = str(rng.choice(NEAR_MISS_MODES))
    harm = _harm(rng, 5, 0.02, 0.6, (0.2, 0.8))
    noise = float(rng.uniform(0.0, 0.15)) if rng.random() < 0.5 else 0.0

    def note(t: float, dur: float, f0: float) -> dict:
        arch = rng.random() < 0.6
        return {"t": t, "dur": dur, "f0": f0, "harm": harm,
                "f_start": float(rng.uniform(0.85, 1.0)) if arch else float(rng.uniform(0.9, 1.15)),
                "f_end": float(rng.uniform(0.85, 1.02)) if arch else float(rng.uniform(0.9, 1.15)),
                "attack": min(float(rng.uniform(0.01, 0.08)), dur / 3), "release": dur * float(rng.uniform(0.2, 0.5)),
                "jitter": float(rng.uniform(0.0, 0.006)), "noise": noise, "gain": float(rng.uniform(0.6, 1.0))}

    notes: list[dict] = []
    t = 0.0
    if mode == "short":
        f0 = float(math.exp(rng.uniform(math.log(250.0), math.log(900.0))))
        for _ in range(int(rng.integers(1, 13))):
            d = float(rng.uniform(0.04, 0.2))
            notes.append(note(t, d, f0 * float(rng.uniform(0.9, 1.1))))
            t += d + float(math.exp(rng.uniform(math.log(0.05), math.log(1.5))))
    elif mode == "long":
        f0 = float(math.exp(rng.uniform(math.log(150.0), math.log(900.0))))
        for _ in range(int(rng.integers(1, 3))):
            d = float(rng.uniform(1.3, 6.0))
            nd = note(t, d, f0)
            sweep = float(2.0 ** rng.uniform(-1.0, 1.0)) if rng.random() < 0.5 else float(rng.uniform(0.95, 1.05))
            nd.update({"f_start": 1.0, "f_end": sweep, "vib_hz": float(rng.uniform(0.2, 6.0)),
                       "vib_depth": float(rng.uniform(0.0, 0.03)), "release": min(0.5, d / 4)})
            notes.append(nd)
            t += d + float(rng.uniform(0.3, 3.0))
    elif mode in ("low", "high"):
        lo, hi = (140.0, 290.0) if mode == "low" else (680.0, 1600.0)
        f0 = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        for _ in range(int(rng.integers(1, 5))):
            d = float(rng.uniform(0.25, 1.0))
            notes.append(note(t, d, float(np.clip(f0 * rng.uniform(0.97, 1.08), lo, hi))))
            t += max(d + 0.1, float(rng.uniform(0.6, 1.3))) if rng.random() < 0.7 else d + float(rng.uniform(1.5, 4.0))
    else:  # fast
        f0 = float(rng.uniform(340.0, 560.0))
        step = float(rng.uniform(0.3, 0.6))
        for i in range(int(rng.integers(3, 9))):
            d = float(rng.uniform(0.2, min(0.5, step - 0.08)))
            notes.append(note(i * step * float(rng.uniform(0.97, 1.03)), d, f0 * float(rng.uniform(0.98, 1.04))))
    for nd in notes:  # the held pitch inside the contour's range, as po_like reads it
        nd["f0"] = float(nd["f0"])
    return {"kind": "tonal_near_miss", "mode": mode, "notes": notes, "seed": _seed(rng)}


render_tonal_near_miss = _render_notes


# ------------------------------------------------------------------------------------------ registry

CONFUSERS: dict[str, tuple[Callable[[np.random.Generator], dict], Callable[[dict, int], np.ndarray]]] = {
    "tawny_frogmouth": (sample_tawny_frogmouth, render_tawny_frogmouth),
    "koala_bellow": (sample_koala_bellow, render_koala_bellow),
    "frog_chorus": (sample_frog_chorus, render_frog_chorus),
    "engine_hum": (sample_engine_hum, render_engine_hum),
    "steady_tone_repeat": (sample_steady_tone_repeat, render_steady_tone_repeat),
    "great_horned_owl": (sample_great_horned_owl, render_great_horned_owl),
    "tawny_owl": (sample_tawny_owl, render_tawny_owl),
    "dove_coo": (sample_dove_coo, render_dove_coo),
    "coucal": (sample_coucal, render_coucal),
    "tonal_near_miss": (sample_tonal_near_miss, render_tonal_near_miss),
}


def sample(name: str, rng: np.random.Generator) -> dict:
    """Draw parameters for confuser ``name``."""
    return CONFUSERS[name][0](rng)


def render(params: dict, sr: int) -> np.ndarray:
    """Render any confuser's parameters (dispatch on ``params["kind"]``)."""
    return CONFUSERS[params["kind"]][1](params, sr)


# ------------------------------------------- Boobook and Barking Owl (the owl generator)


def sample_boobook_params(rng: np.random.Generator) -> OwlCallParams:
    """Draw a Southern Boobook "mo-poke": two short notes, 600-750 Hz, the second 4-12 % lower."""
    d1 = rng.uniform(0.12, 0.25)
    return OwlCallParams(
        kind="boobook", sex=None, f0_hz=float(rng.uniform(600.0, 750.0)),
        note_onsets_s=(0.0, float(d1 + rng.uniform(0.12, 0.25))),
        note_durations_s=(float(d1), float(rng.uniform(0.12, 0.25))),
        note_f0_ratios=(1.0, float(rng.uniform(0.88, 0.96))),
        note_gains=(1.0, float(rng.uniform(0.7, 1.0))),
        glide_s=float(rng.uniform(0.02, 0.05)),
        glide_depth=float(rng.uniform(0.02, 0.06)),
        arch_depth=float(rng.uniform(0.0, 0.02)),
        fall_depth=float(rng.uniform(0.04, 0.12)),
        fall_frac=float(rng.uniform(0.4, 0.6)),
        attack_s=float(rng.uniform(0.01, 0.03)),
        release_frac=float(rng.uniform(0.25, 0.45)),
        harmonics=(float(rng.uniform(0.1, 0.3)), float(rng.uniform(0.03, 0.12)), float(rng.uniform(0.0, 0.05))),
        noise=float(rng.uniform(0.0, 0.04)),
        vibrato_hz=float(rng.uniform(4.0, 9.0)),
        vibrato_depth=float(rng.uniform(0.0, 0.005)),
        jitter=float(rng.uniform(0.001, 0.005)),
        lowpass_hz=_distance_lowpass(rng, lo_hz=1200.0),
        seed=_owl_seed(rng),
        **_echoes(rng, p_echo=0.5),
    )


def sample_barking_owl_params(rng: np.random.Generator) -> OwlCallParams:
    """Draw a Barking Owl "wook-wook": two short harsh notes at 400-600 Hz with strong harmonics."""
    d1 = rng.uniform(0.1, 0.2)
    return OwlCallParams(
        kind="barking_owl", sex=None, f0_hz=float(rng.uniform(420.0, 580.0)),
        note_onsets_s=(0.0, float(d1 + rng.uniform(0.1, 0.25))),
        note_durations_s=(float(d1), float(rng.uniform(0.1, 0.2))),
        note_f0_ratios=(1.0, float(rng.uniform(0.96, 1.03))),
        note_gains=(1.0, float(rng.uniform(0.8, 1.05))),
        glide_s=float(rng.uniform(0.02, 0.05)),
        glide_depth=float(rng.uniform(0.12, 0.25)),
        arch_depth=float(rng.uniform(0.02, 0.05)),
        fall_depth=float(rng.uniform(0.1, 0.2)),
        fall_frac=float(rng.uniform(0.4, 0.6)),
        attack_s=float(rng.uniform(0.005, 0.015)),
        release_frac=float(rng.uniform(0.3, 0.5)),
        harmonics=(float(rng.uniform(0.5, 0.9)), float(rng.uniform(0.3, 0.6)), float(rng.uniform(0.15, 0.4)),
                   float(rng.uniform(0.1, 0.25)), float(rng.uniform(0.05, 0.15))),
        noise=float(rng.uniform(0.05, 0.12)),
        onset_noise=float(rng.uniform(0.3, 0.7)),
        roughness=float(rng.uniform(0.2, 0.5)),
        roughness_hz=float(rng.uniform(30.0, 70.0)),
        vibrato_hz=float(rng.uniform(4.0, 9.0)),
        vibrato_depth=float(rng.uniform(0.0, 0.006)),
        jitter=float(rng.uniform(0.003, 0.008)),
        lowpass_hz=_distance_lowpass(rng, lo_hz=1500.0),
        seed=_owl_seed(rng),
        **_echoes(rng, p_echo=0.5),
    )


def render_boobook(rng: np.random.Generator, sr: int) -> np.ndarray:
    """A Southern Boobook "mo-poke" (hard negative), peak 1.0, mono float32 at ``sr`` Hz."""
    return render_owl_call(sample_boobook_params(rng), sr)


def render_barking_owl(rng: np.random.Generator, sr: int) -> np.ndarray:
    """A Barking Owl "wook-wook" (hard negative), peak 1.0, mono float32 at ``sr`` Hz."""
    return render_owl_call(sample_barking_owl_params(rng), sr)
