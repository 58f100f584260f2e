"""Clip building: filling without zeros, cutting, streaming clips out of files, FLAC, detection spans."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import soundfile as sf

from owlfinder.audio import AudioError
from owlfinder.data import schema
from owlfinder.data.clips import (
    clips_from_file,
    cut_clips,
    encode_flac,
    fit_to_length,
    source_name,
    spans_from_detection,
)

from conftest import write_tone_file

SR = schema.SAMPLE_RATE
N = int(schema.CLIP_S * SR)


def longest_zero_run(y: np.ndarray) -> int:
    run = best = 0
    for v in y:
        run = run + 1 if v == 0 else 0
        best = max(best, run)
    return best


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR)) + 0.01).astype(np.float32)


@pytest.mark.parametrize("mode", ["reflect", "repeat"])
@pytest.mark.parametrize("seconds", [0.3, 1.0, 2.2, 4.99])
def test_fit_to_length_never_pads_with_zeros(mode, seconds):
    y = noise(seconds)
    out = fit_to_length(y, N, mode)
    assert out.shape == (N,) and out.dtype == np.float32
    assert longest_zero_run(out) == 0
    # Every sample comes from the input's own audio.
    assert np.isin(out, y).all()
    np.testing.assert_array_equal(out[: len(y)], y)


def test_fit_to_length_trims_existing_zero_padding():
    # A clip that arrives already zero-padded must not spread its padding through the filled clip.
    y = np.concatenate([np.zeros(800, np.float32), noise(1.0), np.zeros(4000, np.float32)])
    for mode in ("reflect", "repeat"):
        assert longest_zero_run(fit_to_length(y, N, mode)) == 0


def test_fit_to_length_reflect_is_seamless_and_long_input_is_cropped():
    t = np.arange(int(0.7 * SR)) / SR
    y = (0.5 * np.sin(2 * np.pi * 3 * t) + 0.6).astype(np.float32)  # slow, so a jump would stand out
    out = fit_to_length(y, N, "reflect")
    assert np.abs(np.diff(out)).max() <= np.abs(np.diff(y)).max() + 1e-6
    long = noise(7.0)
    np.testing.assert_array_equal(fit_to_length(long, N), long[:N])
    with pytest.raises(ValueError):
        fit_to_length(np.zeros(0, np.float32), N)
    with pytest.raises(ValueError):
        fit_to_length(long, N, "zeros")  # type: ignore[arg-type]


def test_cut_clips_keeps_a_long_enough_tail_filled():
    y = noise(12.0)
    clips = cut_clips(y, SR, 5.0, min_s=1.0)
    assert [(s, e) for s, e, _ in clips] == [(0.0, 5.0), (5.0, 10.0), (10.0, 12.0)]
    assert all(len(c) == N for _, _, c in clips)
    np.testing.assert_array_equal(clips[1][2], y[5 * SR: 10 * SR])
    assert longest_zero_run(clips[2][2]) == 0
    # A tail shorter than min_s is dropped; a file shorter than min_s yields nothing.
    assert len(cut_clips(noise(10.5), SR, 5.0, min_s=1.0)) == 2
    assert cut_clips(noise(0.5), SR, 5.0, min_s=1.0) == []
    assert len(cut_clips(noise(0.5), SR, 5.0, min_s=0.25)) == 1


def test_clips_from_file_streams_any_rate_and_channels(tmp_path):
    path = write_tone_file(tmp_path / "rec.flac", 12.3, sr=44100, channels=2)
    clips = list(clips_from_file(path, SR, 5.0, block_s=1.0))  # small blocks: many block boundaries
    assert [round(s, 3) for s, _, _ in clips] == [0.0, 5.0, 10.0]
    assert clips[-1][1] == pytest.approx(12.3, abs=1e-3)
    assert all(c.shape == (N,) and c.dtype == np.float32 for _, _, c in clips)
    # Same audio as cutting the whole decoded file at once.
    from owlfinder.audio import load

    whole = cut_clips(load(path, SR), SR, 5.0)
    for (_, _, a), (_, _, b) in zip(clips, whole, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_clips_from_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "text.wav"
    bad.write_text("not audio at all\n" * 20)
    with pytest.raises(AudioError, match="text.wav"):
        list(clips_from_file(bad))


def test_clips_from_real_recording(shared_data):
    path = shared_data / "BirdVox__birdvoxdetect/tests/data/audio/BirdVox-scaper_example_mix.wav"
    clips = list(clips_from_file(path))  # 10 s at 44.1 kHz
    assert [(s, e) for s, e, _ in clips] == [(0.0, 5.0), (5.0, 10.0)]
    assert all(len(c) == N and np.abs(c).max() > 0 for _, _, c in clips)


def test_encode_flac_roundtrip():
    y = noise(5.0)
    data = encode_flac(y, SR)
    assert data[:4] == b"fLaC"
    back, sr = sf.read(io.BytesIO(data), dtype="float32")
    assert sr == SR and back.shape == y.shape
    np.testing.assert_allclose(back, y, atol=1 / 32768 + 1e-7)
    # Decoding and encoding again changes nothing, so a clip's fingerprint (its id) survives round trips.
    np.testing.assert_array_equal(sf.read(io.BytesIO(encode_flac(back, SR)), dtype="int16")[0],
                                  sf.read(io.BytesIO(data), dtype="int16")[0])
    assert schema.audio_fingerprint(back) == schema.audio_fingerprint(y)
    loud = np.array([1.0, -1.0, 0.99999, 0.7], dtype=np.float32)  # the clipping edges too
    assert schema.audio_fingerprint(sf.read(io.BytesIO(encode_flac(loud, SR)), dtype="float32")[0]) \
        == schema.audio_fingerprint(loud)


def test_clip_id_is_stable_and_source_name_machine_independent(tmp_path):
    y, other = noise(5.0), noise(5.0) * 0.5
    assert schema.clip_id(y, 5, 10) == schema.clip_id(y.copy(), 5.0000001, 9.9999999)
    assert schema.clip_id(y, 5, 10) != schema.clip_id(other, 5, 10)  # same name, other audio: another clip
    assert schema.clip_id(y, 5, 10) != schema.clip_id(y, 10, 15)  # the same audio elsewhere: another clip
    assert len(schema.clip_id(y, 0, 5)) == 24 and not schema.is_legacy_clip_id(schema.clip_id(y, 0, 5))
    assert schema.clip_id(schema.audio_fingerprint(y), 0, 5) == schema.clip_id(y, 0, 5)
    with pytest.raises(TypeError, match="legacy_clip_id"):
        schema.clip_id("siteA/x.wav", 5, 10)  # the old signature fails loudly instead of colliding
    # The old, name-based id is unchanged, so stores and queues written with it keep resolving.
    old = hashlib.sha1(b"siteA/x.wav\x005.000\x0010.000").hexdigest()[:16]  # what earlier versions computed
    assert schema.legacy_clip_id("siteA/x.wav", 5, 10) == old
    assert schema.is_legacy_clip_id(schema.legacy_clip_id("a", 0, 5))
    f = tmp_path / "owls" / "siteA" / "x.wav"
    assert source_name(f, tmp_path / "owls") == "owls/siteA/x.wav"
    assert source_name(f) == "siteA/x.wav"


def test_schema_is_a_superset_of_the_seed():
    f = schema.FEATURES
    assert list(f)[:3] == ["audio", "label", "filename"]
    assert f["label"].names == ["owl", "not_owl"] and f["audio"].sampling_rate == 16000
    assert {"clip_id", "source", "start_s", "end_s", "group", "labeller", "labelled_at", "model", "score",
            "reason", "verdict"} <= set(f)
    assert schema.label_of_verdict("unsure") == -1 and schema.label_of_verdict("not_owl") == 1
    assert not schema.is_trainable({"label": -1, "verdict": "unsure"})
    assert schema.normalize_utc("2024-05-01T10:00:00+10:00") == "2024-05-01T00:00:00.000000Z"


def test_spans_from_detection():
    doc = {"duration_s": 60.0, "threshold": 0.5,
           "windows": [{"start_s": float(s), "end_s": s + 5.0, "score": sc}
                       for s, sc in zip(range(0, 56, 5), [.1, .2, .9, .3, .45, .1, .8, .85, .8, .1, .52, .2],
                                        strict=True)],
           "events": [{"start_s": 10.0, "end_s": 12.0, "score": 0.9},
                      {"start_s": 30.0, "end_s": 41.0, "score": 0.85}]}
    spans = spans_from_detection(doc, 5.0, context_s=1.0, n_uncertain=2)
    events = [(s.start_s, s.end_s) for s in spans if s.kind == "event"]
    assert events == [(8.5, 13.5), (29.0, 34.0), (34.0, 39.0), (37.0, 42.0)]
    unsure = [s for s in spans if s.kind == "uncertain"]
    assert [(s.start_s, s.score) for s in unsure] == [(50.0, 0.52), (20.0, 0.45)]
    with pytest.raises(ValueError, match="malformed"):
        spans_from_detection({"events": []})


def test_one_fill_for_windows_and_clips():
    """owlfinder.audio.fill_to_length is the fill of both the window grid (reflect, numpy's pad 'reflect')
    and clip making (fit_to_length's 'reflect' is pad's 'symmetric', after trimming exact zeros)."""
    from owlfinder.audio import fill_to_length
    from owlfinder.detect import windows

    y = np.arange(1, 6, dtype=np.float32)
    assert windows.fill_to_length is fill_to_length
    np.testing.assert_array_equal(fill_to_length(y, 12), np.pad(y, (0, 7), mode="reflect"))
    np.testing.assert_array_equal(fill_to_length(y, 12, "symmetric"), np.pad(y, (0, 7), mode="symmetric"))
    np.testing.assert_array_equal(fill_to_length(y, 12, "repeat"), np.pad(y, (0, 7), mode="wrap"))
    padded = np.concatenate([np.zeros(3, np.float32), y, np.zeros(2, np.float32)])
    np.testing.assert_array_equal(fit_to_length(padded, 12), np.pad(y, (0, 7), mode="symmetric"))
    np.testing.assert_array_equal(fill_to_length(np.zeros(0), 4), np.zeros(4))  # nothing to fill from
