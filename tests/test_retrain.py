"""The assisted loop on synthetic data: the Space detects, the labelling API takes verdicts, retrain.py
measures, fine-tunes, compares and promotes (or refuses), and the promoted model loads in the Space.
Plus the parts: time-block splits, several sources, reason weights, the promotion rule, the Hub push."""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from owlfinder.detect.model import BUNDLED_MODEL
from owlfinder.train.clipsets import ClipSet, DataError
from owlfinder.train.retrain import Measure, decide, push_model, recall_at_precision
from owlfinder.train.sources import (
    Source,
    apply_reason_weights,
    combine_sources,
    conform,
    parse_reason_weights,
)
from owlfinder.train.splits import split_source, time_block_split

from conftest import REPO_ROOT

SITE = "Owl-Gully"
TOKEN = "hf_loopSecretToken123456"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"owl_script_{name}_loop", REPO_ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------------------------------------------ parts


def test_time_blocks_keep_neighbours_on_one_side():
    rng = np.random.default_rng(0)
    starts = np.sort(rng.uniform(0, 1200, 80))
    labels = rng.integers(0, 2, 80)
    sources = ["night.flac"] * 80
    sp = time_block_split(sources, starts, labels, fraction=0.3, block_s=120, gap_s=30, clip_s=5, seed=1)
    assert sp.rule == "time-block" and len(sp.held) >= 0.25 * 80
    assert not set(sp.train) & set(sp.held) and not set(sp.dropped) & set(sp.train)
    assert set(sp.train) | set(sp.held) | set(sp.dropped) == set(range(80))
    # Every training clip is at least gap + clip length away from every held-out clip.
    gaps = np.abs(starts[sp.train][:, None] - starts[sp.held][None, :])
    assert gaps.min() >= 35 - 1e-9
    assert set(labels[sp.held]) == {0, 1} and "time blocks" in sp.how and "dropped" in sp.how
    # Held-out clips come in whole blocks: any clip in a held-out block is held out.
    held_blocks = {int(t // 120) for t in starts[sp.held]}
    assert all(int(t // 120) not in held_blocks for t in starts[sp.train])
    with pytest.raises(DataError, match="one 120 s block"):
        time_block_split(["a"] * 4, [0, 5, 10, 15], [0, 1, 0, 1], block_s=120)
    with pytest.raises(DataError, match="no start time"):
        time_block_split(["a", "a"], [0, None], [0, 1])


def _clips(n, groups, starts=None, labels=None, reasons=None, names=None):
    labels = np.asarray(labels if labels is not None else [i % 2 for i in range(n)])
    return ClipSet(np.zeros((n, 8), np.int16), labels, list(groups), list(reasons or [None] * n),
                   [f"c{i}" for i in range(n)], list(names or ["owl", "not_owl"]), 16000,
                   starts if starts is not None else [float(i * 10) for i in range(n)], list(groups))


def test_split_source_falls_back_to_time_blocks_and_says_so():
    one = _clips(40, ["rec.flac"] * 40)
    sp = split_source(one, fraction=0.25, block_s=60, gap_s=10, name="round")
    assert sp.rule == "time-block" and sp.how.startswith("round: only 1 recording group")
    many = _clips(40, [f"g{i % 8}" for i in range(40)])
    assert split_source(many, fraction=0.25).rule == "group"


def test_sources_conform_keep_their_groups_and_their_own_splits():
    flipped = conform(_clips(4, ["a"] * 4, labels=[0, 1, 1, 0], names=["not_owl", "owl"]), "x")
    assert flipped.label_names == ["owl", "not_owl"] and flipped.labels.tolist() == [1, 0, 0, 1]
    with pytest.raises(DataError, match="not \\['owl', 'not_owl'\\]"):
        conform(_clips(2, ["a"] * 2, names=["bird", "noise"]), "x")
    base = Source("base", "me/base", {"train": _clips(20, [f"base/s{i % 5}" for i in range(20)]),
                                      "validation": _clips(6, [f"base/v{i % 2}" for i in range(6)])})
    rnd = Source("dataset", "owl_data/dataset", {"train": _clips(30, ["dataset/night.flac"] * 30)})
    train, val, how, tests = combine_sources([base, rnd], validation_fraction=0.3, block_s=60, gap_s=10)
    assert "base: the dataset's own 'train' and 'validation' splits" in how
    assert "dataset: only 1 recording group" in how and "time blocks" in how
    assert len(val) > 6 and not tests
    assert {g.split("/")[0] for g in train.groups} == {"base", "dataset"}


def test_reason_weights_make_hard_negatives_weigh_more():
    w = parse_reason_weights("boobook=3", 2.0)
    assert w["boobook"] == 3.0 and w["koala"] == 2.0
    for bad in ("owl=2", "koala", "koala=x", "koala=-1"):
        with pytest.raises(ValueError, match="reason weight"):
            parse_reason_weights(bad)
    cs = _clips(4, ["a"] * 4, labels=[1, 1, 0, 1], reasons=["boobook", "koala", "boobook", None])
    assert apply_reason_weights(cs, w) == {"boobook": 1, "koala": 1}
    assert cs.weights.tolist() == [3.0, 2.0, 1.0, 1.0]  # an owl clip keeps weight 1 whatever its reason

    from owlfinder.train.trainer import OwlTrainer

    class Out(dict):
        pass

    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 0])
    sw = torch.tensor([1.0, 3.0, 1.0])
    trainer = OwlTrainer.__new__(OwlTrainer)
    trainer.balance, trainer.class_weights = "none", None
    loss = OwlTrainer.compute_loss(trainer, lambda **kw: Out(logits=logits),
                                   {"input_features": None, "labels": labels, "sample_weight": sw})
    per = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    assert float(loss) == pytest.approx(float((per * sw).sum() / sw.sum()))


def _m(rp, ap, n_pos=5):
    return Measure(n_pos, 5, 1.0, rp, 0.5, rp, ap, 0, 0, 0)


def test_promotion_rule():
    assert recall_at_precision([1, 1, 0, 1], [0.9, 0.8, 0.7, 0.6], 0.95) == pytest.approx(2 / 3)
    assert decide({"round": (_m(0.5, 0.8), _m(0.6, 0.7))}, 0.95).promote  # higher recall at the target
    assert decide({"round": (_m(0.5, 0.8), _m(0.5, 0.8))}, 0.95).promote  # as good
    assert not decide({"round": (_m(0.5, 0.8), _m(0.5, 0.79))}, 0.95).promote  # tie, lower AP
    assert not decide({"round": (_m(0.5, 0.8), _m(0.6, 0.9)), "base": (_m(0.7, 0.9), _m(0.6, 0.95))}, 0.95).promote
    assert not decide({"round": (_m(0.5, 0.8), _m(0.55, 0.9))}, 0.95, min_gain=0.1, primary="round").promote
    d = decide({"round": (_m(0.0, 0.0, n_pos=0), _m(0.0, 0.0, n_pos=0))}, 0.95)
    assert not d.promote and "not compared" in d.reasons[0] and "refused" in d.reasons[1]


class FakeHfApi:
    """Records what a push would send to the Hub; ``token`` is what the constructor was given."""

    instances: list = []

    def __init__(self, token=None):
        self.token, self.calls = token, []
        FakeHfApi.instances.append(self)

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))

    def upload_folder(self, *, folder_path, repo_id, **kw):
        files = sorted(p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file())
        self.calls.append(("upload_folder", repo_id, files, kw))

        class Info:
            oid = "0123456789abcdef0123456789abcdef01234567"
        return Info()


def test_push_takes_the_token_from_the_environment(tmp_path, monkeypatch):
    import huggingface_hub

    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    FakeHfApi.instances.clear()
    rev = push_model(tmp_path, "me/owl")
    api = FakeHfApi.instances[-1]
    assert rev.startswith("0123") and api.token == TOKEN
    assert api.calls[0][:2] == ("create_repo", "me/owl") and api.calls[1][2] == ["config.json"]


# ------------------------------------------------------------------------------------------- the loop


def _current_model(folder: Path) -> Path:
    """The starter with its classification head re-drawn at random: a starter-like model that flags the
    wrong clips, so one labelling round has something to fix."""
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    m = AutoModelForAudioClassification.from_pretrained(BUNDLED_MODEL)
    torch.manual_seed(0)
    for layer in m.modules():  # the classification head(s): OwlNet's per member, Whisper's projector too
        if isinstance(layer, torch.nn.Linear):
            layer.reset_parameters()
    m.config.owl_threshold = 0.5
    m.save_pretrained(folder)
    AutoFeatureExtractor.from_pretrained(BUNDLED_MODEL).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    if not (BUNDLED_MODEL / "config.json").exists():
        pytest.skip("no bundled starter model")
    from owlfinder.detect.model import load_classifier
    from owlfinder.labelling.access import LabelGate
    from owlfinder.labelling.queue import LabelQueue
    from owlfinder.synth.calls import make_clips
    from owlfinder.synth.nights import a2o_filename, make_night
    from owlfinder.ui.config import AppConfig
    from owlfinder.ui.detect_service import DetectService
    from owlfinder.ui.label_service import Caller, LabelService

    w = tmp_path_factory.mktemp("loop")
    make_clips(w / "base", 60, None, seed=1, progress=False, snr_db_range=(3, 20))
    current = _current_model(w / "current")
    night = w / "nights" / a2o_filename("20210603T200000+1000", SITE, 5)
    truth = make_night(night, 480, sr=16000, channels=1, backgrounds=None, seed=5, calls_per_hour=300,
                       confusers_per_hour=150, snr_db_range=(6, 15))

    # The Space detects; every run feeds the labelling queue.
    data = w / "owl_data"
    queue = LabelQueue(data)
    cfg = AppConfig(tmp_dir=w / "scratch", data_dir=data, update_every_s=0.0, n_uncertain=40)
    svc = DetectService(cfg, queue, classifier=load_classifier(current, device="cpu"))
    upload = w / "upload" / night.name
    upload.parent.mkdir()
    shutil.copyfile(night, upload)
    svc.detect_json(upload, night.name)

    # A labeller gives every queued clip a verdict through the labelling API (/next, /label), from the
    # night's ground truth, with reasons for the confusers.
    api = LabelService(queue, LabelGate())
    caller = Caller()
    n = 0
    while (clip := api.api_next("ann", caller)["clip"]) is not None:
        kinds = {e["kind"] for e in truth.events if e["start_s"] < clip["end_s"] and e["end_s"] > clip["start_s"]}
        if "owl" in kinds:
            verdict, reason = "owl", ""
        elif kinds:
            verdict, reason = "not_owl", "boobook" if "boobook" in kinds else "other owl"
        else:
            verdict, reason = "not_owl", "" if n % 3 == 1 else "frog/insect"  # a reason is optional
        assert api.api_label(clip["clip_id"], verdict, reason, "ann", caller)["stored"]
        n += 1
    queue.close()
    return {"w": w, "current": current, "verdicts": data / "dataset", "n": n, "night": night, "truth": truth}


ROUND_OPTS = ["--per_device_train_batch_size", "16", "--learning_rate", "5e-3", "--disable_tqdm", "True",
              "--seed", "0", "--no_augment", "--block_s", "60", "--gap_s", "10"]


@pytest.fixture(scope="module")
def promoted(loop, tmp_path_factory):
    import huggingface_hub

    out = loop["w"] / "round-1"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_TOKEN", TOKEN)
        mp.setattr(huggingface_hub, "HfApi", FakeHfApi)
        FakeHfApi.instances.clear()
        rc = _script("retrain").main(["--model", str(loop["current"]), "--verdicts", str(loop["verdicts"]),
                                      "--base", str(loop["w"] / "base"), "--output_dir", str(out),
                                      "--num_train_epochs", "5", "--push_to", "me/owl-detector", *ROUND_OPTS])
    assert rc == 0
    return out, json.loads((out / "report.json").read_text()), list(FakeHfApi.instances)


def test_loop_promotes_a_better_model_and_the_space_loads_it(loop, promoted, tmp_path, capsys, caplog):
    from owlfinder.synth.nights import a2o_filename, make_night
    from owlfinder.ui.config import AppConfig
    from owlfinder.ui.detect_service import DetectService

    out, report, apis = promoted
    # Measured first: the current model on every new verdict, overall and at the user's site.
    assert report["round"]["n_clips"] == loop["n"] >= 40
    assert report["before"]["n_pos"] + report["before"]["n_neg"] == loop["n"]
    assert SITE in report["before"]["by_site"]
    assert "time blocks" in report["round"]["split"]
    assert report["round"]["hard_negatives"].get("frog/insect", 0) > 0
    # Compared on held-out clips and base validation; promoted; pushed once with the env token.
    assert set(report["compared"]) == {"round held-out", "base validation"}
    assert report["promoted"], report["reasons"]
    held = report["compared"]["round held-out"]
    assert held["candidate"]["recall_at_target"] >= held["current"]["recall_at_target"]
    assert (out / "model" / "config.json").is_file() and not (out / "candidate").exists()
    assert not list((out / "model").glob("checkpoint-*"))
    assert report["pushed_revision"] and apis[-1].token == TOKEN
    assert apis[-1].calls[1][1] == "me/owl-detector" and "README.md" in apis[-1].calls[1][2]
    card = (out / "model" / "README.md").read_text()
    assert "This labelling round: before and after" in card and "round held-out" in card
    assert "all new verdicts" in card and f"site {SITE}" in card
    assert "verdicts given by people" in card and "learned from are synthetic" not in card
    for text in (card, (out / "report.json").read_text(), (out / "report.md").read_text(),
                 (out / "model" / "config.json").read_text(), capsys.readouterr().out, caplog.text):
        assert TOKEN not in text

    # The promoted model loads in the Space (from the config, as OWL_MODEL would give it) and detects.
    night2 = tmp_path / a2o_filename("20210604T200000+1000", SITE, 6)
    make_night(night2, 60, sr=16000, channels=1, backgrounds=None, seed=6, calls_per_hour=120)
    svc = DetectService(AppConfig(model=str(out / "model"), tmp_dir=tmp_path / "scratch", data_dir=tmp_path / "d",
                                  device="cpu"))
    upload = tmp_path / "up" / night2.name
    upload.parent.mkdir()
    shutil.copyfile(night2, upload)
    doc = svc.detect_json(upload, night2.name)
    site = report["site_thresholds"].get(SITE)
    expected = site["threshold"] if site else svc.clf.threshold
    assert doc["threshold"] == pytest.approx(expected, abs=1e-6) and len(doc["windows"]) > 0
    assert (f"per-site threshold for {SITE}" if site else "the model's calibrated threshold") in doc["threshold_note"]
    assert svc.clf.name == str(out / "model")


def test_a_worse_candidate_is_refused(loop, promoted, capsys):
    out, _, _ = promoted
    out2 = loop["w"] / "round-refused"
    rc = _script("retrain").main(["--model", str(out / "model"), "--verdicts", str(loop["verdicts"]),
                                  "--base", str(loop["w"] / "base"), "--candidate", str(loop["current"]),
                                  "--output_dir", str(out2), *ROUND_OPTS])
    assert rc == 0
    report = json.loads((out2 / "report.json").read_text())
    assert not report["promoted"] and not (out2 / "model").exists() and (out2 / "candidate").is_dir()
    assert "not promoted" in capsys.readouterr().out
    assert "Decision: **not promoted**" in (out2 / "candidate" / "README.md").read_text()


def test_the_spaces_dataset_folder_alone(loop, caplog):
    # retrain.py with the verdicts alone, and train.py on the Space's folder (one recording): time blocks.
    caplog.set_level(logging.INFO)
    out = loop["w"] / "round-alone"
    rc = _script("retrain").main(["--model", str(loop["current"]), "--verdicts", str(loop["verdicts"]),
                                  "--output_dir", str(out), "--max_steps", "2", *ROUND_OPTS])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert list(report["compared"]) == ["round held-out"] and report["base"] == []
    assert "before and after" in (out / ("model" if report["promoted"] else "candidate") / "README.md").read_text()

    rc = _script("train").main(["--from_config", "owl-whisper-micro", "--dataset", str(loop["verdicts"]),
                                "--output_dir", str(loop["w"] / "train-alone"), "--max_steps", "1",
                                "--block_s", "60", "--gap_s", "10", "--disable_tqdm", "True"])
    assert rc == 0
    assert "split by time blocks" in (loop["w"] / "train-alone" / "README.md").read_text()
    # train.py with the base dataset beside the verdicts: each keeps its own groups and split rule.
    rc = _script("train").main(["--from_config", "owl-whisper-micro", "--dataset", str(loop["verdicts"]),
                                str(loop["w"] / "base"), "--output_dir", str(loop["w"] / "train-both"),
                                "--max_steps", "1", "--block_s", "60", "--gap_s", "10", "--disable_tqdm", "True"])
    assert rc == 0
    card = (loop["w"] / "train-both" / "README.md").read_text()
    assert "dataset: only 1 recording group" in card and "base: by group" in card
    assert "hard negatives weighted by reason" in caplog.text and "split by time blocks" in caplog.text


def test_the_card_never_shows_a_token_given_on_the_command_line():
    retrain = _script("retrain")
    text = retrain._reproduce(["--model", "m", "--hub_token", TOKEN, "--token=" + TOKEN, "--x", TOKEN])
    assert TOKEN not in text and "--model m" in text


def test_bad_input_is_one_line(loop, tmp_path, capsys):
    rc = _script("retrain").main(["--model", str(loop["current"]), "--verdicts", str(tmp_path / "nope"),
                                  "--output_dir", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "nope" in err[0]


def test_verdicts_from_the_hub(loop, promoted, tmp_path, monkeypatch):
    """Hub ids instead of folders: the stores are read through (a fake) HfApi, with the env token."""
    import huggingface_hub
    from test_store import FakeHfApi as TinyHub

    from owlfinder.data.store import DatasetStore

    hub = TinyHub(tmp_path / "hub")
    DatasetStore.open(loop["verdicts"]).push_to_hub("me/owl-verdicts", api=hub)
    tokens = []

    def make_api(token=None, **kw):
        tokens.append(token)
        return hub

    monkeypatch.setattr(huggingface_hub, "HfApi", make_api)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    out, _, _ = promoted
    rc = _script("retrain").main(["--model", str(out / "model"), "--verdicts", "me/owl-verdicts",
                                  "--candidate", str(out / "model"), "--output_dir", str(tmp_path / "o"), *ROUND_OPTS])
    assert rc == 0
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["round"]["n_clips"] == loop["n"] and report["round"]["location"] == "me/owl-verdicts"
    assert report["promoted"]  # the same model is as good as itself
    assert TOKEN in tokens and any(c[0] == "snapshot_download" for c in hub.calls)
