"""The published-description check (owlfinder.detect.verifier): what it passes, what it rejects, and the engine
applying it to candidate windows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from owlfinder.detect.detection import Detection, DetectionParams
from owlfinder.detect.engine import detect
from owlfinder.detect.model import load_classifier
from owlfinder.detect.verifier import REJECT_FACTOR, NoteRule, check_window, tonal_notes, verify_detection
from owlfinder.synth.families import FAMILIES

SR = 16000


def _noise(seconds: float, seed: int = 0, rms: float = 0.01) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * SR)) * rms).astype(np.float32)


def _tone(f_start: float, f_end: float, seconds: float, amp: float = 0.2) -> np.ndarray:
    """A note gliding geometrically from ``f_start`` to ``f_end`` Hz, with 30 ms fades."""
    n = int(seconds * SR)
    f = f_start * (f_end / f_start) ** (np.arange(n) / n)
    y = amp * np.sin(2 * np.pi * np.cumsum(f) / SR)
    ramp = np.minimum(1, np.minimum(np.arange(n), n - 1 - np.arange(n)) / (0.03 * SR))
    return (y * ramp).astype(np.float32)


def _put(y: np.ndarray, sound: np.ndarray, at_s: float) -> np.ndarray:
    out = y.copy()
    i = int(at_s * SR)
    out[i:i + len(sound)] += sound[: len(out) - i]
    return out


def _owl(family: str, seed: int, amp: float = 0.2) -> np.ndarray:
    fam = FAMILIES[family]
    y = fam.render(fam.sample(np.random.default_rng(seed)), SR)
    return (amp * y / np.max(np.abs(y))).astype(np.float32)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_call_passes_in_noise(family):
    """A clear call of each generator, alone in noise, holds a note that fits."""
    for seed in range(3):
        v = check_window(_put(_noise(5.0, seed), _owl(family, seed), 0.8), SR)
        assert v.passed, (family, seed, v.reason)
        assert "fit" in v.reason


def test_a_note_that_slides_is_rejected():
    """A strong note sliding 400 -> 700 Hz (a dawn bird's, not an owl's short onset glide, then hold)."""
    y = _put(_noise(5.0), _tone(400, 700, 0.6), 1.0)
    y = _put(y, _tone(400, 700, 0.6), 2.5)
    v = check_window(y, SR)
    assert not v.passed
    assert "none fits" in v.reason and "hold spread" in v.reason
    notes = tonal_notes(y, SR)
    assert len(notes) >= 2 and all(n.hold_spread() > 0.25 for n in notes)


def test_a_steady_tone_of_seconds_and_a_high_whistle_are_rejected():
    assert not check_window(_put(_noise(5.0), _tone(370, 370, 3.2), 0.5), SR).passed  # engine-like, too long
    assert not check_window(_put(_noise(5.0), _tone(760, 760, 0.5), 1.0), SR).passed  # too high a pitch


def test_doubt_passes():
    """No clear note (noise, a faint one) passes, and so does a quiet call beside a louder whistle."""
    assert check_window(_noise(5.0), SR).reason == "no clear tonal note"
    assert check_window(_put(_noise(5.0, rms=0.05), _tone(400, 700, 0.6, amp=0.002), 1.0), SR).passed
    assert check_window(np.zeros(100, np.float32), SR).passed  # too short to judge
    loud_whistle = _put(_put(_noise(5.0), _tone(780, 780, 0.6, amp=0.5), 0.2), _tone(780, 780, 0.6, amp=0.5), 2.0)
    assert not check_window(loud_whistle, SR).passed
    assert check_window(_put(loud_whistle, _owl("additive", 1, amp=0.05), 1.2), SR).passed


def test_a_male_call_at_its_second_harmonic_is_read_at_its_fundamental():
    """A bright note whose 800 Hz harmonic outshines its 400 Hz fundamental is the 400 Hz note that fits."""
    note = _tone(400, 400, 0.5, amp=0.05) + _tone(800, 800, 0.5, amp=0.4)
    y = _put(_put(_noise(5.0), note, 1.0), note, 1.9)
    [n, *_] = tonal_notes(y, SR)
    assert np.median(n.pitch_hz) == pytest.approx(400, rel=0.03)
    assert check_window(y, SR).passed


def test_rule_margins_are_what_the_rule_says():
    rule = NoteRule(pitch_hz=(280.0, 650.0))
    y = _put(_noise(5.0), _tone(600, 600, 0.5), 1.0)
    assert check_window(y, SR, rule).passed
    assert not check_window(y, SR, NoteRule(pitch_hz=(280.0, 550.0))).passed


def _detection(starts: np.ndarray, scores: np.ndarray, threshold: float) -> Detection:
    return Detection(file="x.wav", duration_s=float(starts[-1] + 5), sample_rate=SR, model="m", threshold=threshold,
                     window_s=5.0, hop_s=2.5, gap_s=0.7, min_duration_s=0.0, recorded_at=None,
                     starts_s=starts, ends_s=starts + 5.0, scores=scores.astype(np.float32), events=[]
                     ).rethreshold(threshold)


def test_verify_detection_demotes_only_rejected_candidates_and_events_follow():
    rec = _noise(20.0)
    rec = _put(rec, _owl("contours", 0), 0.5)  # in the window at 0 s
    rec = _put(_put(rec, _tone(400, 700, 0.6), 10.5), _tone(400, 700, 0.6), 12.0)  # in the window at 10 s only
    starts = np.array([0.0, 5.0, 10.0, 15.0])
    det = _detection(starts, np.array([0.99, 0.99, 0.99, 0.2]), threshold=0.9)
    assert len(det.events) == 1  # 0-15 s, one merged event
    read_calls = []

    def read(a: float, b: float) -> np.ndarray:
        read_calls.append((a, b))
        return rec[int(a * SR):int(b * SR)]

    out, checked, rejected = verify_detection(det, read, SR, floor=0.5)
    assert (checked, rejected) == (3, 1)
    assert read_calls == [(0.0, 15.0)]  # adjacent candidates decoded once; the window below the floor not read
    np.testing.assert_allclose(out.scores, [0.99, 0.99, 0.99 * REJECT_FACTOR, 0.2], rtol=1e-6)
    assert [(e.start_s, e.end_s) for e in out.events] == [(0.0, 10.0)]
    np.testing.assert_allclose(det.scores, [0.99, 0.99, 0.99, 0.2], rtol=1e-6)  # the input is not changed
    apart = _detection(np.array([0.0, 2.5, 10.0, 15.0]), np.array([0.99, 0.99, 0.99, 0.2]), threshold=0.9)
    read_calls.clear()
    out2, _, rejected2 = verify_detection(apart, read, SR, floor=0.5)
    assert read_calls == [(0.0, 7.5), (10.0, 15.0)]  # overlapping windows share one read, a gap starts another
    assert rejected2 == 1 and out2.scores[2] == pytest.approx(0.99 * REJECT_FACTOR)


def test_engine_checks_candidates_when_asked_and_records_it(tmp_path, tiny_model_dir):
    """With ``description_check_logit``, the engine's result is the unchecked one with the rejected windows
    demoted; the setting is in the JSON and in what a saved result must match to be reused."""
    rec = _put(_put(_noise(20.0), _tone(400, 700, 0.6), 10.5), _tone(400, 700, 0.6), 11.7)
    path = tmp_path / "rec.wav"
    sf.write(path, rec, SR)
    clf = load_classifier(tiny_model_dir, device="cpu")
    plain = detect(path, clf, DetectionParams(threshold=0.0, second_look_logit=None, description_check_logit=None))
    checked = detect(path, clf, DetectionParams(threshold=0.0, second_look_logit=None, description_check_logit=0.0))
    slide = (plain.starts_s <= 10.5) & (plain.ends_s >= 12.3)
    assert slide.any() and not slide.all()
    np.testing.assert_allclose(checked.scores[slide], plain.scores[slide] * REJECT_FACTOR, rtol=1e-5)
    np.testing.assert_allclose(checked.scores[~slide], plain.scores[~slide], rtol=1e-6)
    assert checked.description_check_logit == 0.0 and plain.description_check_logit is None
    assert "description_check" in checked.timings_s
    doc = json.loads(json.dumps(checked.to_dict()))
    assert Detection.from_dict(doc).params_key() == checked.params_key() != plain.params_key()
    lowered = detect(path, clf, DetectionParams(threshold=0.0, second_look_logit=None, description_check_logit=0.0,
                                                description_unpaired_logit=2.0))
    assert lowered.to_dict()["description_unpaired_logit"] == 2.0
    assert lowered.params_key() != checked.params_key()
    with pytest.raises(ValueError, match="description_check_logit"):
        DetectionParams(description_check_logit=-1.0)


def test_description_check_rates_count_calls_passed_and_confusers_rejected():
    from owlfinder.evaluation.description_check import description_check_rates, rates_table

    bgs = [_noise(12.0, seed=s, rms=0.003) for s in range(2)]
    rates = description_check_rates(bgs, SR, n=4, families=["additive", "contours"], kinds=["engine_hum"],
                                    snr_db_range=(10.0, 15.0), log=lambda m: None)
    assert {k: v["passed"] for k, v in rates["families"].items()} == {"additive": 4, "contours": 4}
    assert rates["confusers"]["engine_hum"]["clips"] == 4
    assert 0 <= rates["confusers"]["engine_hum"]["rejected"] <= 4
    assert rates["background"]["clips"] == 4
    table = rates_table(rates)
    assert all(0 <= v["paired"] <= v["passed"] for v in rates["families"].values())
    assert "| contours | 4 | 1.000 |" in table and "| plain background | 4 |" in table


def test_a_double_hoot_is_a_pair_and_a_lone_note_or_a_wide_interval_is_not():
    pair = _put(_put(_noise(5.0), _tone(380, 380, 0.45), 1.0), _tone(400, 400, 0.4), 1.9)
    v = check_window(pair, SR)
    assert v.passed and v.paired and "double hoot" in v.reason
    lone = _put(_noise(5.0), _tone(380, 380, 0.45), 1.0)
    assert check_window(lone, SR).paired is False
    wide = _put(_put(_noise(5.0), _tone(330, 330, 0.45), 1.0), _tone(470, 470, 0.4), 1.9)  # 1.42x higher
    assert check_window(wide, SR).paired is False
    slow = _put(_put(_noise(5.0), _tone(380, 380, 0.45), 0.5), _tone(400, 400, 0.4), 2.6)  # 2.1 s apart
    assert check_window(slow, SR).paired is False
    assert check_window(_noise(5.0), SR).paired is None


def test_unpaired_windows_are_lowered_by_the_logits_asked():
    rec = _noise(15.0)
    rec = _put(_put(rec, _tone(380, 380, 0.45), 1.0), _tone(400, 400, 0.4), 1.9)  # a pair in the window at 0 s
    rec = _put(rec, _tone(380, 380, 0.45), 6.0)  # a lone hoot in the window at 5 s
    det = _detection(np.array([0.0, 5.0, 10.0]), np.array([0.99, 0.99, 0.99]), threshold=0.9)

    def read(a: float, b: float) -> np.ndarray:
        return rec[int(a * SR):int(b * SR)]

    out, _, rejected = verify_detection(det, read, SR, floor=0.5, unpaired_logit=2.0)
    logit = np.log(0.99 / 0.01)
    assert rejected == 0
    np.testing.assert_allclose(out.scores, [0.99, 1 / (1 + np.exp(-(logit - 2.0))), 0.99], rtol=1e-5)
    assert np.allclose(verify_detection(det, read, SR, floor=0.5)[0].scores, 0.99)  # off: left as it is
    with pytest.raises(ValueError, match="description_unpaired_logit"):
        DetectionParams(description_unpaired_logit=-1.0)
