#!/usr/bin/env python
"""Find Powerful Owl calls in recordings and write JSON, CSV, Raven and Audacity results.

    python scripts/detect.py RECORDING_OR_FOLDER... --out results/
    python scripts/detect.py /surveys/2024/ --out results/ --backend onnx-int8 --workers 8   # CPU server
    accelerate launch scripts/detect.py /surveys/2024/ --out results/   # files sharded across processes

A file that fails gets one line on stderr and a row in summary.csv; the run goes on and the exit code is 1.
Re-running skips files that already have results for the same model and parameters (``--force`` redoes them).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tqdm.auto import tqdm

from owlfinder.audio import quiet_decoder_messages
from owlfinder.detect import batch
from owlfinder.detect.detection import DetectionParams
from owlfinder.detect.exports import FORMATS
from owlfinder.detect.model import BACKENDS, ModelError, load_classifier

#: Narrower terminals (or ones that report no width, as some CI and container consoles do) get plain lines.
MIN_BAR_WIDTH = 40
#: What a re-run did with a file it had finished before (summary.csv status -> the line people read).
REUSED = {
    "reused": "reused saved results (same model, windows and threshold)",
    "rethresholded": "reused saved scores; events re-derived for the new threshold, gap or minimum length",
}


def _bar_width(stream) -> int:
    """Columns of the terminal behind ``stream``; 0 when it is not a terminal or reports no width."""
    try:
        return os.get_terminal_size(stream.fileno()).columns if stream.isatty() else 0
    except (OSError, ValueError, AttributeError):
        return 0


def fmt_duration(seconds: float) -> str:
    """``hh:mm:ss`` for a duration in seconds."""
    s = int(round(max(0.0, seconds)))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", metavar="PATH", help="recordings or folders (walked recursively)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--model", default=None,
                   help="Hub id or local folder (default: $OWL_MODEL, else the bundled starter model)")
    p.add_argument("--threshold", type=float, default=None,
                   help="decision threshold (default: the model's calibrated threshold, else 0.5)")
    p.add_argument("--hop", type=float, default=2.5, help="seconds between window starts (default 2.5)")
    p.add_argument("--gap", type=float, default=0.7, help="merge positive windows this close, in s (0.7)")
    p.add_argument("--min-duration", type=float, default=0.0, help="drop events shorter than this, in s")
    p.add_argument("--second-look", type=float, default=DetectionParams.second_look_logit, metavar="LOGITS",
                   help="also score the windows half a hop around every window within LOGITS of the threshold "
                        "(default %(default)s; docs/cli.md)")
    p.add_argument("--no-second-look", action="store_true", help="the window grid alone")
    p.add_argument("--description-check", type=float, default=DetectionParams.description_check_logit,
                   metavar="LOGITS", help="check every window within LOGITS of the threshold against the published "
                                          "call description and demote those it rules out (on by default, "
                                          "%(default)s; docs/cli.md)")
    p.add_argument("--no-description-check", action="store_true", help="no description check")
    p.add_argument("--description-unpaired", type=float, default=DetectionParams.description_unpaired_logit,
                   metavar="LOGITS", help="with the description check: lower a window with clear notes but no "
                                          "double hoot by LOGITS (default %(default)s; docs/cli.md)")
    p.add_argument("--batch-size", type=int, default=None, help="windows per model call (32 CPU, 256 GPU)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--backend", default="torch", choices=list(BACKENDS),
                   help="torch (fp16 on CUDA), int8 (torch dynamic quantisation), onnx or onnx-int8 (ONNX "
                        "Runtime, exported once and cached; CPU only; see docs/onnx.md)")
    p.add_argument("--workers", type=int, default=1,
                   help="CPU processes scanning files in parallel, one thread each (default 1)")
    p.add_argument("--positive-label", default=None, help="the model's owl label, if not guessable")
    p.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS),
                   help="result formats (default: all)")
    p.add_argument("--max-duration", type=float, default=None, help="refuse recordings longer than this, in h")
    p.add_argument("--force", action="store_true", help="redo files that already have results")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1 or "ACCELERATE_MIXED_PRECISION" in os.environ
    state = None
    if distributed:
        from accelerate import PartialState

        state = PartialState()
    rank = state.process_index if state else 0
    world = state.num_processes if state else 1
    device = str(state.device) if state and args.device == "auto" else args.device
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers > 1:
        if distributed:
            print("error: --workers and accelerate launch do not mix; use one or the other", file=sys.stderr)
            return 2
        device = "cpu"

    try:
        clf = load_classifier(args.model, device=device, positive_label=args.positive_label,
                              backend=args.backend)
    except ModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        params = DetectionParams(
            threshold=args.threshold, hop_s=args.hop, gap_s=args.gap, min_duration_s=args.min_duration,
            batch_size=args.batch_size or (256 if clf.device.type == "cuda" else 32),
            max_duration_s=None if args.max_duration is None else args.max_duration * 3600,
            second_look_logit=None if args.no_second_look else args.second_look,
            description_check_logit=None if args.no_description_check else args.description_check,
            description_unpaired_logit=args.description_unpaired,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    inputs, missing = batch.collect_inputs(args.paths)
    mine = inputs[rank::world]  # round-robin shard: each process gets its own files
    args.out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        for row in missing:
            tqdm.write(f"error: {row.file}: {row.error}", file=sys.stderr)
        threshold = clf.threshold if params.threshold is None else params.threshold
        sites = (f" ({len(clf.site_thresholds)} per-site: "
                 + ", ".join(f"{k} {v['threshold']:.3f}" for k, v in sorted(clf.site_thresholds.items())) + ")"
                 if clf.site_thresholds and params.threshold is None else "")
        print(f"model {clf.name} on {clf.device} ({clf.backend}) | threshold {threshold:.3f}{sites} | "
              f"{len(inputs)} recording(s)" + (f" over {world} processes" if world > 1 else "")
              + (f" over {args.workers} worker processes" if args.workers > 1 else ""), file=sys.stderr)

    bars = not args.quiet and _bar_width(sys.stderr) >= MIN_BAR_WIDTH
    plain = not args.quiet and not bars
    total_bar = tqdm(total=len(mine), unit="file", desc=f"files[{rank}]" if world > 1 else "files",
                     position=2 * rank, disable=not bars)
    file_bar = tqdm(total=0, unit="s", desc="audio", position=2 * rank + 1, leave=False, disable=not bars,
                    bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{rate_fmt}]")
    done_files = 0
    next_tenth = 1

    def say(msg: str) -> None:
        (tqdm.write if bars else print)(msg, file=sys.stderr, flush=True)

    def on_file_start(item: batch.InputFile, duration_s: float) -> None:
        nonlocal next_tenth
        next_tenth = 1
        total_bar.set_postfix_str(item.path.name[-40:])
        file_bar.reset(total=duration_s)
        if plain:
            say(f"[{done_files + 1}/{len(mine)}] {item.path} ({fmt_duration(duration_s)})")

    def progress(done: float, total: float) -> None:
        nonlocal next_tenth
        file_bar.n = done
        file_bar.refresh()
        # Without bars, one line per tenth of a file: a long recording shows it is moving, logs stay short.
        if plain and total > 0 and done < total and done / total >= next_tenth / 10:
            next_tenth = int(10 * done / total) + 1
            say(f"  {100 * done / total:3.0f} %  {fmt_duration(done)} of {fmt_duration(total)}")

    def on_error(msg: str) -> None:
        say(f"error: {msg}")

    results = []
    if args.workers > 1 and len(mine) > 1:
        from owlfinder.detect.parallel import detect_files_parallel

        def on_done(res: batch.FileResult) -> None:
            nonlocal done_files
            done_files += 1
            total_bar.update(1)
            if res.status == "error":
                on_error(f"{res.file}: {res.error}")
            elif plain:
                say(f"[{done_files}/{len(mine)}] {res.file}: {res.status}")

        results = detect_files_parallel(mine, args.out, args.model, params, workers=min(args.workers, len(mine)),
                                        backend=args.backend, positive_label=args.positive_label,
                                        formats=args.formats, force=args.force, on_done=on_done)
        mine = []
    with quiet_decoder_messages() as skipped:  # libmpg123 prints a line per damaged MP3 frame
        for item in mine:
            got = batch.detect_files([item], args.out, clf, params, formats=args.formats, force=args.force,
                                     on_file_start=on_file_start, progress=progress, on_error=on_error)
            for r in got:  # say which threshold a file got when it is not the one announced above
                if r.threshold is not None and params.threshold is None and abs(r.threshold - clf.threshold) > 1e-12:
                    say(f"{item.path.name}: threshold {r.threshold:.3f}, {r.threshold_note}")
            results += got
            done_files += 1
            total_bar.update(1)
            if not args.quiet and results and results[-1].status in REUSED:
                say(f"  {results[-1].file}: {REUSED[results[-1].status]}")
        file_bar.close()
        total_bar.close()
    if skipped.count:
        print(f"note: the MP3 decoder reported {skipped.count} damaged frame(s) (libmpg123 'part2_3_length' "
              "messages) and skipped them, about 26 ms of audio each; the rest was scanned", file=sys.stderr)

    if world > 1:
        batch.write_summary(results, args.out / f"summary.part{rank}.csv")
        state.wait_for_everyone()
        if rank == 0:
            parts = sorted(args.out.glob("summary.part*.csv"))
            merged = [r for part in parts for r in batch.read_summary(part)]
            batch.write_summary(missing + merged, args.out / "summary.csv")
            for part in parts:
                part.unlink()
        state.wait_for_everyone()
        results = batch.read_summary(args.out / "summary.csv") if rank == 0 else results
    else:
        results = missing + results
        batch.write_summary(results, args.out / "summary.csv")

    failed = [r for r in results if r.status == "error"]
    if rank == 0:
        n_events = sum(r.events or 0 for r in results)
        kept = [f"{n} {status} (results already there{'' if status == 'reused' else ', events re-derived'})"
                for status in ("reused", "rethresholded") if (n := sum(r.status == status for r in results))]
        saved = " (saved scores were used; --force rescans)" if kept else ""
        print(f"{len(results) - len(failed)} done" + "".join(f", {k}" for k in kept) + saved
              + f", {len(failed)} failed, {n_events} event(s); summary: {args.out / 'summary.csv'}",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
