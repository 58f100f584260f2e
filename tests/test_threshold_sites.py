"""The calibrated threshold at a site it never saw: leave one calibration site out
(``generalisation.site_held_out_false_positives``, ``scripts/evaluate_threshold_sites.py``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from owlfinder.detect.engine import Detection
from owlfinder.evaluation import generalisation as G
from owlfinder.synth.calls import pink_noise

REPO = Path(__file__).resolve().parents[1]
SR = 16000


def _det(scores: list[float], file: str = "x") -> Detection:
    s = np.array(scores, dtype=np.float32)
    starts = np.arange(len(s)) * 2.5
    det = Detection(file=file, duration_s=float(starts[-1] + 5.0), sample_rate=SR, model="m", threshold=0.5,
                    window_s=5.0, hop_s=2.5, gap_s=0.7, min_duration_s=0.0, recorded_at=None, starts_s=starts,
                    ends_s=starts + 5.0, scores=s, events=[])
    return det.rethreshold(0.5)


def test_a_site_whose_sound_no_other_site_has_fires_when_held_out():
    """One owl-like sound at one site sets the threshold; held out, nothing else sets it that high."""
    dets = [_det([0.1, 0.99, 0.1, 0.1]), _det([0.1, 0.6, 0.1]), _det([0.1, 0.3, 0.2]), _det([0.1, 0.2])]
    sites = ["A", "B", "C", "C"]
    small, big = G.site_held_out_false_positives(dets, sites, [0.5, 5.0])
    assert small["margin_logit"] == 0.5 and small["false_positives"] == 1 and small["by_site"] == {"A": 1}
    hours = sum(d.duration_s for d in dets) / 3600
    assert small["hours"] == pytest.approx(hours, abs=1e-4)  # every site held out once
    assert small["fp_per_hour"] == pytest.approx(1 / hours) and small["fp_per_hour_upper95"] > 1 / hours
    # 5 logits above 0.6 is 0.9955: over A's 0.99, so holding A out no longer fires
    assert big["false_positives"] == 0 and big["by_site"] == {}
    with pytest.raises(ValueError, match="3 recordings but 2 sites"):
        G.site_held_out_false_positives(dets[:3], sites[:2], [0.5])


def test_calls_are_counted_at_their_own_sites_held_out_threshold():
    """A's owl-like 0.99 sets the threshold for B; held out, A gets B's lower one, so A's weak call passes there."""
    dets = [_det([0.1, 0.99, 0.1]), _det([0.1, 0.6, 0.1])]
    truth = [{"start_s": 2.5, "end_s": 5.0}]
    calls = [(_det([0.1, 0.9, 0.1]), "A", truth), (_det([0.1, 0.9, 0.1]), "B", truth)]
    (row,) = G.site_held_out_false_positives(dets, ["A", "B"], [0.5], calls=calls)
    # A held out: the threshold is B's 0.6 + 0.5 logit (0.71), and A's own 0.99 fires; A's call (0.9) is found.
    # B held out: A's 0.99 + 0.5 logit, over B's call (0.9): missed.
    assert row["false_positives"] == 1 and row["by_site"] == {"A": 1}
    assert row["calls"] == 2 and row["recall"] == pytest.approx(0.5)
    (none,) = G.site_held_out_false_positives(dets, ["A", "B"], [0.5])
    assert "calls" not in none and "recall" not in none
    (empty,) = G.site_held_out_false_positives(dets, ["A", "B"], [0.5], calls=[])
    assert empty["calls"] == 0 and empty["recall"] is None
    with pytest.raises(ValueError, match="calls at sites with no recordings to calibrate on: C"):
        G.site_held_out_false_positives(dets, ["A", "B"], [0.5], calls=[(calls[0][0], "C", truth)])


def _calibration_folder(root: Path, n_sites: int) -> Path:
    rng = np.random.default_rng(2)
    rows = ["path\tsource_repo\tsource_path\tcontent\tduration_s\tsample_rate\tlicense"]
    for rel in ("kitzeslab__r-ribbit/audio_files/b.wav", "kahst__BirdNET-Analyzer/example/c.wav")[:n_sites]:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, pink_noise(rng, 12 * SR) * 0.02, SR)
        rows.append(f"{rel}\tx\t{rel}\tNEG: noise\t12\t{SR}\tMIT")
    (root / "MANIFEST.tsv").write_text("\n".join(rows) + "\n")
    return root


def test_threshold_sites_script_pools_held_out_sites_and_names_the_setter(tmp_path, capsys, monkeypatch):
    from test_generalisation import save_toy_owlnet

    shared = _calibration_folder(tmp_path / "shared", 2)
    model = save_toy_owlnet(tmp_path / "model")
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    import evaluate_threshold_sites as script

    out = tmp_path / "out"
    rc = script.main(["--models", str(model), "--margins", "0", "1", "--shared", str(shared), "--out", str(out)])
    assert rc == 0
    result = json.loads((out / "threshold-sites.json").read_text())
    assert [r["margin_logit"] for r in result["pooled"]] == [0.0, 1.0]
    assert all(r["hours"] == pytest.approx(24 / 3600, abs=1e-4) for r in result["pooled"])  # both sites, once
    fps = [r["false_positives"] for r in result["pooled"]]
    assert fps[1] <= fps[0]  # more headroom never fires more
    top = result["highest_events"][0]
    assert top["recording"] in (None, "kitzeslab__r-ribbit/audio_files/b.wav", "kahst__BirdNET-Analyzer/example/c.wav")
    assert "| margin (logit) | false events |" in capsys.readouterr().out
    assert (out / "threshold-sites.md").read_text().startswith("Leave one site out (calibration sites)")

    rc = script.main(["--models", str(tmp_path / "missing"), "--shared", str(shared), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and "missing" in err and len(err.strip().splitlines()) == 1
    bad = shared / "kahst__BirdNET-Analyzer/example/c.wav"
    bad.write_bytes(b"not audio")
    rc = script.main(["--models", str(model), "--shared", str(shared), "--out", str(tmp_path / "out2")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and "c.wav" in err and len(err.strip().splitlines()) == 1
    assert (out / "threshold-sites.json").is_file()  # the earlier run's results are still there
    one = _calibration_folder(tmp_path / "one", 1)
    rc = script.main(["--models", str(model), "--shared", str(one), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "1 site(s)" in err and len(err.strip().splitlines()) == 1
    sys.modules.pop("evaluate_threshold_sites", None)


def test_both_held_out_site_groups_with_the_calls_of_families_a_model_never_trained_on(tmp_path, capsys, monkeypatch):
    from test_generalisation import _toy_shared, save_toy_owlnet

    shared = _toy_shared(tmp_path / "shared")  # one training, one calibration, one test site
    model = save_toy_owlnet(tmp_path / "model")
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    import evaluate_threshold_sites as script

    out, work = tmp_path / "out", tmp_path / "work"
    base = ["--models", str(model), "--shared", str(shared), "--out", str(out), "--work", str(work),
            "--splits", "calibration", "test"]
    rc = script.main(base)  # no record of its training sites: the test sites may have been among them
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "does not record which sites it trained on" in err
    record = {"families": ["additive", "sourcefilter", "contours", "fm"],
              "training": {"background_splits": ["train", "test"]}}
    (model / "training.json").write_text(json.dumps(record))
    rc = script.main(base)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "trained on the test sites" in err
    assert not out.exists()

    record["training"]["background_splits"] = ["train"]
    (model / "training.json").write_text(json.dumps(record))
    rc = script.main([*base, "--unseen-calls", "--margins", "0", "2"])
    assert rc == 0
    result = json.loads((out / "threshold-sites.json").read_text())
    assert result["splits"] == ["calibration", "test"]
    low, high = result["pooled"]
    assert low["hours"] == pytest.approx(30 / 3600, abs=1e-4)  # both sites, each held out once
    assert low["calls"] == high["calls"] == 2  # syrinx, the one family it never trained on: a call at each site
    assert high["recall"] <= low["recall"]
    assert sorted(p.name for p in work.iterdir() if p.is_dir()) == ["calibration_syrinx", "test_syrinx"]
    md = (out / "threshold-sites.md").read_text()
    assert md.startswith("Leave one site out (calibration + test sites)") and "| recall (calls) |" in md
    assert f"| {model} | 0, " in md or f"| {model} | 1, " in md or f"| {model} | 2, " in md
    sys.modules.pop("evaluate_threshold_sites", None)
