"""A dataset's own class names, mapped by name onto the store's ``[owl, not_owl]``.

A parquet shard written by ``datasets`` (``push_to_hub``, ``to_parquet``) keeps its features, ClassLabel
names included, in the schema metadata (key ``huggingface``); a Hub dataset card keeps them under
``dataset_info.features``. The integers in the ``label`` column mean nothing without those names: a dataset
whose ClassLabel is ``[not_owl, owl]`` stores an owl as ``1``, and reading it with the store's own names
would invert every target. :func:`relabel_table` rewrites a shard's ``label`` column into the store's
order by name, so every reader of a :class:`~owlfinder.data.store.DatasetStore` sees owl as ``0``.

Names are matched after lower-casing and folding spaces/hyphens to ``_``. The owl class is one named like
:data:`OWL_NAMES` (``owl``, ``powerful_owl``, ``ninox_strenua``, ...); every other class (``not_owl``,
``background``, ``boobook``, ...) becomes ``not_owl``. A dataset without an owl class is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from owlfinder.data.schema import LABELS, NO_LABEL
from owlfinder.errors import OwlFinderError

__all__ = [
    "OWL_NAMES",
    "LabelNameError",
    "label_names_from_card",
    "label_names_from_schema",
    "owl_label_map",
    "relabel_table",
]

#: Class names (normalised) taken to mean "a Powerful Owl call".
OWL_NAMES = frozenset({"owl", "powerful_owl", "powerfulowl", "ninox_strenua", "ninox_strenua_powerful_owl",
                       "pow", "powl", "positive"})


class LabelNameError(OwlFinderError, ValueError):
    """Class names that cannot be mapped onto owl / not_owl; ``str(err)`` is one line."""


def _norm(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def _names_from_feature(feature) -> list[str] | None:
    """ClassLabel names from one feature in ``datasets``' JSON (``{"_type": "ClassLabel", "names": [...]}``)."""
    if isinstance(feature, dict) and feature.get("_type") == "ClassLabel" and feature.get("names"):
        return [str(n) for n in feature["names"]]
    return None


def label_names_from_schema(schema: pa.Schema, column: str = "label") -> list[str] | None:
    """The ClassLabel names ``datasets`` stored in a parquet schema's metadata, or ``None`` when absent."""
    meta = schema.metadata or {}
    raw = meta.get(b"huggingface")
    if not raw:
        return None
    try:
        info = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    features = (info.get("info") or {}).get("features") or {}
    return _names_from_feature(features.get(column)) if isinstance(features, dict) else None


def label_names_from_card(card_text: str | None, column: str = "label") -> list[str] | None:
    """The ClassLabel names in a dataset card's ``dataset_info`` (first config that has them), or ``None``."""
    if not card_text or not card_text.startswith("---"):
        return None
    try:
        from huggingface_hub import DatasetCard

        data = DatasetCard(card_text).data.to_dict()
    except Exception:  # an unparsable card says nothing about labels
        return None
    infos = data.get("dataset_info")
    for info in infos if isinstance(infos, list) else [infos]:
        for feat in (info or {}).get("features") or []:
            if not isinstance(feat, dict) or feat.get("name") != column:
                continue
            names = ((feat.get("dtype") or {}) if isinstance(feat.get("dtype"), dict) else {}).get("class_label")
            names = (names or {}).get("names")
            if isinstance(names, dict):  # {'0': 'owl', '1': 'not_owl'}
                return [str(names[k]) for k in sorted(names, key=lambda k: int(k))]
            if isinstance(names, list):
                return [str(n) for n in names]
    return None


def owl_label_map(names: Sequence[str], where: str = "dataset") -> np.ndarray:
    """Index map from a dataset's class order to the store's (``LABELS``): ``out[i]`` for class ``i``.

    Raises:
        LabelNameError: no class is an owl (one line naming ``where`` and the classes).
    """
    norm = [_norm(n) for n in names]
    owl = [i for i, n in enumerate(norm) if n in OWL_NAMES]
    if not owl:
        raise LabelNameError(f"{where}: its label classes {list(names)} have no owl class (expected one named "
                             f"'owl'; the others are read as not_owl)")
    if len(owl) == len(names):
        raise LabelNameError(f"{where}: every label class {list(names)} is an owl class; there are no negatives")
    return np.array([LABELS.index("owl") if i in owl else LABELS.index("not_owl") for i in range(len(names))],
                    dtype=np.int64)


def relabel_table(table: pa.Table, names: Sequence[str] | None, where: str = "shard") -> pa.Table:
    """``table`` with its ``label`` column in the store's order (owl = 0, not_owl = 1, unsure stays -1).

    Args:
        table: a shard as read from parquet.
        names: the shard's own ClassLabel names (``None``: already in the store's order, or unknown).
        where: the shard's name, for errors.

    String labels (``"owl"``, ``"not_owl"``) are mapped by name whatever ``names`` says.

    Raises:
        LabelNameError: no owl class, or a label index outside ``names``.
    """
    if "label" not in table.column_names:
        return table
    col = table.column("label")
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        values = col.to_pylist()
        classes = sorted({v for v in values if v is not None})
        m = dict(zip(classes, owl_label_map(classes, where).tolist(), strict=True)) if classes else {}
        mapped = pa.array([None if v is None else m[v] for v in values], pa.int64())
        return table.set_column(table.column_names.index("label"), "label", mapped)
    if names is None or [_norm(n) for n in names] == LABELS:
        return table
    lut = owl_label_map(names, where)
    raw = col.to_numpy(zero_copy_only=False)
    valid = ~np.isnan(raw) if raw.dtype.kind == "f" else np.ones(len(raw), bool)
    ints = np.where(valid, raw, NO_LABEL).astype(np.int64)
    bad = valid & ((ints < NO_LABEL) | (ints >= len(names)))
    if bad.any():
        raise LabelNameError(f"{where}: label {ints[bad][0]} is outside its {len(names)} classes {list(names)}")
    out = np.where(ints >= 0, lut[np.clip(ints, 0, None)], ints)
    mapped = pa.array(out, pa.int64(), mask=~valid)
    return table.set_column(table.column_names.index("label"), "label", mapped)
