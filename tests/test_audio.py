"""Streaming decode + resample equals whole-file decode, for several formats and rates; bad files fail cleanly."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from owlfinder import audio

from conftest import write_tone_file


def _whole(path, sr):
    y, native = sf.read(str(path), dtype="float32", always_2d=True)
    return soxr.resample(y.mean(axis=1), native, sr, quality="HQ")


@pytest.mark.parametrize(
    "suffix,native_sr,channels",
    [(".wav", 44100, 2), (".flac", 48000, 1), (".flac", 22050, 2), (".ogg", 32000, 1), (".wav", 16000, 1),
     (".mp3", 44100, 2)],
)
@pytest.mark.parametrize("block_s", [0.37, 5.0])
def test_stream_equals_whole_file(tmp_path, suffix, native_sr, channels, block_s):
    path = write_tone_file(tmp_path / f"x{suffix}", 7.3, sr=native_sr, channels=channels)
    streamed = np.concatenate(list(audio.stream(path, 16000, block_s=block_s)))
    whole = _whole(path, 16000)
    assert abs(len(streamed) - len(whole)) <= 1
    n = min(len(streamed), len(whole))
    # soxr keeps its filter state across blocks: no seams at block boundaries.
    assert np.max(np.abs(streamed[:n] - whole[:n])) < 1e-4


def test_stream_real_field_recordings(shared_data):
    files = [
        shared_data / "BirdVox__birdvoxdetect/tests/data/audio/BirdVox-full-night_unit03_00-19-45_01min.wav",
        *sorted(shared_data.rglob("*.mp3"))[:1],
    ]
    for path in files:
        info = audio.probe(path)
        streamed = np.concatenate(list(audio.stream(path, 16000, block_s=1.1, info=info)))
        if path.suffix == ".wav":
            whole = _whole(path, 16000)
            assert abs(len(streamed) - len(whole)) <= 1
            n = min(len(streamed), len(whole))
            assert np.max(np.abs(streamed[:n] - whole[:n])) < 1e-4
        assert abs(len(streamed) / 16000 - info.duration_s) < 1.0


def test_segment_load_matches_slice(tmp_path):
    path = write_tone_file(tmp_path / "x.flac", 20.0, sr=44100)
    whole = audio.load(path, 16000)
    seg = audio.load(path, 16000, start_s=7.0, end_s=12.0)
    assert len(seg) == 5 * 16000
    # Interior samples agree (the resampler's edge transient differs at the cut).
    assert np.max(np.abs(seg[500:-500] - whole[7 * 16000 + 500: 12 * 16000 - 500])) < 1e-3


def _write_aac(path, seconds: float = 3.0, sr: int = 44100, seed: int = 0):
    """A stereo AAC file (M4A container, or raw ADTS for ``.aac``): a 400 Hz tone plus a little noise."""
    av = pytest.importorskip("av")
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(seed)
    y = (0.3 * np.sin(2 * np.pi * 400 * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)
    with av.open(str(path), "w", format="adts" if path.suffix == ".aac" else None) as c:
        st = c.add_stream("aac", rate=sr)
        st.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(np.stack([y, 0.5 * y]), format="fltp", layout="stereo")
        frame.sample_rate = sr
        for pkt in st.encode(frame):
            c.mux(pkt)
        for pkt in st.encode(None):
            c.mux(pkt)
    return path


def _whole_pyav(path, sr):
    """Whole-file reference for formats soundfile cannot read: every frame decoded at once, then one soxr call."""
    import av

    with av.open(str(path)) as c:
        st = c.streams.audio[0]
        frames = [f.to_ndarray() for f in c.decode(st)]
        native = st.codec_context.sample_rate
    y = np.concatenate([f if f.shape[0] <= 8 else f.T for f in frames], axis=1)  # planar: (channels, n)
    return soxr.resample(y.astype(np.float32).mean(axis=0), native, sr, quality="HQ")


@pytest.mark.parametrize("suffix", [".m4a", ".aac"])
@pytest.mark.parametrize("block_s", [0.37, 5.0])
def test_stream_equals_whole_file_aac(tmp_path, suffix, block_s):
    path = _write_aac(tmp_path / f"x{suffix}", 7.3)
    streamed = np.concatenate(list(audio.stream(path, 16000, block_s=block_s)))
    whole = _whole_pyav(path, 16000)
    assert abs(len(streamed) - len(whole)) <= 1
    n = min(len(streamed), len(whole))
    assert np.max(np.abs(whole[:n])) > 0.1  # real audio, not an empty decode on both sides
    assert np.max(np.abs(streamed[:n] - whole[:n])) < 1e-4  # the same tolerance as WAV/FLAC/OGG/MP3


def test_m4a_through_pyav(tmp_path):
    path = _write_aac(tmp_path / "phone clip.m4a")
    info = audio.probe(path)
    assert info.backend == "pyav" and info.channels == 2 and abs(info.duration_s - 3.0) < 0.1
    out = audio.load(path, 16000)
    assert abs(len(out) / 16000 - 3.0) < 0.1
    spec = np.abs(np.fft.rfft(out[4000:36000]))
    assert abs(np.argmax(spec) * 16000 / 32000 - 400) < 5


def test_many_channels_high_rate_odd_formats(tmp_path):
    path = write_tone_file(tmp_path / "8ch.wav", 2.0, sr=192000, channels=8, subtype="PCM_24")
    info = audio.probe(path)
    assert (info.channels, info.sample_rate) == (8, 192000)
    assert len(audio.load(path, 16000)) == 32000
    for subtype in ("PCM_U8", "PCM_16", "FLOAT"):
        p = write_tone_file(tmp_path / f"{subtype}.wav", 1.0, sr=8000, subtype=subtype)
        y = audio.load(p, 16000)
        assert len(y) == 16000 and np.abs(y).max() > 0.1


def test_non_finite_samples_become_zero(tmp_path):
    y = np.zeros(16000, dtype=np.float32)
    y[100], y[200], y[300] = np.nan, np.inf, -np.inf
    sf.write(tmp_path / "nan.wav", y, 16000, subtype="FLOAT")
    out = audio.load(tmp_path / "nan.wav", 16000)
    assert np.isfinite(out).all()


@pytest.mark.parametrize(
    "name,content,reason",
    [
        ("empty.wav", b"", "empty file"),
        ("page.wav", b"<html><body>not audio</body></html>" * 20, "not a recognised audio file"),
        ("zip.mp3", b"PK\x03\x04" + bytes(2000), "not"),
    ],
)
def test_bad_files_one_line_error(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(audio.AudioError) as err:
        audio.load(path, 16000)
    msg = str(err.value)
    assert name in msg and reason in msg and "\n" not in msg


def test_truncated_flac_fails_or_returns_decoded_prefix(tmp_path):
    good = write_tone_file(tmp_path / "good.flac", 30.0, sr=44100, channels=2)
    data = good.read_bytes()
    bad = tmp_path / "truncated.flac"
    bad.write_bytes(data[: len(data) // 3])
    try:
        y = audio.load(bad, 16000)
    except audio.AudioError as err:
        assert "truncated.flac" in str(err) and "\n" not in str(err)
    else:
        assert 0 < len(y) < 30 * 16000  # what decodes before the cut, nothing invented
    header_only = tmp_path / "header.wav"
    header_only.write_bytes(good.read_bytes()[:0] or write_tone_file(tmp_path / "h.wav", 1.0).read_bytes()[:44])
    with pytest.raises(audio.AudioError):
        audio.load(header_only, 16000)


def test_missing_file():
    with pytest.raises(audio.AudioError, match="file not found"):
        audio.probe("/nonexistent/owl.flac")
