#!/usr/bin/env python
"""GPU benchmark in one command: × real time of the starter, SEW-D tiny-size and wav2vec2-base-size shapes on
CUDA (batch sweep, fp32 / fp16 / bf16), and a 2-hour 44.1 kHz stereo FLAC end to end with decoding overlapped.

    python bench/gpu.py                                  # on a CUDA machine (writes bench/gpu.md, gpu.json)
    python bench/gpu.py --device cpu --hours 0.01 --models starter --batches 2 --dtypes fp32 --segments 2
                                                         # the CPU path (what tests/test_gpu_bench.py runs)

Model section: random windows are feature-extracted once, moved to the device, and the model alone is timed
(``torch.inference_mode``, synchronised, after warm-up); × real time = windows/s × hop (2.5 s).

End to end: on a GPU the model outruns one decoding thread, so the recording's window grid is cut into
``--segments`` ranges and each is scanned by :func:`owlfinder.detect.engine.scan_windows` in its own thread
(each decodes only its own stretch of the file: FLAC decoding and soxr resampling release the GIL), all
sharing one model; the scores are checked against a single sequential scan's (also timed): they agree within
5e-3 (a range's resampler starts mid-file).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as bench  # noqa: E402

MODELS = {"starter": None, "sewd": "sewd_tiny_size", "w2v2": "wav2vec2_base_size"}
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
HOP_S = 2.5


def _model_dir(key: str, cache: Path) -> Path:
    if key == "starter":
        return bench.default_model(cache)[0]
    return getattr(bench._models, MODELS[key])(cache / "models" / f"{key}-gpu")


def model_sweep(key: str, folder: Path, device: str, dtypes: list[str], batches: list[int], iters: int) -> list[dict]:
    """Model-only windows/s and × real time for each dtype and batch size."""
    import torch

    from owlfinder.detect.model import load_classifier

    clf = load_classifier(folder, device="cpu")
    rng = np.random.default_rng(0)
    rows = []
    for dt in dtypes:
        dtype = getattr(torch, DTYPES[dt])
        if device == "cpu" and dtype == torch.float16:
            continue  # half-precision matmuls are not a CPU path
        net = clf.model.to(device, dtype=dtype).eval()
        for b in batches:
            x = (rng.standard_normal((b, clf.window_samples)) * 0.1).astype(np.float32)
            feats = {k: v.to(device, dtype=dtype) if v.is_floating_point() else v.to(device)
                     for k, v in clf.features(x).items()}
            feats = {k: v for k, v in feats.items() if k == net.main_input_name}
            try:
                with torch.inference_mode():
                    for _ in range(2):
                        net(**feats)
                    _sync(device)
                    t = time.perf_counter()
                    for _ in range(iters):
                        net(**feats)
                    _sync(device)
                    s = (time.perf_counter() - t) / iters
                win_s = b / s
                rows.append({"model": key, "dtype": dt, "batch": b, "windows_per_s": win_s, "x_realtime": win_s * HOP_S,
                             "peak_mem_mb": _peak_mb(device)})
            except RuntimeError as err:  # out of memory at a large batch: record and go on
                rows.append({"model": key, "dtype": dt, "batch": b, "error": str(err).splitlines()[0][:200]})
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        net.to("cpu", dtype=torch.float32)
    return rows


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_mb(device: str) -> float | None:
    import torch

    if device.startswith("cuda"):
        mb = torch.cuda.max_memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
        return mb
    return None


def end_to_end(rec: Path, folder: Path, device: str, segments: int, batch_size: int) -> dict:
    """Scan ``rec`` once sequentially and once as ``segments`` ranges in parallel threads; × real time of each."""
    from owlfinder import audio
    from owlfinder.detect.engine import DetectionParams, scan_windows
    from owlfinder.detect.model import load_classifier
    from owlfinder.detect.windows import window_grid

    clf = load_classifier(folder, device=device)
    info = audio.probe(rec)
    params = DetectionParams(batch_size=batch_size, hop_s=HOP_S)
    hop = int(round(HOP_S * clf.sampling_rate))
    n_grid = len(window_grid(int(round(info.duration_s * clf.sampling_rate)), clf.window_samples, hop))

    def scan(window_range) -> np.ndarray:
        return np.concatenate([sc for _, sc, _ in scan_windows(rec, clf, params, window_range=window_range, info=info)])

    t = time.perf_counter()
    seq = scan(None)
    seq_s = time.perf_counter() - t
    cuts = np.linspace(0, n_grid, segments + 1).astype(int)
    ranges = [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:], strict=False)]
    ranges[-1] = (ranges[-1][0], None)  # the last range takes the end-aligned final window too
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=segments) as pool:
        par = np.concatenate(list(pool.map(scan, ranges)))
    par_s = time.perf_counter() - t
    # A range starts its resampler mid-file (soxr's start-up differs slightly from the sequential stream's
    # state; 8e-4 seen on the starter model), and in fp16 the segments' last batches have other sizes.
    tol = 5e-3
    return {"audio_s": info.duration_s, "windows": int(len(seq)), "device": device, "dtype": str(clf.dtype),
            "sequential_s": seq_s, "sequential_x": info.duration_s / seq_s,
            "overlapped_s": par_s, "overlapped_x": info.duration_s / par_s, "segments": segments,
            "same_scores": bool(len(par) == len(seq) and np.abs(par - seq).max() <= tol),
            "max_abs_diff": float(np.abs(par - seq).max()) if len(par) == len(seq) else None}


def render(results: dict) -> str:
    lines = [f"Device: {results['device_name']}; {results['time']}.", "",
             "| model | dtype | batch | windows/s | × real time (hop 2.5 s) | peak GPU MB |", "|---|---|---|---|---|---|"]
    for r in results["sweep"]:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['dtype']} | {r['batch']} | failed: {r['error']} | | |")
        else:
            mem = "" if r["peak_mem_mb"] is None else f"{r['peak_mem_mb']:.0f}"
            lines.append(f"| {r['model']} | {r['dtype']} | {r['batch']} | {r['windows_per_s']:.1f} | "
                         f"{r['x_realtime']:.0f} | {mem} |")
    e = results.get("end_to_end")
    if e:
        lines += ["", f"End to end, {e['audio_s'] / 3600:.2f} h 44.1 kHz stereo FLAC, starter model, {e['dtype']}: "
                  f"one decoding thread {e['sequential_x']:.0f}× real time; {e['segments']} overlapped segments "
                  f"{e['overlapped_x']:.0f}× (max score difference from the sequential scan {e['max_abs_diff']:.4f})."]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    p.add_argument("--batches", nargs="+", type=int, default=[8, 32, 128, 256, 512])
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--hours", type=float, default=2.0, help="length of the end-to-end FLAC (0: skip)")
    p.add_argument("--segments", type=int, default=8, help="ranges of the file decoded in parallel")
    p.add_argument("--e2e-batch", type=int, default=256)
    p.add_argument("--recording", type=Path, default=None)
    p.add_argument("--cache", type=Path, default=bench.CACHE)
    p.add_argument("--out", type=Path, default=HERE / "gpu.md")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: CUDA is not available here; pass --device cpu for the CPU path")
    args.cache.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    results = {"device_name": name, "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "sweep": []}
    for key in args.models:
        results["sweep"] += model_sweep(key, _model_dir(key, args.cache), args.device, args.dtypes, args.batches,
                                        args.iters)
    if args.hours > 0:
        rec = args.recording or bench.make_recording(args.cache / f"night_{args.hours:g}h.flac", args.hours * 3600,
                                                     seed=11)
        results["end_to_end"] = end_to_end(rec, _model_dir("starter", args.cache), args.device, args.segments,
                                           args.e2e_batch)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    text = render(results)
    args.out.write_text("# GPU benchmark\n\n" + text)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
