"""Per-site thresholds: calibrated from a site's verified clips, stored in config.json, applied by detection
only to files whose name names that site (A2O ``..._Site-Name_12345.flac``)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from owlfinder.detect import batch
from owlfinder.detect.engine import DetectionParams
from owlfinder.detect.model import ModelError, load_classifier
from owlfinder.synth.nights import a2o_filename
from owlfinder.timestamps import parse_site
from owlfinder.train.calibration import site_thresholds, write_site_thresholds

from conftest import REPO_ROOT, write_tone_file


def _detect_script():
    spec = importlib.util.spec_from_file_location("owl_script_detect_sites", REPO_ROOT / "scripts" / "detect.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name, site", [
    ("20210603T080000+1000_Site-Name_12345.flac", "Site-Name"),
    ("/surveys/x/20210603T200000Z_Tarcutta-Dry-A_191733.flac", "Tarcutta-Dry-A"),
    ("20210603T080000+1000_My_Site_1.flac", "My_Site"),
    ("SITE-7_20240101_203000.wav", "SITE-7"),
    ("20240101_203000.WAV", None),
    ("night.wav", None),
])
def test_parse_site(name, site):
    assert parse_site(name) == site


def test_site_thresholds_reach_the_target_per_site_and_skip_thin_sites():
    rng = np.random.default_rng(0)
    # Site A: owls score 0.6-0.9, negatives up to 0.55 -> the lowest threshold with precision 1 is the lowest owl.
    ya = np.r_[np.ones(6), np.zeros(10)]
    sa = np.r_[rng.uniform(0.6, 0.9, 6), rng.uniform(0.0, 0.55, 10)]
    # Site B: a loud negative at 0.95 above every owl: precision 0.95 cannot be reached.
    yb = np.r_[np.ones(4), np.zeros(5)]
    sb = np.r_[[0.7, 0.8, 0.85, 0.9], [0.95, 0.1, 0.2, 0.3, 0.4]]
    # Site C: too few owls.
    yc, sc = np.r_[1, 0, 0, 0], np.r_[0.9, 0.1, 0.2, 0.3]
    sites = ["A"] * 16 + ["B"] * 9 + ["C"] * 4 + [None]
    entries, notes = site_thresholds(sites, np.r_[ya, yb, yc, 1], np.r_[sa, sb, sc, 0.99], 0.95)
    assert list(entries) == ["A"]
    assert entries["A"]["threshold"] == pytest.approx(sa[:6].min())
    assert entries["A"]["precision"] == 1.0 and entries["A"]["n_pos"] == 6 and entries["A"]["n_neg"] == 10
    assert "A" in entries["A"]["message"] and "verified clips" in entries["A"]["message"]
    assert any(n.startswith("B:") and "unreachable" in n for n in notes)
    assert any(n.startswith("C:") and "need 3" in n for n in notes)


@pytest.fixture(scope="module")
def site_model(tiny_model_dir, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("site-model") / "m"
    shutil.copytree(tiny_model_dir, d)
    return d


def test_a_site_threshold_changes_detection_only_on_that_sites_files(site_model, tmp_path, capsys):
    audio_dir = tmp_path / "in"
    audio_dir.mkdir()
    here = audio_dir / a2o_filename("20210603T200000+1000", "Owl-Gully", 1, ".wav")
    there = audio_dir / a2o_filename("20210603T200000+1000", "Far-Ridge", 1, ".wav")
    plain = audio_dir / "night.wav"
    write_tone_file(here, 40.0, freq=430.0, seed=3)
    for p in (there, plain):
        shutil.copyfile(here, p)

    clf = load_classifier(site_model, device="cpu")
    batch.detect_files([batch.InputFile(here, audio_dir)], tmp_path / "probe", clf, DetectionParams(threshold=1.0))
    doc = json.loads((tmp_path / "probe" / f"{here.stem}.json").read_text())
    scores = np.sort([w["score"] for w in doc["windows"]])
    assert scores[-1] > scores[0]
    # A site threshold between the window scores, well below the model's own (0.5 for the tiny model when
    # its scores all sit above 0.5, or the other way round): some windows cross it only at that site.
    site_thr = float((scores[len(scores) // 3] + scores[len(scores) // 3 + 1]) / 2)
    model_thr = float(scores[-1]) + 1e-3 if site_thr < 0.5 else float(scores[0]) - 1e-3
    cfg = json.loads((site_model / "config.json").read_text())
    cfg["owl_threshold"] = model_thr
    (site_model / "config.json").write_text(json.dumps(cfg))
    write_site_thresholds(site_model, {"Owl-Gully": {"threshold": site_thr, "message": "per-site threshold for "
                                                     "Owl-Gully from 9 verified clips"}})

    clf = load_classifier(site_model, device="cpu")
    assert clf.threshold_for(here.name) == (pytest.approx(site_thr), "per-site threshold for Owl-Gully from 9 "
                                                                     "verified clips")
    thr, why = clf.threshold_for(there.name)
    assert thr == pytest.approx(model_thr) and "no per-site threshold for Far-Ridge" in why
    assert clf.threshold_for(plain.name)[0] == pytest.approx(model_thr)

    rc = _detect_script().main([str(audio_dir), "--out", str(tmp_path / "out"), "--model", str(site_model),
                                "--device", "cpu", "--quiet"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "1 per-site: Owl-Gully" in err
    assert f"{here.name}: threshold {site_thr:.3f}, per-site threshold for Owl-Gully" in err
    assert there.name + ": threshold" not in err and "night.wav: threshold" not in err
    docs = {p: json.loads((tmp_path / "out" / f"{p.stem}.json").read_text()) for p in (here, there, plain)}
    assert docs[here]["threshold"] == pytest.approx(site_thr, abs=1e-6)
    assert docs[there]["threshold"] == pytest.approx(model_thr, abs=1e-6) == docs[plain]["threshold"]
    assert len(docs[here]["events"]) != len(docs[there]["events"])  # the same audio, other decisions
    spans = {p: [(e["start_s"], e["end_s"]) for e in d["events"]] for p, d in docs.items()}
    assert spans[there] == spans[plain]

    # A given --threshold wins over every per-site one.
    res = batch.detect_files([batch.InputFile(here, audio_dir)], tmp_path / "given", clf,
                             DetectionParams(threshold=0.42))
    assert res[0].threshold == pytest.approx(0.42) and res[0].threshold_note == "given"


def test_bad_site_threshold_entry_is_one_line_error(site_model, tmp_path):
    d = tmp_path / "bad"
    shutil.copytree(site_model, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["owl_site_thresholds"] = {"X": {"threshold": 7}}
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match=r"owl_site_thresholds\['X'\] needs a threshold in 0-1"):
        load_classifier(d, device="cpu")
    write_site_thresholds(d, {})
    assert "owl_site_thresholds" not in json.loads((d / "config.json").read_text())


def test_the_space_uses_and_shows_the_site_threshold(site_model, tmp_path):
    from owlfinder.ui.config import AppConfig
    from owlfinder.ui.detect_service import DetectService

    write_site_thresholds(site_model, {"Owl-Gully": {"threshold": 0.123, "message": "per-site threshold for "
                                                     "Owl-Gully from 9 verified clips"}})
    clf = load_classifier(site_model, device="cpu")
    svc = DetectService(AppConfig(tmp_dir=tmp_path / "scratch", data_dir=tmp_path / "d", update_every_s=0.0),
                        classifier=clf)
    assert svc.model_info()["site_thresholds"] == {"Owl-Gully": 0.123}
    src = write_tone_file(tmp_path / "tone.wav", 12.0, seed=4)
    here = a2o_filename("20210603T200000+1000", "Owl-Gully", 1, ".wav")
    there = a2o_filename("20210603T200000+1000", "Far-Ridge", 1, ".wav")

    def upload(name: str) -> Path:
        p = tmp_path / "up" / name
        p.parent.mkdir(exist_ok=True)
        shutil.copyfile(src, p)
        return p

    doc = svc.detect_json(upload(here), here)
    assert doc["threshold"] == pytest.approx(0.123) and "per-site threshold for Owl-Gully" in doc["threshold_note"]
    doc = svc.detect_json(upload(there), there)
    assert doc["threshold"] == pytest.approx(clf.threshold) and "no per-site threshold for Far-Ridge" in \
        doc["threshold_note"]
    doc = svc.detect_json(upload(here), here, threshold=0.7)
    assert doc["threshold"] == pytest.approx(0.7) and doc["threshold_note"] == "set by hand"

    # The Detect tab: the slider left at the model's value lets the site choose; the summary says which and why.
    *_, (session, view) = svc.run(None, upload(here), round(clf.threshold, 3), display_name=here)
    assert session.detection.threshold == pytest.approx(0.123)
    assert "Threshold 0.123: per-site threshold for Owl-Gully" in view.summary
    session, view = svc.rethreshold(session, 0.3)
    assert "Threshold 0.300: set by hand" in view.summary
    session.close()
