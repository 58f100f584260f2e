#!/usr/bin/env python
"""Cut recordings into 16 kHz mono clips for labelling, with a manifest the labelling queue ingests.

    python scripts/chunk.py night1.wav night2.flac --out to_label/                  # every 5 s
    python scripts/chunk.py --from results/night1.json --context 2 --uncertain 20 --out to_label/

Without ``--from`` each recording (or every audio file under a folder) is streamed into consecutive 5 s
clips. With ``--from DETECTIONS.json`` (the detection engine's result, repeatable) only the flagged events,
widened by ``--context`` seconds, and the ``--uncertain`` windows scored nearest the threshold are cut; the
recording is the JSON's ``file``, or a RECORDING given here with the same file name.

Writes ``OUT/clips/<source>/<stem>_<start ms>_<clip_id>.wav`` and appends one JSON line per clip to
``OUT/manifest.jsonl``: clip_id, audio (path relative to OUT), source, start_s, end_s, score, model, kind,
recording. ``clip_id`` is the content id (the clip's audio and span), so two recordings with the same name
never share clips. Re-running skips clips already in the manifest (also those an older version wrote under a
name-based id, when their audio is the same). A file that fails gets one ``error:`` line and
the exit code is 1; the other files are still cut.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from owlfinder import audio
from owlfinder.data.clips import MIN_CLIP_S, clips_from_file, fit_to_length, source_name, spans_from_detection
from owlfinder.data.schema import (
    CLIP_S,
    SAMPLE_RATE,
    audio_fingerprint,
    clip_id,
    is_legacy_clip_id,
    legacy_clip_id,
    pcm16,
)
from owlfinder.durable import atomic_write

MANIFEST = "manifest.jsonl"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recordings", nargs="*", type=Path, metavar="RECORDING",
                   help="recordings or folders; with --from, only to locate moved recordings")
    p.add_argument("--out", required=True, type=Path, help="output folder (clips/ and manifest.jsonl)")
    p.add_argument("--from", dest="detections", action="append", default=[], type=Path, metavar="JSON",
                   help="a detection result; cut only its events and uncertain windows (repeatable)")
    p.add_argument("--context", type=float, default=0.0, help="seconds added around each event (default 0)")
    p.add_argument("--uncertain", type=int, default=0, metavar="N",
                   help="also cut the N windows scored nearest the threshold (default 0)")
    p.add_argument("--clip-s", type=float, default=CLIP_S, help="clip length in s (default 5)")
    p.add_argument("--min-s", type=float, default=MIN_CLIP_S,
                   help="naive mode: drop a last partial piece shorter than this (default 1 s)")
    p.add_argument("--root", type=Path, default=None,
                   help="name sources relative to this folder (default: parent folder/file name)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if not args.recordings and not args.detections:
        p.error("give RECORDING paths and/or --from DETECTIONS.json")
    return args


def say(msg: str) -> None:
    tqdm.write(msg, file=sys.stderr)


class Manifest:
    """``manifest.jsonl``, append-only: a line is written only after its WAV is in place."""

    def __init__(self, out: Path):
        self.out = out
        self.path = out / MANIFEST
        self.ids: set[str] = set()
        self.legacy: dict[str, str] = {}  # name-based id of an older manifest line -> its WAV
        if self.path.exists():
            for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
                try:
                    rec = json.loads(line)
                    self.ids.add(rec["clip_id"])
                    if is_legacy_clip_id(rec["clip_id"]):
                        self.legacy[rec["clip_id"]] = rec.get("audio") or ""
                except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                    say(f"warning: {self.path.name} line {n}: not a manifest record, ignored")
        self.added = 0

    def has(self, y: np.ndarray, source: str, start_s: float, end_s: float) -> tuple[bool, str]:
        """``(known, content id)``: known when the manifest holds this clip under its content id, or under
        the legacy id of ``(source, start_s, end_s)`` with the same audio (a line an older version wrote)."""
        fp = audio_fingerprint(y)
        cid = clip_id(fp, start_s, end_s)
        if cid in self.ids:
            return True, cid
        old = legacy_clip_id(source, start_s, end_s)
        if old in self.legacy:
            try:
                prev = sf.read(self.out / self.legacy[old], dtype="int16", always_2d=False)[0]
            except Exception:  # its WAV is gone: cut the clip again
                return False, cid
            return audio_fingerprint(prev) == fp, cid
        return False, cid

    def add(self, y: np.ndarray, record: dict, rel_wav: str) -> None:
        wav = self.out / rel_wav
        # pcm16: the samples the clip id was computed from, so the WAV re-reads to the same id.
        atomic_write(wav, lambda f: sf.write(f, pcm16(y), SAMPLE_RATE, format="WAV", subtype="PCM_16"))
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({**record, "audio": rel_wav}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.ids.add(record["clip_id"])
        self.added += 1


def wav_name(source: str, start_s: float, cid: str) -> str:
    """Where a clip's WAV goes; the id keeps clips of same-named recordings apart."""
    stem = source.rsplit(".", 1)[0] if "." in source.rsplit("/", 1)[-1] else source
    name = stem.rsplit("/", 1)[-1]
    return f"clips/{stem.replace('/', '__')}/{name}_{round(start_s * 1000):09d}_{cid}.wav"


def walk(paths: list[Path]) -> Iterator[Path]:
    for p in paths:
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.is_file() and audio.is_audio_path(f))
        else:
            yield p


def chunk_naive(path: Path, args: argparse.Namespace, manifest: Manifest) -> None:
    info = audio.probe(path)
    source = source_name(path, args.root)
    total = int(np.ceil(info.duration_s / args.clip_s))
    bar = tqdm(total=total, desc=path.name, unit="clip", leave=False, disable=args.quiet)
    try:
        for start, end, y in clips_from_file(path, SAMPLE_RATE, args.clip_s, min_s=args.min_s):
            bar.update()
            known, cid = manifest.has(y, source, start, end)
            if known:
                continue
            manifest.add(y, {"clip_id": cid, "source": source, "start_s": round(start, 3),
                             "end_s": round(end, 3), "score": None, "model": None, "kind": "chunk",
                             "recording": str(path.resolve())}, wav_name(source, start, cid))
    finally:
        bar.close()


def locate(doc: dict, det_path: Path, recordings: list[Path]) -> Path:
    file = doc.get("file")
    if not file:
        raise ValueError(f"{det_path.name}: no 'file' in the detection document")
    by_name = {p.name: p for p in walk(recordings)}
    if Path(file).name in by_name:
        return by_name[Path(file).name]
    for cand in (Path(file), det_path.parent / file):
        if cand.is_file():
            return cand
    raise ValueError(f"{det_path.name}: recording {file} not found (give it as a RECORDING argument)")


def chunk_detection(det_path: Path, args: argparse.Namespace, manifest: Manifest) -> None:
    try:
        doc = json.loads(det_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{det_path.name}: unreadable detection JSON ({' '.join(str(err).split())})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{det_path.name}: not a detection document")
    if doc.get("status") == "error":
        raise ValueError(f"{det_path.name}: the detection run failed on this file ({doc.get('error')})")
    try:
        spans = spans_from_detection(doc, args.clip_s, args.context, args.uncertain)
    except ValueError as err:
        raise ValueError(f"{det_path.name}: {err}") from None
    path = locate(doc, det_path, args.recordings)
    info = audio.probe(path)
    source = source_name(path, args.root)
    n = int(round(args.clip_s * SAMPLE_RATE))
    for sp in tqdm(spans, desc=path.name, unit="clip", leave=False, disable=args.quiet):
        y = audio.load(path, SAMPLE_RATE, start_s=sp.start_s, end_s=sp.end_s, info=info)
        if len(y) == 0:
            say(f"warning: {path.name}: no audio at {sp.start_s:.1f}-{sp.end_s:.1f} s, skipped")
            continue
        y = fit_to_length(y, n)
        known, cid = manifest.has(y, source, sp.start_s, sp.end_s)
        if known:
            continue
        manifest.add(y, {
            "clip_id": cid, "source": source, "start_s": sp.start_s, "end_s": sp.end_s, "score": sp.score,
            "model": doc.get("model"), "kind": sp.kind, "threshold": doc.get("threshold"),
            "recording": str(path.resolve()),
        }, wav_name(source, sp.start_s, cid))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(args.out)
    failed = 0
    jobs = ([("det", d) for d in args.detections] if args.detections
            else [("rec", r) for r in walk(args.recordings)])
    try:
        for kind, path in tqdm(jobs, desc="chunk", unit="file", disable=args.quiet):
            try:
                if kind == "det":
                    chunk_detection(path, args, manifest)
                else:
                    chunk_naive(path, args, manifest)
            except audio.AudioError as err:
                failed += 1
                say(f"error: {err.path}: {err.reason}")
            except ValueError as err:
                failed += 1
                say(f"error: {err}")
    except KeyboardInterrupt:
        print(f"interrupted; {manifest.added} clip(s) written are kept in {manifest.path}", file=sys.stderr)
        return 130
    print(f"{manifest.added} new clip(s) in {args.out / 'clips'}; manifest {manifest.path} "
          f"({len(manifest.ids)} clip(s) in all)")
    if failed:
        print(f"{failed} file(s) failed (see error: lines)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
