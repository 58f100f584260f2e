"""What a model's score follows: parameter flattening, the cue ranking, the logit along one parameter, and
``scripts/explain_scores.py`` end to end on a toy data folder with a tiny saved OwlNet."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from owlfinder.evaluation.cues import binned, cue_table, flatten_params, logit, score_family_clips
from owlfinder.synth.calls import pink_noise
from owlfinder.synth.families import FAMILIES

SR = 16000
REPO = Path(__file__).resolve().parents[1]


def test_parameters_flatten_to_named_numbers():
    p = {"f0_hz": 400.0, "sex": "male", "seed": 7, "flat": True, "voice": {"glide_depth": 0.1, "seed": 3},
         "notes": [{"dur_s": 0.4}, {"dur_s": 0.5}], "ratios": [1.0, 1.05], "lowpass": None}
    assert flatten_params(p) == {"f0_hz": 400.0, "flat": 1.0, "voice.glide_depth": 0.1, "n.notes": 2.0,
                                 "notes.0.dur_s": 0.4, "notes.1.dur_s": 0.5, "n.ratios": 2.0, "ratios.0": 1.0,
                                 "ratios.1": 1.05}


def _metas(rng: np.random.Generator, n: int) -> tuple[list[dict], np.ndarray]:
    glide = np.where(rng.random(n) < 0.3, 0.0, rng.uniform(0.02, 0.25, n))
    metas = [{"params": {"voice": {"glide_depth": float(g)}, "f0_hz": float(rng.uniform(350, 550)), "level": 1.0},
              "propagation": {"air": {"distance_m": float(rng.uniform(5, 100))}}} for g in glide]
    return metas, 4.0 + 30.0 * glide + rng.normal(0, 0.5, n)


def test_the_cue_a_score_follows_ranks_first_and_constants_are_left_out():
    metas, logits = _metas(np.random.default_rng(0), 200)
    cues = cue_table(metas, logits)
    assert cues[0]["parameter"] == "params.voice.glide_depth" and cues[0]["spearman"] > 0.8
    names = {c["parameter"] for c in cues}
    assert "params.level" not in names  # the same for every call: nothing to follow
    assert {"params.f0_hz", "propagation.air.distance_m"} <= names
    assert all(abs(c["spearman"]) < 0.3 for c in cues[1:])  # the others are noise
    assert cue_table(metas[:20], logits[:20]) == []  # too few calls to rank


def test_the_logit_along_a_parameter_groups_a_shared_value_apart():
    metas, logits = _metas(np.random.default_rng(1), 200)
    bins = binned(metas, logits, "params.voice.glide_depth", threshold_logit=8.0)
    assert bins[0]["from"] == bins[0]["to"] == 0.0  # no glide: one group of its own
    assert sum(b["calls"] for b in bins) == 200
    medians = [b["median_logit"] for b in bins]
    assert medians == sorted(medians) and bins[0]["above_threshold"] == 0.0 and bins[-1]["above_threshold"] > 0.9
    with pytest.raises(KeyError, match="nope"):
        binned(metas, logits, "nope")


def test_family_clips_are_scored_in_batches_with_their_parameters():
    rng = np.random.default_rng(2)
    bgs = [pink_noise(rng, 8 * SR) * 0.02]
    seen = []

    def score(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.shape)
        return np.full(len(batch), 0.9)

    metas, logits = score_family_clips(score, FAMILIES["additive"], bgs, SR, 5, window_s=5.0, snr_db=6.0, batch=2)
    assert seen == [(2, 5 * SR), (2, 5 * SR), (1, 5 * SR)]
    assert np.allclose(logits, logit(0.9)) and len(metas) == 5
    assert all(m["snr_db"] == 6.0 and "params" in m for m in metas)
    again, _ = score_family_clips(score, FAMILIES["additive"], bgs, SR, 5, snr_db=6.0, batch=2)
    assert [m["params"] for m in again] == [m["params"] for m in metas]  # the seed fixes the calls


def test_explain_scores_script_ranks_cues_of_a_saved_model(tmp_path, capsys, monkeypatch):
    from test_generalisation import _toy_shared, save_toy_owlnet

    shared = _toy_shared(tmp_path / "shared")
    model = save_toy_owlnet(tmp_path / "model")
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    import explain_scores

    out = tmp_path / "out"
    rc = explain_scores.main(["--model", str(model), "--family", "fm", "--calls", "32", "--shared", str(shared),
                              "--out", str(out)])
    assert rc == 0
    result = json.loads((out / "cues-fm.json").read_text())
    assert result["calls"] == 32 and result["cues"] and result["by"] == result["cues"][0]["parameter"]
    assert 30 <= sum(b["calls"] for b in result["bins"]) <= 32  # the calls that have the parameter (most)
    assert "| parameter | Spearman with the logit | calls |" in capsys.readouterr().out
    rc = explain_scores.main(["--model", str(model), "--family", "fm", "--calls", "32", "--shared", str(shared),
                              "--out", str(out), "--by", "params.nope"])
    assert rc == 2 and "params.nope" in capsys.readouterr().err
    rc = explain_scores.main(["--model", str(tmp_path / "missing"), "--family", "fm", "--shared", str(shared)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and "missing" in err and len(err.strip().splitlines()) == 1
    sys.modules.pop("explain_scores", None)
