"""An append-only dataset store that is the same on the Hugging Face Hub and on disk.

Layout (a Hub dataset repo, or a local folder with the same files)::

    README.md                                  dataset card: licence, dataset_info features, configs
    data/<split>-<utc>-<uuid>.parquet          immutable shards; audio embedded as FLAC bytes

The card's ``configs`` map each split to ``data/<split>-*.parquet``, so the Hub viewer,
``datasets.load_dataset(repo_or_folder)`` and ``load_dataset("parquet", data_files=...)`` all read it, with
the audio decoded as 16 kHz arrays. Every :meth:`DatasetStore.append` writes one *new* shard and never
touches an old one, so:

- a crash or a Hub outage loses nothing already written and cannot corrupt it;
- relabelling is another append: :meth:`DatasetStore.load` keeps, per ``clip_id``, the row with the latest
  ``labelled_at`` (the history stays in the shards);
- syncing is "upload the shard names the other side lacks", which is exactly-once by construction.

Shards are written with pyarrow straight from FLAC bytes (``{"bytes", "path"}`` structs, as ``datasets``
embeds them) and the ``datasets`` features in the schema metadata; ``Dataset.to_parquet`` would store only
file paths for audio that came from files, and those would not resolve on another machine.

Why one module of about 670 lines: :class:`DatasetStore` is one class whose local and Hub back ends share the
shard naming, card and append protocol; splitting them would put the exactly-once rules in two places.
"""

from __future__ import annotations

import io
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf
from datasets import Dataset, DatasetInfo, NamedSplit
from datasets.table import InMemoryTable
from filelock import FileLock
from huggingface_hub import CommitOperationAdd, DatasetCard

from owlfinder import audio as _audio
from owlfinder.data.clips import encode_flac
from owlfinder.data.labelnames import (
    LabelNameError,
    label_names_from_card,
    label_names_from_schema,
    relabel_table,
)
from owlfinder.data.schema import (
    FEATURES,
    LABELS,
    NO_LABEL,
    SAMPLE_RATE,
    UNSURE,
    audio_fingerprint,
    clip_id,
    label_of_verdict,
    normalize_utc,
    utc_now,
)
from owlfinder.durable import atomic_write
from owlfinder.errors import OwlFinderError

__all__ = ["CARD_PATH", "DEFAULT_LICENSE", "DatasetStore", "StoreError", "is_hub_id", "redact"]

logger = logging.getLogger(__name__)

CARD_PATH = "README.md"
DEFAULT_LICENSE = "cc-by-4.0"
#: Rows per parquet row group: small groups keep the Hub viewer and random access snappy for audio.
ROW_GROUP_SIZE = 100
#: ``data/<split>-<anything>.parquet``; also matches ``datasets``' own ``train-00000-of-00001.parquet``.
SHARD_RE = re.compile(r"^data/(?P<split>\w+)-[^/]+\.parquet$")
_SPLIT_RE = re.compile(r"^\w+$")
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{8,}")
_LOCK_NAME = ".owlfinder.lock"
_ROW_KEYS = set(FEATURES) | {"sr", "sampling_rate"}

_CARD_BODY = """
# Powerful Owl (Ninox strenua) clips

16 kHz mono clips of 5 s labelled `owl` / `not_owl`, built and labelled with Powerful Owl Finder
(`owlfinder`). Columns `audio`, `label`, `filename` match
`sgoedecke/powerful_owl_5s_16k`; the others record provenance (`source`, `start_s`, `end_s`, `group`),
who labelled each clip and when (`labeller`, `labelled_at`), the model and `score` that proposed it,
a `reason` for negatives, and the `verdict` (`owl`, `not_owl` or `unsure`).

- Rows with `verdict == "unsure"` have `label == -1`: drop them before training.
- The store is append-only: a clip relabelled later appears again with a later `labelled_at`;
  keep the latest row per `clip_id` (`owlfinder.data.store.DatasetStore.load` does).
- Split train/validation/test by `group` (recording or site), never by clip.
"""

T = TypeVar("T")


class StoreError(OwlFinderError):
    """A store operation that failed; ``str(err)`` is one line (and never holds a token)."""


def redact(text: str, token: str | None = None) -> str:
    """``text`` with Hub tokens (the given one, ``$HF_TOKEN`` and anything shaped ``hf_...``) masked."""
    for secret in (token, os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")):
        if secret:
            text = text.replace(secret, "***")
    return _TOKEN_RE.sub("hf_***", text)


def _one_line(err: BaseException, token: str | None = None) -> str:
    msg = " ".join(str(err).split()) or type(err).__name__
    return redact(f"{type(err).__name__}: {msg}"[:300], token)


def is_hub_id(repo_or_path: str | os.PathLike) -> bool:
    """True when ``repo_or_path`` names a Hub dataset rather than a local folder.

    A path that exists, or that looks like one (absolute, ``./``, ``../``, ``~``, more than one ``/``), is
    local; ``owner/name`` and ``hf://datasets/owner/name`` are the Hub. Write ``./out/ds`` to create a new
    local folder with a two-part name.
    """
    s = os.fspath(repo_or_path)
    if s.startswith("hf://datasets/"):
        return True
    if isinstance(repo_or_path, Path) or os.path.exists(s):
        return False
    if s.startswith(("/", "./", "../", "~", "\\")) or "\\" in s or ":" in s:
        return False
    return bool(_HUB_ID_RE.match(s))


def _check_split(split: str) -> str:
    if not _SPLIT_RE.match(split):
        raise ValueError(f"split must be letters, digits or '_' (it names the shards), got {split!r}")
    return split


def shard_split(path: str) -> str | None:
    """The split of a shard's repo path, or ``None`` when the path is not a shard."""
    m = SHARD_RE.match(path)
    return m.group("split") if m else None


def new_shard_path(split: str) -> str:
    """A fresh, unique shard path: ``data/<split>-<utc>-<uuid>.parquet`` (sorts by time)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"data/{_check_split(split)}-{stamp}-{uuid.uuid4().hex}.parquet"


# ------------------------------------------------------------------------------------------------ card


def render_card(existing: str | None, splits: Iterable[str], license: str = DEFAULT_LICENSE) -> str:
    """The dataset card for a store with ``splits``, keeping whatever else ``existing`` says.

    Only ``dataset_info``, the ``default`` config and (when absent) ``license`` / ``task_categories`` are
    managed; other YAML keys, other configs and the Markdown body are kept as they are.
    """
    card = DatasetCard(existing) if existing and existing.startswith("---") else DatasetCard(
        f"---\nlicense: {license}\n---\n{(existing or _CARD_BODY).lstrip()}"
    )
    data = card.data
    if not data.get("license"):
        data.license = license
    if not data.get("task_categories"):
        data.task_categories = ["audio-classification"]
    data.dataset_info = DatasetInfo(features=FEATURES)._to_yaml_dict()
    default = {
        "config_name": "default",
        "data_files": [{"split": s, "path": f"data/{s}-*.parquet"} for s in sorted(set(splits))],
    }
    others = [c for c in (data.get("configs") or []) if c.get("config_name") != "default"]
    data.configs = [default, *others]
    return card.content


def _card_differs(old: str | None, new: str) -> bool:
    if old is None:
        return True
    try:
        return DatasetCard(old).data.to_dict() != DatasetCard(new).data.to_dict()
    except Exception:  # an unparsable card is replaced
        return True


# ------------------------------------------------------------------------------------------------ rows


def _audio_bytes(row: dict, i: int) -> tuple[bytes, str, float]:
    """(encoded bytes, file suffix, duration in s) for a row's audio."""
    value = row.get("audio")
    sr = row.get("sampling_rate", row.get("sr"))
    if isinstance(value, dict) and "array" in value:
        value, sr = value["array"], value.get("sampling_rate", sr)
    if isinstance(value, dict) and value.get("bytes") is not None:
        value = value["bytes"]
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        try:
            info = sf.info(io.BytesIO(data))
        except Exception as err:
            raise ValueError(f"row {i}: audio bytes are not a readable audio file ({_one_line(err)})") from None
        return data, "." + info.format.lower(), info.frames / info.samplerate
    if isinstance(value, np.ndarray):
        if sr is None:
            raise ValueError(f"row {i}: a numpy audio array needs 'sr' (its sample rate)")
        if value.ndim == 2 and value.shape[0] <= 8 < value.shape[1]:
            value = value.T  # (channels, samples), as torch and datasets' decoders give, to (samples, channels)
        y = _audio.to_mono(value)
        if len(y) == 0:
            raise ValueError(f"row {i}: empty audio")
        y = _audio.resample(y, int(sr), SAMPLE_RATE)
        return encode_flac(y, SAMPLE_RATE), ".flac", len(y) / SAMPLE_RATE
    raise ValueError(f"row {i}: 'audio' must be a numpy array (with 'sr'), bytes, or {{'bytes': ...}}; "
                     f"got {type(value).__name__}")


def fingerprint_of_bytes(data: bytes) -> str:
    """The :func:`~owlfinder.data.schema.audio_fingerprint` of encoded audio (decoded to 16 kHz mono)."""
    y, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    return audio_fingerprint(_audio.resample(_audio.to_mono(y), int(sr), SAMPLE_RATE))


def _label_verdict(row: dict, i: int) -> tuple[int, str]:
    label, verdict = row.get("label"), row.get("verdict")
    if isinstance(label, str):
        if label not in LABELS and label != UNSURE:
            raise ValueError(f"row {i}: label must be one of {LABELS}, got {label!r}")
        label = label_of_verdict(label)
    if label is not None and not (isinstance(label, (int, np.integer)) and NO_LABEL <= label < len(LABELS)):
        raise ValueError(f"row {i}: label must be 0 (owl), 1 (not_owl) or -1 (unsure), got {label!r}")
    if verdict is not None:
        try:
            from_verdict = label_of_verdict(verdict)
        except ValueError as err:
            raise ValueError(f"row {i}: {err}") from None
        if label is not None and int(label) != from_verdict:
            raise ValueError(f"row {i}: label {label!r} contradicts verdict {verdict!r}")
        return from_verdict, verdict
    if label is None:
        raise ValueError(f"row {i}: needs a 'label' or a 'verdict'")
    return int(label), (UNSURE if label == NO_LABEL else LABELS[int(label)])


def _opt_str(row: dict, key: str, i: int) -> str | None:
    v = row.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise ValueError(f"row {i}: {key!r} must be a string, got {type(v).__name__}")
    return v


def _opt_float(row: dict, key: str, i: int) -> float | None:
    v = row.get(key)
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"row {i}: {key!r} must be a number, got {v!r}") from None
    if not np.isfinite(f):
        raise ValueError(f"row {i}: {key!r} must be finite, got {v!r}")
    return f


def rows_to_table(rows: Sequence[dict]) -> pa.Table:
    """Validate and encode rows into a table with the store's schema.

    Each row needs ``audio`` (a numpy array plus ``sr``, ``{"array", "sampling_rate"}``, encoded audio bytes
    or ``{"bytes": ...}``) and a ``label`` (name or index) and/or a ``verdict``. Defaults: ``start_s`` 0,
    ``end_s`` start + audio duration, ``clip_id`` from the audio and (start_s, end_s) (a content id, see
    :func:`~owlfinder.data.schema.clip_id`), ``filename`` the
    source's file name, ``group`` the source, ``labelled_at`` now (any ISO time is normalised to UTC).

    Raises:
        ValueError: one line naming the row and the problem.
    """
    cols: dict[str, list[Any]] = {name: [] for name in FEATURES}
    for i, row in enumerate(rows):
        unknown = set(row) - _ROW_KEYS
        if unknown:
            raise ValueError(f"row {i}: unknown column(s) {sorted(unknown)}; known: {sorted(FEATURES)}")
        data, suffix, duration = _audio_bytes(row, i)
        label, verdict = _label_verdict(row, i)
        source = _opt_str(row, "source", i)
        filename = _opt_str(row, "filename", i)
        start = _opt_float(row, "start_s", i)
        start = 0.0 if start is None else start
        end = _opt_float(row, "end_s", i)
        end = start + duration if end is None else end
        cid = _opt_str(row, "clip_id", i)
        if cid is None:
            try:
                cid = clip_id(fingerprint_of_bytes(data), start, end)
            except Exception as err:
                raise ValueError(f"row {i}: audio cannot be decoded ({_one_line(err)})") from None
        if filename is None:
            filename = Path(source).name if source else f"{cid}{suffix}"
        try:
            labelled_at = normalize_utc(row.get("labelled_at")) or utc_now()
        except (TypeError, ValueError):
            raise ValueError(f"row {i}: labelled_at {row.get('labelled_at')!r} is not an ISO time") from None
        cols["audio"].append({"bytes": data, "path": f"{cid}{suffix}"})
        cols["label"].append(label)
        cols["filename"].append(filename)
        cols["clip_id"].append(cid)
        cols["source"].append(source)
        cols["start_s"].append(start)
        cols["end_s"].append(end)
        cols["group"].append(_opt_str(row, "group", i) or source)
        cols["labeller"].append(_opt_str(row, "labeller", i))
        cols["labelled_at"].append(labelled_at)
        cols["model"].append(_opt_str(row, "model", i))
        cols["score"].append(_opt_float(row, "score", i))
        cols["reason"].append(_opt_str(row, "reason", i))
        cols["verdict"].append(verdict)
    return pa.Table.from_pydict(cols, schema=FEATURES.arrow_schema)


def _conform(table: pa.Table) -> pa.Table:
    """A shard's table in the store's schema: missing columns (e.g. a seed-style shard) become nulls."""
    schema = FEATURES.arrow_schema
    arrays = []
    for field in schema:
        if field.name in table.column_names:
            arrays.append(table.column(field.name).cast(field.type))
        else:
            arrays.append(pa.nulls(len(table), field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def latest_indices(clip_ids: Sequence[str | None], labelled_at: Sequence[str | None]) -> list[int]:
    """Indices of the rows to keep: per clip_id the latest ``labelled_at`` (ties: the later row).

    Rows without a clip_id are all kept. The result is in row order.
    """
    best: dict[str, tuple[str, int]] = {}
    keep = []
    for i, (cid, at) in enumerate(zip(clip_ids, labelled_at, strict=True)):
        if cid is None:
            keep.append(i)
            continue
        key = (at or "", i)
        if cid not in best or key >= best[cid]:
            best[cid] = key
    keep.extend(i for _, i in best.values())
    return sorted(keep)


# ------------------------------------------------------------------------------------------------ retry


def _status(err: BaseException) -> int | None:
    return getattr(getattr(err, "response", None), "status_code", None)


def _retryable(err: BaseException) -> bool:
    status = _status(err)
    if status is not None and 400 <= status < 500:
        return status in (408, 409, 412, 423, 429)  # timeouts, conflicts, rate limits
    return isinstance(err, OSError) or status is not None  # network errors, 5xx


def with_retries(fn: Callable[[], T], what: str, retries: int = 5, backoff_s: float = 2.0,
                 token: str | None = None) -> T:
    """Call ``fn``; on network errors, 5xx, 429 and conflicts try again with exponential backoff.

    Raises:
        StoreError: after the last attempt, or at once for errors that retrying cannot fix (4xx).
    """
    for attempt in range(retries):
        try:
            return fn()
        except Exception as err:
            if not _retryable(err) or attempt == retries - 1:
                raise StoreError(f"{what} failed: {_one_line(err, token)}") from None
            delay = min(60.0, backoff_s * 2**attempt)
            logger.warning("%s failed (%s); retry %d/%d in %.0f s", what, _one_line(err, token),
                           attempt + 1, retries - 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------------------------------ local io


def _write_table(table: pa.Table, f: Any) -> None:
    pq.write_table(table, f, row_group_size=ROW_GROUP_SIZE, compression="zstd")


# ------------------------------------------------------------------------------------------------ store


class DatasetStore:
    """An append-only dataset of labelled clips in a Hub dataset repo or a local folder (same layout).

    Open one with :meth:`open`; see the module docstring for the layout.
    """

    def __init__(self, location: str, *, local_dir: Path | None, api: Any = None, token: str | None = None,
                 license: str = DEFAULT_LICENSE, private: bool | None = None, retries: int = 5,
                 backoff_s: float = 2.0):
        self.location = location
        self.local_dir = local_dir
        self.license = license
        self.private = private
        self.retries = retries
        self.backoff_s = backoff_s
        self._api = api
        self._token = token
        self._repo_ready = False

    @classmethod
    def open(cls, repo_or_path: str | os.PathLike, token: str | None = None, api: Any = None, *,
             license: str = DEFAULT_LICENSE, private: bool | None = None, retries: int = 5,
             backoff_s: float = 2.0) -> DatasetStore:
        """Open (or start) a store.

        Args:
            repo_or_path: a local folder (existing, or path-like, see :func:`is_hub_id`) or a Hub dataset id
                ``owner/name``. A local folder is created on the first append.
            token: Hub token; ``None`` lets huggingface_hub use ``$HF_TOKEN`` / the cached login.
            api: an ``HfApi``-like object (tests pass a fake); default ``HfApi(token=token)``.
            license: licence written into a new card.
            private: visibility of a Hub repo created by the first append.
            retries, backoff_s: Hub calls are retried with exponential backoff.
        """
        kw = dict(license=license, private=private, retries=retries, backoff_s=backoff_s)
        if is_hub_id(repo_or_path):
            repo_id = os.fspath(repo_or_path).removeprefix("hf://datasets/")
            if api is None:
                from huggingface_hub import HfApi

                api = HfApi(token=token)
            return cls(repo_id, local_dir=None, api=api, token=token, **kw)
        root = Path(repo_or_path).expanduser()
        if root.exists() and not root.is_dir():
            raise StoreError(f"{root}: not a folder")
        return cls(str(root), local_dir=root, **kw)

    @property
    def is_local(self) -> bool:
        return self.local_dir is not None

    def __repr__(self) -> str:
        return f"DatasetStore({self.location!r}, {'local' if self.is_local else 'hub'})"

    # -------------------------------------------------------------------------------- reading

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        return with_retries(fn, f"{what} ({self.location})", self.retries, self.backoff_s, self._token)

    def _files(self) -> list[str]:
        if self.local_dir is not None:
            data = self.local_dir / "data"
            files = [f"data/{p.name}" for p in data.glob("*.parquet")] if data.is_dir() else []
            if (self.local_dir / CARD_PATH).is_file():
                files.append(CARD_PATH)
            return files
        try:
            return list(self._retry(lambda: self._api.list_repo_files(self.location, repo_type="dataset"),
                                    "listing files"))
        except StoreError as err:
            if "NotFound" in str(err) or "404" in str(err):
                return []  # not created yet
            raise

    def shards(self, split: str | None = None) -> list[str]:
        """Repo paths of the shards (of one split, or all), oldest first."""
        out = [p for p in self._files() if shard_split(p) is not None]
        if split is not None:
            out = [p for p in out if shard_split(p) == split]
        return sorted(out)

    def splits(self) -> list[str]:
        """The splits that have at least one shard."""
        return sorted({shard_split(p) for p in self.shards()})  # type: ignore[misc]

    def card(self, files: Iterable[str] | None = None) -> str | None:
        """The dataset card's text, or ``None`` when there is none yet (``files``: a listing already made)."""
        if self.local_dir is not None:
            p = self.local_dir / CARD_PATH
            return p.read_text(encoding="utf-8") if p.is_file() else None
        if CARD_PATH not in (self._files() if files is None else files):
            return None
        path = self._retry(lambda: self._api.hf_hub_download(self.location, CARD_PATH, repo_type="dataset"),
                           "downloading the card")
        return Path(path).read_text(encoding="utf-8")

    def local_paths(self, shards: Sequence[str]) -> list[Path]:
        """Local files for repo paths (Hub: downloaded into the huggingface_hub cache in one snapshot)."""
        if not shards:
            return []
        if self.local_dir is not None:
            return [self.local_dir / s for s in shards]
        folder = self._retry(
            lambda: self._api.snapshot_download(self.location, repo_type="dataset", allow_patterns=list(shards)),
            "downloading shards",
        )
        return [Path(folder) / s for s in shards]

    def _read(self, split: str | None, columns: list[str] | None = None) -> pa.Table:
        tables = []
        card_names: list[str] | None = None  # read once, only for shards without their own names
        for path in self.local_paths(self.shards(split)):
            try:
                table = pq.read_table(path, columns=columns)
            except Exception as err:
                raise StoreError(f"{path.name}: unreadable shard ({_one_line(err)})") from None
            if columns is None or "label" in columns:
                # The shard's own class names (its schema, else the card's dataset_info) say what its label
                # integers mean; map them onto LABELS by name so that an inverted ClassLabel is not inverted.
                names = label_names_from_schema(table.schema)
                if names is None and card_names is None:
                    card_names = label_names_from_card(self.card()) or []
                try:
                    table = relabel_table(table, names or card_names or None, f"data/{path.name}")
                except LabelNameError as err:
                    raise StoreError(str(err)) from None
            tables.append(_conform(table) if columns is None else table)
        if not tables:
            return FEATURES.arrow_schema.empty_table() if columns is None else pa.table(
                {c: pa.array([], FEATURES.arrow_schema.field(c).type) for c in columns})
        return pa.concat_tables(tables)

    def load(self, split: str | None = None, resolve: bool = True, *, include_unsure: bool = True) -> Dataset:
        """The rows of one split (or all splits together) as an in-memory ``datasets.Dataset``.

        Args:
            split: a split name; ``None`` reads every shard.
            resolve: keep only the latest row (by ``labelled_at``) per ``clip_id``; ``False`` returns the full
                history.
            include_unsure: ``False`` drops rows whose (latest) verdict is unsure (``label == -1``): what
                training wants.

        The ``audio`` column decodes as 16 kHz arrays (``ds[0]["audio"]["array"]``).
        """
        table = self._read(split)
        if resolve and len(table):
            table = table.take(latest_indices(table.column("clip_id").to_pylist(),
                                              table.column("labelled_at").to_pylist()))
        if not include_unsure and len(table):
            labels = table.column("label").to_numpy(zero_copy_only=False)
            verdicts = table.column("verdict").to_pylist()
            table = table.filter(pa.array([lab >= 0 and v != UNSURE for lab, v in zip(labels, verdicts, strict=True)]))
        return Dataset(InMemoryTable(table), info=DatasetInfo(features=FEATURES.copy()),
                       split=NamedSplit(split) if split else None)

    def clip_ids(self, split: str | None = None) -> set[str]:
        """Every clip_id in the store (history included); reads only that column."""
        return {c for c in self._read(split, ["clip_id"]).column("clip_id").to_pylist() if c is not None}

    def fingerprints(self, clip_ids: Iterable[str]) -> dict[str, set[str]]:
        """The audio fingerprints of every row (history included) whose id is in ``clip_ids``.

        What code that meets a legacy (name-based) id compares a new clip with, to tell the same clip from
        another recording that happened to have the same name. Reads only those rows' audio.
        """
        wanted = sorted(set(clip_ids))
        out: dict[str, set[str]] = {}
        if not wanted:
            return out
        for path in self.local_paths(self.shards()):
            try:
                table = pq.read_table(path, columns=["clip_id", "audio"], filters=[("clip_id", "in", wanted)])
            except Exception as err:
                raise StoreError(f"{path.name}: unreadable shard ({_one_line(err)})") from None
            for cid, audio in zip(table.column("clip_id").to_pylist(), table.column("audio").to_pylist(),
                                  strict=True):
                if audio and audio.get("bytes"):
                    out.setdefault(cid, set()).add(fingerprint_of_bytes(audio["bytes"]))
        return out

    # -------------------------------------------------------------------------------- writing

    def append(self, rows: Sequence[dict], split: str = "train") -> str:
        """Write ``rows`` as ONE new shard of ``split`` and return the shard's repo path.

        Old shards are never rewritten. Locally the shard is written to a temp file, fsynced and renamed
        into place, and the card is (re)written atomically only when missing or out of date, under a lock,
        so concurrent writers (threads or processes) all land. On the Hub the shard (plus the card when it
        changes) is one commit, retried with backoff.

        Raises:
            ValueError: a bad row (one line naming it) or no rows.
            StoreError: the Hub commit failed after retries.
        """
        _check_split(split)
        if not rows:
            raise ValueError("append needs at least one row")
        table = rows_to_table(rows)
        path = new_shard_path(split)
        if self.local_dir is not None:
            atomic_write(self.local_dir / path, lambda f: _write_table(table, f))
            self._refresh_local_card()
        else:
            buf = io.BytesIO()
            _write_table(table, buf)
            self._commit_hub([path], {path: buf.getvalue()}, f"Add {len(table)} clip(s) to {split}")
        logger.info("appended %d row(s) to %s: %s", len(table), self.location, path)
        return path

    def _refresh_local_card(self) -> None:
        assert self.local_dir is not None
        # The lock makes "list shards, render, write" one step, so two writers adding different splits
        # cannot drop each other's config line.
        with FileLock(str(self.local_dir / _LOCK_NAME)):
            old = self.card()
            new = render_card(old, self.splits(), self.license)
            if _card_differs(old, new):
                atomic_write(self.local_dir / CARD_PATH, lambda f: f.write(new.encode("utf-8")))

    def _ensure_repo(self, api: Any, repo_id: str, private: bool | None) -> None:
        self._retry(lambda: api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private),
                    "creating the repo")

    def _commit_hub(self, new_shards: list[str], payload: dict[str, bytes], message: str) -> None:
        if not self._repo_ready:
            self._ensure_repo(self._api, self.location, self.private)
            self._repo_ready = True
        remote = self._files()
        old = self.card(remote)
        splits = {shard_split(p) for p in remote if shard_split(p)} | {shard_split(p) for p in new_shards}
        card = render_card(old, splits, self.license)  # type: ignore[arg-type]
        ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=payload[p]) for p in new_shards]
        if _card_differs(old, card):
            ops.append(CommitOperationAdd(path_in_repo=CARD_PATH, path_or_fileobj=card.encode("utf-8")))
        self._create_commit(ops, message)

    def _create_commit(self, ops: list[CommitOperationAdd], message: str) -> None:
        """One commit, retried; a retry first checks whether the previous attempt landed after all."""
        shard_paths = [op.path_in_repo for op in ops if op.path_in_repo != CARD_PATH]
        tried = False

        def attempt() -> None:
            nonlocal tried
            if tried and shard_paths:
                # A commit is atomic: if its shards are on the Hub, the attempt whose response was lost
                # (timeout, dropped connection) succeeded, and committing again would upload them twice.
                remote = set(self._api.list_repo_files(self.location, repo_type="dataset"))
                if all(p in remote for p in shard_paths):
                    logger.info("commit to %s had landed before its response was lost", self.location)
                    return
            tried = True
            self._api.create_commit(self.location, ops, commit_message=message, repo_type="dataset")

        self._retry(attempt, "committing")

    def push_to_hub(self, repo_id: str, api: Any = None, token: str | None = None, *,
                    private: bool | None = None, progress: bool = True) -> list[str]:
        """Push this local store to a Hub dataset repo as it is: one commit per shard the Hub lacks.

        Shards already on the Hub are skipped (names are unique and shards immutable), so re-running after
        an interruption continues where it stopped. The card goes with the first commit (or alone) when the
        Hub's is missing or out of date; a card edited on the Hub keeps its text and extra metadata.

        Returns:
            The repo paths uploaded.
        """
        if self.local_dir is None:
            raise StoreError(f"{self.location}: push_to_hub pushes a local store; this one is on the Hub")
        from tqdm.auto import tqdm

        hub = DatasetStore.open(repo_id, token=token, api=api, license=self.license, private=private,
                                retries=self.retries, backoff_s=self.backoff_s)
        if hub.is_local:
            raise StoreError(f"{repo_id}: not a Hub dataset id (owner/name)")
        return push_missing(self, hub, one_commit=False, progress=progress, tqdm_cls=tqdm)


def push_missing(local: DatasetStore, hub: DatasetStore, *, one_commit: bool, progress: bool = False,
                 tqdm_cls: Any = None) -> list[str]:
    """Upload the shards of ``local`` that ``hub`` lacks (and the card when it differs).

    ``one_commit=True`` puts them all in one commit (the background syncer); ``False`` makes one commit per
    shard (:meth:`DatasetStore.push_to_hub`, so a long push keeps what it already sent).
    """
    assert local.local_dir is not None and hub._api is not None
    if not hub._repo_ready:
        hub._ensure_repo(hub._api, hub.location, hub.private)
        hub._repo_ready = True
    remote = set(hub._files())
    mine = local.shards()
    if not mine:
        return []  # nothing to publish yet (a card without data files would only confuse the viewer)
    missing = [s for s in mine if s not in remote]
    old = hub.card(remote)
    base = old if old is not None else local.card()
    splits = {shard_split(p) for p in (remote | set(mine))} - {None}
    card = render_card(base, splits, local.license)  # type: ignore[arg-type]
    card_op = CommitOperationAdd(path_in_repo=CARD_PATH, path_or_fileobj=card.encode("utf-8")) \
        if _card_differs(old, card) else None
    if not missing and card_op is None:
        return []
    batches = [missing] if one_commit else [[s] for s in missing] or [[]]
    pushed: list[str] = []
    bar = tqdm_cls(total=len(missing), desc=f"push {hub.location}", unit="shard") if progress and tqdm_cls else None
    try:
        for batch in batches:
            ops = [CommitOperationAdd(path_in_repo=s, path_or_fileobj=str(local.local_dir / s)) for s in batch]
            if card_op is not None:
                ops.append(card_op)
                card_op = None
            msg = f"Add {len(batch)} shard(s)" if batch else "Update dataset card"
            hub._create_commit(ops, msg)
            pushed.extend(batch)
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    return pushed
