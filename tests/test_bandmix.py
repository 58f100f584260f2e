"""Band-power mixing: powers of independent sounds add, calls land at the asked band SNR, the notes a positive
must hold stay in its window, and long recordings are turned into band powers seamlessly."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from owlfinder.owlnet import OwlNetFeatureExtractor
from owlfinder.synth.calls import pink_noise
from owlfinder.train import bandmix
from owlfinder.train.bandmix import BandBank, MixConfig, mix_batch, sound_power
from owlfinder.train.recipe import RecipeConfig

SR = 16000


@pytest.fixture(scope="module")
def fe() -> OwlNetFeatureExtractor:
    return OwlNetFeatureExtractor()


def _tone(f0: float, seconds: float, level: float = 0.1) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (level * np.sin(2 * np.pi * f0 * t) * np.hanning(len(t))).astype(np.float32)


def _bank(fe, rng, n_calls=6) -> BandBank:
    calls = [sound_power(fe, np.concatenate([np.zeros(1600, np.float32), _tone(400.0 + 20 * i, 0.5),
                                              np.zeros(800, np.float32), _tone(410.0 + 20 * i, 0.4),
                                              np.zeros(1600, np.float32)])) for i in range(n_calls)]
    keep = np.array([[5, c.shape[1] - 6] for c in calls])
    conf = [sound_power(fe, _tone(700.0, 0.15)) for _ in range(3)]
    bgs = [sound_power(fe, pink_noise(rng, 12 * SR) * 0.01) for _ in range(2)]
    return BandBank.from_sounds(fe, calls, keep, ["a"] * (n_calls // 2) + ["b"] * (n_calls - n_calls // 2), conf,
                                bgs, confuser_kind=["x"] * 3)


def test_long_recordings_become_band_powers_without_seams(fe):
    rng = np.random.default_rng(0)
    y = pink_noise(rng, 50 * SR).astype(np.float32) * 0.05  # longer than sound_power's 20 s pieces
    lp = sound_power(fe, y)
    assert lp.dtype == np.float16 and lp.shape == (fe.feature_size, len(y) // fe.hop_length + 1)
    for start in (0, 1000 * fe.hop_length, 1990 * fe.hop_length):  # the second piece starts at frame 1000
        win = fe(y[start:start + 5 * SR], sampling_rate=SR, return_tensors="np")["input_features"][0] / 10.0
        f0 = start // fe.hop_length
        inner = slice(3, win.shape[1] - 3)  # the window's own edges are reflect-padded
        assert np.abs(lp[:, f0:f0 + win.shape[1]][:, inner] - win[:, inner]).max() < 0.01  # 0.1 dB (float16)


def test_band_powers_of_independent_sounds_add(fe):
    """The premise of mixing in band-power space, on a tone in noise: mean error well under a dB."""
    rng = np.random.default_rng(1)
    noise, tone = pink_noise(rng, 5 * SR).astype(np.float32) * 0.02, _tone(450.0, 5.0, 0.02)
    real = 10.0 * sound_power(fe, noise + tone).astype(np.float64)
    summed = 10.0 * np.log10(10.0 ** sound_power(fe, noise).astype(np.float64)
                             + 10.0 ** sound_power(fe, tone).astype(np.float64))
    assert abs(float(np.mean(real - summed))) < 0.5 and float(np.median(np.abs(real - summed))) < 1.5


def test_calls_are_added_at_the_asked_band_snr(fe):
    rng = np.random.default_rng(2)
    bank = _bank(fe, rng)
    bank.coherence[:] = 0.0  # no interference term: the SNR is then exact
    bg = 10.0 ** sound_power(fe, pink_noise(rng, 5 * SR) * 0.01).astype(np.float32)
    fg, span, _ = bandmix._place(rng, bank.calls[0], bank.window_frames, tuple(bank.call_keep[0]))
    for snr in (-5.0, 0.0, 12.0):
        mixed = bandmix._add(rng, bg, fg, span, snr, bank)
        rows = bank.band_rows
        got = 10 * np.log10((mixed - bg)[rows, span].sum() / bg[rows, span].sum())
        assert got == pytest.approx(snr, abs=1e-3)
    assert bank.band_rows.size and all(300 <= fe.f_min * 2 ** (r / fe.bins_per_octave) <= 600 for r in bank.band_rows)


def test_positive_windows_keep_the_first_two_notes(fe):
    rng = np.random.default_rng(3)
    long_call = sound_power(fe, np.concatenate([_tone(400.0, 7.0), np.zeros(SR, np.float32)]))  # longer than a window
    n = 5 * SR // fe.hop_length + 1
    offsets = []
    for call, keep in ((long_call, (40, 240)), (long_call[:, :120], (10, 100))):
        for _ in range(300):
            fg, span, off = bandmix._place(rng, call, n, keep)
            assert 0 <= off + keep[0] and off + keep[1] <= n - 1  # the kept frames are in the window
            assert span == slice(max(0, off), min(n, off + call.shape[1]))
            np.testing.assert_allclose(fg[:, span], 10.0 ** call[:, span.start - off: span.stop - off].astype(np.float32))
            assert not fg[:, :span.start].any() and not fg[:, span.stop:].any()
            offsets.append(off)
    assert min(offsets) < 0 < max(offsets)  # calls are cut at either edge too, never their kept notes


def test_mix_batch_makes_labelled_finite_features(fe):
    rng = np.random.default_rng(4)
    bank = _bank(fe, rng)
    hard = [np.full((bank.n_bands, bank.window_frames), -40.0, np.float16)] * 5
    x, y = mix_batch(rng, bank, 6, 10, MixConfig(), hard=hard, n_hard=3)
    assert x.shape == (16, fe.feature_size, bank.window_frames) and x.dtype == np.float32
    assert np.isfinite(x).all() and y.tolist() == [1] * 6 + [0] * 10
    assert sum(np.allclose(f, -40.0) for f in x[6:]) == 3  # the hard negatives were used
    rows = bank.band_rows
    loud = [float(np.percentile(f[rows], 99) - np.median(f[rows])) for f in x]
    assert np.mean(loud[:6]) > np.mean(loud[6:13])  # owls stand out of their band more than background does
    assert bank.subset(["a"]).call_family.tolist() == ["a"] * 3


def test_bank_builds_the_extractor_it_was_made_with():
    fe = OwlNetFeatureExtractor(hop_length=256, f_max=2000.0)
    bank = BandBank.from_sounds(fe, [], np.zeros((0, 2)), [], [], [])
    again = bank.feature_extractor()
    assert again.hop_length == 256 and again.feature_size == fe.feature_size == bank.n_bands
    x = np.random.default_rng(5).standard_normal(SR).astype(np.float32)
    assert torch.equal(fe(x, sampling_rate=SR, return_tensors="pt")["input_features"],
                       again(x, sampling_rate=SR, return_tensors="pt")["input_features"])


def test_tilt_changes_harmonics_against_the_fundamental_and_leaves_silence(fe):
    bank = BandBank.from_sounds(fe, [], np.zeros((0, 2)), [], [], [])
    oct_ = bank.octaves
    k400 = int(np.argmin(np.abs(oct_)))
    k800 = int(np.argmin(np.abs(oct_ - 1.0)))
    assert abs(oct_[k400]) < 1 / 32 and abs(oct_[k800] - 1.0) < 1 / 32
    x = np.full((bank.n_bands, 10), bandmix.LOG_FLOOR, np.float16)
    x[[k400, k800], 2:8] = -4.0  # a fundamental and its octave, the rest silent
    t = bandmix._tilted(x, 6.0, oct_).astype(np.float32)
    assert t[k800, 4] - t[k400, 4] == pytest.approx(0.6, abs=0.01)  # +6 dB per octave, in log10 units
    assert np.all(t[:, :2] == bandmix.LOG_FLOOR) and t.dtype == np.float32


def test_stretch_plays_a_call_slower_or_faster_with_its_kept_notes(fe):
    x = np.full((4, 100), bandmix.LOG_FLOOR, np.float32)
    x[1, 20:40] = -3.0  # a 20-frame note
    for factor in (0.85, 1.18):
        y, keep = bandmix._stretched(x, (20, 40), factor)
        assert y.shape == (4, round(100 * factor))
        on = np.flatnonzero(y[1] > -3.5)
        assert abs(len(on) - 20 * factor) <= 2 and abs(on[0] - keep[0]) <= 1 and abs(on[-1] - keep[1]) <= 2


def test_warp_bends_the_pitch_smoothly_within_its_limit():
    x = np.full((70, 120), bandmix.LOG_FLOOR, np.float32)
    x[30, 10:110] = -3.0  # a flat note
    rng = np.random.default_rng(7)
    bent = False
    for _ in range(20):
        y = bandmix._warped(rng, x, 1.5)
        peak = np.argmax(y[:, 10:110], axis=0)
        assert np.all(np.abs(peak - 30) <= 2) and np.all(np.abs(np.diff(peak)) <= 1)  # smooth, within 1.5 bands
        assert np.isclose(y[:, 10:110].max(axis=0), -3.0, atol=1.6).all()  # the note keeps its level
        assert np.allclose(y[:, :8], bandmix.LOG_FLOOR, atol=1e-4)  # silence stays silent
        bent |= len(set(peak.tolist())) > 1
    assert bent


def test_equaliser_reshapes_the_harmonics_smoothly_within_its_limit_and_leaves_silence():
    x = np.full((70, 20), bandmix.LOG_FLOOR, np.float32)
    x[:, 5:15] = -4.0  # a flat spectrum for 10 frames
    rng = np.random.default_rng(3)
    shapes = []
    for _ in range(30):
        y = bandmix._equalised(rng, x, 8.0, (2.0, 8.0))
        gain_db = 10.0 * (y[:, 10] - x[:, 10])
        assert np.all(np.abs(gain_db) <= 3 * 8.0 + 1e-3)  # at most three bumps of 8 dB
        assert np.abs(np.diff(gain_db)).max() < 3 * 8.0 * 0.61 / 2.0  # smooth: bumps >= 2 bands wide (slope A/w/e^.5)
        assert np.allclose(y[:, 5:15], y[:, [10]]) and np.all(y[:, :5] == bandmix.LOG_FLOOR)  # same in time; silence
        shapes.append(gain_db)
    assert np.std(np.stack(shapes), axis=0).mean() > 1.0  # the curves differ from draw to draw


def test_envelope_bends_loudness_along_time_within_its_limit():
    x = np.full((4, 200), bandmix.LOG_FLOOR, np.float32)
    x[1, 20:180] = -3.0
    rng = np.random.default_rng(4)
    for _ in range(20):
        y = bandmix._enveloped(rng, x, 5.0)
        gain_db = 10.0 * (y[1, 20:180] - x[1, 20:180])
        assert np.abs(gain_db).max() <= 5.0 + 1e-3 and np.abs(gain_db).max() > 0.5
        assert np.abs(np.diff(gain_db)).max() <= 2 * 5.0 / 5 + 1e-3  # piecewise linear, knots >= 5 frames apart
        assert np.all(y[[0, 2, 3]] == bandmix.LOG_FLOOR) and np.all(y[1, :20] == bandmix.LOG_FLOOR)


def test_mix_overrides_parse_like_a_command_line_and_name_bad_keys():
    c = MixConfig.from_overrides(["p_eq=0.5", "snr_db=-3,20", "max_shift_call=2", "single_share=none"])
    assert c.p_eq == 0.5 and c.snr_db == (-3.0, 20.0) and c.max_shift_call == 2 and c.single_share is None
    assert MixConfig.from_overrides([]) == MixConfig()
    with pytest.raises(ValueError, match="p_eqq"):
        MixConfig.from_overrides(["p_eqq=0.5"])
    with pytest.raises(ValueError, match="snr_db"):
        MixConfig.from_overrides(["snr_db=1"])


def test_timbre_and_envelope_off_by_default_leave_batches_as_before(fe):
    """p_eq and p_envelope at 0 draw nothing, so a recipe that does not use them gives the same batches."""
    bank = _bank(fe, np.random.default_rng(0))
    a, _ = mix_batch(np.random.default_rng(9), bank, 4, 4, MixConfig())
    b, _ = mix_batch(np.random.default_rng(9), bank, 4, 4, MixConfig(p_eq=0.0, p_envelope=0.0, eq_db=3.0))
    c, _ = mix_batch(np.random.default_rng(9), bank, 4, 4, MixConfig(p_eq=1.0, p_envelope=1.0))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def _glided_note(f0: float, seconds: float, depth: float, glide_s: float) -> np.ndarray:
    """A tone that starts ``depth`` below ``f0`` and rises to it over ``glide_s``, then holds (phase-integrated)."""
    t = np.arange(int(seconds * SR)) / SR
    f = f0 * (1.0 - depth * np.clip(1.0 - t / glide_s, 0.0, 1.0) ** 2)
    env = np.minimum(1.0, t / 0.03) * np.minimum(1.0, (seconds - t) / 0.1)
    return (0.1 * env * np.sin(2 * np.pi * np.cumsum(f) / SR)).astype(np.float32)


def _ridge(x: np.ndarray, frames: np.ndarray) -> np.ndarray:
    return np.argmax(x[:, frames], axis=0)


def test_onset_glide_is_taken_out_and_a_flat_note_left_alone(fe):
    pad = np.zeros(1600, np.float32)
    glided = sound_power(fe, np.concatenate([pad, _glided_note(420.0, 0.6, 0.2, 0.15), pad]))
    flat = sound_power(fe, np.concatenate([pad, _glided_note(420.0, 0.6, 0.0, 0.15), pad]))
    bank = _bank(fe, np.random.default_rng(0))
    ridge = bandmix._fundamental_bands(bank)
    hold = _ridge(glided, np.arange(16, 28))  # the note's middle (it runs from frame ~5 to ~35)
    assert np.ptp(hold) <= 1
    loud = np.flatnonzero(glided.max(axis=0) > glided.max() - 1.5)  # frames within 15 dB of the peak
    before = _ridge(glided, loud)
    assert before.min() <= hold[0] - 3  # 20 % below the hold is 5 bands at 16 per octave
    curve = bandmix.onset_glide_curve(glided, ridge)
    after = _ridge(bandmix._bent(glided, curve), loud)
    assert after.min() >= hold[0] - 1 and after.max() <= hold[0] + 1  # the glide is gone
    assert curve.max() <= 6.0 and np.all(curve >= 0) and np.all(curve[loud[-1]:] == 0)  # only the onset moves
    assert np.abs(bandmix.onset_glide_curve(flat, ridge)).max() < 0.6  # a flat note stays (within a band's wobble)
    silence = np.full((70, 40), bandmix.LOG_FLOOR, np.float32)
    assert np.all(bandmix.onset_glide_curve(silence, ridge) == 0)


def _two_note_bank(fe, seconds: float, depth: float, glide_s: float) -> tuple[BandBank, MixConfig]:
    """A bank of four two-note calls (each note ``seconds`` long, gliding ``depth`` up over ``glide_s``), and a
    MixConfig with every other change to a call off."""
    pad = np.zeros(1600, np.float32)
    calls = [sound_power(fe, np.concatenate([pad, _glided_note(400.0 + 10 * i, seconds, depth, glide_s),
                                             np.zeros(800, np.float32),
                                             _glided_note(410.0 + 10 * i, seconds, depth, glide_s), pad]))
             for i in range(4)]
    base = _bank(fe, np.random.default_rng(0))
    bank = BandBank.from_sounds(fe, calls, np.array([[5, c.shape[1] - 6] for c in calls]), ["a"] * 4,
                                base.confusers, base.backgrounds, confuser_kind=["x"] * 3)
    plain = MixConfig(p_stretch=0.0, p_warp=0.0, max_shift_call=0, p_time_mask=0.0, p_band_mask=0.0, p_tilt=0.0,
                      p_flatten=0.0, p_glide_confuser=0.0)
    return bank, plain


def test_flattening_draws_apart_and_changes_only_the_positives(fe):
    """p_flatten draws from aug_rng: the negatives, and every other draw, stay as without it."""
    bank, plain = _two_note_bank(fe, 0.5, 0.2, 0.15)
    a, ya = mix_batch(np.random.default_rng(5), bank, 6, 6, plain)
    b, yb = mix_batch(np.random.default_rng(5), bank, 6, 6, replace(plain, p_flatten=1.0),
                      aug_rng=np.random.default_rng(1))
    assert np.array_equal(ya, yb) and np.array_equal(a[6:], b[6:])  # negatives untouched, same draws
    changed = np.abs(a[:6] - b[:6]).max(axis=(1, 2)) > 1.0
    assert changed.all()  # every positive lost its glides
    assert "p_flatten" not in RecipeConfig(mix=plain).to_dict()["mix"]  # records made before it still compare equal
    assert RecipeConfig().to_dict()["mix"]["p_flatten"] == 0.4  # on by default: a recipe trained without it differs


def test_a_glide_is_given_to_each_note_of_a_sound_and_taken_out_again(fe):
    """glide_in_curve starts every note lower and brings it up to its own pitch; onset_glide_curve undoes it."""
    pad = np.zeros(1600, np.float32)
    gap = np.zeros(4000, np.float32)
    flat = sound_power(fe, np.concatenate([pad, _glided_note(420.0, 0.6, 0.0, 0.15), gap,
                                           _glided_note(430.0, 0.5, 0.0, 0.15), pad]))
    bank = _bank(fe, np.random.default_rng(0))
    ridge = bandmix._fundamental_bands(bank)
    curve = bandmix.glide_in_curve(flat, 4.0, 6)
    starts = np.flatnonzero(np.diff((curve < 0).astype(np.int8)) == 1) + 1
    assert len(starts) == 2 and curve.min() == pytest.approx(-4.0)  # both notes, the full depth at the start
    glided = bandmix._bent(flat, curve)
    for s in starts:
        hold = _ridge(flat, np.array([s + 15]))[0]
        assert _ridge(glided, np.array([s + 1]))[0] <= hold - 2  # starts lower ...
        assert np.all(np.diff(curve[s:s + 6]) >= 0) and curve[s + 12] == 0  # ... rises, then holds unchanged
    back = bandmix.onset_glide_curve(glided, ridge)
    assert back[starts[0] + 1] > 2.0  # the added glide is one that the flattening finds and takes out
    assert np.all(curve <= 0)
    silence = np.full((70, 40), bandmix.LOG_FLOOR, np.float32)
    assert np.all(bandmix.glide_in_curve(silence, 4.0, 6) == 0)


def test_confuser_glides_draw_apart_and_change_only_confusers(fe):
    """p_glide_confuser draws from aug_rng: positives without a confuser, and negatives without one, stay."""
    pad = np.zeros(1600, np.float32)
    conf = [sound_power(fe, np.concatenate([pad, _glided_note(450.0, 0.5, 0.0, 0.1), pad])) for _ in range(3)]
    base = _bank(fe, np.random.default_rng(0))
    bank = BandBank.from_sounds(fe, base.calls, base.call_keep, base.call_family, conf, base.backgrounds,
                                confuser_kind=["x"] * 3)
    plain = MixConfig(p_time_mask=0.0, p_band_mask=0.0, p_confuser_neg=1.0, p_confuser_pos=0.0, p_flatten=0.0,
                      p_glide_confuser=0.0)
    a, ya = mix_batch(np.random.default_rng(5), bank, 4, 6, plain, aug_rng=np.random.default_rng(1))
    b, yb = mix_batch(np.random.default_rng(5), bank, 4, 6, replace(plain, p_glide_confuser=1.0),
                      aug_rng=np.random.default_rng(1))
    assert np.array_equal(ya, yb) and np.array_equal(a[:4], b[:4])  # positives untouched, same draws
    assert (np.abs(a[4:] - b[4:]).max(axis=(1, 2)) > 1.0).all()  # every confuser got its glide
    assert "p_glide_confuser" not in RecipeConfig(mix=plain).to_dict()["mix"]  # older records compare equal
    assert RecipeConfig().to_dict()["mix"]["p_glide_confuser"] == 0.5  # on by default
    assert MixConfig.from_overrides(["confuser_glide_frames=3,8"]).confuser_glide_frames == (3, 8)


def test_notes_are_shortened_to_their_lengths_and_the_echo_left(fe):
    """shortened cuts each note to the length asked for it (fading it by 30 dB); a note already short enough stays."""
    pad = np.zeros(1600, np.float32)
    gap = np.zeros(4000, np.float32)
    x = sound_power(fe, np.concatenate([pad, _glided_note(420.0, 0.8, 0.1, 0.1), gap,
                                        _glided_note(430.0, 0.3, 0.1, 0.1), pad]))
    notes = bandmix._note_onsets(x, min_note_frames=4, onset_frames=12)
    assert len(notes) == 2
    (first0, _, stop0), (first1, _, stop1) = notes
    asked = []
    y = bandmix.shortened(x, lambda n: asked.append(n) or (15 if len(asked) == 1 else 40))
    assert asked == [stop0 - first0, stop1 - first1]  # each note's own length, in time order
    after = bandmix._note_onsets(y, min_note_frames=4, onset_frames=12)
    assert len(after) == 2
    assert after[0][2] - after[0][0] <= 17 < stop0 - first0  # cut to ~15 frames (0.3 s), from ~40
    assert np.array_equal(y[:, first1:], x[:, first1:])  # the second note is no longer than 40: left alone
    assert np.array_equal(y[:, :first0 + 15], x[:, :first0 + 15])  # the note's start is untouched
    assert (x[:, first0 + 20:stop0] - y[:, first0 + 20:stop0]).max() == pytest.approx(3.0, abs=0.01)  # 30 dB down (float16)
    assert np.array_equal(y[:, stop0:first1], x[:, stop0:first1])  # what followed the note stays
    assert np.array_equal(bandmix.shortened(x, lambda n: n), x)  # no note shorter: nothing changes


def test_shortening_draws_apart_and_changes_only_the_positives(fe):
    """p_shorten draws from aug_rng: the negatives, and every other draw, stay as without it."""
    bank, plain = _two_note_bank(fe, 0.8, 0.1, 0.1)
    a, ya = mix_batch(np.random.default_rng(5), bank, 6, 6, plain)
    b, yb = mix_batch(np.random.default_rng(5), bank, 6, 6, replace(plain, p_shorten=1.0, shorten_min_frames=13),
                      aug_rng=np.random.default_rng(1))
    assert np.array_equal(ya, yb) and np.array_equal(a[6:], b[6:])  # negatives untouched, same draws
    assert (np.abs(a[:6] - b[:6]).max(axis=(1, 2)) > 1.0).all()  # every positive lost some of its notes' ends
    assert "p_shorten" not in RecipeConfig(mix=plain).to_dict()["mix"]  # records made before it compare equal
    assert RecipeConfig(mix=replace(plain, p_shorten=0.4)).to_dict()["mix"]["shorten_min_frames"] == 13
