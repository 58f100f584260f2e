"""ONNX Runtime backends for the classifier: ``onnx`` (fp32) and ``onnx-int8`` (dynamic int8 quantisation).

A model is exported once with ``torch.onnx.export(dynamo=False)`` (the TorchScript exporter: it exports SEW-D,
wav2vec2, AST and Whisper classifiers with no extra dependency; ``optimum-onnx`` pins ``transformers<4.58``),
optionally quantised with ``onnxruntime.quantization.quantize_dynamic`` (MatMul weights only, per-channel
QInt8: quantising the convolutions was 3x slower and far off), and cached. The cache key covers the config,
the weights' content, the window, the recipe and the torch / transformers / onnxruntime versions, so a changed
model or an upgrade exports again and nothing stale is reused.

Where the cache lives: ``$OWL_ONNX_CACHE`` when set, else ``<model folder>/onnx/`` when the model is a writable
local folder, else ``~/.cache/owlfinder/onnx``. Files are written under temporary names and renamed, and
``meta.json`` (written last) marks a complete entry, so an interrupted or concurrent export never leaves a
half-written model that a later run would load.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["BACKENDS", "OnnxRunner", "cache_key", "default_cache_dir", "export_onnx", "make_session"]

BACKENDS = ("onnx", "onnx-int8")
#: Bump when the export recipe changes, so older cached files are not reused.
EXPORT_RECIPE = "owl-onnx-1"
OPSET = 17
#: What ``quantize_dynamic`` does for ``onnx-int8`` (docs/onnx.md: fastest and least drift of those tried).
QUANT_OPTS = {"op_types_to_quantize": ["MatMul"], "per_channel": True, "weight_type": "QInt8"}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
#: Windows per ORT call for ``onnx`` (throughput is flat from batch 4 to 16; 8 bounds scratch memory).
ONNX_CPU_CHUNK = 8
#: ``onnx-int8`` runs one window per call: ``DynamicQuantizeLinear`` takes one activation scale over the
#: whole input tensor, so in a batch a window's score would depend on the other windows in it.
ONNX_INT8_CPU_CHUNK = 1

_DIGESTS: dict[tuple, str] = {}


def default_cache_dir(model_dir: str | os.PathLike | None = None) -> Path:
    """``$OWL_ONNX_CACHE``, else ``<model_dir>/onnx`` when that folder is writable, else the user cache."""
    env = os.environ.get("OWL_ONNX_CACHE", "").strip()
    if env:
        return Path(env)
    if model_dir is not None and Path(model_dir).is_dir() and os.access(model_dir, os.W_OK):
        return Path(model_dir) / "onnx"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "owlfinder" / "onnx"


def _file_digest(path: Path) -> str:
    """sha256 of a file, memoised in-process by (path, size, mtime)."""
    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _DIGESTS[memo] = h.hexdigest()
    return _DIGESTS[memo]


def cache_key(model_dir: str | os.PathLike, quantize: bool, window_samples: int) -> str:
    """Hash of everything an exported file depends on: config, weights (content), window, recipe, versions."""
    import onnxruntime
    import torch
    import transformers

    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    weights = {n: _file_digest(model_dir / n) for n in WEIGHT_FILES if (model_dir / n).exists()}
    blob = json.dumps({
        "config": config, "weights": weights, "window": int(window_samples), "quantize": bool(quantize),
        "quant_opts": QUANT_OPTS if quantize else None, "recipe": EXPORT_RECIPE, "opset": OPSET,
        "torch": torch.__version__, "transformers": transformers.__version__,
        "onnxruntime": onnxruntime.__version__,
    }, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def export_onnx(model_dir: str | os.PathLike, window_samples: int, *, quantize: bool = False,
                cache_dir: str | os.PathLike | None = None) -> Path:
    """Export (and for ``quantize`` int8-quantise) the local model ``model_dir``; return the ``.onnx`` path.

    Args:
        model_dir: a local model folder (``config.json``, weights, ``preprocessor_config.json``).
        window_samples: the window length the model scores, in samples at its rate (fixed in the graph;
            the batch axis stays dynamic).
        quantize: dynamic int8 quantisation of the MatMul weights (built from the cached fp32 export).
        cache_dir: where entries live (default: :func:`default_cache_dir`).

    Returns:
        ``<cache_dir>/<key>/model.onnx`` or ``model.int8.onnx``; nothing is exported when it is there.
    """
    import torch
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    model_dir = Path(model_dir)
    key = cache_key(model_dir, quantize, window_samples)
    entry = Path(cache_dir or default_cache_dir(model_dir)) / key
    target = entry / ("model.int8.onnx" if quantize else "model.onnx")
    if target.exists() and (entry / "meta.json").exists():
        return target
    entry.mkdir(parents=True, exist_ok=True)
    meta: dict = {"window_samples": int(window_samples), "source": str(model_dir), "key": key}
    t0 = time.perf_counter()
    if quantize:
        fp32 = export_onnx(model_dir, window_samples, cache_dir=cache_dir)
        meta["input_name"] = json.loads((fp32.parent / "meta.json").read_text())["input_name"]
        _quantize(fp32, target)
    else:
        fe = AutoFeatureExtractor.from_pretrained(model_dir)
        net = AutoModelForAudioClassification.from_pretrained(model_dir).eval()
        sr = int(getattr(fe, "sampling_rate", 16000) or 16000)
        probe = (np.random.default_rng(0).standard_normal((2, window_samples)) * 0.1).astype(np.float32)
        name = net.main_input_name
        x = fe(list(probe), sampling_rate=sr, return_tensors="pt")[name].float()
        with tempfile.TemporaryDirectory(dir=entry) as tmp:
            tmp_path = Path(tmp) / target.name
            import warnings

            with warnings.catch_warnings():  # TracerWarnings about the (fixed) window length; legacy exporter
                warnings.simplefilter("ignore")
                torch.onnx.export(net, (), tmp_path, kwargs={name: x}, input_names=[name], output_names=["logits"],
                                  dynamo=False, opset_version=OPSET,
                                  dynamic_axes={name: {0: "batch"}, "logits": {0: "batch"}})
            os.replace(tmp_path, target)
        meta.update({"input_name": name, "input_shape": list(x.shape[1:])})
    meta.update({"quantized": quantize, "seconds": round(time.perf_counter() - t0, 2),
                 "file_mb": round(target.stat().st_size / 2**20, 2)})
    tmp_meta = entry / f".meta-{os.getpid()}.json.tmp"
    tmp_meta.write_text(json.dumps(meta, indent=1))
    os.replace(tmp_meta, entry / "meta.json")
    return target


def _quantize(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        tmp_path = Path(tmp) / dst.name
        quantize_dynamic(src, tmp_path, op_types_to_quantize=QUANT_OPTS["op_types_to_quantize"],
                         per_channel=QUANT_OPTS["per_channel"], weight_type=getattr(QuantType, QUANT_OPTS["weight_type"]))
        os.replace(tmp_path, dst)


def default_threads() -> int:
    """Intra-op threads for a session: ``$OWL_ONNX_THREADS``, else the cores this process may use."""
    env = os.environ.get("OWL_ONNX_THREADS", "").strip()
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def make_session(path: str | os.PathLike, threads: int | None = None):
    """A CPU ``InferenceSession`` with all graph optimisations, ``threads`` intra-op threads, no spinning.

    Spinning is off because the decoding thread (and, on a shared server, other processes) need the cores
    the pool would spin on; all-level optimisation was 14-30% faster than basic (docs/onnx.md).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or default_threads())
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class OnnxRunner:
    """Features -> logits through an ONNX Runtime session (what :class:`OwlClassifier` calls as ``runner``).

    Args:
        path: the ``.onnx`` file (its ``meta.json`` beside it names the input).
        threads: intra-op threads (default :func:`default_threads`).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        self.path = Path(path)
        self.threads = int(threads or default_threads())
        self.session = make_session(self.path, self.threads)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, inputs: dict) -> np.ndarray:
        """Logits ``[B, labels]`` (float32) for the feature extractor's tensors (only the main input is used)."""
        x = inputs[self.input_name]
        x = x.detach().cpu().float().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float32)
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]


def local_model_dir(name: str, token: str | None = None) -> Path:
    """A local folder for a model: ``name`` itself, or the Hub snapshot of a repo id (downloaded if needed)."""
    if Path(name).is_dir():
        return Path(name)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name, token=token, allow_patterns=["*.json", "*.safetensors", "*.bin"]))
