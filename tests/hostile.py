"""Hostile inputs, generated on the fly (never committed): every kind of file a public upload box receives."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def _tone(seconds: float, sr: int = SR, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = (0.2 * np.sin(2 * np.pi * 400 * t)).astype(np.float32)
    return np.repeat(y[:, None], channels, axis=1)


def _write(path: Path, data: np.ndarray, sr: int, **kw) -> Path:
    sf.write(path, data, sr, **kw)
    return path


def _truncate(path: Path, frac: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * frac))])
    return path


def empty(d: Path) -> Path:
    p = d / "empty.wav"
    p.write_bytes(b"")
    return p


def truncated_flac(d: Path) -> Path:
    return _truncate(_write(d / "truncated.flac", _tone(20.0), SR), 0.4)


def truncated_wav(d: Path) -> Path:
    return _truncate(_write(d / "truncated.wav", _tone(20.0), SR), 0.4)


def truncated_mp3(d: Path) -> Path:
    return _truncate(_write(d / "truncated.mp3", _tone(20.0, 44100), 44100), 0.4)


def header_only(d: Path) -> Path:
    return _truncate(_write(d / "header-only.wav", _tone(5.0), SR), 44 / (5 * SR * 2 + 44))


def html_as_wav(d: Path) -> Path:
    p = d / "page.wav"
    p.write_text("<!doctype html><html><head><title>x</title></head><body>" + "owl " * 500 + "</body></html>")
    return p


def png_as_mp3(d: Path) -> Path:
    p = d / "picture.mp3"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + bytes(13) + bytes(4000))
    return p


def zip_as_wav(d: Path) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hello " * 1000)
    p = d / "archive.wav"
    p.write_bytes(buf.getvalue())
    return p


def eight_channels_192k(d: Path) -> Path:
    return _write(d / "8ch-192k.wav", _tone(6.0, 192000, 8), 192000, subtype="PCM_16")


def pcm_u8(d: Path) -> Path:
    return _write(d / "u8.wav", _tone(6.0), SR, subtype="PCM_U8")


def pcm_24(d: Path) -> Path:
    return _write(d / "pcm24.flac", _tone(6.0), SR, subtype="PCM_24")


def pcm_float(d: Path) -> Path:
    return _write(d / "float.wav", _tone(6.0), SR, subtype="FLOAT")


def nan_inf(d: Path) -> Path:
    y = _tone(6.0)
    y[::97] = np.nan
    y[::101] = np.inf
    y[::103] = -np.inf
    return _write(d / "nan-inf.wav", y, SR, subtype="FLOAT")


def hundred_samples(d: Path) -> Path:
    return _write(d / "100-samples.wav", _tone(100 / SR), SR)


def odd_names(d: Path) -> list[Path]:
    return [_write(d / name, _tone(6.0), SR) for name in ("night with spaces.wav", "chouette-hibou-ñ-夜.flac",
                                                          "-leading-dash.wav")]


#: Files that are not usable audio: each must give a one-line error naming the file.
BROKEN: dict[str, Callable[[Path], Path]] = {
    "empty": empty,
    "header only": header_only,
    "html as wav": html_as_wav,
    "png as mp3": png_as_mp3,
    "zip as wav": zip_as_wav,
}
#: Truncated files: either an error naming the file or the decodable part, never a crash.
TRUNCATED: dict[str, Callable[[Path], Path]] = {
    "truncated flac": truncated_flac,
    "truncated wav": truncated_wav,
    "truncated mp3": truncated_mp3,
}
#: Odd but valid audio: must be processed.
ODD_VALID: dict[str, Callable[[Path], Path]] = {
    "8 channels 192 kHz": eight_channels_192k,
    "8-bit PCM": pcm_u8,
    "24-bit PCM": pcm_24,
    "float PCM": pcm_float,
    "NaN and inf samples": nan_inf,
    "100 samples": hundred_samples,
}


def sparse_long_wav(path: Path, hours: float, sr: int = 8000) -> Path:
    """A valid 16-bit mono WAV of ``hours`` of silence, written as a sparse file (no disk, no time)."""
    n_bytes = int(hours * 3600 * sr) * 2
    if n_bytes + 36 > 0xFFFFFFFF:
        raise ValueError("too long for a RIFF WAV at this rate")
    header = b"RIFF" + struct.pack("<I", 36 + n_bytes) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sr, sr * 2, 2, 16)
    header += b"data" + struct.pack("<I", n_bytes)
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + n_bytes)
    return path
