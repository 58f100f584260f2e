"""Training: a few-step run from config ends with a loadable, calibrated model; data splits never leak."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from owlfinder.train.augment import AugmentConfig, Augmenter
from owlfinder.train.clipsets import (
    ClipSet,
    DataError,
    load_clip_sets,
    split_by_group,
    train_validation_sets,
)
from owlfinder.train.trainer import (
    AudioCollator,
    TimeBudgetCallback,
    TrainingError,
    build_model,
    check_output_dir,
    class_weights,
    last_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"owl_script_{name}", REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses with postponed annotations look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory) -> Path:
    from owlfinder.synth.backgrounds import make_clips

    root = tmp_path_factory.mktemp("clips")
    make_clips(root, 16, None, seed=7, owl_fraction=0.5, progress=False)
    return root


@pytest.fixture(scope="module")
def trained(clip_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "model"
    rc = _script("train").main([
        "--from_config", "owl-whisper-micro", "--dataset", str(clip_folder), "--output_dir", str(out),
        "--max_steps", "2", "--eval_strategy", "steps", "--eval_steps", "2", "--per_device_train_batch_size", "4",
        "--validation_fraction", "0.3", "--disable_tqdm", "True", "--seed", "1",
    ])
    assert rc == 0
    return out


def test_few_step_training_gives_calibrated_loadable_model(trained, tmp_path):
    from transformers import pipeline

    from owlfinder.detect.engine import DetectionParams, detect
    from owlfinder.detect.model import load_classifier

    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "README.md"):
        assert (trained / name).is_file(), name
    cfg = json.loads((trained / "config.json").read_text())
    assert 0.0 <= cfg["owl_threshold"] <= 1.0
    assert cfg["owl_window_s"] == 5.0 and cfg["owl_target_precision"] == 0.95
    assert cfg["id2label"] == {"0": "owl", "1": "not_owl"}
    assert "validation" in cfg["owl_calibration"]
    card = (trained / "README.md").read_text()
    assert "synthetic" in card and "owl_threshold" in card and "pipeline_tag: \"audio-classification\"" in card

    clip = (np.random.default_rng(0).standard_normal(16000 * 5) * 0.05).astype(np.float32)
    out = pipeline("audio-classification", model=str(trained))(clip)
    assert {d["label"] for d in out} == {"owl", "not_owl"}

    clf = load_classifier(trained, device="cpu")
    assert clf.threshold == pytest.approx(cfg["owl_threshold"]) and clf.window_s == 5.0
    assert clf.positive_label == "owl"
    wav = tmp_path / "rec.wav"
    sf.write(wav, np.tile(clip, 3), 16000)
    det = detect(wav, clf, DetectionParams(hop_s=2.5, second_look_logit=None))
    assert det.threshold == pytest.approx(cfg["owl_threshold"]) and len(det.scores) == 5


def test_refuses_stale_output_folder(trained, clip_folder, capsys):
    rc = _script("train").main(["--from_config", "owl-whisper-micro", "--dataset", str(clip_folder),
                                "--output_dir", str(trained), "--max_steps", "1"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty" in err[0] and "--resume" in err[0]


def test_check_output_dir_rules(tmp_path):
    assert check_output_dir(tmp_path / "new") is None
    assert check_output_dir(tmp_path) is None  # exists but empty
    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "checkpoint-10").mkdir()
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(TrainingError, match="not empty"):
        check_output_dir(tmp_path)
    assert last_checkpoint(tmp_path).name == "checkpoint-10"
    assert check_output_dir(tmp_path, resume=True).endswith("checkpoint-10")
    with pytest.raises(TrainingError, match="contradict"):
        check_output_dir(tmp_path, resume=True, overwrite=True)
    assert check_output_dir(tmp_path, overwrite=True) is None
    assert last_checkpoint(tmp_path) is None and (tmp_path / "config.json").exists()
    with pytest.raises(TrainingError, match="no checkpoint"):
        check_output_dir(tmp_path, resume=True)


def test_group_split_keeps_groups_apart():
    rng = np.random.default_rng(3)
    groups = [f"site{rng.integers(0, 12)}" for _ in range(300)]
    labels = rng.integers(0, 2, 300)
    for seed in range(5):
        tr, va = split_by_group(groups, labels, 0.25, seed=seed)
        assert len(tr) + len(va) == 300 and len(va) >= 0.2 * 300
        assert not {groups[i] for i in tr} & {groups[i] for i in va}
        assert set(labels[va]) == {0, 1}
    with pytest.raises(DataError, match="one group"):
        split_by_group(["a"] * 5, [0, 1, 0, 1, 0])


def test_folder_data_split_has_no_shared_group(clip_folder):
    sets = load_clip_sets(clip_folder, progress=False)
    assert list(sets) == ["all"] and len(sets["all"]) == 16
    train, val, how = train_validation_sets(sets, validation_fraction=0.3, seed=0)
    assert not set(train.groups) & set(val.groups)
    assert val.is_owl.any() and "group" in how


def test_store_data_drops_unsure_and_keeps_its_splits(tmp_path):
    from owlfinder.data.store import DatasetStore

    rng = np.random.default_rng(0)
    store = DatasetStore.open(tmp_path / "ds")

    def row(i, verdict, group):
        return {"audio": (rng.standard_normal(16000 * 5) * 0.05).astype(np.float32), "sr": 16000,
                "verdict": verdict, "source": f"{group}/r{i}.wav", "group": group,
                "reason": "koala" if verdict == "not_owl" else None}

    store.append([row(0, "owl", "a"), row(1, "not_owl", "a"), row(2, "unsure", "b"), row(3, "owl", "b")], "train")
    store.append([row(4, "owl", "c"), row(5, "not_owl", "c")], "validation")
    sets = load_clip_sets(tmp_path / "ds", progress=False)
    assert sorted(sets) == ["train", "validation"]
    assert len(sets["train"]) == 3  # the unsure row is gone
    train, val, how = train_validation_sets(sets)
    assert len(val) == 2 and "own" in how
    assert val.reasons.count("koala") == 1


def test_bad_data_gives_one_line_error(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="neither a dataset store"):
        load_clip_sets(tmp_path / "stuff", progress=False)
    (tmp_path / "lab" / "owl").mkdir(parents=True)
    (tmp_path / "lab" / "not_owl").mkdir()
    (tmp_path / "lab" / "owl" / "bad.wav").write_bytes(b"RIFF....not audio")
    with pytest.raises(DataError, match="bad.wav"):
        load_clip_sets(tmp_path / "lab", progress=False)


def test_augmenter_preserves_length_and_label_safety():
    sr = 16000
    t = np.arange(sr * 5) / sr
    tone = (0.3 * np.sin(2 * np.pi * 400 * t)).astype(np.float32)
    negs = (np.random.default_rng(1).standard_normal((3, sr * 5)) * 3000).astype(np.int16)
    aug = Augmenter(AugmentConfig(), negs, sr, seed=0)
    for _ in range(10):
        y = aug(tone, True)
        assert y.shape == tone.shape and np.isfinite(y).all() and np.abs(y).max() <= 1.0
    shifted = aug.pitch_shift(tone, 1.03)
    f = np.fft.rfftfreq(len(shifted), 1 / sr)[np.argmax(np.abs(np.fft.rfft(shifted)))]
    assert f == pytest.approx(412, abs=2)
    a, b = Augmenter(seed=5), Augmenter(seed=5)
    assert np.array_equal(a(tone, False), b(tone, False))


def test_clutter_is_low_frequency_and_unit_rms():
    aug = Augmenter(seed=3)
    for _ in range(6):
        y, (lo, hi) = aug.clutter(16000 * 5)
        assert np.sqrt(np.mean(y**2)) == pytest.approx(1.0, rel=1e-3)
        spec = np.abs(np.fft.rfft(y)) ** 2
        f = np.fft.rfftfreq(len(y), 1 / 16000)
        assert spec[f > 1300].sum() < 1e-3 * spec.sum() and 50 <= lo < hi <= 1200


def test_train_defaults_follow_the_command_line():
    train = _script("train")
    argv = train.with_defaults(["--from_config", "x", "--eval_strategy", "steps", "--eval_steps", "50"])
    opts = dict(zip(argv[::2], argv[1::2], strict=False))
    assert opts["--save_strategy"] == "steps" and opts["--save_steps"] == "50"
    assert opts["--learning_rate"] == train.LR_SCRATCH and opts["--metric_for_best_model"] == "f0.5"
    argv = train.with_defaults(["--model_name_or_path", "m", "--learning_rate", "5e-5"])
    assert argv.count("--learning_rate") == 1 and "--eval_strategy" in argv


def test_class_weights_balance_classes():
    w = class_weights(np.array([0] * 10 + [1] * 30), 2)
    assert w[0] / w[1] == pytest.approx(3.0) and float(w.mean()) == pytest.approx(1.0)


def test_build_model_and_collator_from_named_config():
    model, fe, desc = build_model(from_config="owl-whisper-micro")
    assert model.config.id2label == {0: "owl", 1: "not_owl"} and "from config" in desc
    batch = AudioCollator.for_model(model, fe, 16000)(
        [{"audio": np.zeros(80000, np.float32), "label": 0}, {"audio": np.zeros(80000, np.float32), "label": 1}])
    assert batch["input_features"].shape[:2] == (2, 32) and batch["labels"].tolist() == [0, 1]
    with pytest.raises(TrainingError, match="exactly one"):
        build_model("some/model", from_config="owl-whisper-micro")
    with pytest.raises(TrainingError, match="neither a known name"):
        build_model(from_config="no-such-architecture")


def test_time_budget_callback_stops_and_saves():
    from transformers import TrainerControl, TrainerState, TrainingArguments

    cb = TimeBudgetCallback(0.0)
    args = TrainingArguments(output_dir="/tmp/unused", eval_strategy="steps", eval_steps=5, report_to="none")
    control = TrainerControl()
    cb.on_train_begin(args, TrainerState(), control)
    cb.on_step_end(args, TrainerState(), control)
    assert control.should_training_stop and control.should_save and control.should_evaluate


def test_clipset_subset_and_concat():
    cs = ClipSet(np.zeros((4, 10), np.int16), np.array([0, 1, 1, 0]), list("abcd"), [None] * 4, list("wxyz"))
    both = ClipSet.concat([cs.subset([0, 1]), cs.subset([3])])
    assert len(both) == 3 and both.groups == ["a", "b", "d"] and both.counts() == {"owl": 2, "not_owl": 1}


def test_bundled_starter_model_loads():
    from owlfinder.detect.model import BUNDLED_MODEL, load_classifier

    if not (BUNDLED_MODEL / "config.json").exists():
        pytest.skip("no bundled starter model")
    clf = load_classifier(BUNDLED_MODEL, device="cpu")
    assert 0.0 < clf.threshold < 1.0 and clf.window_s == 5.0 and clf.positive_label == "owl"
    size = sum(p.stat().st_size for p in BUNDLED_MODEL.iterdir() if p.is_file())
    assert size <= 25e6
    scores = clf.score(np.zeros((2, clf.window_samples), np.float32))
    assert scores.shape == (2,)
    from transformers import pipeline

    out = pipeline("audio-classification", model=str(BUNDLED_MODEL))(np.zeros(16000 * 5, np.float32))
    assert {d["label"] for d in out} == {"owl", "not_owl"}
