"""The ONNX Runtime backends (owlfinder.detect.onnx): scores against torch fp32, int8 repeatability, the cache.

Tiny SEW-D, wav2vec2 and AST models from configs and the bundled starter model. Random tiny encoders give nearly
the same pooled features for every input (all probabilities ~0.5), so int8 drift is checked on models that were
trained for a few steps to tell tones from noise: their scores spread over (0, 1) as a fine-tuned model's do.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from owlfinder.detect import onnx
from owlfinder.detect.model import BUNDLED_MODEL, ModelError, load_classifier

from models import BUILDERS

SR = 16000
N = 5 * SR


def _windows(n: int = 8, seed: int = 0) -> np.ndarray:
    """Half tones (owl-like hoots at 300-900 Hz) and half noise, at assorted levels."""
    rng = np.random.default_rng(seed)
    t = np.arange(N) / SR
    out = []
    for i in range(n):
        level = 10 ** rng.uniform(-2, -0.5)
        x = rng.standard_normal(N) * level * 0.3
        if i % 2 == 0:
            x += level * np.sin(2 * np.pi * rng.uniform(300, 900) * t) * (np.sin(np.pi * t / 5) > 0.2)
        out.append(x)
    return np.stack(out).astype(np.float32)


def _train_tiny(arch: str, folder, steps: int = 15):
    """A tiny model trained for ``steps`` Adam steps on tone (owl, label 0) vs noise: spread scores."""
    torch.manual_seed(0)
    model, fe = BUILDERS[arch]("owl_first")
    x = _windows(16, seed=1)
    y = torch.tensor([0 if i % 2 == 0 else 1 for i in range(len(x))])
    feats = fe(list(x), sampling_rate=SR, return_tensors="pt")[model.main_input_name]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(**{model.main_input_name: feats}).logits, y).backward()
        opt.step()
    model.eval()
    model.save_pretrained(folder)
    fe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    return {arch: _train_tiny(arch, root / arch) for arch in ("sew-d", "wav2vec2", "ast")}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.mark.parametrize("arch", ["sew-d", "wav2vec2", "ast"])
def test_scores_within_0_02_of_torch_fp32(arch, trained, cache):
    windows = _windows(8, seed=2)
    ref = load_classifier(trained[arch], device="cpu").score(windows)
    assert ref.max() - ref.min() > 0.3, ref  # trained: the comparison means something
    fp32 = load_classifier(trained[arch], device="cpu", backend="onnx", onnx_cache=cache, threads=1)
    assert fp32.model is None and fp32.runner is not None and fp32.backend == "onnx"
    assert np.abs(fp32.score(windows) - ref).max() < 1e-3
    int8 = load_classifier(trained[arch], device="cpu", backend="onnx-int8", onnx_cache=cache, threads=1)
    scores = int8.score(windows)
    assert scores.shape == (len(windows),)
    assert np.abs(scores - ref).max() < 0.02
    # Repeatable: a window scores the same alone, in a batch, or next to other windows.
    for i in (0, 3):
        assert int8.score(windows[i: i + 1])[0] == pytest.approx(scores[i], abs=1e-6)
    mixed = np.concatenate([windows[3:4] * 30.0, windows[:3]])  # a loud neighbour would move a shared scale
    assert np.abs(int8.score(mixed)[1:] - scores[:3]).max() < 1e-6


@pytest.mark.skipif(not (BUNDLED_MODEL / "config.json").exists(), reason="no bundled starter model")
def test_starter_model(cache):
    ref = load_classifier(BUNDLED_MODEL, device="cpu")
    windows = _windows(6, seed=3)[:, : ref.window_samples]
    for backend in onnx.BACKENDS:
        clf = load_classifier(BUNDLED_MODEL, device="cpu", backend=backend, onnx_cache=cache, threads=1)
        assert np.abs(clf.score(windows) - ref.score(windows)).max() < 0.02, backend


def test_torch_int8_is_repeatable(trained):
    clf = load_classifier(trained["wav2vec2"], device="cpu", backend="int8")
    w = _windows(4, seed=5)
    alone = np.concatenate([clf.score(w[i: i + 1]) for i in range(len(w))])
    assert np.abs(clf.score(np.concatenate([w * 20.0, w]))[len(w):] - alone).max() < 1e-6


def test_cache_is_reused_and_keyed(trained, tmp_path, monkeypatch):
    d = trained["sew-d"]
    first = onnx.export_onnx(d, N, quantize=True, cache_dir=tmp_path)
    assert first.name == "model.int8.onnx" and (first.parent / "meta.json").exists()
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".") or p.is_dir()]  # no half files
    stamp = first.stat().st_mtime_ns

    def boom(*a, **k):
        raise AssertionError("exported again")

    monkeypatch.setattr(torch.onnx, "export", boom)
    monkeypatch.setattr(onnx, "_quantize", boom)
    assert onnx.export_onnx(d, N, quantize=True, cache_dir=tmp_path) == first
    clf = load_classifier(d, device="cpu", backend="onnx-int8", onnx_cache=tmp_path)
    assert clf.runner.path == first and first.stat().st_mtime_ns == stamp
    # The key follows the weights' content, the config, the window and quantisation.
    k = onnx.cache_key(d, False, N)
    assert len({k, onnx.cache_key(d, True, N), onnx.cache_key(d, False, N // 2)}) == 3
    cfg = json.loads((d / "config.json").read_text())
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in d.iterdir():
        if f.is_file():
            (copy / f.name).write_bytes(f.read_bytes())
    assert onnx.cache_key(copy, False, N) == k
    w = bytearray((copy / "model.safetensors").read_bytes())
    w[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(w))
    k2 = onnx.cache_key(copy, False, N)
    assert k2 != k
    cfg["owl_threshold"] = 0.7
    (copy / "config.json").write_text(json.dumps(cfg))
    assert onnx.cache_key(copy, False, N) not in (k, k2)


def test_cache_location(tmp_path, monkeypatch):
    monkeypatch.delenv("OWL_ONNX_CACHE", raising=False)
    assert onnx.default_cache_dir(tmp_path) == tmp_path / "onnx"  # beside a writable model
    monkeypatch.setenv("OWL_ONNX_CACHE", str(tmp_path / "c"))
    assert onnx.default_cache_dir(tmp_path) == tmp_path / "c"


def test_bad_backend_and_device_are_one_line_errors(trained):
    with pytest.raises(ModelError, match="unknown backend 'tensorrt'"):
        load_classifier(trained["ast"], backend="tensorrt")
    with pytest.raises(ModelError, match="CPU only"):
        load_classifier(trained["ast"], device="cuda:0" if torch.cuda.is_available() else "meta", backend="onnx")


def test_space_keeps_torch_unless_configured():
    from owlfinder.ui.config import AppConfig, ConfigError

    assert AppConfig.from_env({}).backend == "torch"
    assert AppConfig.from_env({"OWL_BACKEND": "ONNX-int8", "OWL_DEVICE": "cpu"}).backend == "onnx-int8"
    with pytest.raises(ConfigError, match="OWL_BACKEND='tensorrt'"):
        AppConfig.from_env({"OWL_BACKEND": "tensorrt"})
