"""scripts/combine_models.py: saved OwlNet models joined into an ensemble folder, and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def script(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    import combine_models

    return combine_models


def _two_models(tmp_path: Path) -> list[Path]:
    from test_generalisation import save_toy_owlnet

    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        out.append(save_toy_owlnet(tmp_path / f"m{seed}"))
    return out


def test_an_ensemble_folder_averages_the_models_logits_and_names_them(script, tmp_path):
    from owlfinder.owlnet import OwlNetForAudioClassification

    a, b = _two_models(tmp_path)
    cfg = json.loads((a / "config.json").read_text())
    (a / "config.json").write_text(json.dumps({**cfg, "owl_threshold": 0.97, "owl_calibration": {"hours": 1.0}}))
    for m, splits in ((a, ["train"]), (b, ["train", "test"])):  # the sites each trained on
        (m / "training.json").write_text(json.dumps({"families": ["fm"], "training": {"background_splits": splits}}))
    out = tmp_path / "ens"
    assert script.main([str(a), str(b), "--how", "ensemble", "--out", str(out)]) == 0
    joined = OwlNetForAudioClassification.from_pretrained(out).eval()
    ma, mb = (OwlNetForAudioClassification.from_pretrained(m).eval() for m in (a, b))
    x = torch.randn(2, joined.config.n_bins, 250)
    with torch.no_grad():
        want = (ma(input_features=x).logits + mb(input_features=x).logits) / 2
        assert torch.allclose(joined(input_features=x).logits, want, atol=1e-5)
    assert joined.config.n_members == 2 and joined.config.owl_window_s == 5.0
    saved = json.loads((out / "config.json").read_text())
    assert "owl_threshold" not in saved and "owl_calibration" not in saved  # set for the first model alone
    assert (out / "preprocessor_config.json").is_file()
    record = json.loads((out / "training.json").read_text())
    assert record["training"]["combined"] == "ensemble"
    assert [s["model"] for s in record["training"]["from"]] == [str(a), str(b)]
    # the sites any member trained on, so that scripts/evaluate_threshold_sites.py never holds them out for it
    assert record["training"]["background_splits"] == ["test", "train"] and record["families"] == ["fm"]
    (b / "training.json").unlink()  # a member whose sites are not recorded: neither are the joined model's
    out2 = tmp_path / "ens2"
    assert script.main([str(a), str(b), "--how", "ensemble", "--out", str(out2)]) == 0
    assert "background_splits" not in json.loads((out2 / "training.json").read_text())["training"]
    # members that are fold folders of evaluate_generalisation.py: their record is the lofo.json beside them
    folds = tmp_path / "lofo"
    folds.mkdir()
    for m, name in ((a, "fold-fm"), (b, "fold-fm2")):
        (m / "training.json").unlink(missing_ok=True)
        m.rename(folds / name)
    fold = {"train_families": ["additive", "contours"], "training": {"background_splits": ["train"]}}
    (folds / "lofo.json").write_text(json.dumps({"folds": {"fm": fold, "fm2": fold}}))
    out3 = tmp_path / "ens3"
    assert script.main([str(folds / "fold-fm"), str(folds / "fold-fm2"), "--how", "ensemble", "--out", str(out3)]) == 0
    record = json.loads((out3 / "training.json").read_text())
    assert record["families"] == ["additive", "contours"] and record["training"]["background_splits"] == ["train"]


def test_combine_refuses_bad_input_in_one_line_and_keeps_what_is_there(script, tmp_path, capsys):
    a, b = _two_models(tmp_path)
    before = (a / "model.safetensors").read_bytes()
    capsys.readouterr()  # saving the models printed progress
    cases = [([str(a)], "two or more"),
             ([str(a), str(b), "--out", str(a)], "already holds a model"),
             ([str(a), str(tmp_path / "nothing")], "nothing: not a model folder"),
             ([str(a), str(b)], "needs --families")]
    for extra, says in cases:
        how = "soup" if "needs" in says else "ensemble"
        argv = extra + ([] if "--out" in extra else ["--out", str(tmp_path / "o")])
        assert script.main(argv + ["--how", how]) == 2
        err = capsys.readouterr().err.strip()
        assert says in err and "\n" not in err
    assert (a / "model.safetensors").read_bytes() == before
    assert not (tmp_path / "o").exists()
