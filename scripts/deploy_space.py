#!/usr/bin/env python
"""Deploy the Space: upload ``space/`` (app, package, bundled model, README, requirements) to a Hugging Face
Space with ``HfApi.upload_folder``.

    python scripts/deploy_space.py --to USER/SPACE [--private] [--dry-run] [--hardware zero-a10g]

The token comes from ``$HF_TOKEN`` (or huggingface_hub's own login); it is never printed. ``--dry-run``
lists what would be uploaded and touches nothing.

Only what the Space runs is uploaded: the top-level app files (``app.py``, ``README.md``,
``requirements.txt``, ``packages.txt``), the ``owlfinder/`` package and the bundled ``models/``. Never
uploaded, wherever they are: secrets (``.env*``, ``*.pem``, ``*.key``, ``.netrc``, token and credential
files), data folders (any folder holding a labelling queue or a dataset store, whatever ``OWL_DATA_DIR``
called it, and ``owl_data/``), data files (SQLite, parquet, JSONL, audio), caches, bytecode and egg-info.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import sys
from pathlib import Path
from typing import Any

SPACE_DIR = Path(__file__).resolve().parents[1] / "space"

#: Top-level files the Space needs; anything else at the top is only uploaded when it is one of TREES.
TOP_FILES = ("app.py", "README.md", "requirements.txt", "packages.txt", "pre-requirements.txt")
#: Folders the Space needs, uploaded minus what IGNORE_PATTERNS and data folders exclude.
TREES = ("owlfinder", "models")
#: Never uploaded (fnmatch patterns matched against the file name and every folder name on its path).
SECRET_PATTERNS = [".env", ".env.*", "*.env", "*.pem", "*.key", "*.p12", "*.pfx", ".netrc", "*token*",
                   "*secret*", "*credential*", ".huggingface", ".ssh", "id_rsa*", "id_ed25519*"]
DATA_PATTERNS = ["owl_data", "*.sqlite3", "*.sqlite", "*.db", "*.db-wal", "*.db-shm", "*.sqlite3-wal",
                 "*.sqlite3-shm", "*.parquet", "*.jsonl", "*.lock", "*.wav", "*.flac", "*.mp3", "*.ogg",
                 "*.m4a", "*.aac", "*.opus"]
JUNK_PATTERNS = ["__pycache__", "*.pyc", "*.pyo", "*.egg-info", ".cache", ".pytest_cache", ".ruff_cache",
                 "test-artifacts", ".DS_Store", ".git", ".gitignore", "*.tmp", "flagged"]
IGNORE_PATTERNS = SECRET_PATTERNS + DATA_PATTERNS + JUNK_PATTERNS
#: A folder holding one of these is a data folder (a labelling queue, a dataset store, detection results).
DATA_MARKERS = ("queue/queue.sqlite3", "queue.sqlite3", "manifest.jsonl", "summary.csv", "data/*.parquet")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _matches(name: str, patterns: list[str]) -> bool:
    low = name.lower()
    return any(fnmatch.fnmatch(low, pat) for pat in patterns)


def _is_data_folder(path: Path) -> bool:
    return any(any(path.glob(marker)) for marker in DATA_MARKERS)


def why_excluded(rel: str, folder: Path = SPACE_DIR) -> str | None:
    """Why the file ``rel`` (relative to ``folder``) is not uploaded: ``secret``, ``data``, ``junk``,
    ``not part of the Space``, or ``None`` when it is uploaded."""
    parts = rel.split("/")
    if any(_matches(p, SECRET_PATTERNS) for p in parts):
        return "secret"
    if any(_matches(p, DATA_PATTERNS) for p in parts):
        return "data"
    if any(_matches(p, JUNK_PATTERNS) for p in parts):
        return "junk"
    for depth in range(1, len(parts)):
        if _is_data_folder(folder.joinpath(*parts[:depth])):
            return "data"
    if len(parts) == 1:
        return None if parts[0] in TOP_FILES else "not part of the Space"
    return None if parts[0] in TREES else "not part of the Space"


def files_to_upload(folder: Path = SPACE_DIR, excluded: dict[str, str] | None = None) -> list[Path]:
    """The files :func:`deploy` uploads, relative to ``folder``, sorted; ``excluded`` (when given) collects
    ``{path: reason}`` for what is left out."""
    out = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() or path.is_symlink():
            rel = path.relative_to(folder).as_posix()
            why = "a link" if path.is_symlink() else why_excluded(rel, folder)
            if why is None:
                out.append(Path(rel))
            elif excluded is not None:
                excluded[rel] = why
    return out


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def deploy(repo_id: str, *, private: bool = False, dry_run: bool = False, hardware: str | None = None,
           api: Any = None, folder: Path = SPACE_DIR, token: str | None = None, out=sys.stdout) -> list[Path]:
    """Create the Space if needed and upload ``folder`` to it.

    Args:
        repo_id: ``USER/SPACE``.
        private: create the Space private (an existing Space keeps its visibility).
        dry_run: only list the files.
        hardware: ask for this hardware (e.g. ``zero-a10g``, ``t4-small``) after uploading.
        api: an ``HfApi``-like object (tests pass a fake); default ``HfApi(token=...)``.
        folder: what to upload (default ``space/``).
        token: Hub token; default ``$HF_TOKEN`` (never printed).

    Returns:
        The uploaded files, relative to ``folder``.
    """
    if not _REPO_ID.match(repo_id):
        raise SystemExit(f"--to must be USER/SPACE, got {repo_id!r}")
    if not (folder / "app.py").is_file() or not (folder / "README.md").is_file():
        raise SystemExit(f"{folder} has no app.py or README.md; is this the project's space/ folder?")
    excluded: dict[str, str] = {}
    files = files_to_upload(folder, excluded)
    total = sum((folder / f).stat().st_size for f in files)
    for reason in ("secret", "data"):
        held = sorted(p for p, why in excluded.items() if why == reason)
        if held:
            print(f"Not uploading {len(held)} {reason} file(s): {', '.join(held[:5])}"
                  + (" ..." if len(held) > 5 else ""), file=out)
    print(f"{'Would upload' if dry_run else 'Uploading'} {len(files)} files ({_human(total)}) from {folder} "
          f"to https://huggingface.co/spaces/{repo_id}", file=out)
    if dry_run:
        for f in files:
            print(f"  {f.as_posix()}  ({_human((folder / f).stat().st_size)})", file=out)
        return files
    if api is None:
        from huggingface_hub import HfApi

        token = token or os.environ.get("HF_TOKEN") or None
        api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="space",
                               allow_patterns=[f.as_posix() for f in files], ignore_patterns=IGNORE_PATTERNS,
                               commit_message="Deploy Powerful Owl Finder")
    if hardware:
        api.request_space_hardware(repo_id, hardware)
    url = getattr(commit, "commit_url", None) or f"https://huggingface.co/spaces/{repo_id}"
    print(f"Done: {url}", file=out)
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--to", required=True, metavar="USER/SPACE", help="the Space to create or update")
    ap.add_argument("--private", action="store_true", help="create the Space private")
    ap.add_argument("--dry-run", action="store_true", help="list what would be uploaded, upload nothing")
    ap.add_argument("--hardware", default=None,
                    help="request hardware after uploading, e.g. zero-a10g (ZeroGPU) or t4-small")
    args = ap.parse_args(argv)
    try:
        deploy(args.to, private=args.private, dry_run=args.dry_run, hardware=args.hardware)
    except SystemExit:
        raise
    except Exception as err:  # huggingface_hub errors: one line, never the token
        print(f"deploy failed: {type(err).__name__}: {' '.join(str(err).split())[:300]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
