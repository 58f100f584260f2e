"""Leakage-free splits for a source with too few recordings: contiguous time blocks, minutes apart.

A group split (:func:`owlfinder.train.clipsets.split_by_group`) holds out whole recordings or sites. One round
of labelling in the Space is often a single recording, so there is nothing to hold out whole. Splitting its
clips at random would put neighbouring clips (the same bird, the same wind, overlapping audio) on both
sides. :func:`time_block_split` instead cuts every recording into contiguous blocks of ``block_s`` seconds,
holds out whole blocks, and drops training clips that lie within ``gap_s`` seconds of a held-out clip, so
the two sides are always at least ``gap_s`` apart in the recording and no clip has a neighbour across the
line. :func:`split_source` picks the rule for one source and says which it used, for the log and the card.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from owlfinder.train.clipsets import ClipSet, DataError, split_by_group

__all__ = [
    "DEFAULT_BLOCK_S",
    "DEFAULT_GAP_S",
    "DEFAULT_MIN_GROUPS",
    "Split",
    "split_source",
    "time_block_split",
]

#: Block length (s): long enough that a bout of calls stays in one block.
DEFAULT_BLOCK_S = 120.0
#: Least distance (s) between a training clip and a held-out clip of the same recording.
DEFAULT_GAP_S = 30.0
#: Fewer recordings/sites than this in a source and its split falls back to time blocks.
DEFAULT_MIN_GROUPS = 3


@dataclass
class Split:
    """Clip indices of one source's split.

    Attributes:
        train: indices for training.
        held: indices held out (validation or test).
        dropped: training-side clips left out because they lie within the gap of a held-out clip.
        how: one line saying which rule was used.
        rule: ``"group"`` or ``"time-block"``.
    """

    train: np.ndarray
    held: np.ndarray
    dropped: np.ndarray
    how: str
    rule: str


def time_block_split(sources: Sequence[str], starts: Sequence[float | None], labels: Sequence[int], *,
                     fraction: float = 0.2, block_s: float = DEFAULT_BLOCK_S, gap_s: float = DEFAULT_GAP_S,
                     clip_s: float = 5.0, seed: int = 0) -> Split:
    """Split clips by contiguous time blocks within their recordings.

    Every recording is cut into blocks ``[k * block_s, (k + 1) * block_s)`` by clip start. Blocks are visited
    in a seeded random order and held out until the held-out side holds at least ``fraction`` of the
    clips; a block holding a class the held-out side lacks is added when the training side keeps that
    class too. Training clips whose span comes within ``gap_s`` of a held-out clip's span in the same
    recording are dropped.

    Args:
        sources: the recording of each clip.
        starts: each clip's start in its recording, s.
        labels: class index per clip.
        fraction: share of clips to hold out, 0-1.
        block_s: block length, s.
        gap_s: least time between the two sides, s.
        clip_s: clip length, s.
        seed: block order.

    Raises:
        DataError: a clip without a start time, or fewer than two blocks.
    """
    n = len(sources)
    labels = np.asarray(labels)
    if any(s is None for s in starts):
        i = next(k for k, s in enumerate(starts) if s is None)
        raise DataError(f"cannot split {sources[i]} by time: clip {i} has no start time")
    t = np.asarray(starts, dtype=np.float64)
    keys = [(src, int(np.floor(t[i] / block_s))) for i, src in enumerate(sources)]
    uniq = sorted(set(keys))
    if len(uniq) < 2:
        raise DataError(f"cannot split {n} clips by time: they all lie in one {block_s:g} s block of "
                        f"{sources[0] if n else '-'}; label clips from a longer stretch or another recording")
    members: dict[tuple[str, int], list[int]] = {k: [] for k in uniq}
    for i, k in enumerate(keys):
        members[k].append(i)
    rng = np.random.default_rng(seed)
    order = [uniq[i] for i in rng.permutation(len(uniq))]
    target = max(1, int(round(fraction * n)))
    held: list[tuple[str, int]] = []
    n_held = 0
    for k in order:
        if n_held >= target or len(held) == len(uniq) - 1:
            break
        held.append(k)
        n_held += len(members[k])
    for cls in np.unique(labels):  # both classes held out where the training side keeps some too
        if (labels[[i for k in held for i in members[k]]] == cls).any():
            continue
        for k in order:
            rest = [h for h in uniq if h not in held and h != k]
            if k not in held and (labels[members[k]] == cls).any() and any(
                    (labels[members[h]] == cls).any() for h in rest):
                held.append(k)
                break
    held_set = set(held)
    is_held = np.array([k in held_set for k in keys])
    # Purge: a training clip within gap_s of any held-out clip of its recording is dropped.
    dropped = np.zeros(n, dtype=bool)
    by_src: dict[str, np.ndarray] = {}
    for src in set(sources):
        idx = np.array([i for i in range(n) if sources[i] == src and is_held[i]], dtype=np.int64)
        by_src[src] = t[idx]
    for i in np.flatnonzero(~is_held):
        ht = by_src[sources[i]]
        if len(ht) and np.any(np.abs(ht - t[i]) < clip_s + gap_s):
            dropped[i] = True
    train = np.flatnonzero(~is_held & ~dropped)
    held_idx = np.flatnonzero(is_held)
    n_rec = len(set(sources))
    how = (f"time blocks: {len(held)} of {len(uniq)} blocks of {block_s:g} s in {n_rec} recording(s) held out "
           f"({len(held_idx)} clips); {int(dropped.sum())} training clip(s) within {gap_s:g} s of a held-out "
           f"clip dropped (seed {seed})")
    return Split(train, held_idx, np.flatnonzero(dropped), how, "time-block")


def split_source(clips: ClipSet, *, fraction: float = 0.2, seed: int = 0, min_groups: int = DEFAULT_MIN_GROUPS,
                 block_s: float = DEFAULT_BLOCK_S, gap_s: float = DEFAULT_GAP_S, name: str = "") -> Split:
    """Split one source: by group when it has at least ``min_groups`` groups, else by time blocks.

    Args:
        clips: the source's clips.
        fraction: share held out.
        seed: random order of groups or blocks.
        min_groups: the fewest groups a group split needs.
        block_s, gap_s: time-block settings (see :func:`time_block_split`).
        name: the source's name, for the ``how`` line.

    Raises:
        DataError: neither rule can split it (one line naming the source).
    """
    label = f"{name}: " if name else ""
    n_groups = len(set(clips.groups))
    if n_groups >= max(2, min_groups):
        tr, va = split_by_group(clips.groups, clips.labels, fraction, seed)
        how = (f"{label}by group: {len({clips.groups[i] for i in va})} of {n_groups} groups ({len(va)} clips) "
               f"held out (seed {seed})")
        return Split(tr, va, np.zeros(0, dtype=np.int64), how, "group")
    try:
        sp = time_block_split(clips.sources, clips.starts, clips.labels, fraction=fraction, block_s=block_s,
                              gap_s=gap_s, clip_s=len(clips.audio[0]) / clips.sampling_rate if len(clips) else 5.0,
                              seed=seed)
    except DataError as err:
        raise DataError(f"{label}{err}") from None
    sp.how = (f"{label}only {n_groups} recording group(s) (fewer than {max(2, min_groups)}), so split by "
              + sp.how)
    return sp
