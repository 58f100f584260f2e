"""Training data: labelled 5 s clips from a dataset store or labelled folders, and leakage-free splits.

Two sources are understood:

- a **dataset store** (:class:`owlfinder.data.store.DatasetStore`: a local folder with ``data/*.parquet`` or a
  Hub dataset id), whose rows carry ``label`` (``[owl, not_owl]``), ``group`` and ``reason``; rows with
  an unsure verdict are dropped. Its splits are used as they are when it has a ``validation`` split; a
  clip's group comes from :func:`owlfinder.train.groups.derive_groups` (its ``group``/``source`` column, or
  the recording in a seed-style file name);
- **labelled folders**: ``DIR/owl/`` and ``DIR/not_owl/`` (walked recursively, any audio format), every
  file cut into 5 s clips at 16 kHz (short audio filled with its own audio, never zeros). A clip's group
  is its folder under ``owl/`` or ``not_owl/``; a file straight inside belongs to the recording its name
  gives (``<recording>_segment_<n>.wav``, see :mod:`owlfinder.train.groups`), else is its own group.

Clips are held in memory as 16-bit integers (what the store's FLAC holds anyway), about 160 kB per clip.
Splits are made by group (recording, site or source folder), never by clip: clips from one night share
its background, and a random clip split lets a model score itself on audio it was trained on.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from owlfinder import audio as _audio
from owlfinder.data.clips import MIN_CLIP_S, clips_from_file, fit_to_length
from owlfinder.data.schema import CLIP_S, LABELS, SAMPLE_RATE
from owlfinder.errors import OwlFinderError
from owlfinder.train.groups import GroupError, derive_groups, recording_of, store_column

__all__ = [
    "ClipSet",
    "DataError",
    "is_labelled_folder",
    "load_clip_sets",
    "load_folder",
    "load_store",
    "split_by_group",
    "train_validation_sets",
]

_SCALE = 32767.0


class DataError(OwlFinderError):
    """Training data that cannot be used; ``str(err)`` is one line naming the file or folder."""


@dataclass
class ClipSet:
    """Labelled fixed-length clips in memory.

    Attributes:
        audio: int16 ``[N, samples]`` (use :meth:`wave` for float32).
        labels: class index per clip in ``label_names`` order (``0 = owl``, ``1 = not_owl``).
        groups: split group per clip (recording, site or source folder).
        reasons: why a not-owl clip is not an owl (``None`` when unknown).
        names: a readable name per clip (file and offset), for reports.
        label_names: class names (``["owl", "not_owl"]``).
        sampling_rate: Hz.
        starts: where each clip starts in its recording, s (``None`` when unknown); time-block splits use it.
        sources: the recording each clip was cut from (default: its group).
        weights: per-clip loss weight (default 1; hard negatives with a labelling reason weigh more).
    """

    audio: np.ndarray
    labels: np.ndarray
    groups: list[str]
    reasons: list[str | None]
    names: list[str]
    label_names: list[str] = field(default_factory=lambda: list(LABELS))
    sampling_rate: int = SAMPLE_RATE
    starts: list[float | None] | None = None
    sources: list[str] | None = None
    weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.audio)
        if not (len(self.labels) == len(self.groups) == len(self.reasons) == len(self.names) == n):
            raise ValueError("audio, labels, groups, reasons and names need one entry per clip")
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.starts = list(self.starts) if self.starts is not None else [None] * n
        self.sources = list(self.sources) if self.sources is not None else list(self.groups)
        self.weights = (np.asarray(self.weights, dtype=np.float32) if self.weights is not None
                        else np.ones(n, dtype=np.float32))
        if not len(self.starts) == len(self.sources) == len(self.weights) == n:
            raise ValueError("starts, sources and weights need one entry per clip")

    def __len__(self) -> int:
        return len(self.audio)

    @property
    def positive_index(self) -> int:
        return self.label_names.index("owl")

    @property
    def is_owl(self) -> np.ndarray:
        """Boolean mask of owl clips."""
        return self.labels == self.positive_index

    def wave(self, i: int) -> np.ndarray:
        """Clip ``i`` as float32 in [-1, 1]."""
        return self.audio[i].astype(np.float32) / _SCALE

    def subset(self, idx: Sequence[int] | np.ndarray) -> ClipSet:
        idx = np.asarray(idx, dtype=np.int64)
        return ClipSet(self.audio[idx], self.labels[idx], [self.groups[i] for i in idx],
                       [self.reasons[i] for i in idx], [self.names[i] for i in idx], list(self.label_names),
                       self.sampling_rate, [self.starts[i] for i in idx], [self.sources[i] for i in idx],
                       self.weights[idx])

    def counts(self) -> dict[str, int]:
        """Clips per class name."""
        return {name: int((self.labels == k).sum()) for k, name in enumerate(self.label_names)}

    def describe(self) -> str:
        c = self.counts()
        return ", ".join(f"{v} {k}" for k, v in c.items()) + f" in {len(set(self.groups))} group(s)"

    @staticmethod
    def concat(sets: Sequence[ClipSet]) -> ClipSet:
        sets = [s for s in sets if len(s)]
        if not sets:
            raise ValueError("nothing to concatenate")
        return ClipSet(np.concatenate([s.audio for s in sets]), np.concatenate([s.labels for s in sets]),
                       [g for s in sets for g in s.groups], [r for s in sets for r in s.reasons],
                       [n for s in sets for n in s.names], list(sets[0].label_names), sets[0].sampling_rate,
                       [t for s in sets for t in s.starts], [r for s in sets for r in s.sources],
                       np.concatenate([s.weights for s in sets]))


def _to_int16(y: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(y, dtype=np.float32) * _SCALE), -32768, 32767).astype(np.int16)


def is_labelled_folder(path: str | os.PathLike) -> bool:
    """True for a folder holding ``owl/`` and ``not_owl/`` subfolders."""
    p = Path(path)
    return p.is_dir() and (p / "owl").is_dir() and (p / "not_owl").is_dir()


def load_folder(path: str | os.PathLike, *, sampling_rate: int = SAMPLE_RATE, clip_s: float = CLIP_S,
                min_s: float = MIN_CLIP_S, progress: bool = True) -> ClipSet:
    """Clips from labelled folders ``path/owl/`` and ``path/not_owl/``.

    Raises:
        DataError: not a labelled folder, no usable audio, or an unreadable file (named).
    """
    from tqdm.auto import tqdm

    root = Path(path)
    if not is_labelled_folder(root):
        raise DataError(f"{root}: expected subfolders owl/ and not_owl/")
    files = [(p, LABELS.index(lab), root / lab) for lab in LABELS
             for p in sorted((root / lab).rglob("*")) if p.is_file() and _audio.is_audio_path(p)]
    if not files:
        raise DataError(f"{root}: no audio files under owl/ or not_owl/")
    n = int(round(clip_s * sampling_rate))
    audio, labels, groups, names, starts, sources = [], [], [], [], [], []
    for p, lab, base in tqdm(files, desc="reading clips", unit="file", disable=not progress):
        rel = p.relative_to(base)
        group = recording_of(rel.name) if rel.parent == Path(".") else rel.parent.as_posix()
        try:
            for start, _end, y in clips_from_file(p, sampling_rate, clip_s, min_s=min_s):
                audio.append(_to_int16(fit_to_length(y, n)))
                labels.append(lab)
                groups.append(group)
                names.append(f"{p.relative_to(root).as_posix()}@{start:.1f}")
                starts.append(float(start))
                sources.append(p.relative_to(root).as_posix())
        except _audio.AudioError as err:
            raise DataError(f"{p}: {err.reason}") from None
    if not audio:
        raise DataError(f"{root}: no clip of at least {min_s:g} s")
    return ClipSet(np.stack(audio), np.array(labels), groups, [None] * len(audio), names,
                   list(LABELS), sampling_rate, starts, sources)


def _decode(blob: dict, sampling_rate: int, n: int, where: str) -> np.ndarray:
    import soundfile as sf

    data, path = blob.get("bytes"), blob.get("path")
    try:
        if data is not None:
            y, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        elif path:
            y, sr = sf.read(path, dtype="float32", always_2d=True)
        else:
            raise DataError(f"{where}: row has no audio")
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"{where}: unreadable audio ({' '.join(str(err).split())[:150]})") from None
    y = _audio.resample(_audio.to_mono(y), int(sr), sampling_rate)
    if len(y) == 0:
        raise DataError(f"{where}: empty audio")
    return fit_to_length(y, n)


def load_store(location: str | os.PathLike, *, splits: Sequence[str] | None = None,
               sampling_rate: int = SAMPLE_RATE, clip_s: float = CLIP_S, token: str | None = None,
               progress: bool = True, group_column: str | None = None,
               group_regex: str | None = None) -> dict[str, ClipSet]:
    """Every split of a dataset store (or only ``splits``) as :class:`ClipSet` objects, unsure rows dropped.

    Raises:
        DataError: no such store, an empty store, or an unreadable row (named by clip id and file).
    """
    from datasets import Audio
    from tqdm.auto import tqdm

    from owlfinder.data.store import DatasetStore, StoreError

    try:
        store = DatasetStore.open(location, token=token)
        available = store.splits()
    except (StoreError, ValueError, OSError) as err:
        raise DataError(f"{location}: cannot open the dataset store ({err})") from None
    if not available:
        raise DataError(f"{location}: no data/<split>-*.parquet shards (not a dataset store, or empty)")
    wanted = list(splits) if splits else available
    missing = [s for s in wanted if s not in available]
    if missing:
        raise DataError(f"{location}: no split {missing[0]!r} (has {', '.join(available)})")
    n = int(round(clip_s * sampling_rate))
    out: dict[str, ClipSet] = {}
    for split in wanted:
        try:
            ds = store.load(split, include_unsure=False)
        except StoreError as err:
            raise DataError(f"{location}: {err}") from None
        if len(ds) == 0:
            continue
        label_names = list(ds.features["label"].names)
        if "owl" not in label_names:
            raise DataError(f"{location}: labels {label_names} have no 'owl'")
        ds = ds.cast_column("audio", Audio(decode=False))
        cols = ds.remove_columns("audio").to_dict()
        audio = np.empty((len(ds), n), dtype=np.int16)
        names = []
        for i, blob in enumerate(tqdm(ds["audio"], desc=f"decoding {split}", unit="clip", disable=not progress)):
            name = cols["filename"][i] or cols["clip_id"][i] or f"row {i}"
            where = f"{location} [{split}] {name} (clip {cols['clip_id'][i]})"
            audio[i] = _to_int16(_decode(blob, sampling_rate, n, where))
            start = cols["start_s"][i]
            names.append(f"{name}@{start:.1f}" if start is not None else str(name))
        if group_column and group_column not in cols:
            extra = store_column(store, split, group_column)
            if extra is not None and len(extra) == len(ds):
                cols[group_column] = extra
        try:
            groups, _how = derive_groups(cols, group_column=group_column, group_regex=group_regex,
                                         where=f"{location} [{split}]")
        except GroupError as err:
            raise DataError(str(err)) from None
        sources = [s or f or g for s, f, g in zip(cols["source"], cols["filename"], groups, strict=True)]
        out[split] = ClipSet(audio, np.asarray(cols["label"]), groups, list(cols["reason"]), names,
                             label_names, sampling_rate, list(cols["start_s"]), sources)
    if not out:
        raise DataError(f"{location}: no labelled (owl/not_owl) rows")
    return out


def load_clip_sets(source: str | os.PathLike, *, sampling_rate: int = SAMPLE_RATE, clip_s: float = CLIP_S,
                   splits: Sequence[str] | None = None, token: str | None = None,
                   progress: bool = True, group_column: str | None = None,
                   group_regex: str | None = None) -> dict[str, ClipSet]:
    """Clips from labelled folders (one split, ``"all"``) or a dataset store (its splits).

    Raises:
        DataError: neither, or unusable (one line naming the folder or file).
    """
    p = Path(os.fspath(source)).expanduser()
    if is_labelled_folder(p):
        if group_column or group_regex:
            raise DataError(f"{p}: --group_column/--group_regex apply to datasets; in labelled folders a clip's "
                            "group is its subfolder (or, straight inside, its <recording>_segment_<n> name)")
        return {"all": load_folder(p, sampling_rate=sampling_rate, clip_s=clip_s, progress=progress)}
    if p.exists() and not (p / "data").is_dir():
        raise DataError(f"{p}: neither a dataset store (data/*.parquet) nor labelled folders (owl/, not_owl/)")
    return load_store(source, splits=splits, sampling_rate=sampling_rate, clip_s=clip_s, token=token,
                      progress=progress, group_column=group_column, group_regex=group_regex)


def split_by_group(groups: Sequence[str], labels: Sequence[int], fraction: float = 0.2,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split clip indices into (train, held-out) so that no group lies on both sides.

    Groups are visited in a seeded random order and moved to the held-out side until it holds at least
    ``fraction`` of the clips; groups holding a class the held-out side still lacks are preferred once the
    quota is met, so both classes are present when that is possible at all.

    Raises:
        DataError: fewer than two groups (a group split is impossible).
    """
    groups = list(groups)
    labels = np.asarray(labels)
    uniq = sorted(set(groups))
    if len(uniq) < 2:
        raise DataError(f"cannot split by group: all {len(groups)} clips are in one group ({uniq[0] if uniq else '-'}); "
                        "give a dataset with several recordings/sites or an explicit validation split")
    rng = np.random.default_rng(seed)
    order = [uniq[i] for i in rng.permutation(len(uniq))]
    members: dict[str, list[int]] = {g: [] for g in uniq}
    for i, g in enumerate(groups):
        members[g].append(i)
    target = max(1, int(round(fraction * len(groups))))
    held: list[str] = []
    n_held = 0
    for g in order:
        if n_held >= target:
            break
        if len(held) == len(uniq) - 1:
            break  # keep at least one group for training
        held.append(g)
        n_held += len(members[g])
    # Make sure the held-out side sees every class that the training side also has.
    for cls in np.unique(labels):
        held_idx = [i for g in held for i in members[g]]
        if (labels[held_idx] == cls).any():
            continue
        for g in order:
            if g in held:
                continue
            rest = [h for h in uniq if h not in held and h != g]
            if (labels[members[g]] == cls).any() and rest and any((labels[members[h]] == cls).any() for h in rest):
                held.append(g)
                break
    held_set = set(held)
    mask = np.array([g in held_set for g in groups])
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def train_validation_sets(sets: dict[str, ClipSet], *, validation_fraction: float = 0.2,
                          seed: int = 0) -> tuple[ClipSet, ClipSet, str]:
    """The training and validation clips from loaded splits.

    A ``validation`` (or ``valid``/``dev``) split is used as given; otherwise ``train`` (or the only split)
    is split by group with :func:`split_by_group`. Any ``test`` split is left alone.

    Returns:
        ``(train, validation, how)``: ``how`` says which rule was used, for the logs and the model card.
    """
    val_name = next((s for s in ("validation", "valid", "dev") if s in sets), None)
    train_name = "train" if "train" in sets else ("all" if "all" in sets else None)
    if train_name is None:
        others = [s for s in sets if s not in ("test", val_name)]
        if len(others) != 1:
            raise DataError(f"cannot tell the training split among {sorted(sets)}; name it 'train'")
        train_name = others[0]
    train = sets[train_name]
    if val_name is not None:
        val = sets[val_name]
        overlap = set(train.groups) & set(val.groups)
        how = f"the dataset's own '{train_name}' and '{val_name}' splits"
        if overlap:
            how += f" (warning: {len(overlap)} group(s) in both, e.g. {sorted(overlap)[0]!r})"
        return train, val, how
    tr, va = split_by_group(train.groups, train.labels, validation_fraction, seed)
    how = (f"'{train_name}' split by group: {len({train.groups[i] for i in va})} of "
           f"{len(set(train.groups))} groups ({len(va)} clips) held out for validation (seed {seed})")
    return train.subset(tr), train.subset(va), how
