"""Publishing a trained model folder to the Hub, and making sure no token is in it.

``Trainer.push_to_hub`` uploads the whole output folder, ``training_args.bin`` (a pickle of every argument,
``hub_token`` included) and checkpoints with it. :func:`push_model` uploads only what a user of the model
needs (weights, config with the calibrated ``owl_threshold``, feature extractor, card, ``splits.json`` and
the metrics), after :func:`find_secrets` has checked that none of those bytes holds a token.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from owlfinder.errors import OwlFinderError
from owlfinder.train.modelcard import TOKEN_RE, secrets_in_env

__all__ = ["PUBLISHED_FILES", "PublishError", "find_secrets", "publishable_files", "push_model"]

#: What a published model folder holds (patterns, relative to the folder).
PUBLISHED_FILES = ("config.json", "model.safetensors", "model-*.safetensors", "model.safetensors.index.json",
                   "preprocessor_config.json", "README.md", "splits.json", "*_results.json")

#: Files of raw tensors (checked for the exact secrets only).
TENSOR_SUFFIXES = frozenset({".safetensors", ".pt", ".pth", ".ckpt"})


class PublishError(OwlFinderError):
    """A push that must not or cannot happen; ``str(err)`` is one line and holds no secret."""


def publishable_files(folder: str | os.PathLike) -> list[Path]:
    """The files of ``folder`` that :func:`push_model` uploads (top level only; never checkpoints)."""
    root = Path(folder)
    return sorted(p for p in root.iterdir() if p.is_file() and any(fnmatch.fnmatch(p.name, pat)
                                                                     for pat in PUBLISHED_FILES))


def find_secrets(paths: Iterable[str | os.PathLike], secrets: Iterable[str | None] = ()) -> list[Path]:
    """The files (walked recursively for folders) that contain a secret or anything shaped like a Hub token.

    The ``hf_...`` shape is looked for in every file but tensor files (weights and optimizer states), where
    random bytes could take that shape; the given secrets are looked for everywhere.
    """
    needles = [s.encode() for s in {*(s for s in secrets if s), *secrets_in_env()} if len(s) >= 4]
    rx = re.compile(TOKEN_RE.pattern.encode())
    hits = []
    for p in map(Path, paths):
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for f in files:
            if _holds(f, needles, None if f.suffix in TENSOR_SUFFIXES else rx):
                hits.append(f)
    return hits


def _holds(path: Path, needles: list[bytes], rx: re.Pattern | None, block: int = 1 << 24) -> bool:
    """True when ``path`` contains a needle or a match of ``rx``, read in ``block``-byte pieces (optimizer
    states can be gigabytes) that overlap by enough to catch one straddling two pieces."""
    overlap = max([len(n) for n in needles] + [256])
    tail = b""
    with path.open("rb") as fh:
        while True:
            piece = fh.read(block)
            if not piece:
                return False
            data = tail + piece
            if any(n in data for n in needles) or (rx is not None and rx.search(data)):
                return True
            tail = data[-overlap:]


def push_model(folder: str | os.PathLike, repo_id: str, *, api=None, token: str | None = None,
               private: bool | None = None, secrets: Sequence[str | None] = (),
               commit_message: str = "owlfinder: trained and calibrated model") -> list[str]:
    """Upload the publishable files of ``folder`` to the model repo ``repo_id`` in one commit.

    Args:
        folder: a finished output folder of ``scripts/train.py``.
        repo_id: ``owner/name``.
        api: an ``HfApi``-like object (tests pass a fake); default ``HfApi(token=token)``.
        token: Hub token; used for the calls only.
        private: visibility when the repo is created.
        secrets: other strings that must not be published.

    Returns:
        The uploaded paths, in the repo.

    Raises:
        PublishError: a file holds a secret (named, the secret is not), nothing to upload, or the Hub refused.
    """
    from huggingface_hub import CommitOperationAdd

    files = publishable_files(folder)
    if not any(p.name == "config.json" for p in files):
        raise PublishError(f"{folder}: no config.json; nothing to publish")
    leaks = find_secrets(files, [token, *secrets])
    if leaks:
        raise PublishError(f"refusing to push: {leaks[0]} holds a Hub token (or something shaped like one)")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    ops = [CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=p.read_bytes()) for p in files]
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.create_commit(repo_id, operations=ops, commit_message=commit_message, repo_type="model")
    except Exception as err:
        msg = " ".join(str(err).split())[:200]
        for s in [token, *secrets, *secrets_in_env()]:
            if s:
                msg = msg.replace(s, "***")
        raise PublishError(f"pushing to {repo_id} failed: {type(err).__name__}: {TOKEN_RE.sub('***', msg)}"
                           ) from None
    return [p.name for p in files]
