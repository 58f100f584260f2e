"""The dataset schema: one row per labelled clip, a superset of the seed's ``sgoedecke/powerful_owl_5s_16k``.

The seed dataset has three columns (``audio``, ``label`` ClassLabel ``[owl, not_owl]``, ``filename``); every
dataset this project writes keeps those three with the same types, so code written for the seed reads ours,
and adds provenance columns for leakage-free splits, label history and active learning.

Unsure verdicts: the labelling tab records "unsure" as well as owl/not_owl. Such a row keeps the ClassLabel
column with ``label = -1`` (``datasets``' convention for "no label", as in GLUE's test splits) and
``verdict = "unsure"``. Training must drop them (``label >= 0``, or :func:`is_trainable`, or
``DatasetStore.load(..., include_unsure=False)``); a later owl/not_owl verdict for the same ``clip_id``
supersedes the unsure one, because the store keeps the latest ``labelled_at`` per clip.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone

import numpy as np
from datasets import Audio, ClassLabel, Features, Value

__all__ = [
    "CLIP_S",
    "FEATURES",
    "LABELS",
    "NO_LABEL",
    "REASONS",
    "SAMPLE_RATE",
    "UNSURE",
    "VERDICTS",
    "audio_fingerprint",
    "clip_id",
    "is_legacy_clip_id",
    "is_trainable",
    "label_of_verdict",
    "legacy_clip_id",
    "normalize_utc",
    "pcm16",
    "utc_now",
]

#: ClassLabel names, in the seed dataset's order (owl = 0, not_owl = 1).
LABELS: list[str] = ["owl", "not_owl"]
#: Why a clip is not an owl (optional, for not_owl verdicts).
REASONS: list[str] = ["boobook", "other owl", "koala", "frog/insect", "wind/rain", "vehicle/human", "noise", "other"]
#: The verdict that carries no label.
UNSURE = "unsure"
#: Everything the labelling tab can record.
VERDICTS: list[str] = [*LABELS, UNSURE]
#: Clips are 16 kHz mono, 5 s (80 000 samples), like the seed.
SAMPLE_RATE = 16000
CLIP_S = 5.0
#: ``label`` value of rows whose verdict is unsure (``datasets``' "no label").
NO_LABEL = -1

FEATURES = Features(
    {
        # The seed's three columns first, same types.
        "audio": Audio(sampling_rate=SAMPLE_RATE),
        "label": ClassLabel(names=LABELS),
        "filename": Value("string"),
        # Provenance.
        "clip_id": Value("string"),
        "source": Value("string"),
        "start_s": Value("float64"),
        "end_s": Value("float64"),
        "group": Value("string"),
        # Who said so, when, and with what help.
        "labeller": Value("string"),
        "labelled_at": Value("string"),
        "model": Value("string"),
        "score": Value("float64"),
        "reason": Value("string"),
        "verdict": Value("string"),
    }
)


def pcm16(y: np.ndarray) -> np.ndarray:
    """``y`` (float, full scale ±1) as the 16-bit integers a clip is stored as.

    ``x * 32768`` rounded half to even and clipped to ``[-32768, 32767]``: the convention libsndfile reads
    16-bit audio with (``i / 32768``), so ``pcm16(decode(encode(y))) == pcm16(y)`` exactly, and a clip keeps
    its fingerprint through any number of FLAC/WAV round trips.
    """
    y = np.asarray(y).reshape(-1)
    if y.dtype not in (np.float32, np.float64):
        y = y.astype(np.float64)
    q = np.rint(y * y.dtype.type(32768.0))  # scaling by a power of two is exact in either float width
    return np.clip(q, -32768, 32767, out=q).astype("<i2")


def audio_fingerprint(y: np.ndarray) -> str:
    """A 32-hex-digit digest of a 16 kHz mono clip's 16-bit samples (:func:`pcm16`): equal for equal audio.

    Args:
        y: the clip at :data:`SAMPLE_RATE` Hz, float in ±1 (or int16 samples as read with ``dtype="int16"``).
    """
    arr = np.asarray(y)
    q = arr.astype("<i2") if arr.dtype == np.int16 else pcm16(arr)
    return hashlib.blake2b(q.reshape(-1).tobytes(), digest_size=16).hexdigest()


#: Length of a content clip id; legacy (name-based) ids have 16 hex digits.
CLIP_ID_LEN = 24
_HEX16 = re.compile(r"^[0-9a-f]{16}$")


def _span(start_s: float, end_s: float) -> str:
    # Millisecond rounding first, so float noise (4.999999 vs 5.0) cannot split one clip into two ids.
    return f"{round(float(start_s), 3):.3f}\x00{round(float(end_s), 3):.3f}"


def clip_id(audio: np.ndarray | str, start_s: float, end_s: float) -> str:
    """A clip's id: 24 hex digits from its audio and its span ``[start_s, end_s)`` in the recording.

    The same audio at the same place gets the same id on any machine, whatever the recording is called (so
    resuming and de-duplication work across renames, the Space, ``chunk.py`` and ``build_dataset.py``);
    different audio never shares an id, even when two recorders named their files alike. The span is part of
    the id so that identical audio at two places (digital silence, a looped test tone) stays two clips.

    Args:
        audio: the clip's 16 kHz mono samples, or their :func:`audio_fingerprint`.
        start_s, end_s: the clip's span in its recording, seconds.

    Raises:
        TypeError: ``audio`` is a recording name (the pre-content signature); use :func:`legacy_clip_id`.
    """
    if isinstance(audio, str):
        if not re.fullmatch(r"[0-9a-f]{32}", audio):
            raise TypeError("clip_id takes the clip's audio (or its audio_fingerprint), not a recording name; "
                            "legacy_clip_id(source, start_s, end_s) gives the old name-based id")
        fp = audio
    else:
        fp = audio_fingerprint(audio)
    key = f"owl-clip-v2\x00{fp}\x00{_span(start_s, end_s)}"
    return hashlib.blake2b(key.encode("ascii"), digest_size=CLIP_ID_LEN // 2).hexdigest()


def legacy_clip_id(source: str, start_s: float, end_s: float) -> str:
    """The id earlier versions gave a clip: 16 hex digits from ``(source, start_s, end_s)`` only.

    Stores and queues written before content ids keep these ids; code that meets one compares the audio
    before treating a new clip as the old one (see ``docs/integrity.md``). Never used for new clips: two
    recordings with the same name would collide.
    """
    key = f"{source}\x00{_span(start_s, end_s)}"
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


def is_legacy_clip_id(cid: str | None) -> bool:
    """True for a 16-hex-digit (name-based) id written before content ids."""
    return bool(cid) and bool(_HEX16.match(cid))  # type: ignore[arg-type]


def utc_now() -> str:
    """The current UTC time as the store writes it: ``2025-01-31T21:04:05.123456Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def normalize_utc(value: str | datetime | None) -> str | None:
    """Render a timestamp in the store's one UTC format, so that string order is time order.

    Naive datetimes and strings without an offset are taken as UTC. ``None`` stays ``None``.

    Raises:
        ValueError: not an ISO 8601 timestamp.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if _ISO_Z.match(value):
            return value
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def label_of_verdict(verdict: str) -> int:
    """The ``label`` value for a verdict: the ClassLabel index, or ``-1`` for unsure.

    Raises:
        ValueError: not one of :data:`VERDICTS`.
    """
    if verdict == UNSURE:
        return NO_LABEL
    if verdict not in LABELS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    return LABELS.index(verdict)


def is_trainable(row: dict) -> bool:
    """True when a row carries an owl/not_owl label (not an unsure verdict)."""
    label = row.get("label")
    return label is not None and label != NO_LABEL and row.get("verdict") != UNSURE
