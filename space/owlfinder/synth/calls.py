"""Powerful Owl call synthesizer: the double hoot's parameters, samplers, bouts, rendering and band SNR mixing.

Look-alike confusers are in :mod:`owlfinder.synth.confusers`; backgrounds and labelled clips in
:mod:`owlfinder.synth.backgrounds` (their names are still importable from here).

No recording of a Powerful Owl (*Ninox strenua*) ships with this project, so positives are rendered from
the published call description (see ``../shared/data/README.md``):

- a slow, deep double hoot, "woo-hoo": two notes 0.3-0.6 s long (up to about 1 s), onset to onset
  about 0.9 s apart;
- fundamental 350-430 Hz in males (often 350-380), 450-550 Hz in females; the second note often a little
  higher, mostly in females; weak harmonics above;
- each note opens with a short upward glide, holds, then fades; tree echoes follow and distance removes
  the highs;
- calls come in bouts (up to about six syllables) repeated seconds apart.

Hard negatives in the same band are rendered the same way: the Southern Boobook "mo-poke" (550-750 Hz,
second note lower, short notes) and the Barking Owl "wook-wook" (400-600 Hz, short harsh dog-like notes
with strong harmonics and a noisy onset).

Everything is a pure function of its arguments: randomness comes from a :class:`numpy.random.Generator`
or from a ``seed`` stored in the parameters, so the same seed gives the same samples. Signals are 1-D
float32 arrays at an explicit sample rate ``sr`` in Hz; times are in seconds, levels in dB.

Synthetic calls are not real owls: they teach a model the published shape of the call, not the variety of
real birds, sites and recorders. Judge any model on real recordings.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

from owlfinder.errors import OwlFinderError

__all__ = [
    "CLIP_COLUMNS",
    "KINDS",
    "OWL_BAND",
    "OwlCallParams",
    "SynthError",
    "band_power",
    "call_gain_for_snr",
    "mix_at_snr",
    "render_owl_call",
    "sample_bout",
    "sample_owl_params",
    "sample_params",
    "snr_band",
]

log = logging.getLogger(__name__)

#: Names that moved to :mod:`owlfinder.synth.confusers` and :mod:`owlfinder.synth.backgrounds`; still importable
#: from here (PEP 562), so ``from owlfinder.synth.calls import make_clips`` keeps working.
_MOVED = {**{name: "confusers" for name in ("render_barking_owl", "render_boobook", "sample_barking_owl_params",
                                             "sample_boobook_params")},
          **{name: "backgrounds" for name in ("BackgroundPool", "BackgroundStream", "make_clip", "make_clips",
                                               "pink_noise")}}


def __getattr__(name: str):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(f"owlfinder.synth.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

#: Band (Hz) where the Powerful Owl's fundamental lies; SNRs are measured in it.
OWL_BAND: tuple[float, float] = (300.0, 600.0)
#: Call kinds: the target and the two confusers.
KINDS: tuple[str, ...] = ("owl", "boobook", "barking_owl")
#: Columns of ``clips.csv``.
CLIP_COLUMNS: tuple[str, ...] = ("filename", "label", "kind", "snr_db", "f0_hz", "sex", "group")


class SynthError(OwlFinderError, ValueError):
    """Bad input to the synthesizer (missing folder, no audio, bad option); ``str(err)`` is one line."""


# --------------------------------------------------------------------------------------------- params


@dataclass(frozen=True)
class OwlCallParams:
    """Everything needed to render one owl call (a group of notes) deterministically.

    The same dataclass describes the Powerful Owl double hoot (``kind="owl"``) and the confusers
    (``"boobook"``, ``"barking_owl"``); the ``sample_*_params`` functions draw it from published ranges.

    Attributes:
        kind: ``"owl"`` (Powerful Owl), ``"boobook"`` or ``"barking_owl"``.
        sex: ``"male"``, ``"female"`` or ``None`` (unknown, confusers).
        f0_hz: held fundamental of the first note in Hz (the contour glides up to it and arches slightly).
        note_onsets_s: onset of each note in s from the call start; the first is 0.
        note_durations_s: length of each note in s.
        note_f0_ratios: each note's held fundamental relative to ``f0_hz`` (first is 1.0).
        note_gains: each note's amplitude relative to the first.
        glide_s: length of the opening upward glide in s.
        glide_depth: how far below the held pitch a note starts, as a fraction of it.
        arch_depth: extra rise at mid-note (fraction), giving the slightly arched shape.
        fall_depth: pitch drop over the note's end (fraction).
        fall_frac: fraction of each note (at its end) over which the pitch falls.
        attack_s: amplitude attack in s.
        release_frac: fraction of each note (at its end) spent fading out.
        harmonics: amplitudes of harmonics 2, 3, ... relative to the fundamental.
        noise: breathy noise around the fundamental, relative to the tone.
        onset_noise: broadband noise burst at each note's onset (harshness), relative to the tone.
        roughness: depth (0-1) of fast amplitude modulation (a growl), 0 for a pure hoot.
        roughness_hz: rate of that modulation in Hz.
        vibrato_hz: vibrato rate in Hz.
        vibrato_depth: vibrato depth as a fraction of the pitch.
        jitter: standard deviation of slow random pitch wander, as a fraction of the pitch.
        echo_delays_s: delays of discrete echoes (trees, ground) in s.
        echo_gains: their amplitudes relative to the direct sound.
        reverb_gain: RMS of the diffuse foliage tail relative to a unit direct impulse.
        reverb_decay_s: amplitude time constant of that tail in s.
        lowpass_hz: distance low-pass cut-off in Hz (``None``: a near bird, no loss of highs).
        seed: seeds jitter, noise and reverb, so rendering is a pure function of the parameters.
    """

    kind: str = "owl"
    sex: str | None = "male"
    f0_hz: float = 370.0
    note_onsets_s: tuple[float, ...] = (0.0, 0.9)
    note_durations_s: tuple[float, ...] = (0.5, 0.4)
    note_f0_ratios: tuple[float, ...] = (1.0, 1.02)
    note_gains: tuple[float, ...] = (1.0, 1.0)
    glide_s: float = 0.08
    glide_depth: float = 0.12
    arch_depth: float = 0.01
    fall_depth: float = 0.08
    fall_frac: float = 0.3
    attack_s: float = 0.03
    release_frac: float = 0.2
    harmonics: tuple[float, ...] = (0.08, 0.02)
    noise: float = 0.01
    onset_noise: float = 0.0
    roughness: float = 0.0
    roughness_hz: float = 40.0
    vibrato_hz: float = 5.0
    vibrato_depth: float = 0.003
    jitter: float = 0.003
    echo_delays_s: tuple[float, ...] = ()
    echo_gains: tuple[float, ...] = ()
    reverb_gain: float = 0.0
    reverb_decay_s: float = 0.15
    lowpass_hz: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SynthError(f"unknown call kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        n = len(self.note_onsets_s)
        if n == 0 or not (len(self.note_durations_s) == len(self.note_f0_ratios) == len(self.note_gains) == n):
            raise SynthError("note_onsets_s, note_durations_s, note_f0_ratios and note_gains need one entry per note")
        if len(self.echo_delays_s) != len(self.echo_gains):
            raise SynthError("echo_delays_s and echo_gains need the same length")
        if self.f0_hz <= 0 or min(self.note_durations_s) <= 0 or min(self.note_f0_ratios) <= 0:
            raise SynthError("f0_hz, note durations and pitch ratios must be positive")
        ends = [o + d for o, d in zip(self.note_onsets_s, self.note_durations_s, strict=True)]
        if any(self.note_onsets_s[i + 1] < ends[i] for i in range(n - 1)):
            raise SynthError("notes must not overlap")

    @property
    def duration_s(self) -> float:
        """Call length in s: first note onset to last note end (echoes excluded)."""
        return max(o + d for o, d in zip(self.note_onsets_s, self.note_durations_s, strict=True))

    @property
    def tail_s(self) -> float:
        """How long echoes and reverb ring on after the last note, in s."""
        echo = max(self.echo_delays_s, default=0.0)
        reverb = 4.0 * self.reverb_decay_s if self.reverb_gain > 0 else 0.0
        return echo + reverb

    @property
    def freq_range_hz(self) -> tuple[float, float]:
        """Lowest and highest fundamental the contour reaches, in Hz (for selection boxes)."""
        lo = self.f0_hz * min(self.note_f0_ratios) * (1.0 - max(self.glide_depth, self.fall_depth))
        hi = self.f0_hz * max(self.note_f0_ratios) * (1.0 + self.arch_depth + 2 * self.vibrato_depth
                                                      + 3 * self.jitter)
        return lo, hi


def _echoes(rng: np.random.Generator, p_echo: float = 0.7) -> dict:
    """Tree echoes and a diffuse foliage tail (random, sometimes absent)."""
    out: dict = {"echo_delays_s": (), "echo_gains": (), "reverb_gain": 0.0, "reverb_decay_s": 0.15}
    if rng.random() < p_echo:
        k = int(rng.integers(1, 4))
        out["echo_delays_s"] = tuple(sorted(float(d) for d in rng.uniform(0.04, 0.4, k)))
        out["echo_gains"] = tuple(float(g) for g in rng.uniform(0.08, 0.35, k))
    if rng.random() < 0.8:
        out["reverb_gain"] = float(rng.uniform(0.05, 0.4))
        out["reverb_decay_s"] = float(rng.uniform(0.06, 0.3))
    return out


def _distance_lowpass(rng: np.random.Generator, lo_hz: float = 900.0) -> float | None:
    """A distant bird loses its highs: half the calls get a low-pass between ``lo_hz`` and 4 kHz."""
    return float(rng.uniform(lo_hz, 4000.0)) if rng.random() < 0.5 else None


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def sample_owl_params(rng: np.random.Generator, sex: str | None = None, *, wide: bool = False) -> OwlCallParams:
    """Draw a Powerful Owl double hoot from the published ranges.

    Args:
        rng: the random generator (the only source of randomness).
        sex: ``"male"``, ``"female"`` or ``None`` (either, equally likely).

    Returns:
        :class:`OwlCallParams` with ``kind="owl"``: male held f0 350-425 Hz (60 % in 350-382 Hz), female
        450-530 Hz; the second note 0-3.5 % higher in males (about a third flat), 1-5 % higher in females;
        note 1 lasts 0.4-0.62 s (5 % of calls up to 0.95 s), note 2 0.3-0.5 s and shorter; onsets about
        0.9 s apart; each note glides up 12-22 % into its pitch and falls 8-18 % at its end (the arch).
        With ``wide=True`` the draw spans the soft edges of the description instead (see
        :func:`sample_owl_params_wide`).
    """
    if wide:
        return sample_owl_params_wide(rng, sex=sex)
    if sex is None:
        sex = "male" if rng.random() < 0.5 else "female"
    if sex == "male":
        f0 = rng.uniform(350.0, 382.0) if rng.random() < 0.6 else rng.uniform(350.0, 425.0)
        ratio2 = rng.uniform(0.995, 1.006) if rng.random() < 0.35 else rng.uniform(1.006, 1.035)
    elif sex == "female":
        f0 = rng.uniform(450.0, 530.0)
        ratio2 = rng.uniform(1.01, 1.05)
    else:
        raise SynthError(f"sex must be 'male', 'female' or None, not {sex!r}")
    # Reference spectrograms show a long first note and a second about half to four fifths as long.
    d1 = rng.uniform(0.65, 0.95) if rng.random() < 0.05 else rng.uniform(0.4, 0.62)
    d2 = float(np.clip(d1 * rng.uniform(0.5, 0.85), 0.3, 0.5))
    spacing = float(np.clip(rng.normal(0.9, 0.06), 0.78, 1.05))
    spacing = max(spacing, d1 + rng.uniform(0.12, 0.25))  # a gap always separates the notes
    return OwlCallParams(
        kind="owl", sex=sex, f0_hz=float(f0),
        note_onsets_s=(0.0, float(spacing)),
        note_durations_s=(float(d1), float(d2)),
        note_f0_ratios=(1.0, float(ratio2)),
        note_gains=(1.0, float(rng.uniform(0.8, 1.1))),
        glide_s=float(rng.uniform(0.08, 0.18)),
        glide_depth=float(rng.uniform(0.12, 0.22)),
        arch_depth=float(rng.uniform(0.01, 0.04)),
        fall_depth=float(rng.uniform(0.08, 0.18)),
        fall_frac=float(rng.uniform(0.25, 0.45)),
        attack_s=float(rng.uniform(0.02, 0.05)),
        release_frac=float(rng.uniform(0.1, 0.2)),
        harmonics=(float(rng.uniform(0.03, 0.15)), float(rng.uniform(0.005, 0.05)), float(rng.uniform(0.0, 0.02))),
        noise=float(rng.uniform(0.0, 0.03)),
        vibrato_hz=float(rng.uniform(3.0, 8.0)),
        vibrato_depth=float(rng.uniform(0.0, 0.005)),
        jitter=float(rng.uniform(0.001, 0.004)),
        lowpass_hz=_distance_lowpass(rng),
        seed=_seed(rng),
        **_echoes(rng),
    )


def sample_owl_params_wide(rng: np.random.Generator, sex: str | None = None) -> OwlCallParams:
    """Draw a Powerful Owl call across the soft edges of the published description.

    Unlike :func:`sample_owl_params` (the typical double hoot), nothing the description leaves open is fixed:
    12 % single hoots; the second note from 3 % lower to 10 % higher (about a third within 2 % of the
    first), 0.5-1.4 times as long as the first (so shorter, equal or longer) and -6..+4 dB relative to it;
    onset glide 0-25 % deep (15 % of calls none) over 0.03-0.2 s; end fall 0-18 %; pure to breathy
    (noise 0.3-30 % of the tone, log-uniform); weak to moderate harmonics (2nd 1-40 %).
    """
    if sex is None:
        sex = "male" if rng.random() < 0.55 else "female"
    if sex == "male":
        f0 = rng.uniform(350.0, 385.0) if rng.random() < 0.55 else rng.uniform(345.0, 430.0)
    elif sex == "female":
        f0 = rng.uniform(445.0, 550.0)
    else:
        raise SynthError(f"sex must be 'male', 'female' or None, not {sex!r}")
    u = rng.random()
    ratio2 = rng.uniform(0.97, 1.0) if u < 0.12 else rng.uniform(1.0, 1.02) if u < 0.35 else rng.uniform(1.02, 1.10)
    d1 = float(rng.uniform(0.3, 0.85))
    if rng.random() < 0.12:  # a single hoot
        onsets, durs, ratios, gains = (0.0,), (d1,), (1.0,), (1.0,)
    else:
        d2 = float(np.clip(d1 * rng.uniform(0.5, 1.4), 0.25, 0.95))
        spacing = float(np.clip(rng.normal(0.9, 0.1), 0.65, 1.3))
        spacing = max(spacing, d1 + float(rng.uniform(0.1, 0.25)))
        onsets, durs = (0.0, spacing), (d1, d2)
        ratios, gains = (1.0, float(ratio2)), (1.0, float(10.0 ** (rng.uniform(-6.0, 4.0) / 20.0)))
    return OwlCallParams(
        kind="owl", sex=sex, f0_hz=float(f0), note_onsets_s=onsets, note_durations_s=durs,
        note_f0_ratios=ratios, note_gains=gains,
        glide_s=float(rng.uniform(0.03, 0.2)),
        glide_depth=0.0 if rng.random() < 0.15 else float(rng.uniform(0.0, 0.25)),
        arch_depth=float(rng.uniform(0.0, 0.05)),
        fall_depth=float(rng.uniform(0.0, 0.18)),
        fall_frac=float(rng.uniform(0.15, 0.5)),
        attack_s=float(rng.uniform(0.01, 0.08)),
        release_frac=float(rng.uniform(0.08, 0.35)),
        harmonics=(float(rng.uniform(0.01, 0.4)), float(rng.uniform(0.0, 0.15)), float(rng.uniform(0.0, 0.06))),
        noise=float(np.exp(rng.uniform(np.log(0.003), np.log(0.3)))),
        vibrato_hz=float(rng.uniform(2.5, 8.0)),
        vibrato_depth=float(rng.uniform(0.0, 0.008)),
        jitter=float(rng.uniform(0.0, 0.006)),
        lowpass_hz=_distance_lowpass(rng),
        seed=_seed(rng),
        **_echoes(rng),
    )


def sample_params(rng: np.random.Generator, kind: str = "owl", sex: str | None = None) -> OwlCallParams:
    """Draw one call of ``kind`` (``"owl"``, ``"boobook"`` or ``"barking_owl"``); ``sex`` only for owls."""
    from owlfinder.synth.confusers import sample_barking_owl_params, sample_boobook_params  # they import this

    if kind == "owl":
        return sample_owl_params(rng, sex=sex)
    if kind == "boobook":
        return sample_boobook_params(rng)
    if kind == "barking_owl":
        return sample_barking_owl_params(rng)
    raise SynthError(f"unknown call kind {kind!r}; expected one of {', '.join(KINDS)}")


def snr_band(params: OwlCallParams) -> tuple[float, float]:
    """Band (Hz) in which a call's SNR is measured.

    Powerful Owl calls use :data:`OWL_BAND` (300-600 Hz), as a detector would see them. Confusers use their
    own fundamental's range (widened by 15 %), since a Boobook at 700 Hz has almost nothing in the owl band
    and levelling it there would blow it up.
    """
    if params.kind == "owl":
        return OWL_BAND
    lo, hi = params.freq_range_hz
    return 0.85 * lo, 1.15 * hi


#: Calls per bout (drawn uniformly) and onset-to-onset interval range between calls in s.
_BOUTS: dict[str, tuple[tuple[int, int], tuple[float, float]]] = {
    "owl": ((1, 3), (3.0, 12.0)),  # up to three double hoots: at most six syllables
    "boobook": ((1, 4), (1.3, 2.5)),
    "barking_owl": ((1, 3), (1.0, 3.0)),
}


def sample_bout(rng: np.random.Generator, kind: str = "owl", sex: str | None = None
                ) -> list[tuple[float, OwlCallParams]]:
    """Draw a bout: one bird calling a few times, seconds apart.

    Calls of a bout share the bird (sex, pitch within about 1 %, note lengths within about 5 %, echoes) and
    differ in their fine detail (seed). A Powerful Owl bout has one to three double hoots (at most six
    syllables) 3-12 s apart, onset to onset.

    Returns:
        ``[(onset_s, params), ...]`` with onsets in s from the bout start (the first is 0.0).
    """
    base = sample_params(rng, kind, sex)
    (lo, hi), (gap_lo, gap_hi) = _BOUTS[kind]
    n = int(rng.integers(lo, hi + 1))
    out: list[tuple[float, OwlCallParams]] = []
    t = 0.0
    for i in range(n):
        if i:
            stretch = rng.uniform(0.95, 1.05)
            p = dataclasses.replace(
                base, f0_hz=base.f0_hz * float(rng.uniform(0.99, 1.01)),
                note_onsets_s=tuple(o * stretch for o in base.note_onsets_s),
                note_durations_s=tuple(d * stretch for d in base.note_durations_s),
                seed=_seed(rng))
            t += max(float(rng.uniform(gap_lo, gap_hi)), out[-1][1].duration_s + out[-1][1].tail_s + 0.3)
        else:
            p = base
        out.append((t, p))
    return out


# ------------------------------------------------------------------------------------------- rendering


def _raised_cos(x: np.ndarray) -> np.ndarray:
    """0 -> 1 over x in [0, 1] (clipped), smooth at both ends."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


def _slow_noise(rng: np.random.Generator, n: int, sr: int, rate_hz: float = 25.0) -> np.ndarray:
    """Unit-variance random curve that varies at about ``rate_hz`` (linear interpolation of control points)."""
    k = max(2, int(math.ceil(n / sr * rate_hz)) + 2)
    pts = rng.standard_normal(k)
    return np.interp(np.arange(n) / sr * rate_hz, np.arange(k), pts)


def _note(p: OwlCallParams, f_hold: float, dur_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One note: glide up, hold with a slight arch, fall and fade; harmonics, noise and growl added."""
    n = max(2, int(round(dur_s * sr)))
    t = np.arange(n) / sr
    fall_start = dur_s * (1.0 - p.fall_frac)
    rel = (1.0 - _raised_cos(t / p.glide_s)) * -p.glide_depth
    rel += p.arch_depth * np.sin(np.pi * t / dur_s)
    rel -= p.fall_depth * np.clip((t - fall_start) / max(dur_s - fall_start, 1e-6), 0.0, 1.0) ** 1.5
    rel += p.vibrato_depth * np.sin(2 * np.pi * p.vibrato_hz * t + rng.uniform(0, 2 * np.pi))
    rel += p.jitter * _slow_noise(rng, n, sr)
    f = f_hold * (1.0 + rel)
    phase = 2 * np.pi * np.cumsum(f) / sr + rng.uniform(0, 2 * np.pi)
    tone = np.sin(phase)
    for k, a in enumerate(p.harmonics, start=2):
        if a > 0 and k * f.max() < 0.45 * sr:  # no aliasing at low sample rates
            tone += a * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    # The fade comes after most of the fall, so the arch's down-turn stays visible as in real calls.
    fade_start = dur_s * (1.0 - p.release_frac)
    env = _raised_cos(t / p.attack_s)
    env *= np.linspace(1.0, 0.8, n)  # a slow sag while held
    env *= 1.0 - _raised_cos((t - fade_start) / max(dur_s - fade_start, 1e-6))
    y = tone
    if p.roughness > 0:
        y = y * (1.0 - p.roughness * (0.5 + 0.5 * np.sin(2 * np.pi * p.roughness_hz * t)))
    if p.noise > 0:
        lo, hi = 0.7 * f_hold, min(2.5 * f_hold, 0.45 * sr)
        breath = signal.sosfilt(signal.butter(2, [lo, hi], "bandpass", fs=sr, output="sos"), rng.standard_normal(n))
        y = y + p.noise * breath / (breath.std() + 1e-12)
    y = y * env
    if p.onset_noise > 0:
        hi = min(4000.0, 0.45 * sr)
        burst = signal.sosfilt(signal.butter(2, [200.0, hi], "bandpass", fs=sr, output="sos"), rng.standard_normal(n))
        y = y + p.onset_noise * burst / (burst.std() + 1e-12) * np.exp(-t / 0.02) * _raised_cos(t / 0.003)
    return y


def _impulse_response(p: OwlCallParams, sr: int, rng: np.random.Generator) -> np.ndarray | None:
    """Direct sound, discrete echoes and a low-passed diffuse tail; ``None`` when dry."""
    if not p.echo_delays_s and p.reverb_gain <= 0:
        return None
    ir = np.zeros(int(math.ceil(p.tail_s * sr)) + 1)
    for d, g in zip(p.echo_delays_s, p.echo_gains, strict=True):
        ir[int(round(d * sr))] += g
    if p.reverb_gain > 0:
        m = int(4.0 * p.reverb_decay_s * sr)
        pre = int(0.01 * sr)
        tail = rng.standard_normal(m - pre) * np.exp(-np.arange(m - pre) / (p.reverb_decay_s * sr))
        ir[pre:m] += p.reverb_gain * tail / (np.sqrt(np.sum(tail**2)) + 1e-12)
    # Foliage and air absorb the highs of everything but the direct path.
    ir = signal.sosfilt(signal.butter(2, min(2500.0, 0.45 * sr), fs=sr, output="sos"), ir)
    ir[0] += 1.0
    return ir


def render_owl_call(params: OwlCallParams, sr: int, *, peak: float = 1.0) -> np.ndarray:
    """Render one call (any kind) as mono float32 at ``sr`` Hz.

    Sample 0 is the onset of the first note; the array runs ``params.duration_s + params.tail_s`` seconds
    (the notes, then their echoes). The output is peak-normalised to ``peak`` (default 1.0, i.e. 0 dBFS);
    :func:`mix_at_snr` sets the real level. Harmonics above 0.45 ``sr`` are left out.
    """
    if sr < 2000:
        raise SynthError(f"sample rate {sr} Hz is too low to render owl calls")
    rng = np.random.default_rng(params.seed)
    n_total = int(math.ceil((params.duration_s + params.tail_s) * sr)) + 1
    y = np.zeros(n_total)
    for onset, dur, ratio, gain in zip(params.note_onsets_s, params.note_durations_s, params.note_f0_ratios,
                                       params.note_gains, strict=True):
        note = _note(params, params.f0_hz * ratio, dur, sr, rng)
        i = int(round(onset * sr))
        y[i:i + len(note)] += gain * note[: n_total - i]
    ir = _impulse_response(params, sr, rng)
    if ir is not None:
        y = signal.fftconvolve(y, ir)[:n_total]
    if params.lowpass_hz is not None and params.lowpass_hz < 0.45 * sr:
        y = signal.sosfilt(signal.butter(4, params.lowpass_hz, fs=sr, output="sos"), y)
    m = np.max(np.abs(y))
    return (y * (peak / m if m > 0 else 0.0)).astype(np.float32)


# --------------------------------------------------------------------------------------------- mixing


def band_power(y: np.ndarray, sr: int, band: tuple[float, float] = OWL_BAND) -> float:
    """Mean-square power of ``y`` inside ``band`` (Hz), from its spectrum (Parseval, brick-wall band).

    Equals the mean of ``x**2`` where ``x`` is ``y`` with every frequency outside ``band`` removed.
    """
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if n == 0:
        return 0.0
    spec = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(n, 1.0 / sr)
    inside = (f >= band[0]) & (f <= band[1]) & (f > 0) & (f < sr / 2)
    return float(2.0 * spec[inside].sum() / n**2)


def call_gain_for_snr(background: np.ndarray, call: np.ndarray, sr: int, snr_db: float,
                      band: tuple[float, float] = OWL_BAND) -> float:
    """Gain for ``call`` so that its ``band`` power is ``snr_db`` dB above that of ``background``.

    Both arrays cover the same span (the call's samples and the background under them).

    Raises:
        SynthError: the call or the background has no energy in the band (the SNR is undefined).
    """
    p_call = band_power(call, sr, band)
    p_bg = band_power(background, sr, band)
    if p_call <= 0:
        raise SynthError(f"the call has no energy in {band[0]:g}-{band[1]:g} Hz")
    if p_bg <= 0:
        raise SynthError(f"the background is silent in {band[0]:g}-{band[1]:g} Hz; add a noise floor")
    return math.sqrt(p_bg * 10.0 ** (snr_db / 10.0) / p_call)


def mix_at_snr(background: np.ndarray, call: np.ndarray, sr: int, snr_db: float, offset_s: float,
               band: tuple[float, float] = OWL_BAND) -> np.ndarray:
    """Add ``call`` to ``background`` at ``offset_s`` with a band SNR of ``snr_db`` dB.

    The SNR is the ratio of the call's power to the background's power inside ``band`` (Hz), both over the
    call's span (the samples it covers, echoes included); a call running past the background's end is cut.
    If the mix would exceed a peak of 1.0 the whole mix is scaled down to 0.999 (the SNR is kept, nothing
    clips).

    Args:
        background: mono float array at ``sr`` Hz.
        call: mono float array at ``sr`` Hz (e.g. from :func:`render_owl_call`).
        sr: sample rate in Hz.
        snr_db: band SNR in dB.
        offset_s: where the call starts in the background, in s.
        band: measurement band in Hz (default the owl band, 300-600 Hz).

    Returns:
        The mix, float32, same length as ``background``.
    """
    bg = np.asarray(background, dtype=np.float32)
    i = int(round(offset_s * sr))
    if not 0 <= i < len(bg):
        raise SynthError(f"offset {offset_s:.3f} s is outside the {len(bg) / sr:.3f} s background")
    c = np.asarray(call, dtype=np.float64)[: len(bg) - i]
    g = call_gain_for_snr(bg[i:i + len(c)], c, sr, snr_db, band)
    mix = bg.astype(np.float64)
    mix[i:i + len(c)] += g * c
    peak = np.max(np.abs(mix))
    if peak > 1.0:
        mix *= 0.999 / peak
    return mix.astype(np.float32)
