"""OwlNet: the front end's bands, level and background invariance, and the saved folder as a plain transformers
model (pipeline with remote code, without owlfinder) and as the engine's model."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from owlfinder.owlnet import (
    OwlNetConfig,
    OwlNetFeatureExtractor,
    OwlNetForAudioClassification,
    log_band_filters,
    normalise_bands,
)

SR = 16000
LABELS = {0: "owl", 1: "not_owl"}


def _model(seed: int = 0, **cfg) -> tuple[OwlNetForAudioClassification, OwlNetFeatureExtractor]:
    torch.manual_seed(seed)
    fe = OwlNetFeatureExtractor()
    model = OwlNetForAudioClassification(OwlNetConfig(n_bins=fe.feature_size, id2label=LABELS,
                                                      label2id={v: k for k, v in LABELS.items()}, **cfg)).eval()
    return model, fe


def _tone(f0: float, seconds: float = 5.0, level: float = 0.1) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (level * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def test_bands_are_log_spaced_and_a_tone_lights_its_own_band():
    fe = OwlNetFeatureExtractor()
    w = log_band_filters(SR, fe.n_fft, fe.f_min, fe.f_max, fe.bins_per_octave)
    assert w.shape == (fe.feature_size, fe.n_fft // 2 + 1) and np.allclose(w.sum(axis=1), 1.0)
    centres = fe.f_min * 2.0 ** (np.arange(fe.feature_size) / fe.bins_per_octave)
    assert centres[-1] <= fe.f_max < centres[-1] * 2 ** (1 / fe.bins_per_octave)
    for f0 in (370.0, 520.0, 1100.0):
        db = fe(_tone(f0), sampling_rate=SR, return_tensors="pt")["input_features"][0]
        peak = int(db.mean(dim=1).argmax())
        assert abs(np.log2(centres[peak] / f0)) <= 1.0 / fe.bins_per_octave  # the nearest band or its neighbour
    octave_up = fe(_tone(740.0), sampling_rate=SR, return_tensors="pt")["input_features"][0].mean(dim=1).argmax()
    assert int(octave_up) - int(fe(_tone(370.0), sampling_rate=SR, return_tensors="pt")["input_features"][0]
                                .mean(dim=1).argmax()) == fe.bins_per_octave  # pitch is a shift along the bands


def test_extractor_takes_a_clip_a_list_or_a_batch_and_checks_the_rate():
    fe = OwlNetFeatureExtractor()
    x = np.random.default_rng(0).standard_normal((3, 5 * SR)).astype(np.float32) * 0.1
    a = fe(x, sampling_rate=SR, return_tensors="pt")["input_features"]
    b = fe(list(x), sampling_rate=SR, return_tensors="pt")["input_features"]
    c = fe(x[1], sampling_rate=SR, return_tensors="np")["input_features"]
    assert a.shape == (3, fe.feature_size, 5 * SR // fe.hop_length + 1)
    assert torch.equal(a, b) and np.allclose(c[0], a[1].numpy())
    silent = fe(np.zeros(5 * SR, np.float32), sampling_rate=SR, return_tensors="pt")["input_features"]
    assert torch.all(silent == fe.floor_db)  # digital silence reads as the floor, not -inf
    with pytest.raises(ValueError, match="16000 Hz"):
        fe(x[0], sampling_rate=44100)


def test_scores_do_not_depend_on_level_or_a_steady_background_colour():
    """Per-band floor removal: a gain change or a fixed filter (a microphone's response) changes nothing."""
    model, fe = _model()
    rng = np.random.default_rng(1)
    y = rng.standard_normal(5 * SR).astype(np.float32) * 0.01 + _tone(450.0, level=0.03) * (
        np.arange(5 * SR) % SR < SR // 2)
    from scipy import signal

    tilted = signal.lfilter([1.0, -0.9], [1.0], y).astype(np.float32)  # a strong pre-emphasis

    def norm(x):
        return model.normalise(fe(x, sampling_rate=SR, return_tensors="pt")["input_features"])

    assert torch.allclose(norm(y), norm(y * 20.0), atol=1e-4)
    assert float((norm(y) - norm(tilted)).abs().mean()) < 0.02  # only the STFT's leakage differs
    with torch.inference_mode():
        p = [torch.softmax(model(input_features=fe(x, sampling_rate=SR, return_tensors="pt")["input_features"])
                           .logits, -1)[0, 0] for x in (y, y * 20.0)]
    assert float(abs(p[0] - p[1])) < 1e-5


def test_normalise_bands_removes_each_bands_floor():
    db = torch.zeros(1, 3, 100)
    db[0, 0] += 40.0  # a louder band
    db[0, 1, 10:20] += 30.0  # a note 30 dB above its band's floor
    out = normalise_bands(db, quantile=0.2, scale=10.0, low=-1.0, high=6.0)
    assert torch.all(out[0, 0] == 0) and torch.all(out[0, 2] == 0)
    assert torch.allclose(out[0, 1, 10:20], torch.full((10,), 3.0)) and torch.all(out[0, 1, :10] == 0)


def test_saved_folder_loads_in_plain_transformers_with_remote_code_and_in_the_engine(tmp_path):
    model, fe = _model(seed=3)
    folder = tmp_path / "owlnet"
    model.save_pretrained(folder)
    fe.save_pretrained(folder)
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["model_type"] == "owlnet" and cfg["auto_map"]["AutoModelForAudioClassification"].startswith(
        "modeling_owlnet.")
    assert json.loads((folder / "preprocessor_config.json").read_text())["auto_map"]["AutoFeatureExtractor"]
    for name in ("configuration_owlnet.py", "modeling_owlnet.py", "feature_extraction_owlnet.py"):
        assert (folder / name).is_file()
    x = (np.random.default_rng(2).standard_normal(5 * SR) * 0.05).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    # A fresh interpreter in which owlfinder cannot be imported: only the folder's own code is used.
    code = (
        "import sys, json, numpy as np; sys.modules['owlfinder'] = None\n"
        "from transformers import pipeline\n"
        f"clf = pipeline('audio-classification', model={str(folder)!r}, trust_remote_code=True, device='cpu')\n"
        f"out = clf({{'raw': np.load({str(tmp_path / 'x.npy')!r}), 'sampling_rate': 16000}})\n"
        "print(json.dumps({d['label']: d['score'] for d in out}))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin",
                              "HOME": str(tmp_path), "HF_MODULES_CACHE": str(tmp_path / "modules")})
    assert run.returncode == 0, run.stderr[-2000:]
    remote = json.loads(run.stdout.strip().splitlines()[-1])

    from owlfinder.detect.model import load_classifier

    clf = load_classifier(str(folder), device="cpu")
    engine = float(clf.score(x[None])[0])
    assert type(clf.model).__name__ == "OwlNetForAudioClassification" and clf.positive_label == "owl"
    assert abs(remote["owl"] - engine) < 1e-5 and abs(remote["owl"] + remote["not_owl"] - 1) < 1e-5


def test_an_ensemble_averages_its_members_and_inference_folding_keeps_scores():
    model, fe = _model(seed=4, n_members=3)
    x = fe((np.random.default_rng(6).standard_normal((4, 5 * SR)) * 0.05).astype(np.float32), sampling_rate=SR,
           return_tensors="pt")["input_features"]
    with torch.inference_mode():
        out = model(input_features=x, labels=torch.tensor([0, 1, 0, 1]))
        norm = model.normalise(x).unsqueeze(1)
        each = torch.stack([m(norm) for m in model.members])
        assert out.hidden_states.shape == (3, 4, 2) and torch.allclose(out.logits, each.mean(0), atol=1e-6)
        assert not torch.allclose(each[0], each[1])  # independently initialised
        fused = model.optimize_for_inference()(input_features=x).logits
    assert torch.allclose(out.logits, fused, atol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert float(out.loss) > 0


def test_models_trained_apart_join_into_one_ensemble(tmp_path):
    a, fe = _model(seed=5)
    b, _ = _model(seed=6)
    joined = OwlNetForAudioClassification.from_members([a, b])
    assert joined.config.n_members == 2
    x = fe((np.random.default_rng(8).standard_normal((3, 5 * SR)) * 0.05).astype(np.float32), sampling_rate=SR,
           return_tensors="pt")["input_features"]
    with torch.inference_mode():
        want = (a(input_features=x).logits + b(input_features=x).logits) / 2
        assert torch.allclose(joined(input_features=x).logits, want, atol=1e-5)
    joined.save_pretrained(tmp_path / "ens")
    again = OwlNetForAudioClassification.from_pretrained(tmp_path / "ens").eval()
    with torch.inference_mode():
        assert torch.allclose(again(input_features=x).logits, want, atol=1e-5)
    other, _ = _model(seed=7, hidden_size=48)
    with pytest.raises(ValueError, match="architecture"):
        OwlNetForAudioClassification.from_members([a, other])


def test_the_bundled_model_carries_the_packages_own_owlnet_code():
    """The starter folder's copies (loaded by plain transformers with remote code) are the package's modules
    (loaded by owlfinder): both ways of loading it run the same code."""
    from pathlib import Path

    import owlfinder.owlnet as pkg
    from owlfinder.detect.model import BUNDLED_MODEL

    if not (BUNDLED_MODEL / "config.json").exists():
        pytest.skip("no bundled starter model")
    for name in ("configuration_owlnet.py", "modeling_owlnet.py", "feature_extraction_owlnet.py"):
        assert (BUNDLED_MODEL / name).read_bytes() == (Path(pkg.__file__).parent / name).read_bytes(), name
