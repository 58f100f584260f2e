"""Source-filter Powerful Owl call generator ("sourcefilter" family).

Construction (deliberately *not* a sum of independently generated sinusoids):

1. **Source.** A band-limited glottal-like pulse train produced in closed form
   by a discrete-summation formula (geometric series of harmonics with ratio
   ``a``, evaluated as one complex division per sample), driven by a
   phase-integrated pitch track. The pitch track has an onset glide, a hold,
   an optional end droop, vibrato, and per-cycle **jitter** (each glottal
   cycle gets its own period perturbation); per-cycle **shimmer** perturbs the
   cycle amplitude. ``a`` (0.05..0.5) sets spectral tilt = harmonic weakness.
2. **Aspiration.** White noise, amplitude-modulated pitch-synchronously by the
   source's cycle phase, mixed in at a level from pure (-45 dB) to breathy
   (-8 dB) relative to the source.
3. **Filter.** Source + aspiration go through a *parallel* bank of 2-4
   resonances (RBJ band-pass biquads): R1 near the fundamental (300-650 Hz),
   R2 800-1500 Hz, optional R3 1.6-2.8 kHz and R4 2.8-3.8 kHz with low gains,
   then a Butterworth low-pass well below Nyquist.
4. **Envelope.** Per note: attack (raised-cosine or exponential rise), hold,
   then exponential or arched (sine-power) decay.

API (shared with the other families)::

    FAMILY = "sourcefilter"
    sample_params(rng, *, sex=None, n_notes=None) -> dict   # JSON-serialisable
    render(params, sr) -> np.ndarray                         # float32, peak 1.0
    notes(params) -> list[(onset_s, offset_s)]
"""
from __future__ import annotations

import numpy as np
from scipy import signal

from owlfinder.synth.description import draw_f0, draw_n_notes, draw_sex

FAMILY = "sourcefilter"
LEAD_IN_S = 0.05
_NOTE_COUNT_P = {1: 0.12, 2: 0.58, 3: 0.10, 4: 0.08, 5: 0.06, 6: 0.06}


# ---------------------------------------------------------------------------
# parameter sampling
# ---------------------------------------------------------------------------
def _r(x: float, nd: int = 5) -> float:
    return float(round(float(x), nd))


def sample_params(rng: np.random.Generator, *, sex: str | None = None,
                  n_notes: int | None = None) -> dict:
    """Draw a random parameter set for one call (bout of 1-6 notes).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (the only one used).
    sex : {"male", "female"} or None
        Caller sex; None draws male with p=0.6. Male hold pitch 350-430 Hz
        (60 % in 350-380 Hz), female 450-550 Hz.
    n_notes : int in 1..6 or None
        Number of notes; None draws from {1: .12, 2: .58, 3: .10, 4: .08,
        5: .06, 6: .06}.

    Returns
    -------
    dict
        JSON-serialisable parameters. Times in seconds, frequencies in Hz,
        levels in dB. Per-note entries are in ``params["notes"]``.
    """
    sex = draw_sex(rng, sex)
    n_notes = draw_n_notes(rng, n_notes, _NOTE_COUNT_P)
    f0 = draw_f0(rng, sex)

    # second-note pitch ratio: mostly higher (females more so), sometimes same,
    # occasionally slightly lower
    u = rng.random()
    if u < 0.12:
        ratio2 = rng.uniform(0.965, 1.0)
    elif u < 0.35:
        ratio2 = rng.uniform(1.0, 1.02)
    else:
        ratio2 = rng.uniform(1.02, 1.10 if sex == "female" else 1.08)

    first_dur = rng.uniform(0.25, 1.0)
    rel2 = rng.choice(["shorter", "similar", "longer"], p=[0.5, 0.3, 0.2])
    lvl2 = rng.uniform(-6.0, 4.0)
    spacing_mean = float(np.clip(rng.normal(0.9, 0.12), 0.6, 1.3))

    # shared "voice" for the bout
    glide_depth = rng.uniform(0.0, 0.25) if rng.random() < 0.85 else 0.0
    voice = dict(
        dsf_a=_r(rng.uniform(0.05, 0.5)),            # harmonic ratio per harmonic
        n_harm_max=int(rng.integers(3, 9)),
        glide_depth=_r(glide_depth),
        glide_time_s=_r(rng.uniform(0.03, 0.15)),
        end_droop=_r(rng.uniform(0.0, 0.05)),
        vibrato_rate_hz=_r(rng.uniform(2.5, 8.0)),
        vibrato_depth=_r(rng.uniform(0.0, 0.012)),
        jitter=_r(rng.uniform(0.001, 0.012)),       # rel. std of cycle period
        shimmer=_r(rng.uniform(0.0, 0.12)),          # rel. std of cycle amp
        breath_db=_r(rng.uniform(-45.0, -8.0)),      # aspiration vs source
        breath_sync=_r(rng.uniform(0.0, 0.9)),       # pitch-synchronous AM depth
        direct_gain=_r(rng.uniform(0.05, 0.4)),     # unfiltered source path
        decay_kind=str(rng.choice(["exp", "arch"])),
        attack_kind=str(rng.choice(["cos", "exp"])),
    )
    formants = [
        dict(freq_hz=_r(f0 * rng.uniform(0.95, 1.2), 2), bw_hz=_r(rng.uniform(120, 320), 2),
             gain_db=0.0),
        dict(freq_hz=_r(rng.uniform(800, 1500), 2), bw_hz=_r(rng.uniform(150, 400), 2),
             gain_db=_r(rng.uniform(-28, -12), 2)),
    ]
    n_extra = int(rng.integers(0, 3))
    if n_extra >= 1:
        formants.append(dict(freq_hz=_r(rng.uniform(1600, 2800), 2),
                             bw_hz=_r(rng.uniform(200, 500), 2),
                             gain_db=_r(rng.uniform(-36, -20), 2)))
    if n_extra >= 2:
        formants.append(dict(freq_hz=_r(rng.uniform(2800, 3800), 2),
                             bw_hz=_r(rng.uniform(250, 600), 2),
                             gain_db=_r(rng.uniform(-42, -26), 2)))

    notes_p = []
    onset = 0.0
    for k in range(n_notes):
        if k == 0:
            dur, ratio, lvl = first_dur, 1.0, 0.0
        else:
            pair = k % 2                               # woo-HOO pattern cycles
            base_dur = first_dur if pair == 0 else first_dur * {
                "shorter": rng.uniform(0.55, 0.9), "similar": rng.uniform(0.9, 1.1),
                "longer": rng.uniform(1.1, 1.4)}[rel2]
            dur = base_dur * rng.uniform(0.93, 1.07)
            ratio = (ratio2 if pair == 1 else 1.0) * (1.0 + rng.normal(0, 0.005)) \
                if k >= 2 else ratio2
            lvl = (lvl2 if pair == 1 else 0.0) + rng.normal(0, 1.0) - 0.5 * (k // 2)
        dur = float(np.clip(dur, 0.25, 1.0))
        if k > 0:
            prev = notes_p[-1]
            sp = spacing_mean * rng.uniform(0.93, 1.07)
            sp = max(sp, prev["dur_s"] + 0.12)
            onset = prev["onset_s"] + float(np.clip(sp, 0.6, 1.3))
        notes_p.append(dict(
            onset_s=_r(onset), dur_s=_r(dur), pitch_ratio=_r(ratio), level_db=_r(lvl),
            glide_depth=_r(np.clip(voice["glide_depth"] * rng.uniform(0.7, 1.3), 0, 0.25)),
            attack_s=_r(rng.uniform(0.015, 0.08)),
            decay_frac=_r(rng.uniform(0.2, 0.7)),
        ))
    return dict(family=FAMILY, sex=sex, f0_hz=_r(f0, 3), voice=voice,
                formants=formants, notes=notes_p, tail_s=_r(rng.uniform(0.1, 0.35)),
                lead_in_s=LEAD_IN_S, seed=int(rng.integers(0, 2**31 - 1)))


# ---------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------
def notes(params: dict) -> list[tuple[float, float]]:
    """Note boundaries within the rendered array.

    Parameters
    ----------
    params : dict
        Output of :func:`sample_params`.

    Returns
    -------
    list of (onset_s, offset_s)
        Seconds from the start of the array returned by :func:`render`.
    """
    lead = float(params.get("lead_in_s", LEAD_IN_S))
    return [(lead + n["onset_s"], lead + n["onset_s"] + n["dur_s"])
            for n in params["notes"]]


def duration(params: dict) -> float:
    """Total rendered duration in seconds."""
    return notes(params)[-1][1] + float(params["tail_s"])


# ---------------------------------------------------------------------------
# synthesis
# ---------------------------------------------------------------------------
def _pitch_track(n: dict, voice: dict, f_hold: float, t: np.ndarray) -> np.ndarray:
    """Instantaneous frequency (Hz) of one note, before jitter."""
    dur = n["dur_s"]
    g = n["glide_depth"]
    tg = min(voice["glide_time_s"], 0.4 * dur)
    rise = 1.0 - g * np.exp(-3.0 * t / max(tg, 1e-3))          # upward glide
    droop_start = 0.7 * dur
    droop = 1.0 - voice["end_droop"] * np.clip((t - droop_start) / (dur - droop_start), 0, 1) ** 2
    vib = 1.0 + voice["vibrato_depth"] * np.sin(2 * np.pi * voice["vibrato_rate_hz"] * t)
    return f_hold * rise * droop * vib


def _envelope(n: dict, voice: dict, t: np.ndarray) -> np.ndarray:
    dur = n["dur_s"]
    ta = n["attack_s"]
    if voice["attack_kind"] == "cos":
        att = 0.5 - 0.5 * np.cos(np.pi * np.clip(t / ta, 0, 1))
    else:
        att = (1 - np.exp(-4.0 * np.clip(t / ta, 0, 1))) / (1 - np.exp(-4.0))
    td = dur * (1 - n["decay_frac"])                            # decay starts
    x = np.clip((t - td) / (dur - td), 0, 1)
    if voice["decay_kind"] == "exp":
        dec = np.exp(-4.0 * x) * (1 - x ** 8)                    # ~ -35 dB, to 0
    else:
        dec = np.cos(0.5 * np.pi * x) ** 1.5                     # arched
    return att * dec


def _dsf(phase: np.ndarray, a: float, n_harm: int) -> np.ndarray:
    """Closed-form band-limited pulse: Im sum_{k=1..N} a^(k-1) e^{ik phase}."""
    z = np.exp(1j * phase)
    az = a * z
    s = z * (1 - az ** n_harm) / (1 - az)
    return np.imag(s) * (1 - a)


def _resonator(f: float, bw: float, sr: int):
    """RBJ constant-peak-gain band-pass biquad as SOS."""
    w0 = 2 * np.pi * f / sr
    q = f / bw
    alpha = np.sin(w0) / (2 * q)
    b = np.array([alpha, 0.0, -alpha])
    a = np.array([1 + alpha, -2 * np.cos(w0), 1 - alpha])
    return np.concatenate([b / a[0], a / a[0]])[None, :]


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
        float32 mono waveform, peak-normalised to 1.0, length
        ``round(duration(params) * sr)`` samples; the first note starts at
        ``lead_in_s`` (0.05 s). No background, reverb or distance filtering.
    """
    sr = int(sr)
    nyq = sr / 2
    rng = np.random.default_rng(int(params["seed"]))
    voice = params["voice"]
    n_total = int(round(duration(params) * sr))
    src = np.zeros(n_total)
    asp = np.zeros(n_total)
    lead = float(params.get("lead_in_s", LEAD_IN_S))

    for n in params["notes"]:
        i0 = int(round((lead + n["onset_s"]) * sr))
        m = int(round(n["dur_s"] * sr))
        m = min(m, n_total - i0)
        t = np.arange(m) / sr
        f_hold = params["f0_hz"] * n["pitch_ratio"]
        f = _pitch_track(n, voice, f_hold, t)
        # per-cycle jitter / shimmer (pitch-synchronous, piecewise constant)
        cyc = np.cumsum(f) / sr
        n_cyc = int(cyc[-1]) + 2
        jit = rng.normal(0, voice["jitter"], n_cyc)
        shim = np.clip(1 + rng.normal(0, voice["shimmer"], n_cyc), 0.3, 2.0)
        idx = np.minimum(cyc.astype(int), n_cyc - 1)
        f = f * (1 + jit[idx])
        phase = 2 * np.pi * np.cumsum(f) / sr + rng.uniform(0, 2 * np.pi)
        # harmonics strictly below min(0.4*sr, 4.5 kHz)
        n_h = int(min(voice["n_harm_max"], np.floor(min(0.4 * sr, 4500.0) / f.max())))
        n_h = max(n_h, 1)
        amp_cyc = signal.lfilter([0.5, 0.5], [1.0], shim[idx])   # soften steps
        env = _envelope(n, voice, t) * 10 ** (n["level_db"] / 20)
        src[i0:i0 + m] += _dsf(phase, voice["dsf_a"], n_h) * amp_cyc * env
        # aspiration: pitch-synchronously modulated white noise
        am = 1 - voice["breath_sync"] * 0.5 * (1 - np.cos(phase))
        asp[i0:i0 + m] += rng.standard_normal(m) * am * env

    # parallel resonance bank (formants kept below 0.4*sr)
    src_rms = np.sqrt(np.mean(src ** 2)) + 1e-12
    asp *= src_rms * 10 ** (voice["breath_db"] / 20) / (np.sqrt(np.mean(asp ** 2)) + 1e-12)
    exc = src + asp
    y = np.zeros(n_total)
    for fm in params["formants"]:
        if fm["freq_hz"] + fm["bw_hz"] >= 0.4 * sr:
            continue
        y += 10 ** (fm["gain_db"] / 20) * signal.sosfilt(
            _resonator(fm["freq_hz"], fm["bw_hz"], sr), exc)
    # a little of the unfiltered source keeps harmonics "weak but present"
    y += voice.get("direct_gain", 0.15) * src
    lp = signal.butter(6, min(4000.0, 0.4 * sr) / nyq, output="sos")
    hp = signal.butter(2, 150.0 / nyq, btype="high", output="sos")
    y = signal.sosfilt(hp, signal.sosfilt(lp, y))
    peak = np.max(np.abs(y))
    if not np.isfinite(peak) or peak <= 0:
        raise RuntimeError("degenerate render")
    return (y / peak).astype(np.float32)
