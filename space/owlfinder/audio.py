"""Audio input: probing, streaming decode, mono downmix and seamless resampling.

Everything here is a pure function of a path (or an array) and explicit sample rates. Long recordings are
never loaded whole: :func:`stream` decodes fixed-size blocks with soundfile (WAV, FLAC, OGG, MP3, ...) or
PyAV (M4A/AAC/MP4 and whatever libsndfile cannot open), downmixes them to mono and pushes them through
soxr's streaming resampler, so block boundaries leave no seam and peak memory does not grow with the file.

All errors are :class:`AudioError` with a one-line message that names the file and the reason.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import soxr

from owlfinder.errors import OwlFinderError

__all__ = [
    "AUDIO_SUFFIXES",
    "AudioError",
    "AudioInfo",
    "fill_to_length",
    "is_audio_path",
    "load",
    "probe",
    "resample",
    "stream",
    "to_mono",
]

#: File suffixes treated as audio when folders are walked.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".mp4", ".aif", ".aiff", ".w64")
_PYAV_FIRST = (".m4a", ".aac", ".mp4", ".opus")

#: Refuse absurd headers rather than allocate for them.
MAX_CHANNELS = 64
MAX_SAMPLE_RATE = 768_000


class AudioError(OwlFinderError):
    """A recording that cannot be read; ``str(err)`` is one line naming the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = " ".join(str(reason).split()) or "unknown error"
        super().__init__(f"{Path(self.path).name}: {self.reason}")


@dataclass(frozen=True)
class AudioInfo:
    """What a recording's header says.

    Attributes:
        path: the file.
        sample_rate: native rate in Hz.
        channels: channel count.
        duration_s: duration in seconds (from the header; MP3/M4A durations can be estimates).
        format: container/codec name, e.g. ``"FLAC"`` or ``"aac"``.
        backend: ``"soundfile"`` or ``"pyav"``.
    """

    path: str
    sample_rate: int
    channels: int
    duration_s: float
    format: str
    backend: str


def is_audio_path(path: str | os.PathLike) -> bool:
    """True when the file name has an audio suffix (case-insensitive)."""
    return str(path).lower().endswith(AUDIO_SUFFIXES)


def to_mono(y: np.ndarray) -> np.ndarray:
    """Average the channels of ``y`` (frames x channels, or 1-D) into a float32 mono signal.

    Non-finite samples (NaN, +-inf), which some broken encoders write, become 0.
    """
    return _downmix(np.asarray(y))


def _downmix(y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`to_mono`, optionally into ``out`` (a float32 buffer of ``len(y)`` samples).

    Channels are added column by column and divided by their count: the same numbers as
    ``y.mean(axis=1, dtype=np.float32)`` but about 30 times faster on interleaved float32 blocks, where
    numpy's strided reduction is slow (it cost as much as the FLAC decode itself).
    """
    if y.ndim == 2:
        n_ch = y.shape[1]
        if n_ch == 1:
            y = y[:, 0]
        elif y.dtype == np.float32 and n_ch <= 16:
            m = np.add(y[:, 0], y[:, 1], out=None if out is None else out[: len(y)])
            for c in range(2, n_ch):
                np.add(m, y[:, c], out=m)
            y = np.multiply(m, np.float32(0.5), out=m) if n_ch == 2 else np.divide(m, np.float32(n_ch), out=m)
        else:
            y = y.mean(axis=1, dtype=np.float32)
    y = y.astype(np.float32, copy=False)
    if not np.isfinite(y).all():
        y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    return y


FillMode = Literal["reflect", "symmetric", "repeat"]


def fill_to_length(y: np.ndarray, n: int, mode: FillMode = "reflect", *, trim_zeros: bool = False) -> np.ndarray:
    """Exactly ``n`` samples of ``y``: its first ``n`` when longer, filled with its *own* audio when shorter.

    Never pads with zeros (a classifier learns to spot padding instead of the owl), except for empty input,
    which has nothing to fill from. The one fill used by the window grid (:mod:`owlfinder.detect.windows`)
    and by clip making (:func:`owlfinder.data.clips.fit_to_length`).

    Args:
        y: 1-D signal.
        n: output length in samples.
        mode: ``"reflect"``: forwards, backwards, ... without repeating the end samples (numpy's
            ``pad(mode="reflect")``); ``"symmetric"``: the same with the end samples repeated; ``"repeat"``:
            loops it. The first two have no jump at the seams.
        trim_zeros: drop leading and trailing exact zeros before filling, so existing zero padding is not
            copied into every repetition.

    Returns:
        A fresh float32 array of length ``n``.
    """
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    if len(y) >= n:
        return y[:n].copy()
    if len(y) == 0:
        return np.zeros(n, dtype=np.float32)
    if trim_zeros:
        nz = np.flatnonzero(y)
        if len(nz):
            y = y[nz[0]: nz[-1] + 1]
    if mode == "reflect":
        period = np.concatenate([y, y[-2:0:-1]])
    elif mode == "symmetric":
        period = np.concatenate([y, y[::-1]])
    elif mode == "repeat":
        period = y
    else:
        raise ValueError(f"mode must be 'reflect', 'symmetric' or 'repeat', got {mode!r}")
    return np.tile(period, -(-n // len(period)))[:n]


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a mono float32 signal from ``orig_sr`` to ``target_sr`` Hz with soxr (HQ)."""
    if orig_sr == target_sr or len(y) == 0:
        return np.asarray(y, dtype=np.float32)
    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


# ----------------------------------------------------------------------------------------------- probe


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioError(path, "file not found")
    if not path.is_file():
        raise AudioError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")


def _check_header(path: Path, sample_rate: int, channels: int) -> None:
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(path, f"unsupported channel count {channels}")
    if not 1 <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(path, f"unsupported sample rate {sample_rate} Hz")


def _probe_soundfile(path: Path) -> AudioInfo:
    info = sf.info(str(path))
    _check_header(path, info.samplerate, info.channels)
    if info.frames <= 0:
        raise AudioError(path, "no audio samples (header only or truncated)")
    return AudioInfo(str(path), int(info.samplerate), int(info.channels), info.frames / info.samplerate,
                     info.format, "soundfile")


def _probe_pyav(path: Path) -> AudioInfo:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError(path, "no audio stream (not an audio file)")
            st = container.streams.audio[0]
            sr = int(st.codec_context.sample_rate or st.rate or 0)
            ch = int(st.codec_context.channels or 0)
            if sr == 0 or ch == 0:  # FFmpeg guessed a codec from the suffix but found no audio in it
                raise AudioError(path, "no audio stream (not an audio file)")
            _check_header(path, sr, ch)
            if st.duration is not None and st.time_base is not None:
                dur = float(st.duration * st.time_base)
            elif container.duration is not None:
                dur = container.duration / 1_000_000
            else:
                dur = 0.0
            fmt = st.codec_context.name
    except AudioError:
        raise
    except Exception as err:  # PyAV raises many FFmpeg error types
        raise AudioError(path, f"not a readable audio file ({_short(err)})") from None
    if dur <= 0:
        raise AudioError(path, "no audio samples (header only or truncated)")
    return AudioInfo(str(path), sr, ch, dur, fmt, "pyav")


def probe(path: str | os.PathLike) -> AudioInfo:
    """Read a recording's header.

    Args:
        path: an audio file (WAV, FLAC, OGG, MP3, M4A, ...).

    Returns:
        :class:`AudioInfo`.

    Raises:
        AudioError: missing, empty, not audio, or an unsupported header.
    """
    p = Path(path)
    _check_file(p)
    if p.suffix.lower() in _PYAV_FIRST:
        return _probe_pyav(p)
    try:
        return _probe_soundfile(p)
    except AudioError:
        raise
    except Exception as err:
        sf_reason = _short(err)
    try:
        return _probe_pyav(p)
    except AudioError as err:
        if "no audio stream" in err.reason or "not a readable" in err.reason:
            raise AudioError(p, f"not a recognised audio file ({sf_reason})") from None
        raise


def _short(err: BaseException) -> str:
    msg = " ".join(str(err).split())
    # soundfile prefixes the path, which the caller already names.
    if "Error opening" in msg and ":" in msg:
        msg = msg.rsplit(":", 1)[-1].strip()
    if "not a regular file" in msg or "Format not recognised" in msg:
        msg = "unknown format"  # libsndfile's wording for "not audio" is misleading
    return msg.rstrip(".")[:200] or type(err).__name__


# ---------------------------------------------------------------------------------------------- stream


def _blocks_soundfile(info: AudioInfo, block_frames: int, start_frame: int, stop_frame: int | None
                      ) -> Iterator[np.ndarray]:
    """Blocks decoded into one reused buffer: each block is valid until the next one is asked for."""
    with sf.SoundFile(info.path) as f:
        if start_frame:
            f.seek(start_frame)
        pos = start_frame
        buf = np.empty((block_frames, f.channels), dtype=np.float32)
        while stop_frame is None or pos < stop_frame:
            n = block_frames if stop_frame is None else min(block_frames, stop_frame - pos)
            block = f.read(n, dtype="float32", always_2d=True, out=buf[:n])
            if len(block) == 0:
                break
            pos += len(block)
            yield block


def _blocks_pyav(info: AudioInfo, block_frames: int, start_frame: int, stop_frame: int | None
                 ) -> Iterator[np.ndarray]:
    import av

    with av.open(info.path) as container:
        st = container.streams.audio[0]
        st.thread_type = "AUTO"
        # Decode to interleaved float32 at the native rate; soxr does the resampling.
        converter = av.AudioResampler(format="flt", layout=st.codec_context.layout.name, rate=info.sample_rate)
        pending: list[np.ndarray] = []
        n_pending = 0
        pos = 0
        for frame in container.decode(st):
            for out in converter.resample(frame):
                arr = out.to_ndarray().reshape(-1, info.channels)
                lo, hi = pos, pos + len(arr)
                pos = hi
                if hi <= start_frame:
                    continue
                if lo < start_frame:
                    arr = arr[start_frame - lo:]
                if stop_frame is not None and hi > stop_frame:
                    arr = arr[: max(0, len(arr) - (hi - stop_frame))]
                pending.append(arr)
                n_pending += len(arr)
                if n_pending >= block_frames:
                    yield np.concatenate(pending)
                    pending, n_pending = [], 0
            if stop_frame is not None and pos >= stop_frame:
                break
        if pending:
            yield np.concatenate(pending)


def stream(
    path: str | os.PathLike,
    sr: int,
    *,
    block_s: float = 30.0,
    start_s: float = 0.0,
    end_s: float | None = None,
    info: AudioInfo | None = None,
    quality: str = "HQ",
    timings: dict[str, float] | None = None,
) -> Iterator[np.ndarray]:
    """Decode a recording block by block as mono float32 at ``sr`` Hz.

    The concatenation of the yielded blocks equals decoding the whole file, downmixing and resampling it in
    one go (within soxr's tolerance): the resampler keeps its state across blocks.

    Args:
        path: an audio file.
        sr: output sample rate in Hz.
        block_s: decode block length in seconds of input audio (bounds memory).
        start_s: where to start, in seconds.
        end_s: where to stop, in seconds (``None``: the end of the file).
        info: a :func:`probe` result, to skip probing again.
        quality: soxr quality, ``"HQ"`` (default), ``"VHQ"``, ``"MQ"``, ``"LQ"`` or ``"QQ"``.
        timings: when given, seconds spent decoding (with the downmix) and resampling are added to its
            ``"decode"`` and ``"resample"`` entries.

    Yields:
        1-D float32 arrays at ``sr`` Hz, each a fresh array the caller may keep.

    Raises:
        AudioError: unreadable file, or a decode failure part-way (truncated or corrupt data); the message
            says how far decoding got.
    """
    info = info or probe(path)
    sr_in = info.sample_rate
    block_frames = max(1024, int(block_s * sr_in))
    start_frame = max(0, int(round(start_s * sr_in)))
    stop_frame = None if end_s is None else max(start_frame, int(round(end_s * sr_in)))
    blocks = (_blocks_soundfile if info.backend == "soundfile" else _blocks_pyav)(
        info, block_frames, start_frame, stop_frame
    )
    rs = None if sr_in == sr else soxr.ResampleStream(sr_in, sr, 1, dtype="float32", quality=quality)
    # The downmix goes into one reused buffer when the resampler copies it out anyway.
    mono_buf = np.empty(block_frames, dtype=np.float32) if rs is not None else None
    if timings is not None:
        timings.setdefault("decode", 0.0)
        timings.setdefault("resample", 0.0)
    clock = time.perf_counter
    decoded = 0
    try:
        it = iter(blocks)
        while True:
            t0 = clock()
            block = next(it, None)
            if block is None:
                break
            decoded += len(block)
            mono = _downmix(block, mono_buf if mono_buf is not None and len(block) <= len(mono_buf) else None)
            t1 = clock()
            if rs is None:
                # soundfile's blocks live in a reused buffer: hand out a copy.
                out = mono.copy() if (mono.base is not None or mono is block) else mono
            else:
                out = rs.resample_chunk(mono, last=False)
            if timings is not None:
                t2 = clock()
                timings["decode"] += t1 - t0
                timings["resample"] += t2 - t1
            yield out
    except AudioError:
        raise
    except (RuntimeError, ValueError, OSError, EOFError, sf.LibsndfileError) as err:
        at = (start_frame + decoded) / sr_in
        raise AudioError(path, f"decoding failed at {at:.1f} s, file truncated or corrupt ({_short(err)})"
                         ) from None
    except Exception as err:  # PyAV's FFmpeg errors subclass several bases
        if type(err).__module__.startswith("av"):
            at = (start_frame + decoded) / sr_in
            raise AudioError(path, f"decoding failed at {at:.1f} s, file truncated or corrupt ({_short(err)})"
                             ) from None
        raise
    if rs is not None:
        tail = rs.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        if len(tail):
            yield tail
    if decoded == 0:
        raise AudioError(path, "no audio samples could be decoded (truncated or corrupt)")


def load(
    path: str | os.PathLike,
    sr: int,
    *,
    start_s: float = 0.0,
    end_s: float | None = None,
    max_duration_s: float | None = 3600.0,
    info: AudioInfo | None = None,
) -> np.ndarray:
    """Decode a segment ``[start_s, end_s)`` of a recording as one mono float32 array at ``sr`` Hz.

    Meant for clips and short files; refuses to load more than ``max_duration_s`` seconds at once.
    """
    info = info or probe(path)
    stop = info.duration_s if end_s is None else min(end_s, info.duration_s)
    if max_duration_s is not None and stop - start_s > max_duration_s:
        raise AudioError(path, f"segment of {stop - start_s:.0f} s is longer than {max_duration_s:.0f} s; "
                               "stream it instead")
    parts = list(stream(path, sr, start_s=start_s, end_s=end_s, info=info))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
