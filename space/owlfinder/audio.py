"""Audio input: probing, streaming decode, mono downmix and seamless resampling.

Everything here is a pure function of a path (or an array) and explicit sample rates. Long recordings are
never loaded whole: :func:`stream` decodes fixed-size blocks with soundfile (WAV, FLAC, OGG, MP3, ...) or
PyAV (M4A/AAC/MP4 and whatever libsndfile cannot open), downmixes them to mono and pushes them through
soxr's streaming resampler, so block boundaries leave no seam and peak memory does not grow with the file.

All errors are :class:`AudioError` with a one-line message that names the file and the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

__all__ = [
    "AUDIO_SUFFIXES",
    "AudioError",
    "AudioInfo",
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


class AudioError(Exception):
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
    y = np.asarray(y)
    if y.ndim == 2:
        y = y.mean(axis=1, dtype=np.float32) if y.shape[1] > 1 else y[:, 0]
    y = y.astype(np.float32, copy=False)
    if not np.isfinite(y).all():
        y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    return y


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
    with sf.SoundFile(info.path) as f:
        if start_frame:
            f.seek(start_frame)
        pos = start_frame
        while stop_frame is None or pos < stop_frame:
            n = block_frames if stop_frame is None else min(block_frames, stop_frame - pos)
            try:
                block = f.read(n, dtype="float32", always_2d=True)
            except (RuntimeError, sf.LibsndfileError):
                # Corrupt or truncated data inside this block: salvage it second by second up to the
                # damage, then report the failure (the caller keeps what was decoded).
                yield from _salvage(f, pos, min(n, info.sample_rate))
                raise
            if len(block) == 0:
                break
            pos += len(block)
            yield block


def _salvage(f: sf.SoundFile, pos: int, step: int) -> Iterator[np.ndarray]:
    try:
        f.seek(pos)
        while True:
            part = f.read(step, dtype="float32", always_2d=True)
            if len(part) == 0:
                return
            yield part
    except (RuntimeError, sf.LibsndfileError):
        return


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

    Yields:
        1-D float32 arrays at ``sr`` Hz.

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
    rs = None if sr_in == sr else soxr.ResampleStream(sr_in, sr, 1, dtype="float32", quality="HQ")
    decoded = 0
    try:
        for block in blocks:
            decoded += len(block)
            mono = to_mono(block)
            yield mono if rs is None else rs.resample_chunk(mono, last=False)
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
