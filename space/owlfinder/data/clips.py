"""Fixed-length clips: filling short audio, cutting long audio, streaming clips out of files, FLAC bytes.

Short audio is filled with its *own* audio (reflected or repeated), never with zeros: a classifier trained on
zero-padded positives learns to spot the padding instead of the owl.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

from owlfinder import audio as _audio
from owlfinder.data.schema import CLIP_S, SAMPLE_RATE, pcm16

__all__ = [
    "MIN_CLIP_S",
    "ClipSpan",
    "clips_from_file",
    "cut_clips",
    "encode_flac",
    "fit_to_length",
    "source_name",
    "spans_from_detection",
]

#: A file, or the last partial piece of a longer file, shorter than this is dropped rather than filled.
MIN_CLIP_S = 1.0

FillMode = Literal["reflect", "repeat"]


def fit_to_length(y: np.ndarray, n_samples: int, mode: FillMode = "reflect") -> np.ndarray:
    """Return exactly ``n_samples`` of ``y``: cropped when longer, filled with its own audio when shorter.

    Args:
        y: 1-D mono signal (float).
        n_samples: output length.
        mode: ``"reflect"`` plays the audio forwards, backwards, forwards, ... (no discontinuity at the seams;
            the end samples are repeated: :func:`owlfinder.audio.fill_to_length`'s ``"symmetric"``);
            ``"repeat"`` loops it. Leading and trailing exact zeros are trimmed before filling, so existing
            zero padding is not copied.

    Returns:
        float32 array of length ``n_samples``; longer input keeps its first ``n_samples``.

    Raises:
        ValueError: empty input, ``n_samples < 1`` or an unknown mode.
    """
    if mode not in ("reflect", "repeat"):
        raise ValueError(f"mode must be 'reflect' or 'repeat', got {mode!r}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    if len(y) == 0:
        raise ValueError("cannot fill a clip from empty audio")
    # Inputs that were already zero-padded would carry the padding into every repetition: trimmed first.
    return _audio.fill_to_length(y, n_samples, "symmetric" if mode == "reflect" else "repeat", trim_zeros=True)


def cut_clips(
    y: np.ndarray,
    sr: int,
    clip_s: float = CLIP_S,
    *,
    min_s: float = MIN_CLIP_S,
    mode: FillMode = "reflect",
) -> list[tuple[float, float, np.ndarray]]:
    """Cut a signal into consecutive ``clip_s`` pieces.

    The last partial piece (or the whole signal, when it is shorter than one clip) is kept, filled by
    :func:`fit_to_length`, only when it lasts at least ``min_s`` seconds.

    Returns:
        ``(start_s, end_s, clip)`` tuples; ``end_s`` is where the *real* audio of the clip ends, so a filled
        clip reports the span of source audio it holds.
    """
    n = int(round(clip_s * sr))
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    out = []
    for lo in range(0, len(y), n):
        piece = y[lo: lo + n]
        if len(piece) < n:
            if len(piece) < min_s * sr:
                break
            piece = fit_to_length(piece, n, mode)
            out.append((lo / sr, (lo + len(y[lo:])) / sr, piece))
        else:
            out.append((lo / sr, (lo + n) / sr, piece))
    return out


def clips_from_file(
    path: str | os.PathLike,
    sr: int = SAMPLE_RATE,
    clip_s: float = CLIP_S,
    *,
    min_s: float = MIN_CLIP_S,
    mode: FillMode = "reflect",
    block_s: float = 60.0,
) -> Iterator[tuple[float, float, np.ndarray]]:
    """Stream a recording of any length and format into ``clip_s`` clips at ``sr`` Hz mono.

    Memory stays bounded (one decode block plus one clip) however long the file is. Semantics as
    :func:`cut_clips`.

    Yields:
        ``(start_s, end_s, clip)`` with ``clip`` a float32 array of ``round(clip_s * sr)`` samples.

    Raises:
        owlfinder.audio.AudioError: unreadable file or a decode failure part-way (clips yielded before the
            failure are valid).
    """
    n = int(round(clip_s * sr))
    buf = np.zeros(0, dtype=np.float32)
    pos = 0  # samples emitted so far
    for block in _audio.stream(path, sr, block_s=block_s):
        buf = np.concatenate([buf, block]) if len(buf) else block
        while len(buf) >= n:
            yield pos / sr, (pos + n) / sr, buf[:n].copy()
            buf = buf[n:]
            pos += n
    if len(buf) and len(buf) >= min_s * sr:
        yield pos / sr, (pos + len(buf)) / sr, fit_to_length(buf, n, mode)


def encode_flac(y: np.ndarray, sr: int = SAMPLE_RATE) -> bytes:
    """Encode a mono float signal as 16-bit FLAC bytes (lossless for 16-bit audio, about half of WAV).

    The samples are quantised by :func:`owlfinder.data.schema.pcm16`, so decoding the bytes and encoding
    again gives the same samples, and the clip's :func:`~owlfinder.data.schema.audio_fingerprint` (its id)
    survives the round trip.
    """
    buf = io.BytesIO()
    sf.write(buf, pcm16(y), int(sr), format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def source_name(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """A machine-independent name for a recording, used as ``source`` and in ``clip_id``.

    With ``root``: the path relative to the root's *parent*, so it starts with the root folder's name
    (``owls/siteA/night1.wav``). Without: the file's parent folder and name (``siteA/night1.wav``), since
    recorder file names (timestamps) repeat across sites. Always forward slashes.
    """
    p = Path(path).resolve()
    if root is not None:
        base = Path(root).resolve().parent
        try:
            return p.relative_to(base).as_posix()
        except ValueError:
            pass
    return "/".join(p.parts[-2:])


# ----------------------------------------------------------------------------------- clips from a detection


@dataclass(frozen=True)
class ClipSpan:
    """A clip to cut from a recording, chosen from a detection run.

    Attributes:
        start_s, end_s: the clip, ``clip_s`` long unless the recording is shorter.
        score: the highest window score overlapping the clip (the event's score when there are no windows).
        kind: ``"event"`` (part of a flagged event) or ``"uncertain"`` (a window scored near the threshold).
    """

    start_s: float
    end_s: float
    score: float | None
    kind: str


def _around(center: float, clip_s: float, duration_s: float) -> tuple[float, float]:
    # A clip_s window centred on `center`, slid to stay inside the recording (real audio, no filling).
    start = min(max(0.0, center - clip_s / 2), max(0.0, duration_s - clip_s))
    return round(start, 3), round(min(duration_s, start + clip_s), 3)


def _max_score(windows: Sequence[dict], lo: float, hi: float, default: float | None) -> float | None:
    scores = [float(w["score"]) for w in windows if float(w["start_s"]) < hi and float(w["end_s"]) > lo]
    return max(scores) if scores else default


def spans_from_detection(doc: dict, clip_s: float = CLIP_S, context_s: float = 0.0, n_uncertain: int = 0
                         ) -> list[ClipSpan]:
    """The clips worth labelling in a detection document (the engine's JSON).

    Each event, widened by ``context_s`` on both sides, becomes ``clip_s`` clips of real audio: one centred
    on the event when the widened span fits in a clip, else consecutive clips covering it (the last one
    ending at the span's end). Then the ``n_uncertain`` windows whose score is nearest the threshold, not
    already inside an event clip, each become a clip centred on the window: the clips whose labels teach
    the model most.

    Raises:
        ValueError: a document without ``duration_s``, or malformed events/windows (one line).
    """
    try:
        duration = float(doc["duration_s"])
        threshold = float(doc.get("threshold", 0.5))
        windows = list(doc.get("windows") or [])
        events = list(doc.get("events") or [])
        spans: list[ClipSpan] = []
        for ev in events:
            lo = max(0.0, float(ev["start_s"]) - context_s)
            hi = min(duration, float(ev["end_s"]) + context_s)
            ev_score = float(ev["score"]) if ev.get("score") is not None else None
            if hi - lo <= clip_s:
                bounds = [_around((float(ev["start_s"]) + float(ev["end_s"])) / 2, clip_s, duration)]
            else:
                starts = list(np.arange(lo, hi - clip_s, clip_s)) + [hi - clip_s]
                bounds = [(round(float(a), 3), round(float(a) + clip_s, 3)) for a in starts]
            spans += [ClipSpan(a, b, _max_score(windows, a, b, ev_score), "event") for a, b in bounds]
        if n_uncertain > 0:
            ranked = sorted(windows, key=lambda w: (abs(float(w["score"]) - threshold), float(w["start_s"])))
            taken = 0
            for w in ranked:
                if taken >= n_uncertain:
                    break
                center = (float(w["start_s"]) + float(w["end_s"])) / 2
                if any(s.start_s <= center < s.end_s for s in spans):
                    continue
                a, b = _around(center, clip_s, duration)
                spans.append(ClipSpan(a, b, float(w["score"]), "uncertain"))
                taken += 1
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"malformed detection document ({type(err).__name__}: {err})") from None
    seen: set[tuple[float, float]] = set()
    unique = []
    for sp in spans:  # overlapping events can ask for the same clip twice
        if (sp.start_s, sp.end_s) not in seen:
            seen.add((sp.start_s, sp.end_s))
            unique.append(sp)
    return unique
