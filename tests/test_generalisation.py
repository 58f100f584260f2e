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
from owlfinder.synth import fieldclips
from owlfinder.synth.calls import pink_noise
from owlfinder.synth.families import FAMILIES, family
from owlfinder.train.recipe import RecipeConfig, score_clips, train_recipe

SR = 16000
TOY_CONFIG = Path(__file__).with_name("toy_whisper.json")


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


def test_tiny_model_trained_on_two_families_scores_the_third_above_background():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n = 3 * SR
    beds = _beds(rng, 40, 8 * SR)

    def owl(fam: str) -> np.ndarray:
        f = family(fam)
        params = f.sample(rng, n_notes=int(rng.integers(1, 3)))
        bg = fieldclips.crop(rng, beds, n)
        call = f.render(params, SR)
        from owlfinder.synth.calls import mix_at_snr

        return mix_at_snr(bg, call[: n - int(0.3 * SR)], SR, float(rng.uniform(5, 15)), float(rng.uniform(0, 0.25)))

    pos = np.stack([owl(f) for f in ("sourcefilter", "contours") for _ in range(50)])
    neg = np.stack([fieldclips.crop(rng, beds, n) for _ in range(60)]
                   + [fieldclips.confuser_clip(rng, fieldclips.crop(rng, beds, n), SR, (5, 15), kind="engine_hum")[0]
                      for _ in range(20)])
    # A toy Whisper (64 mel bands, one layer) that learns in a few hundred small steps.
    cfg = RecipeConfig(model=str(TOY_CONFIG), steps=250, batch_size=32, lr=5e-3, mine_after=None, p_specaug=0.0,
                       p_mix=0.0, p_roll=0.0)
    model, fe, info = train_recipe(pos, neg, cfg, window_s=3.0, log=lambda *_: None)
    held = score_clips(model, fe, np.stack([owl("additive") for _ in range(30)]))
    back = score_clips(model, fe, np.stack([fieldclips.crop(rng, beds, n) for _ in range(30)]))
    assert np.median(held) > np.quantile(back, 0.9), (np.median(held), np.quantile(back, 0.9))


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
    mat = Material(shared, tmp_path / "work", n_pos=6, n_confusers=6, n_background=4, log=lambda *_: None)
    assert {k: len(v) for k, v in mat.splits.items()} == {"train": 1, "calibration": 1, "test": 1}  # music left out
    out = tmp_path / "fold"
    trained = train_model(mat, ["additive", "sourcefilter"], out, RecipeConfig(model="owl-whisper-micro", steps=4))
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["owl_threshold"] == pytest.approx(trained["threshold"]) and 0 < trained["threshold"] < 1
    assert set(trained["calibration"]["training_family_recall"]) == {"additive", "sourcefilter"}
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
    assert (tmp_path / "work" / "pos_additive_6.npy").is_file()  # cached for the next fold
    mat2 = Material(shared, tmp_path / "work", n_pos=6, n_confusers=6, n_background=4, log=lambda *_: None)
    assert np.array_equal(mat2.owl_clips("additive"), mat.owl_clips("additive"))


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


def test_real_share_mines_real_and_synthetic_negatives_apart():
    rng = np.random.default_rng(5)
    pos = (rng.standard_normal((8, 3 * SR)) * 0.05).astype(np.float32)
    neg = (rng.standard_normal((40, 3 * SR)) * 0.05).astype(np.float32)
    real = np.arange(40) < 10
    cfg = RecipeConfig(model="owl-whisper-micro", steps=4, batch_size=8, mine_after=0.5, mine_top=0.2, real_share=0.5)
    _, _, info = train_recipe(pos, neg, cfg, real_mask=real, window_s=3.0, log=lambda *_: None)
    assert info["mining"]["n"] == 2 + 6 and info["mining"]["real"] == 2  # 20 % of each group
