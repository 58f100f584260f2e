"""Training material as band powers: calls, confusers and backgrounds kept apart, mixed at training time.

A 5 s training example is a background crop plus, perhaps, a call and a confuser, each placed at a random
time, pitch-shifted by a band or two and set to a random band SNR. Doing that on waveforms and running the
front end each step costs more than the model; doing it on the front end's band powers costs almost nothing,
because the band powers of independent sounds add (plus an interference term with random phase, drawn here,
whose size shrinks with the number of FFT bins under a band). So every sound is turned into log band power
once (:class:`BandBank`) and :func:`mix_batch` makes new combinations every step: far more variety per
minute of CPU than pre-mixed clips.

Arrays are ``[bands, frames]`` of ``log10`` power (float16 in the bank), with the bands and frames of
:class:`~owlfinder.owlnet.OwlNetFeatureExtractor`; :func:`to_db` gives the model's input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from owlfinder.spectrogram import parabolic_peak

__all__ = ["BandBank", "MixConfig", "extractor_settings", "glide_in_curve", "mix_batch", "onset_glide_curve",
           "sound_power", "to_db"]

LOG_FLOOR = -10.0  # log10 power of digital silence (the extractor's -100 dB floor)


def sound_power(fe, y: np.ndarray) -> np.ndarray:
    """``log10`` band power (float16 ``[bands, frames]``) of a mono float32 signal at the extractor's rate:
    frame ``k`` is centred on sample ``k * hop_length``, as in a window the extractor sees. Computed in 20 s
    pieces (with context) so that long recordings need little memory."""
    y = np.asarray(y, dtype=np.float32)
    hop = fe.hop_length
    piece = hop * 1000  # 1000 frames (20 s at the default hop) per STFT
    ctx = -(-fe.n_fft // hop) * hop  # context each side, a whole number of hops so frames stay on the grid
    out = []
    with torch.inference_mode():
        for j in range(0, max(1, len(y)), piece):
            lo, hi = max(0, j - ctx), min(len(y), j + piece + ctx)
            seg = y[lo:hi]
            if len(seg) <= fe.n_fft // 2:
                seg = np.resize(seg if len(seg) else np.zeros(1, np.float32), fe.n_fft // 2 + 1)
            db = fe.band_power_db(torch.from_numpy(np.ascontiguousarray(seg))[None])[0]
            a = (j - lo) // hop
            out.append(db[:, a: a + piece // hop].numpy())
    lp = np.concatenate(out, axis=1) / 10.0
    n_frames = len(y) // hop + 1
    return np.ascontiguousarray(lp[:, :n_frames]).astype(np.float16)


@dataclass
class BandBank:
    """Sounds as ``log10`` band power, ready to mix.

    Attributes:
        calls: owl calls alone (no background), each ``[bands, frames]``.
        call_keep: per call, the frames ``(first, last)`` that must lie inside a positive window (the first two
            notes, or the single hoot).
        call_family: per call, its family's name.
        confusers: other sounds alone (other owls, frogmouths, koalas, hums...), each ``[bands, frames]``.
        backgrounds: real negative recordings, each ``[bands, frames]`` (longer than a window).
        window_frames: frames of a model window.
        band_rows: rows of the SNR band (the owl band, 300-600 Hz).
        coherence: per band, the interference term's scale (1 / sqrt of the FFT bins under it).
        confuser_kind: per confuser, what it is.
        call_notes: per call, how many notes it has (1 for a single hoot).
        extractor: the :class:`~owlfinder.owlnet.OwlNetFeatureExtractor` settings the powers were made with.
    """

    calls: list[np.ndarray]
    call_keep: np.ndarray
    call_family: np.ndarray
    confusers: list[np.ndarray]
    backgrounds: list[np.ndarray]
    window_frames: int
    band_rows: np.ndarray
    coherence: np.ndarray
    confuser_kind: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    extractor: dict = field(default_factory=dict)
    call_notes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @classmethod
    def from_sounds(cls, fe, calls: Sequence[np.ndarray], call_keep: np.ndarray, call_family: Sequence[str],
                    confusers: Sequence[np.ndarray], backgrounds: Sequence[np.ndarray], *, window_s: float = 5.0,
                    confuser_kind: Sequence[str] = (), call_notes: Sequence[int] | None = None) -> BandBank:
        """A bank of log10 band powers made with the extractor ``fe`` (see :func:`sound_power`); calls count as
        double hoots unless ``call_notes`` says otherwise."""
        rows, coherence = cls.band_info(fe)
        notes = np.full(len(calls), 2, np.int64) if call_notes is None else np.asarray(call_notes, dtype=np.int64)
        return cls(list(calls), np.asarray(call_keep, dtype=np.int64).reshape(-1, 2), np.asarray(call_family),
                   list(confusers), list(backgrounds), int(round(window_s * fe.sampling_rate)) // fe.hop_length + 1,
                   rows, coherence, np.asarray(confuser_kind), extractor=extractor_settings(fe), call_notes=notes)

    @property
    def n_bands(self) -> int:
        return int(len(self.coherence))

    @property
    def octaves(self) -> np.ndarray:
        """Each band's distance from 400 Hz in octaves (float32)."""
        f_min, bpo = float(self.extractor.get("f_min", 150.0)), int(self.extractor.get("bins_per_octave", 16))
        return (np.arange(self.n_bands) / bpo + np.log2(f_min / 400.0)).astype(np.float32)

    def feature_extractor(self):
        """The :class:`~owlfinder.owlnet.OwlNetFeatureExtractor` these powers were made with."""
        from owlfinder.owlnet import OwlNetFeatureExtractor

        return OwlNetFeatureExtractor(**self.extractor)

    @staticmethod
    def band_info(fe, band_hz: tuple[float, float] = (300.0, 600.0)) -> tuple[np.ndarray, np.ndarray]:
        """``(band_rows, coherence)`` for the extractor ``fe`` (see the attributes)."""
        from owlfinder.owlnet import log_band_filters

        w = log_band_filters(fe.sampling_rate, fe.n_fft, fe.f_min, fe.f_max, fe.bins_per_octave)
        centres = fe.f_min * 2.0 ** (np.arange(len(w)) / fe.bins_per_octave)
        rows = np.flatnonzero((centres >= band_hz[0]) & (centres <= band_hz[1]))
        eff_bins = 1.0 / np.square(w).sum(axis=1)
        return rows, (1.0 / np.sqrt(eff_bins)).astype(np.float32)

    def subset(self, families: Sequence[str]) -> BandBank:
        """The same bank with only the calls of ``families``."""
        keep = np.flatnonzero(np.isin(self.call_family, list(families)))
        return BandBank([self.calls[i] for i in keep], self.call_keep[keep], self.call_family[keep],
                        self.confusers, self.backgrounds, self.window_frames, self.band_rows, self.coherence,
                        self.confuser_kind, self.extractor, self.call_notes[keep])


def extractor_settings(fe) -> dict:
    """The settings of an :class:`~owlfinder.owlnet.OwlNetFeatureExtractor` that band powers depend on."""
    return {k: getattr(fe, k) for k in ("sampling_rate", "n_fft", "hop_length", "f_min", "f_max", "bins_per_octave",
                                        "floor_db")}


@dataclass
class MixConfig:
    """How :func:`mix_batch` draws examples.

    Attributes:
        snr_db: band SNR range of calls (uniform), dB.
        confuser_snr_db: band SNR range of confusers, dB.
        p_confuser_neg: share of negatives with a confuser in them (the rest are real background alone or two
            backgrounds mixed).
        p_two_backgrounds: share of the remaining negatives that mix a second background crop into the first.
        p_confuser_pos: share of positives that also hold a confuser.
        max_shift_call, max_shift_confuser: random pitch shift, in bands (each band is 1/16 octave).
        p_tilt, tilt_db_per_octave: share of calls and confusers given a random spectral tilt (dB per octave
            about 400 Hz, uniform), so that how strong a call's harmonics are is no cue.
        p_stretch, stretch: share of calls played slower or faster by a factor (log-uniform): note lengths and
            spacing vary beyond any one generator's.
        p_warp, max_warp_bands: share of calls whose pitch is bent along a random smooth curve, and the
            largest bend in bands (1.5 bands is 6.7 %).
        p_eq, eq_db, eq_width_bands: share of calls and confusers sent through a random smooth equaliser: one to
            three bumps or dips of up to ``eq_db`` dB, each a Gaussian ``eq_width_bands`` wide (standard
            deviation, uniform) at a random band. A throat, beak or vocal tract shapes a voice's harmonics by
            resonances that the spectral tilt (a straight line) cannot draw.
        p_envelope, envelope_db: share of calls and confusers whose loudness is bent along a random smooth curve
            in time (knots every 0.1-0.3 s, up to ``envelope_db`` dB), so that no generator's attack, sag or
            release shape is a cue.
        p_flatten: share of calls whose notes lose their upward onset glide (:func:`onset_glide_curve`), before
            any other change. Every generator glides most of its notes up into their pitch, and most confusers
            (steady tones, other owls) do not, so without it the glide alone becomes the cue: calls with a
            shallow or no glide, which other synthesizers make, scored 4-9 logits lower than
            deep-glided ones (``scripts/explain_scores.py``). Drawn from ``aug_rng``. 0.4 since 2026-12-07
            (docs/generalisation.md: held-out recall on the calibration sites +5 points over five folds).
        p_glide_confuser, confuser_glide_bands, confuser_glide_frames: share of confusers whose notes are given
            an upward onset glide (:func:`glide_in_curve`) before any other change, starting
            ``confuser_glide_bands`` lower (uniform; 5.2 bands is 25 %) and rising over ``confuser_glide_frames``
            frames (uniform, inclusive; 20 ms each). The other half of taking the glide away as a cue: a glide then
            occurs in both classes. Drawn from ``aug_rng``. 0.5 since 2026-12-07 (docs/generalisation.md: held-out
            recall on the calibration sites +3.6 points over five folds, the training families' +4.8).
        p_shorten, shorten_min_frames: share of calls whose notes are each cut to a random length (uniform, in
            frames, from ``shorten_min_frames``, 13 frames = 0.26 s, to the note's own) by :func:`shortened`,
            before any other change but ``p_flatten``. Held-out families' short notes (0.25-0.37 s, inside the
            description's 0.3-0.6 s) scored lowest of all (``scripts/explain_scores.py``: the note lengths were
            the strongest cue left after the glide). Drawn from ``aug_rng``.
        single_share: share of positives that are single hoots (``None``: as often as in the bank, about one
            in eight). A lone tonal hoot is weak evidence (many birds give one; the double hoot is the Powerful
            Owl's signature), so fewer of them teach the model to rank lone hoots below double hoots.
        p_time_mask, max_time_mask: SpecAugment-style time masks (frames filled with the band's median).
        p_band_mask, max_band_mask: band masks.
    """

    snr_db: tuple[float, float] = (-5.0, 20.0)
    confuser_snr_db: tuple[float, float] = (-5.0, 25.0)
    p_confuser_neg: float = 0.45
    p_two_backgrounds: float = 0.3
    p_confuser_pos: float = 0.15
    max_shift_call: int = 1
    max_shift_confuser: int = 2
    p_tilt: float = 0.7
    tilt_db_per_octave: tuple[float, float] = (-9.0, 6.0)
    p_stretch: float = 0.5
    stretch: tuple[float, float] = (0.85, 1.18)
    p_warp: float = 0.5
    max_warp_bands: float = 1.5
    p_eq: float = 0.0
    eq_db: float = 8.0
    eq_width_bands: tuple[float, float] = (2.0, 8.0)
    p_envelope: float = 0.0
    envelope_db: float = 5.0
    p_flatten: float = 0.4
    p_glide_confuser: float = 0.5
    p_shorten: float = 0.0
    shorten_min_frames: int = 13
    confuser_glide_bands: tuple[float, float] = (1.0, 5.0)
    confuser_glide_frames: tuple[int, int] = (2, 10)
    single_share: float | None = None
    p_time_mask: float = 0.3
    max_time_mask: int = 15
    p_band_mask: float = 0.3
    max_band_mask: int = 6

    @classmethod
    def from_overrides(cls, items: Sequence[str]) -> MixConfig:
        """The defaults with ``KEY=VALUE`` overrides, as a command line gives them (``p_eq=0.5``,
        ``snr_db=-3,20``); a value takes the type of the field's default."""
        base = cls()
        changes = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or not hasattr(base, key):
                raise ValueError(f"--mix {item!r}: expected KEY=VALUE with KEY one of {', '.join(vars(base))}")
            default = getattr(base, key)
            try:
                if isinstance(default, tuple):
                    changes[key] = tuple(type(d)(v) for d, v in zip(default, value.split(","), strict=True))
                elif default is None:
                    changes[key] = None if value.lower() == "none" else float(value)
                else:
                    changes[key] = type(default)(value)
            except ValueError as e:
                raise ValueError(f"--mix {item!r}: {e}") from None
        return replace(base, **changes)


def _crop(rng: np.random.Generator, bank: BandBank, n: int) -> np.ndarray:
    lengths = np.array([b.shape[1] for b in bank.backgrounds], dtype=np.float64)
    b = bank.backgrounds[int(rng.choice(len(lengths), p=lengths / lengths.sum()))]
    if b.shape[1] < n:
        b = np.tile(b, (1, n // b.shape[1] + 1))
    i = int(rng.integers(0, b.shape[1] - n + 1))
    return np.power(10.0, b[:, i:i + n].astype(np.float32))


def _shifted(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` moved ``k`` bands up (positive) or down, the vacated bands silent."""
    if k == 0:
        return x
    out = np.full_like(x, LOG_FLOOR)
    if k > 0:
        out[k:] = x[:-k]
    else:
        out[:k] = x[-k:]
    return out


def _gained(x: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """``x`` (log10 power) plus ``gain`` (log10 units, broadcast) where it sounds; silent parts left silent."""
    return np.where(x > LOG_FLOOR + 0.5, x + gain, x).astype(x.dtype)


def _random_curve(rng: np.random.Generator, t: int, limit: float, knot_frames: tuple[int, int]) -> np.ndarray:
    """A random piecewise-linear curve over ``t`` frames, knots every ``knot_frames`` frames, within ``limit``."""
    knots = np.arange(0, t + knot_frames[1], int(rng.integers(*knot_frames)))
    return np.interp(np.arange(t), knots, rng.uniform(-limit, limit, len(knots)))


def _tilted(x: np.ndarray, db_per_octave: float, octaves: np.ndarray) -> np.ndarray:
    """``x`` (log10 power) with a spectral tilt of ``db_per_octave`` about 400 Hz (``octaves``: each band's
    distance from 400 Hz), its silent parts left silent: harmonics made stronger or weaker than the sound's own."""
    return _gained(x, np.float32(db_per_octave / 10.0) * octaves[:, None])


def _equalised(rng: np.random.Generator, x: np.ndarray, max_db: float, width_bands: tuple[float, float]
               ) -> np.ndarray:
    """``x`` (log10 power) through a random smooth equaliser: 1-3 Gaussian bumps or dips of up to ``max_db`` dB,
    ``width_bands`` wide (standard deviation, in bands), at random bands; silent parts left silent."""
    bands = np.arange(x.shape[0], dtype=np.float32)
    gain = np.zeros(x.shape[0], np.float32)
    for _ in range(int(rng.integers(1, 4))):
        centre, width = rng.uniform(0, x.shape[0]), rng.uniform(*width_bands)
        gain += np.float32(rng.uniform(-max_db, max_db) / 10.0) * np.exp(-0.5 * ((bands - centre) / width) ** 2)
    return _gained(x, gain[:, None])


def _enveloped(rng: np.random.Generator, x: np.ndarray, max_db: float, knot_frames: tuple[int, int] = (5, 16)
               ) -> np.ndarray:
    """``x`` (log10 power) louder and softer along a random smooth curve in time: piecewise linear, knots every
    ``knot_frames`` frames, at most ``max_db`` dB either way; silent parts left silent."""
    curve = _random_curve(rng, x.shape[1], max_db, knot_frames).astype(np.float32) / 10.0
    return _gained(x, curve[None, :])


def _stretched(x: np.ndarray, keep: tuple[int, int], factor: float) -> tuple[np.ndarray, tuple[int, int]]:
    """``x`` played ``factor`` times as long (linear interpolation of log power along frames; pitch kept), and
    the kept frames moved with it."""
    n = max(2, int(round(x.shape[1] * factor)))
    src = np.minimum(np.arange(n) / factor, x.shape[1] - 1.0)
    i0 = np.minimum(src.astype(np.int64), x.shape[1] - 2)
    w = (src - i0).astype(np.float32)
    xf = x.astype(np.float32)
    out = xf[:, i0] * (1.0 - w) + xf[:, i0 + 1] * w
    return out.astype(x.dtype), (min(n - 1, int(keep[0] * factor)), min(n - 1, int(round(keep[1] * factor))))


def _bent(x: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """``x`` (log10 power) with each frame moved ``curve[frame]`` bands up (fractional: interpolated as power,
    not log power, so a line between two bands splits its power between them); vacated bands silent."""
    n_bands, t = x.shape
    src = np.arange(n_bands, dtype=np.float64)[:, None] - curve[None, :]  # where each output band reads from
    i0 = np.floor(src).astype(np.int64)
    w = (src - i0).astype(np.float32)
    p = np.concatenate([np.power(10.0, x.astype(np.float32)), np.zeros((1, t), np.float32)])  # row -1: silence
    cols = np.arange(t)[None, :]
    lo = np.where((i0 >= 0) & (i0 < n_bands), i0, -1)
    hi = np.where((i0 + 1 >= 0) & (i0 + 1 < n_bands), i0 + 1, -1)
    out = p[lo, cols] * (1.0 - w) + p[hi, cols] * w
    return np.log10(np.maximum(out, np.float32(10.0 ** LOG_FLOOR))).astype(x.dtype)


def _warped(rng: np.random.Generator, x: np.ndarray, max_bands: float, knot_frames: tuple[int, int] = (8, 25)
            ) -> np.ndarray:
    """``x`` (log10 power) with its pitch bent along a random smooth curve of at most ``max_bands`` bands: a
    piecewise-linear shift with knots every ``knot_frames`` frames, applied by interpolating between bands.
    Glides, arches, droops and wavers come and go, so no one generator's contour is a cue."""
    return _bent(x, _random_curve(rng, x.shape[1], max_bands, knot_frames))


def _note_onsets(x: np.ndarray, *, min_note_frames: int, onset_frames: int) -> list[tuple[int, int, int]]:
    """``(first, start, stop)`` frames of each note of a lone sound ``x`` (log10 power ``[bands, frames]``) of
    ``min_note_frames`` or more: a note is a run of frames within 20 dB of the loudest frame, ``[start, stop)``,
    and ``first`` goes back over the quiet start of its attack (up to ``onset_frames // 2`` frames within 35 dB,
    not into the note before), where an onset glide is deepest."""
    if x.shape[1] == 0 or x.max() <= LOG_FLOOR + 0.5:  # digital silence holds no note
        return []
    energy = np.power(10.0, x.astype(np.float32)).sum(axis=0)
    voiced = energy >= energy.max() * 0.01
    audible = energy >= energy.max() * 10 ** -3.5
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]])))
    notes, prev_stop = [], 0
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if stop - start >= min_note_frames:
            first = start
            while first > max(prev_stop, start - onset_frames // 2) and audible[first - 1]:
                first -= 1
            notes.append((int(first), int(start), int(stop)))
        prev_stop = stop
    return notes


def onset_glide_curve(x: np.ndarray, ridge_bands: tuple[int, int], *, min_note_frames: int = 8,
                      onset_frames: int = 12, max_bands: float = 6.0) -> np.ndarray:
    """The per-frame band shift that takes the upward onset glide out of a lone call ``x`` (log10 power
    ``[bands, frames]``, no background).

    A note is a run of frames within 20 dB of the call's loudest frame, extended back over the quiet start of its
    attack (up to ``onset_frames // 2`` frames within 35 dB, where the glide is deepest); its pitch is the loudest
    band of ``ridge_bands`` (``[lo, hi)``, the fundamental's range) in each frame, refined between bands. Over that
    start and the first ``min(onset_frames, 45 %)`` of each note of ``min_note_frames`` or more, frames below the
    note's hold (the median pitch of its 30-80 % stretch) are raised to it, by at most ``max_bands``; everything
    else stays. Notes that start flat, or above their hold, get no shift.
    """
    lo, hi = ridge_bands
    curve = np.zeros(x.shape[1], np.float64)
    notes = _note_onsets(x, min_note_frames=min_note_frames, onset_frames=onset_frames)
    if not notes:
        return curve
    sub = x[lo:hi].astype(np.float64)
    ridge = parabolic_peak(sub, np.argmax(sub, axis=0))
    for first, start, stop in notes:
        n = stop - start
        hold = float(np.median(ridge[start + int(0.3 * n): start + max(int(0.3 * n) + 1, int(0.8 * n))]))
        m = start - first + min(onset_frames, int(0.45 * n))
        curve[first:first + m] = np.clip(hold - ridge[first:first + m], 0.0, max_bands)
    return curve


def glide_in_curve(x: np.ndarray, depth_bands: float, glide_frames: int, *, min_note_frames: int = 4,
                   onset_frames: int = 12) -> np.ndarray:
    """The per-frame band shift that gives every note of a lone sound ``x`` (log10 power ``[bands, frames]``) an
    upward onset glide: from the quiet start of its attack (as in :func:`onset_glide_curve`) the note starts
    ``depth_bands`` lower and rises to its own pitch over ``glide_frames`` frames of the note (at most 45 % of
    it), along a curve that flattens as it arrives. The inverse of :func:`onset_glide_curve`, for sounds that are
    not owls: a glide alone should not make a sound an owl."""
    curve = np.zeros(x.shape[1], np.float64)
    for first, start, stop in _note_onsets(x, min_note_frames=min_note_frames, onset_frames=onset_frames):
        m = start - first + max(1, min(glide_frames, int(0.45 * (stop - start))))
        curve[first:first + m] = -depth_bands * (1.0 - np.arange(m) / m) ** 1.5
    return curve


def shortened(x: np.ndarray, length: Callable[[int], int], *, release_frames: int = 4, depth_db: float = 30.0,
              min_note_frames: int = 4, onset_frames: int = 12) -> np.ndarray:
    """A lone call ``x`` (log10 power ``[bands, frames]``) with each note (as :func:`onset_glide_curve` finds
    notes, from the start of its attack) cut to ``length(n)`` frames, ``n`` being the note's own length, asked note
    by note in time order: from there the note fades by ``depth_db`` dB over ``release_frames`` frames and stays
    that much softer to its end, as a shorter note's release would. What follows a note's end (its echo) stays;
    notes no longer than their new length are left alone."""
    out = x.copy()
    for first, _, stop in _note_onsets(x, min_note_frames=min_note_frames, onset_frames=onset_frames):
        cut = first + max(1, int(length(stop - first)))
        if cut >= stop:
            continue
        fade = depth_db / 10.0 * np.minimum(1.0, np.arange(1, stop - cut + 1) / max(1, release_frames))
        out[:, cut:stop] = np.maximum(out[:, cut:stop] - fade[None, :].astype(out.dtype), LOG_FLOOR)
    return out


def _fundamental_bands(bank: BandBank, hz: tuple[float, float] = (230.0, 700.0)) -> tuple[int, int]:
    """The bank's bands ``[lo, hi)`` that hold a call's fundamental (its onset glide included)."""
    f_min, bpo = float(bank.extractor.get("f_min", 150.0)), int(bank.extractor.get("bins_per_octave", 16))
    lo, hi = (int(np.ceil(bpo * np.log2(f / f_min))) for f in hz)
    return max(0, lo), min(bank.n_bands, hi + 1)


def _place(rng: np.random.Generator, sound: np.ndarray, n: int, keep: tuple[int, int] | None
           ) -> tuple[np.ndarray, slice, int]:
    """``sound`` (log10, ``[bands, frames]``) at a random offset in an ``n``-frame window, as linear power; the
    window frames it covers; and the offset (window frame of the sound's frame 0, negative when its start is
    cut). With ``keep``, frames ``keep[0]..keep[1]`` of the sound stay inside the window."""
    t = sound.shape[1]
    if keep is not None:
        lo, hi = -int(keep[0]), n - 1 - int(keep[1])
        if hi < lo:  # longer than the window: keep its start
            hi = lo
    else:
        lo, hi = min(0, n - t), max(0, n - t)
    off = int(rng.integers(lo, hi + 1))
    a, b = max(0, off), min(n, off + t)
    out = np.zeros((sound.shape[0], n), np.float32)
    out[:, a:b] = np.power(10.0, sound[:, a - off: b - off].astype(np.float32))
    return out, slice(a, b), off


def _add(rng: np.random.Generator, bg: np.ndarray, fg: np.ndarray, span: slice, snr_db: float, bank: BandBank
         ) -> np.ndarray:
    """``fg`` added to ``bg`` at ``snr_db`` in the SNR band over ``span``, with random-phase interference."""
    rows = bank.band_rows
    p_fg = float(fg[rows, span].sum())
    if p_fg <= 0 or span.stop <= span.start:
        return bg
    g = 10.0 ** (snr_db / 10.0) * float(bg[rows, span].sum()) / p_fg
    fg = fg * np.float32(g)
    cross = 2.0 * np.sqrt(fg * bg) * np.cos(rng.uniform(0, 2 * np.pi, bg.shape)).astype(np.float32)
    return np.maximum(bg + fg + cross * bank.coherence[:, None], np.float32(10.0 ** LOG_FLOOR))


def _mask(rng: np.random.Generator, db: np.ndarray, c: MixConfig) -> np.ndarray:
    if rng.random() < c.p_time_mask:
        w = int(rng.integers(1, c.max_time_mask + 1))
        t0 = int(rng.integers(0, max(1, db.shape[1] - w)))
        db[:, t0:t0 + w] = np.median(db, axis=1, keepdims=True)
    if rng.random() < c.p_band_mask:
        w = int(rng.integers(1, c.max_band_mask + 1))
        f0 = int(rng.integers(0, max(1, db.shape[0] - w)))
        db[f0:f0 + w] = np.median(db[f0:f0 + w], axis=1, keepdims=True)
    return db


def to_db(power: np.ndarray) -> np.ndarray:
    """Linear band power to the model's input (dB, float32)."""
    return (10.0 * np.log10(np.maximum(power, np.float32(10.0 ** LOG_FLOOR)))).astype(np.float32)


def mix_batch(rng: np.random.Generator, bank: BandBank, n_pos: int, n_neg: int, c: MixConfig | None = None, *,
              hard: Sequence[np.ndarray] = (), n_hard: int = 0,
              background: Callable[[np.random.Generator], np.ndarray] | None = None,
              aug_rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A batch: ``n_pos`` positives, then ``n_neg`` negatives (``n_hard`` of them from ``hard``, dB arrays).

    ``aug_rng`` draws what ``p_flatten``, ``p_glide_confuser`` and ``p_shorten`` decide (default: ``rng``). A separate generator leaves ``rng``'s draws
    as they were without it, so a recipe with and without it differs by that change alone, not by other draws.

    Returns:
        ``(features, labels)``: float32 dB ``[n, bands, frames]`` and 1 for owl, 0 for not.
    """
    c = c or MixConfig()
    n = bank.window_frames
    crop = background or (lambda r: _crop(r, bank, n))
    feats, labels = [], []

    octaves = bank.octaves

    def timbre(x: np.ndarray) -> np.ndarray:
        x = _tilted(x, float(rng.uniform(*c.tilt_db_per_octave)), octaves) if rng.random() < c.p_tilt else x
        # The draws below are skipped when off, so older configs give the same batches as before.
        if c.p_eq and rng.random() < c.p_eq:
            x = _equalised(rng, x, c.eq_db, c.eq_width_bands)
        if c.p_envelope and rng.random() < c.p_envelope:
            x = _enveloped(rng, x, c.envelope_db)
        return x

    aug = aug_rng if aug_rng is not None else rng

    def confuser(bg: np.ndarray) -> np.ndarray:
        k = int(rng.integers(len(bank.confusers)))
        s = bank.confusers[k]
        if c.p_glide_confuser and aug.random() < c.p_glide_confuser:
            frames = int(aug.integers(c.confuser_glide_frames[0], c.confuser_glide_frames[1] + 1))
            s = _bent(s, glide_in_curve(s, float(aug.uniform(*c.confuser_glide_bands)), frames))
        s = timbre(_shifted(s, int(rng.integers(-c.max_shift_confuser, c.max_shift_confuser + 1))))
        fg, span, _ = _place(rng, s, n, None)
        return _add(rng, bg, fg, span, float(rng.uniform(*c.confuser_snr_db)), bank)

    ridge = _fundamental_bands(bank)
    singles = np.flatnonzero(bank.call_notes == 1)
    multi = np.flatnonzero(bank.call_notes != 1)

    def pick_call() -> int:
        if c.single_share is None or not len(singles) or not len(multi):
            return int(rng.integers(len(bank.calls)))
        pool = singles if rng.random() < c.single_share else multi
        return int(pool[rng.integers(len(pool))])

    for _ in range(n_pos):
        k = pick_call()
        s, keep = bank.calls[k], tuple(bank.call_keep[k])
        if c.p_flatten and aug.random() < c.p_flatten:
            s = _bent(s, onset_glide_curve(s, ridge))
        if c.p_shorten and aug.random() < c.p_shorten:
            s = shortened(s, lambda n: int(aug.integers(min(c.shorten_min_frames, n), n + 1)))
        if rng.random() < c.p_stretch:
            s, keep = _stretched(s, keep, float(np.exp(rng.uniform(*np.log(c.stretch)))))
        s = timbre(_shifted(s, int(rng.integers(-c.max_shift_call, c.max_shift_call + 1))))
        if rng.random() < c.p_warp:
            s = _warped(rng, s, float(rng.uniform(0.0, c.max_warp_bands)))
        fg, span, _ = _place(rng, s, n, keep)
        bg = crop(rng)
        if bank.confusers and rng.random() < c.p_confuser_pos:
            bg = confuser(bg)
        feats.append(_mask(rng, to_db(_add(rng, bg, fg, span, float(rng.uniform(*c.snr_db)), bank)), c))
        labels.append(1)
    n_hard = min(n_hard, len(hard), n_neg)
    for _ in range(n_neg - n_hard):
        bg = crop(rng)
        if bank.confusers and rng.random() < c.p_confuser_neg:
            bg = confuser(bg)
        elif rng.random() < c.p_two_backgrounds:
            other = crop(rng)
            bg = bg + other * np.float32(10.0 ** (rng.uniform(-10, 10) / 10.0) * bg.mean() / max(other.mean(), 1e-20))
        feats.append(_mask(rng, to_db(bg), c))
        labels.append(0)
    for i in rng.choice(len(hard), n_hard, replace=False) if n_hard else ():
        feats.append(_mask(rng, np.array(hard[i], dtype=np.float32), c))
        labels.append(0)
    return np.stack(feats), np.array(labels, dtype=np.int64)
