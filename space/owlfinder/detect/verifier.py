"""A second stage that needs no training: does a candidate window hold a note the published call description allows?

The classifier learned owl calls from synthesizers; on real audio its top false positives are clear tonal notes,
some of which break the description outright (dawn-chorus pips and slides, a steady engine tone for seconds). The
description (``../shared/data/README.md``) says each note begins with a *short* upward glide,
then *holds* and fades, lasts about 0.3-0.6 s (up to about 1 s), with the fundamental at 350-430 Hz (males) or
450-550 Hz (females), the second note often slightly higher.

:func:`tonal_notes` traces the tonal notes of a clip (a ridge of the spectrogram in 250-800 Hz that stands out of
the clip's own background); :func:`check_window` rejects a clip only when it holds *strong* notes and *none* of
them fits the description with generous margins (:class:`NoteRule`). A clip with no clear note, or with one note
that fits, passes: the check removes only what the description rules out, and passes whenever in doubt.
:func:`verify_detection` applies it to a scan's candidate windows, and can also lower (not reject) a window whose
fitting notes make no double hoot (:meth:`NoteRule.pair`). The engine runs the check by default on every window
within 3 logits of the threshold (``DetectionParams.description_check_logit``); the demotion is off by default.
Both are measured on the leave-one-family-out folds in docs/generalisation.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import librosa
import numpy as np

from owlfinder.detect.events import shift_threshold
from owlfinder.spectrogram import parabolic_peak

__all__ = ["REJECT_FACTOR", "Note", "NoteRule", "Verdict", "check_window", "tonal_notes", "verify_detection"]

#: A rejected window's score is multiplied by this: it stays in the result, below every candidate that passed.
REJECT_FACTOR = 0.01


@dataclass(frozen=True)
class Note:
    """One tonal note of a clip.

    Attributes:
        start_s, end_s: its first and last frame's centre, in seconds from the clip's start.
        pitch_hz: the ridge's frequency in each frame (Hz).
        prominence_db: how far the ridge stands above the clip's background in each frame (dB).
        at_edge: it touches the clip's start or end (so it may be longer than seen).
    """

    start_s: float
    end_s: float
    pitch_hz: np.ndarray
    prominence_db: np.ndarray
    at_edge: bool

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def hold_spread(self, skip_onset_s: float = 0.15, skip_onset_frac: float = 0.3, skip_end_frac: float = 0.2
                    ) -> float:
        """The pitch spread of the note's hold, ``p90 / p10 - 1``: the first ``min(skip_onset_s, skip_onset_frac)``
        of the note (its onset glide) and its last ``skip_end_frac`` (the fade) are left out."""
        n = len(self.pitch_hz)
        frame_s = self.duration_s / max(1, n - 1)
        a = int(min(skip_onset_s / max(frame_s, 1e-9), skip_onset_frac * n))
        b = max(a + 1, int(round(n * (1 - skip_end_frac))))
        hold = self.pitch_hz[a:b]
        lo, hi = np.percentile(hold, [10, 90])
        return float(hi / max(lo, 1e-9) - 1)


@dataclass(frozen=True)
class NoteRule:
    """What a note must be to fit the description, with margins for what field recordings do to a call.

    Attributes:
        tonal_db: a frame is tonal where its ridge stands this many dB above the clip's background.
        strong_db: a note is *strong* (clear enough to judge) where its median prominence reaches this.
        min_note_s: shorter runs of tonal frames are not notes.
        max_step: largest frame-to-frame pitch change (ratio - 1) within one note.
        max_gap_s: tonal frames this close join one note across a dropout.
        duration_s: the note lengths that fit (the description's 0.3-1 s, widened by a third below for fades and low
            SNR, and above for echoes and reverberation).
        pitch_hz: the median pitch that fits (350-550 Hz and a higher second note, widened).
        max_hold_spread: largest pitch spread of the hold (a short onset glide is allowed; a slide is not).
        pair_spacing_s, pair_ratio: what makes two fitting notes a double hoot (:meth:`pair`).
        octave_db: a note whose octave below stands this many dB above the background along it is read at that
            octave (its fundamental, weakened by a recorder's high-pass or a bright voice, under the harmonic).
    """

    tonal_db: float = 9.0
    strong_db: float = 12.0
    min_note_s: float = 0.12
    max_step: float = 0.04
    max_gap_s: float = 0.03
    duration_s: tuple[float, float] = (0.15, 2.5)
    pitch_hz: tuple[float, float] = (280.0, 650.0)
    max_hold_spread: float = 0.25
    octave_db: float = 9.0
    pair_spacing_s: tuple[float, float] = (0.5, 1.5)
    pair_ratio: tuple[float, float] = (0.9, 1.2)

    def pair(self, notes: list[Note]) -> bool:
        """Whether two of ``notes`` (fitting ones) make the double hoot: onsets ``pair_spacing_s`` apart (the
        description's ~0.9 s, widened) and the later one's pitch ``pair_ratio`` times the earlier's (often slightly
        higher, some males level)."""
        notes = sorted(notes, key=lambda n: n.start_s)
        for i, a in enumerate(notes):
            pa = float(np.median(a.pitch_hz))
            for b in notes[i + 1:]:
                gap = b.start_s - a.start_s
                if gap > self.pair_spacing_s[1]:
                    break
                if gap >= self.pair_spacing_s[0] and \
                        self.pair_ratio[0] <= float(np.median(b.pitch_hz)) / pa <= self.pair_ratio[1]:
                    return True
        return False

    def fits(self, note: Note) -> bool:
        """Whether ``note`` is one the description allows (a note cut by the clip's edge may be shorter)."""
        lo, hi = self.duration_s
        if note.duration_s > hi or (note.duration_s < lo and not note.at_edge):
            return False
        if not self.pitch_hz[0] <= float(np.median(note.pitch_hz)) <= self.pitch_hz[1]:
            return False
        return note.hold_spread() <= self.max_hold_spread


DEFAULT_RULE = NoteRule()


@dataclass(frozen=True)
class Verdict:
    """:func:`check_window`'s answer: ``passed``, why, and the notes it judged."""

    passed: bool
    reason: str
    notes: tuple[Note, ...] = ()
    #: clear notes were judged and two fitting ones make a double hoot (:meth:`NoteRule.pair`); ``None`` where the
    #: window held no clear note
    paired: bool | None = None


# Analysis settings at 16 kHz: 128 ms frames (7.8 Hz bins, fine enough for a 4 % pitch step at 250 Hz) and a 10 ms
# hop. A note's measured length is its true length plus 50-70 ms (64 ms frames measure closer, 10-30 ms, but lost
# more faint calls on the calibration-site clips, whose notes then break into pieces).
_N_FFT_S, _HOP_S = 0.128, 0.010
_BAND_HZ = (250.0, 800.0)
_FLOOR_PERCENTILE = 20


def tonal_notes(y: np.ndarray, sr: int, rule: NoteRule = DEFAULT_RULE, ridge_hz: tuple[float, float] = _BAND_HZ
                ) -> list[Note]:
    """The tonal notes of the mono clip ``y`` (sampled at ``sr`` Hz) along its loudest ridge in ``ridge_hz``.

    Each frame's ridge is the loudest bin of ``ridge_hz`` relative to that bin's 20th percentile over the clip (the
    clip's own background, so a steady hum is not a note); frames where it stands ``rule.tonal_db`` above are
    tonal, and tonal frames whose pitch moves less than ``rule.max_step`` per frame (across gaps up to
    ``rule.max_gap_s``) form a note. Notes shorter than ``rule.min_note_s`` are dropped. A note whose octave below
    is tonal too is that octave (a bright note's second harmonic can stand out more than its fundamental).
    """
    spec = _spectrum(np.asarray(y, dtype=np.float32), sr)
    return [] if spec is None else _trace(spec, ridge_hz, rule)


@dataclass(frozen=True)
class _Spectrum:
    freqs: np.ndarray  # Hz, the 250-800 Hz bins
    db: np.ndarray  # [bins, frames] power in dB
    rel: np.ndarray  # db above each bin's background
    bin_hz: float
    hop_s: float
    t0_s: float  # the first frame's centre


def _spectrum(y: np.ndarray, sr: int) -> _Spectrum | None:
    n_fft = int(2 ** np.ceil(np.log2(_N_FFT_S * sr)))
    hop = max(1, int(round(_HOP_S * sr)))
    if len(y) < n_fft:
        return None
    spec = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, center=False)) ** 2
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    band = (freqs >= _BAND_HZ[0]) & (freqs <= _BAND_HZ[1])
    db = librosa.power_to_db(spec[band], ref=1.0, amin=1e-12, top_db=None)
    rel = db - np.percentile(db, _FLOOR_PERCENTILE, axis=1, keepdims=True)
    return _Spectrum(freqs[band], db, rel, sr / n_fft, hop / sr, (n_fft / 2) / sr)


def _trace(spec: _Spectrum, ridge_hz: tuple[float, float], rule: NoteRule) -> list[Note]:
    sub = np.flatnonzero((spec.freqs >= ridge_hz[0]) & (spec.freqs <= ridge_hz[1]))
    if not len(sub):
        return []
    db, rel, frames = spec.db, spec.rel, np.arange(spec.rel.shape[1])
    k = sub[np.argmax(rel[sub], axis=0)]
    prom = rel[k, frames]
    pitch = spec.freqs[0] + parabolic_peak(db, k) * spec.bin_hz  # between bins: a 7.8 Hz bin is 2 % at 400 Hz
    n_frames = len(prom)
    max_gap = max(1, int(round(rule.max_gap_s / spec.hop_s)))
    runs: list[list[int]] = []
    for i in np.flatnonzero(prom >= rule.tonal_db):
        cur = runs[-1] if runs else None
        if cur and i - cur[-1] <= max_gap and abs(pitch[i] / pitch[cur[-1]] - 1) <= rule.max_step * (i - cur[-1]):
            cur.append(int(i))
        else:
            runs.append([int(i)])
    notes = []
    for r in runs:
        if (r[-1] - r[0]) * spec.hop_s < rule.min_note_s:
            continue
        idx = np.arange(r[0], r[-1] + 1)  # the gaps bridged are part of the note (their pitch interpolated)
        p = np.interp(idx, r, pitch[r])
        k_half = np.rint((p / 2 - spec.freqs[0]) / spec.bin_hz).astype(int)
        if np.all(k_half >= 0) and np.median(rel[k_half, idx]) >= rule.octave_db:
            p = p / 2
        notes.append(Note(start_s=spec.t0_s + r[0] * spec.hop_s, end_s=spec.t0_s + r[-1] * spec.hop_s, pitch_hz=p,
                          prominence_db=prom[idx], at_edge=r[0] <= max_gap or r[-1] >= n_frames - 1 - max_gap))
    return notes


def _same_note(a: Note, b: Note, tol_s: float = 0.03, tol_pitch: float = 0.03) -> bool:
    """Whether two traced notes are one (the second ridge found the first's note again)."""
    pa, pb = float(np.median(a.pitch_hz)), float(np.median(b.pitch_hz))
    return (abs(a.start_s - b.start_s) <= tol_s and abs(a.end_s - b.end_s) <= tol_s
            and abs(pa - pb) <= tol_pitch * max(pa, pb))


def check_window(y: np.ndarray, sr: int, rule: NoteRule = DEFAULT_RULE) -> Verdict:
    """Whether the clip ``y`` (``sr`` Hz) may hold a Powerful Owl call by the published description.

    Rejected only when it holds at least one strong note (median prominence >= ``rule.strong_db``) along its
    loudest 250-800 Hz ridge and no note fits ``rule``, neither along that ridge nor along the loudest ridge of the
    call's own pitch range (where a quieter call beside a louder sound shows); passed otherwise (in doubt).
    """
    spec = _spectrum(np.asarray(y, dtype=np.float32), sr)
    if spec is None:
        return Verdict(True, "too short to judge")
    notes = _trace(spec, _BAND_HZ, rule)
    strong = [n for n in notes if float(np.median(n.prominence_db)) >= rule.strong_db]
    if not strong:
        return Verdict(True, "no clear tonal note", tuple(notes))
    fitting = [n for n in notes if rule.fits(n)]
    if not fitting:
        notes += [n for n in _trace(spec, rule.pitch_hz, rule) if not any(_same_note(n, m) for m in notes)]
        fitting = [n for n in notes if rule.fits(n)]
    if fitting:
        paired = rule.pair(fitting)
        return Verdict(True, f"{len(fitting)} note(s) fit the description" + (", a double hoot" if paired else ""),
                       tuple(notes), paired)
    n = max(strong, key=lambda n: float(np.median(n.prominence_db)))
    return Verdict(False, f"{len(strong)} clear note(s), none fits the description (the clearest: "
                          f"{n.duration_s:.2f} s at {float(np.median(n.pitch_hz)):.0f} Hz, hold spread "
                          f"{100 * n.hold_spread():.0f} %)", tuple(notes), False)


def _candidate_audio(det, cand: np.ndarray, read: Callable[[float, float], np.ndarray], sr: int,
                     max_span_s: float = 60.0):
    """``(index, clip)`` for each candidate window, in time order. Overlapping candidates (5 s windows every 2.5 s,
    the second look's half-hop neighbours) are decoded as one stretch of at most ``max_span_s`` and sliced, so
    their shared audio is read once."""
    order = sorted((int(i) for i in cand), key=lambda i: float(det.starts_s[i]))
    k = 0
    while k < len(order):
        run = [order[k]]
        t0, t1 = float(det.starts_s[order[k]]), float(det.ends_s[order[k]])
        k += 1
        while k < len(order):
            s, e = float(det.starts_s[order[k]]), float(det.ends_s[order[k]])
            if s > t1 or max(t1, e) - t0 > max_span_s:
                break
            run.append(order[k])
            t1 = max(t1, e)
            k += 1
        y = read(t0, t1)
        for i in run:
            a = int(round((float(det.starts_s[i]) - t0) * sr))
            b = a + int(round((float(det.ends_s[i]) - float(det.starts_s[i])) * sr))
            yield i, y[min(a, len(y)):min(b, len(y))]


def verify_detection(det, read: Callable[[float, float], np.ndarray], sr: int, floor: float,
                     rule: NoteRule = DEFAULT_RULE, unpaired_logit: float | None = None):
    """``det`` (a :class:`~owlfinder.detect.detection.Detection`) with every window scoring ``floor`` or more
    checked by :func:`check_window`; rejected windows keep ``REJECT_FACTOR`` of their score, so events follow.

    Args:
        det: a complete detection.
        read: ``read(start_s, end_s)`` returns that stretch of the recording, mono at ``sr`` Hz.
        sr: the rate ``read`` returns.
        floor: windows scoring below this are not looked at (nor changed).
        rule: what fits the description.
        unpaired_logit: a window that passed with clear notes but no double hoot among its fitting ones is lowered
            by this many logits (``None``: left as it is).

    Returns:
        ``(detection, n_checked, n_rejected)``.
    """
    scores = np.array(det.scores, dtype=np.float32, copy=True)
    cand = np.flatnonzero(scores >= floor)
    rejected = 0
    for i, y in _candidate_audio(det, cand, read, sr):
        v = check_window(y, sr, rule)
        if not v.passed:
            scores[i] *= REJECT_FACTOR
            rejected += 1
        elif unpaired_logit is not None and v.paired is False:
            scores[i] = shift_threshold(min(max(float(scores[i]), 1e-7), 1 - 1e-7), -unpaired_logit)
    out = replace(det, scores=scores).rethreshold(det.threshold)
    return out, int(len(cand)), rejected
