#!/usr/bin/env python
"""Build (or extend) an owl / not_owl dataset of 16 kHz mono 5 s clips from folders of recordings.

    python scripts/build_dataset.py --owl owls/ --not-owl negatives/ --to ./owl_data/ds
    python scripts/build_dataset.py --csv labels.csv --to me/powerful-owl-clips --group-by csv

Any format and sample rate in; longer files are cut into 5 s clips, shorter ones filled with their own audio
(reflected), never zeros. ``--csv`` lists ``filename,label[,group,reason]`` (paths relative to the CSV;
label ``owl``, ``not_owl`` or ``unsure``). TARGET is a local folder or a Hub dataset id; building into an
existing one appends new shards and skips clips it already holds (a clip is known by its audio and span, not
its file name, so a new batch with reused file names is added in full), and re-running after an interruption
continues. Files that are not audio are skipped with one line each; unreadable audio gets one ``error:``
line and the exit code is 1, but every good file is still built.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from owlfinder.audio import AudioError, is_audio_path
from owlfinder.data.clips import MIN_CLIP_S, clips_from_file, encode_flac, source_name
from owlfinder.data.schema import (
    CLIP_S,
    SAMPLE_RATE,
    VERDICTS,
    audio_fingerprint,
    clip_id,
    is_legacy_clip_id,
    legacy_clip_id,
)
from owlfinder.data.store import DEFAULT_LICENSE, DatasetStore, StoreError


@dataclass(frozen=True)
class Item:
    """One input file and what we know about it."""

    path: Path
    verdict: str
    root: Path  # the folder it was found under (or the CSV's folder)
    group: str | None = None  # from the CSV
    reason: str | None = None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--owl", nargs="+", action="extend", default=[], type=Path, metavar="DIR",
                   help="folders of owl recordings (walked recursively)")
    p.add_argument("--not-owl", nargs="+", action="extend", default=[], type=Path, metavar="DIR",
                   help="folders of recordings without owls")
    p.add_argument("--csv", action="append", default=[], type=Path, metavar="FILE",
                   help="table with filename,label[,group,reason]; paths relative to the CSV's folder")
    p.add_argument("--to", required=True, metavar="TARGET", help="local folder or Hub dataset id owner/name")
    p.add_argument("--group-by", choices=["parent", "file", "csv"], default="parent",
                   help="group (for leakage-free splits): the parent folder relative to the input root "
                        "(default), the file itself, or the CSV's group column (else the parent)")
    p.add_argument("--split", default="train", help="split to append to (default train)")
    p.add_argument("--clip-s", type=float, default=CLIP_S, help="clip length in s (default 5)")
    p.add_argument("--min-s", type=float, default=MIN_CLIP_S,
                   help="drop a file, or a file's last partial piece, shorter than this (default 1 s)")
    p.add_argument("--fill", choices=["reflect", "repeat"], default="reflect",
                   help="how short audio is filled (default reflect)")
    p.add_argument("--labeller", default=None, help="name recorded in the labeller column")
    p.add_argument("--license", default=DEFAULT_LICENSE, help=f"licence for a new dataset card ({DEFAULT_LICENSE})")
    p.add_argument("--max-shard-clips", type=int, default=1000,
                   help="write a shard every this many clips (bounds memory and what a crash can cost)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if not (args.owl or args.not_owl or args.csv):
        p.error("give at least one of --owl, --not-owl, --csv")
    return args


def say(msg: str) -> None:
    tqdm.write(msg, file=sys.stderr)


class Errors:
    """Counts ``error:`` lines (they make the exit code 1); ``skip:`` lines are informational."""

    n = 0

    @classmethod
    def report(cls, msg: str) -> None:
        cls.n += 1
        say(f"error: {msg}")


def walk(root: Path, verdict: str) -> list[Item]:
    """Audio files under ``root``; everything else gets a one-line skip message."""
    if root.is_file():
        return [Item(root, verdict, root.parent)]
    if not root.is_dir():
        Errors.report(f"{root}: no such folder")
        return []
    items = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if is_audio_path(path):
            items.append(Item(path, verdict, root))
        else:
            say(f"skip: {path.relative_to(root)}: not an audio file")
    return items


def read_csv(table: Path) -> list[Item]:
    """Items listed in a CSV; bad lines get a one-line message naming the CSV and line."""
    try:
        with open(table, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        Errors.report(f"{table.name}: unreadable CSV ({' '.join(str(err).split())})")
        return []
    if rows and not {"filename", "label"} <= set(rows[0]):
        Errors.report(f"{table.name}: needs columns filename,label[,group,reason], has {sorted(rows[0])}")
        return []
    items = []
    for line, row in enumerate(rows, start=2):
        name, label = (row.get("filename") or "").strip(), (row.get("label") or "").strip()
        if label not in VERDICTS:
            Errors.report(f"{table.name} line {line}: label must be one of {VERDICTS}, got {label!r}")
            continue
        path = (table.parent / name) if name else table.parent
        if not name or not path.is_file():
            Errors.report(f"{table.name} line {line}: {name or '(empty)'}: file not found")
            continue
        items.append(Item(path, label, table.parent, (row.get("group") or "").strip() or None,
                          (row.get("reason") or "").strip() or None))
    return items


def group_of(item: Item, mode: str) -> str:
    try:
        rel = item.path.resolve().relative_to(item.root.resolve())
    except ValueError:
        rel = Path(item.path.name)
    if mode == "csv" and item.group:
        return item.group
    if mode == "file" or rel.parent == Path("."):
        # A file straight under the root is its own recording: lumping them all into one group would put
        # a whole class into one split.
        return rel.with_suffix("").as_posix()
    return rel.parent.as_posix()


class Known:
    """The clips a store already holds: content ids, plus legacy (name-based) ids checked by their audio."""

    def __init__(self, store: DatasetStore):
        self.store = store
        self.ids = store.clip_ids()
        self._legacy: dict[str, set[str]] | None = None  # legacy id -> fingerprints, read on first need

    def has(self, cid: str, legacy: str, fingerprint: str) -> bool:
        """True when the clip is in the store under its content id, or under its legacy id with the same
        audio (an older build of the same file); a legacy id whose audio differs is another recording."""
        if cid in self.ids:
            return True
        if legacy not in self.ids:
            return False
        if self._legacy is None:  # one pass over the store for every legacy row, not one per clip
            self._legacy = self.store.fingerprints(i for i in self.ids if is_legacy_clip_id(i))
        return fingerprint in self._legacy.get(legacy, set())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    Errors.n = 0
    items = [i for d in args.owl for i in walk(d, "owl")] + [i for d in args.not_owl for i in walk(d, "not_owl")]
    items += [i for t in args.csv for i in read_csv(t)]
    try:
        store = DatasetStore.open(args.to, license=args.license)
        have = Known(store)
    except (StoreError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

    counts: Counter[str] = Counter()
    shards: list[str] = []
    pending: list[dict] = []
    skipped_dup = 0

    def flush() -> None:
        if pending:
            shards.append(store.append(pending, split=args.split))
            pending.clear()

    try:
        for item in tqdm(items, desc="build", unit="file", disable=args.quiet):
            source = source_name(item.path, item.root)
            group = group_of(item, args.group_by)
            n = 0
            try:
                for start, end, y in clips_from_file(item.path, SAMPLE_RATE, args.clip_s, min_s=args.min_s,
                                                     mode=args.fill):
                    n += 1
                    fp = audio_fingerprint(y)
                    cid = clip_id(fp, start, end)
                    if have.has(cid, legacy_clip_id(source, start, end), fp):
                        skipped_dup += 1
                        continue
                    have.ids.add(cid)
                    pending.append({"audio": encode_flac(y, SAMPLE_RATE), "verdict": item.verdict,
                                    "clip_id": cid, "source": source, "start_s": start, "end_s": end,
                                    "filename": item.path.name, "group": group, "reason": item.reason,
                                    "labeller": args.labeller})
                    counts[item.verdict] += 1
                    if len(pending) >= args.max_shard_clips:
                        flush()
            except AudioError as err:
                kept = f" (kept {n} clip(s) decoded before the error)" if n else ""
                Errors.report(f"{item.path}: {err.reason}{kept}")
                continue
            if n == 0:
                say(f"skip: {item.path}: shorter than {args.min_s:g} s")
        flush()
    except (StoreError, OSError) as err:
        # Shards already written stay; re-running skips their clips.
        print(f"error: writing to {args.to} failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        flush()  # keep the clips built so far: one more shard
        print(f"interrupted; {len(shards)} shard(s) were written and are kept", file=sys.stderr)
        return 130

    total = sum(counts.values())
    print(f"{total} new clip(s) in {args.to} split {args.split}: "
          + (", ".join(f"{k} {counts[k]}" for k in VERDICTS if counts[k]) or "none"))
    if skipped_dup:
        print(f"{skipped_dup} clip(s) already in the dataset were skipped")
    if Errors.n:
        print(f"{Errors.n} input(s) could not be used (see the error: lines)")
    for s in shards:
        print(f"shard: {s}")
    return 1 if Errors.n else 0


if __name__ == "__main__":
    sys.exit(main())
