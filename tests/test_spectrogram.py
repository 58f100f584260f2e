"""The display spectrogram (owlfinder.spectrogram): per-clip colour range, high-pass, the call stays visible."""

from __future__ import annotations

import numpy as np
import pytest

from owlfinder import audio
from owlfinder.spectrogram import band_contrast, owl_spectrogram
from owlfinder.synth import calls

SR = 16000
#: Real recordings with a loud band below the owl's (BirdNET's example: +29 dB under 150 Hz against
#: 300-600 Hz) and a real night (the A2O dry forest at 04:00).
LOUD_LOW = "kahst__BirdNET-Analyzer/example/soundscape.wav"
A2O_NIGHT = "GenGen88__Ecoacoustic-Analysis-Pipeline/example/20190301T040000+1000_SEQP-Samford-Dry-A_616304.flac"


def _with_call(shared_data, rel: str, snr_db: float) -> tuple[np.ndarray, np.ndarray, tuple, tuple]:
    """A real clip, the clip with a synthetic call at ``snr_db`` band SNR, the call's band (Hz) and span (s)."""
    bg = audio.load(shared_data / rel, SR, end_s=10.0)
    params = calls.sample_owl_params(np.random.default_rng(3), sex="male")
    mix = calls.mix_at_snr(bg, calls.render_owl_call(params, SR), SR, snr_db, offset_s=4.0)
    lo, hi = params.freq_range_hz
    return bg, mix, (lo - 20, hi + 20), (4.0, 4.0 + params.duration_s)


def test_a_tone_lands_in_its_bin_and_the_layout_is_librosa_like():
    t = np.arange(SR * 2) / SR
    spec = owl_spectrogram(0.5 * np.sin(2 * np.pi * 440 * t), SR, noise_floor=False)
    assert spec.freqs_hz.max() <= 2000 and spec.db.shape == (len(spec.freqs_hz), len(spec.times_s))
    assert abs(spec.freqs_hz[np.argmax(spec.db.mean(axis=1))] - 440) < 10
    assert spec.db.max() == pytest.approx(20 * np.log10(0.5), abs=1.5)  # full scale reads about 0 dB
    assert spec.vmax - spec.vmin >= 30 and spec.scaled.min() >= 0 and spec.scaled.max() <= 1


def test_the_high_pass_attenuates_rumble_and_keeps_the_owl_band():
    t = np.arange(SR * 2) / SR
    y = np.sin(2 * np.pi * 50 * t) + 0.01 * np.sin(2 * np.pi * 400 * t)
    spec = owl_spectrogram(y, SR, noise_floor=False)
    flat = owl_spectrogram(y, SR, highpass_hz=None, noise_floor=False)
    row = lambda s, f: s.db[np.argmin(abs(s.freqs_hz - f))].mean()  # noqa: E731
    assert row(flat, 50) - row(spec, 50) > 40  # 50 Hz is 1.6 octaves under the 150 Hz corner
    assert abs(row(flat, 400) - row(spec, 400)) < 0.5
    assert spec.vmax < row(flat, 50) - 20  # the rumble no longer sets the top of the colour scale


def test_silence_and_tiny_clips_give_a_dark_picture():
    spec = owl_spectrogram(np.zeros(100, dtype=np.float32), 8000)
    shown = spec.scaled[spec.freqs_hz >= 300]  # above the high-pass corner's roll-off
    assert spec.db.shape[1] == 1 and shown.max() < 1e-3  # silence is dark, not blown up to full scale
    with pytest.raises(ValueError, match="percentiles"):
        owl_spectrogram(np.zeros(SR), SR, percentiles=(99, 50))


def test_a_call_under_a_loud_low_band_is_not_crushed(shared_data):
    """The issue's "nearly black" picture: a whole-band scale lets the rumble set the top colour."""
    _, mix, band, span = _with_call(shared_data, LOUD_LOW, snr_db=0.0)
    new = band_contrast(owl_spectrogram(mix, SR), band, span)
    old = band_contrast(owl_spectrogram(mix, SR, highpass_hz=None, noise_floor=False, percentiles=(50, 99.9)),
                        band, span)
    assert new >= 0.15, f"call contrast {new:.3f}"
    assert new > 2 * old, f"per-clip scaling {new:.3f} vs whole-band scaling {old:.3f}"


def test_a_call_in_a_real_night_stands_out_of_its_background(shared_data):
    bg, mix, band, span = _with_call(shared_data, A2O_NIGHT, snr_db=0.0)
    assert band_contrast(owl_spectrogram(mix, SR), band, span) >= 0.15
    assert abs(band_contrast(owl_spectrogram(bg, SR), band, span)) < 0.05  # nothing there, nothing drawn


def test_a_steady_chorus_sinks_into_the_background_and_a_brief_call_stays():
    """Removing each frequency's noise floor: a steady 420 Hz chorus goes dark, a 0.5 s hoot at 380 Hz does not."""
    t = np.arange(SR * 6) / SR
    chorus = 0.3 * np.sin(2 * np.pi * 420 * t)
    hoot = np.where((t > 3) & (t < 3.5), 0.3 * np.sin(2 * np.pi * 380 * t), 0.0)
    noise = 0.01 * np.random.default_rng(0).standard_normal(len(t))
    spec = owl_spectrogram(chorus + hoot + noise, SR)
    img, f, tt = spec.scaled, spec.freqs_hz, spec.times_s
    at = lambda hz: np.argmin(abs(f - hz))  # noqa: E731
    assert np.median(img[at(420)]) < 0.6  # the chorus is background
    assert img[at(380), (tt > 3.1) & (tt < 3.4)].mean() > 0.9  # the hoot is bright
