"""Split groups: which recording each clip came from, so no recording lies on both sides of a split.

Segments of one recording share its background, recorder and often the same calling bird; when they land
on both sides of a train/validation split the validation score is inflated and the calibrated threshold
too permissive. A clip's group is, in order of preference:

1. ``--group_column NAME`` (any column of the dataset), optionally narrowed by ``--group_regex``;
2. the dataset's ``group`` column, else its ``source`` column (the recording a clip was cut from);
3. the recording named in its file name: seed-style clips are called ``<recording>_segment_<n>.<ext>``
   (``WCS5_20231229_045900_segment_97.wav`` comes from ``WCS5_20231229_045900``); ``--group_regex`` applies
   to the file name when no column is named. A name that follows no rule is its own group.

``--group_regex`` is a Python regular expression searched in the value (file names without folder and
extension); the named group ``(?P<group>...)``, else the first group, else the whole match, is the group.
:func:`write_splits` records the groups of each split in ``splits.json`` so anyone can check the split.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from owlfinder.durable import atomic_write_text
from owlfinder.errors import OwlFinderError

__all__ = ["SEGMENT_RE", "GroupError", "derive_groups", "recording_of", "split_groups", "store_column",
           "write_splits"]

#: ``<recording>_segment_<n>`` (also ``-segment-``, ``_seg_``), on a file name without its extension.
SEGMENT_RE = re.compile(r"^(?P<group>.+?)[_\-. ](?:segment|seg)[_\-]?\d+$", re.IGNORECASE)


class GroupError(OwlFinderError, ValueError):
    """Groups that cannot be derived as asked; ``str(err)`` is one line."""


def _stem(value: str) -> str:
    name = PurePosixPath(str(value).replace("\\", "/")).name
    return name.rsplit(".", 1)[0] if "." in name[1:] else name


def recording_of(filename: str) -> str:
    """The recording a clip file comes from: ``<recording>`` of ``<recording>_segment_<n>.<ext>``, else its stem."""
    stem = _stem(filename)
    m = SEGMENT_RE.match(stem)
    return m.group("group") if m else stem


def _compile(regex: str) -> re.Pattern:
    try:
        return re.compile(regex)
    except re.error as err:
        raise GroupError(f"--group_regex {regex!r} is not a regular expression ({err})") from None


def _apply(pattern: re.Pattern, value: str) -> str | None:
    m = pattern.search(value)
    if m is None:
        return None
    if "group" in pattern.groupindex and m.group("group"):
        return m.group("group")
    if pattern.groups and m.group(1):
        return m.group(1)
    return m.group(0) or None


def derive_groups(columns: Mapping[str, Sequence], *, group_column: str | None = None,
                  group_regex: str | None = None, where: str = "dataset") -> tuple[list[str], str]:
    """One group per row, and a sentence saying how they were derived.

    Args:
        columns: the dataset's columns (``filename``, ``group``, ``source``, ... as lists of equal length).
        group_column: take groups from this column.
        group_regex: narrow each value (of ``group_column``, else the file name) to the regex's match.
        where: the dataset, for errors.

    Raises:
        GroupError: a missing column, an empty value, or a value the regex does not match (one line, naming
            the first such row and how many there are).
    """
    n = len(next(iter(columns.values()))) if columns else 0
    pattern = _compile(group_regex) if group_regex else None
    if group_column:
        if group_column not in columns:
            raise GroupError(f"{where}: no column {group_column!r} for --group_column (has {', '.join(columns)})")
        values = [None if v is None else str(v) for v in columns[group_column]]
        empty = [i for i, v in enumerate(values) if not v]
        if empty:
            raise GroupError(f"{where}: {len(empty)} row(s) have no {group_column!r} value, e.g. row {empty[0]}")
        source, how = values, f"column '{group_column}'"
        if pattern is not None:
            source = [_stem(v) if group_column == "filename" else v for v in values]
    else:
        filenames = list(columns.get("filename") or [None] * n)
        own = [g or s for g, s in zip(columns.get("group") or [None] * n, columns.get("source") or [None] * n,
                                      strict=True)]
        if pattern is not None:
            if any(f is None for f in filenames):
                raise GroupError(f"{where}: --group_regex needs a 'filename' on every row (or name a --group_column)")
            source, how = [_stem(f) for f in filenames], "file names"
        else:
            groups, used = [], set()
            for i, (g, f) in enumerate(zip(own, filenames, strict=True)):
                if g:
                    groups.append(str(g))
                    used.add("the dataset's group/source column")
                elif f:
                    groups.append(recording_of(f))
                    used.add("recording names in file names (<recording>_segment_<n>)")
                else:
                    raise GroupError(f"{where}: row {i} has no group, source or filename to split by")
            return groups, "groups from " + " and ".join(sorted(used))
    if pattern is None:
        return list(source), f"groups from {how}"
    out, misses = [], []
    for i, v in enumerate(source):
        g = _apply(pattern, v)
        if g is None:
            misses.append(i)
        out.append(g)
    if misses:
        raise GroupError(f"{where}: --group_regex {group_regex!r} does not match {len(misses)} of {n} row(s), "
                         f"e.g. {source[misses[0]]!r}")
    return out, f"groups from {how} by --group_regex {group_regex!r}"


def store_column(store, split: str, name: str) -> list | None:
    """A column outside the store schema (e.g. ``site``), for the rows ``store.load(split, include_unsure=False)``
    returns and in its order; ``None`` when no shard has it.

    ``DatasetStore.load`` keeps only the schema's columns, so an extra column is read from the shards here,
    with the same selection (latest row per ``clip_id``, unsure rows dropped).
    """
    import pyarrow.parquet as pq

    from owlfinder.data.schema import UNSURE
    from owlfinder.data.store import latest_indices

    wanted = (name, "label", "verdict", "clip_id", "labelled_at")
    parts, found = [], False
    for path in store.local_paths(store.shards(split)):
        have = set(pq.read_schema(path).names)
        found |= name in have
        t = pq.read_table(path, columns=[c for c in wanted if c in have])
        parts.append({c: (t.column(c).to_pylist() if c in have else [None] * len(t)) for c in wanted})
    if not found:
        return None
    cols = {c: [v for p in parts for v in p[c]] for c in wanted}
    keep = latest_indices(cols["clip_id"], cols["labelled_at"])
    out = []
    for i in keep:
        lab, verdict = cols["label"][i], cols["verdict"][i]
        if lab is not None and verdict != UNSURE and lab != UNSURE and not (isinstance(lab, int) and lab < 0):
            out.append(cols[name][i])
    return out


def split_groups(splits: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Sorted distinct groups per split."""
    return {name: sorted(set(groups)) for name, groups in splits.items()}


def write_splits(output_dir: str | os.PathLike, splits: Mapping[str, Sequence[str]]) -> Path:
    """Write ``splits.json`` (``{"train": [group, ...], "validation": [...], ...}``) durably; return its path."""
    path = Path(output_dir) / "splits.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(split_groups(splits), indent=1, ensure_ascii=False) + "\n")
    return path
