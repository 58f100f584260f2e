"""Several training datasets at once: each a Hub id or a folder, conformed to one schema, each keeping its groups.

A labelling round in the Space gives a small dataset (its ``OWL_DATA_DIR/dataset`` folder or the Hub dataset
it syncs to); the base dataset the model was trained on lives elsewhere. :func:`load_sources` reads any
number of them (dataset stores or labelled ``owl/``/``not_owl/`` folders, see
:mod:`owlfinder.train.clipsets`), maps their labels onto ``[owl, not_owl]`` by name and prefixes every group
with the source's name, so two datasets never share a group by accident. :func:`combine_sources` splits each
source on its own terms (its own validation split when it has one, else by group, else by time blocks,
:mod:`owlfinder.train.splits`) and joins the parts.

Hard negatives: a not-owl verdict given with a reason from the labelling tab (boobook, koala, frog/insect,
... :data:`owlfinder.data.schema.REASONS`) is a clip the model found owl-like; :func:`apply_reason_weights`
gives such clips a larger loss weight.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from owlfinder.data.schema import CLIP_S, LABELS, REASONS, SAMPLE_RATE
from owlfinder.train.clipsets import ClipSet, DataError, load_clip_sets
from owlfinder.train.splits import DEFAULT_BLOCK_S, DEFAULT_GAP_S, DEFAULT_MIN_GROUPS, split_source

__all__ = [
    "DEFAULT_HARD_NEGATIVE_WEIGHT",
    "Source",
    "apply_reason_weights",
    "combine_sources",
    "conform",
    "load_sources",
    "parse_reason_weights",
    "source_name",
]

#: Loss weight of a not-owl clip labelled with a reason (a confusion the model made), relative to 1.
DEFAULT_HARD_NEGATIVE_WEIGHT = 2.0
_VALIDATION = ("validation", "valid", "dev")


@dataclass
class Source:
    """One dataset's clips by split. ``name`` prefixes its groups (``name/group``)."""

    name: str
    location: str
    sets: dict[str, ClipSet] = field(default_factory=dict)

    def describe(self) -> str:
        return "; ".join(f"{k}: {v.describe()}" for k, v in self.sets.items())


def source_name(location: str | os.PathLike) -> str:
    """A short name for a dataset: a folder's name, or a Hub id's repository name."""
    text = os.fspath(location).rstrip("/")
    return Path(text).name or text


def conform(clips: ClipSet, where: str) -> ClipSet:
    """``clips`` with labels in :data:`~owlfinder.data.schema.LABELS` order (``owl = 0``), matched by name.

    Raises:
        DataError: label names other than ``owl`` and ``not_owl``.
    """
    names = [str(n) for n in clips.label_names]
    if sorted(names) != sorted(LABELS):
        raise DataError(f"{where}: labels {names} are not {LABELS}; relabel the dataset to owl/not_owl")
    if names == LABELS:
        return clips
    mapping = np.array([LABELS.index(n) for n in names], dtype=np.int64)
    out = clips.subset(np.arange(len(clips)))
    out.labels = mapping[clips.labels]
    out.label_names = list(LABELS)
    return out


def load_sources(locations: Sequence[str | os.PathLike], *, sampling_rate: int = SAMPLE_RATE,
                 clip_s: float = CLIP_S, token: str | None = None, progress: bool = True,
                 group_column: str | None = None, group_regex: str | None = None) -> list[Source]:
    """Read every dataset, conform its labels, and prefix its groups with its name when there are several.

    Raises:
        DataError: no dataset given, or one that cannot be read (one line naming it).
    """
    if not locations:
        raise DataError("no dataset given")
    out: list[Source] = []
    used: set[str] = set()
    for loc in locations:
        base = source_name(loc)
        name, k = base, 2
        while name in used:
            name, k = f"{base}-{k}", k + 1
        used.add(name)
        sets = load_clip_sets(loc, sampling_rate=sampling_rate, clip_s=clip_s, token=token, progress=progress,
                              group_column=group_column, group_regex=group_regex)
        sets = {split: conform(cs, f"{loc} [{split}]") for split, cs in sets.items()}
        if len(locations) > 1:
            for cs in sets.values():
                cs.groups = [f"{name}/{g}" for g in cs.groups]
                cs.sources = [f"{name}/{s}" for s in cs.sources]
        out.append(Source(name, os.fspath(loc), sets))
    return out


def parse_reason_weights(text: str | None, default: float = DEFAULT_HARD_NEGATIVE_WEIGHT) -> dict[str, float]:
    """Per-reason loss weights: every reason of :data:`REASONS` at ``default``, overridden by
    ``"boobook=3,koala=2.5"``.

    Raises:
        ValueError: an unknown reason or a weight that is not a positive number.
    """
    weights = {r: float(default) for r in REASONS}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, val = part.partition("=")
        key = key.strip()
        if not sep or key not in REASONS:
            raise ValueError(f"reason weight {part.strip()!r}: expected REASON=WEIGHT with REASON one of {REASONS}")
        try:
            w = float(val)
        except ValueError:
            raise ValueError(f"reason weight {part.strip()!r}: {val.strip()!r} is not a number") from None
        if not w > 0:
            raise ValueError(f"reason weight {part.strip()!r} must be positive")
        weights[key] = w
    return weights


def apply_reason_weights(clips: ClipSet, weights: Mapping[str, float]) -> dict[str, int]:
    """Set the loss weight of every not-owl clip that carries a known reason; returns clips per reason."""
    counts: dict[str, int] = {}
    for i, (reason, is_owl) in enumerate(zip(clips.reasons, clips.is_owl, strict=True)):
        if is_owl or not reason or reason not in weights:
            continue
        clips.weights[i] = float(weights[reason])
        counts[reason] = counts.get(reason, 0) + 1
    return counts


def _train_split(sets: Mapping[str, ClipSet], where: str) -> str:
    if "train" in sets:
        return "train"
    if "all" in sets:
        return "all"
    others = [s for s in sets if s != "test" and s not in _VALIDATION]
    if len(others) != 1:
        raise DataError(f"{where}: cannot tell the training split among {sorted(sets)}; name it 'train'")
    return others[0]


def combine_sources(sources: Sequence[Source], *, validation_fraction: float = 0.2, seed: int = 0,
                    min_groups: int = DEFAULT_MIN_GROUPS, block_s: float = DEFAULT_BLOCK_S,
                    gap_s: float = DEFAULT_GAP_S) -> tuple[ClipSet, ClipSet, str, dict[str, ClipSet]]:
    """Training and validation clips from several sources, each split on its own terms.

    A source's own ``validation`` split is used as given; otherwise its training split is split by group
    (at least ``min_groups`` groups) or by time blocks (:func:`owlfinder.train.splits.split_source`).

    Returns:
        ``(train, validation, how, tests)``: ``how`` says per source which rule was used (for the log and
        the model card); ``tests`` holds each source's ``test`` split, keyed by source name.

    Raises:
        DataError: a source that cannot be split.
    """
    trains: list[ClipSet] = []
    vals: list[ClipSet] = []
    hows: list[str] = []
    tests: dict[str, ClipSet] = {}
    for src in sources:
        label = src.name if len(sources) > 1 else ""
        tr_name = _train_split(src.sets, src.location)
        val_name = next((s for s in _VALIDATION if s in src.sets), None)
        train = src.sets[tr_name]
        if "test" in src.sets:
            tests[src.name] = src.sets["test"]
        if val_name is not None:
            trains.append(train)
            vals.append(src.sets[val_name])
            overlap = set(train.groups) & set(src.sets[val_name].groups)
            how = f"{label + ': ' if label else ''}the dataset's own '{tr_name}' and '{val_name}' splits"
            if overlap:
                how += f" (warning: {len(overlap)} group(s) in both, e.g. {sorted(overlap)[0]!r})"
            hows.append(how)
            continue
        sp = split_source(train, fraction=validation_fraction, seed=seed, min_groups=min_groups,
                          block_s=block_s, gap_s=gap_s, name=label)
        trains.append(train.subset(sp.train))
        vals.append(train.subset(sp.held))
        hows.append(sp.how)
    train_all = ClipSet.concat(trains)
    vals = [v for v in vals if len(v)]
    if not vals:
        raise DataError("no validation clips in any dataset")
    return train_all, ClipSet.concat(vals), "; ".join(hows), tests
