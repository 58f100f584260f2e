"""The detection engine with tiny SEW-D, wav2vec2 and AST models, in both label orders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

from owlfinder import audio
from owlfinder.detect.detection import Detection, DetectionParams
from owlfinder.detect.engine import detect, iter_detect, scan_windows
from owlfinder.detect.model import ModelError, find_positive_index, load_classifier

from conftest import write_tone_file
from models import save_tiny


@pytest.mark.parametrize("arch", ["sew-d", "wav2vec2", "ast"])
@pytest.mark.parametrize("order", ["owl_first", "owl_second"])
def test_scores_are_the_owl_probability_of_each_window(tmp_path, arch, order):
    folder = save_tiny(arch, order, tmp_path / "model")
    rec = write_tone_file(tmp_path / "rec.flac", 13.7, sr=44100, channels=2)
    clf = load_classifier(folder, device="cpu")
    det = detect(rec, clf, DetectionParams(hop_s=2.5, batch_size=3, second_look_logit=None,
                                           description_check_logit=None))  # the grid alone, unchecked

    # Windows cover the file: starts on the 2.5 s grid plus one final window ending at the end.
    assert det.duration_s == pytest.approx(13.7, abs=1e-3)
    np.testing.assert_allclose(det.starts_s, [0, 2.5, 5.0, 7.5, 8.7], atol=1e-3)
    assert det.ends_s[-1] == pytest.approx(13.7, abs=1e-3)

    # Each score is softmax(logits)[owl] from the plain transformers model on that window.
    model = AutoModelForAudioClassification.from_pretrained(folder).eval()
    fe = AutoFeatureExtractor.from_pretrained(folder)
    owl = model.config.label2id["owl"]
    y = audio.load(rec, 16000)
    for s, score in zip(det.starts_s, det.scores, strict=True):
        i = int(round(s * 16000))
        inputs = fe(y[i: i + 80000], sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            expected = torch.softmax(model(**inputs).logits, -1)[0, owl].item()
        assert score == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("window_range", [(0, 3), (2, 5), (3, None)])
def test_a_window_range_gives_the_whole_scans_windows(tmp_path, tiny_model_dir, window_range):
    """``scan_windows(window_range=(k0, k1))`` (the Space's ZeroGPU slices) scores exactly windows k0..k1-1
    of a whole-file scan, the final end-aligned window included when ``k1`` is ``None``."""
    rec = write_tone_file(tmp_path / "rec.wav", 16.3)
    clf = load_classifier(tiny_model_dir, device="cpu")
    params = DetectionParams(hop_s=2.5, batch_size=2, second_look_logit=None)
    whole = detect(rec, clf, params)
    batches = list(scan_windows(rec, clf, params, window_range=window_range))
    starts = np.concatenate([b[0] for b in batches])
    scores = np.concatenate([b[1] for b in batches])
    k0, k1 = window_range
    np.testing.assert_allclose(starts / 16000, whole.starts_s[k0:k1], atol=1e-9)
    np.testing.assert_allclose(scores, whole.scores[k0:k1], atol=1e-4)
    assert batches[-1][2] >= starts[-1] + clf.window_samples  # decoding reached past the last window


def test_positive_label_by_name():
    assert find_positive_index({0: "owl", 1: "not_owl"}) == 0
    assert find_positive_index({0: "not_owl", 1: "owl"}) == 1
    assert find_positive_index({0: "Background", 1: "Ninox strenua_Powerful Owl"}) == 1
    assert find_positive_index({0: "no owl", 1: "powerful_owl"}) == 1
    assert find_positive_index({0: "a", 1: "b"}, positive_label="B") == 1
    with pytest.raises(ModelError, match="cannot tell"):
        find_positive_index({0: "LABEL_0", 1: "LABEL_1"})
    with pytest.raises(ModelError, match="not one of"):
        find_positive_index({0: "owl", 1: "not_owl"}, positive_label="boobook")


def test_threshold_from_config_and_override(tmp_path, tiny_model_dir):
    clf = load_classifier(tiny_model_dir)
    assert clf.threshold == 0.5  # no calibrated threshold in this config
    folder = save_tiny("wav2vec2", "owl_first", tmp_path / "calibrated")
    cfg = (folder / "config.json").read_text().replace('"model_type"', '"owl_threshold": 0.83,\n  "model_type"')
    (folder / "config.json").write_text(cfg)
    calibrated = load_classifier(folder)
    assert calibrated.threshold == pytest.approx(0.83)
    rec = write_tone_file(tmp_path / "r.wav", 6.0)
    assert detect(rec, calibrated).threshold == pytest.approx(0.83)
    assert detect(rec, calibrated, DetectionParams(threshold=0.2)).threshold == pytest.approx(0.2)


def test_partial_results_grow_and_progress_reaches_the_end(tmp_path, tiny_model_dir):
    rec = write_tone_file(tmp_path / "20210603T200000+1000_Site_1.wav", 60.0, sr=22050)
    clf = load_classifier(tiny_model_dir)
    seen = []
    parts = list(iter_detect(rec, clf, DetectionParams(batch_size=4, threshold=0.0, second_look_logit=None),
                             progress=lambda d, t: seen.append((d, t))))
    sizes = [len(p.scores) for p in parts]
    assert sizes == sorted(sizes) and sizes[-1] == 23 and len(parts) > 3
    assert [p.status for p in parts[:-1]] == ["running"] * (len(parts) - 1)
    assert parts[-1].status == "complete"
    assert seen[-1][0] == pytest.approx(60.0, abs=0.01)
    # Threshold 0 makes the whole file one event, with a wall-clock start from the A2O name.
    (ev,) = parts[-1].events
    assert (ev.start_s, ev.end_s) == (0.0, 60.0)
    assert ev.start_time == "2021-06-03T20:00:00.000+10:00"


def test_rethreshold_and_json_roundtrip(tmp_path, tiny_model_dir):
    rec = write_tone_file(tmp_path / "r.wav", 30.0)
    det = detect(rec, load_classifier(tiny_model_dir), DetectionParams(threshold=1.0))
    assert det.events == []
    low = det.rethreshold(0.0)
    assert len(low.events) == 1 and low.threshold == 0.0
    back = Detection.from_dict(low.to_dict())
    np.testing.assert_allclose(back.scores, low.scores, atol=1e-6)
    assert back.events == low.events and back.params_key() == low.params_key()


def test_truncated_file_yields_partial_then_error(tmp_path, tiny_model_dir):
    good = write_tone_file(tmp_path / "g.flac", 120.0, sr=44100)
    bad = tmp_path / "cut.flac"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    clf = load_classifier(tiny_model_dir)
    last = None
    try:
        for last in iter_detect(bad, clf, DetectionParams(block_s=5.0)):
            pass
    except audio.AudioError as err:
        assert "cut.flac" in str(err)
        assert last is not None and last.status == "partial" and last.error
    else:  # libsndfile stopped quietly at the cut: the result covers only real audio
        assert last.status == "complete" and last.duration_s < 120.0


def test_duration_limit(tmp_path, tiny_model_dir):
    rec = write_tone_file(tmp_path / "long.wav", 20.0)
    with pytest.raises(audio.AudioError, match="limit"):
        detect(rec, load_classifier(tiny_model_dir), DetectionParams(max_duration_s=10.0))


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="cannot load model"):
        load_classifier(tmp_path / "nothing-here")


def test_second_look_adds_the_half_hop_neighbours_of_candidate_windows(tmp_path, tiny_model_dir):
    """Windows near or above the threshold get their half-hop neighbours scored too: exactly the windows a scan
    at half the hop has there, merged in start order; far below the threshold nothing is added."""
    rec = write_tone_file(tmp_path / "rec.wav", 21.0)
    clf = load_classifier(tiny_model_dir, device="cpu")
    grid = detect(rec, clf, DetectionParams(hop_s=2.5, threshold=0.5, second_look_logit=None))
    fine = detect(rec, clf, DetectionParams(hop_s=1.25, threshold=0.5, second_look_logit=None))
    # a threshold between the grid's scores and no margin below it: some windows are candidates, some not
    thr = float(np.median(grid.scores[:-1]))
    looked = detect(rec, clf, DetectionParams(hop_s=2.5, threshold=thr, second_look_logit=0.0))
    assert np.all(np.diff(looked.starts_s) > 0)
    on_grid = np.isin(np.round(looked.starts_s, 6), np.round(grid.starts_s, 6))
    np.testing.assert_allclose(looked.scores[on_grid], grid.scores, atol=1e-6)
    extra = np.round(looked.starts_s[~on_grid], 6)
    assert len(extra)
    cand = grid.starts_s[:-1][grid.scores[:-1] >= thr]
    assert 0 < len(cand) < len(grid.scores) - 1
    want = {round(s + d, 6) for s in cand for d in (-1.25, 1.25)} & set(np.round(fine.starts_s, 6))
    assert set(extra) == want - set(np.round(grid.starts_s, 6))
    fine_by_start = dict(zip(np.round(fine.starts_s, 6), fine.scores, strict=True))
    np.testing.assert_allclose(looked.scores[~on_grid], [fine_by_start[s] for s in extra], atol=1e-6)
    # the events come from every window, the second-look ones included
    assert looked.rethreshold(0.0).events[0].n_windows == len(looked.scores)

    unlikely = detect(rec, clf, DetectionParams(hop_s=2.5, threshold=1.0))
    assert len(unlikely.scores) == len(grid.scores)
    with pytest.raises(ValueError, match="second_look_logit"):
        DetectionParams(second_look_logit=-1.0)
