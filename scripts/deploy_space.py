#!/usr/bin/env python
"""Deploy the Space: upload ``space/`` (app, package, bundled model, README, requirements) to a Hugging Face
Space with ``HfApi.upload_folder``.

    python scripts/deploy_space.py --to USER/SPACE [--private] [--dry-run] [--hardware zero-a10g]

The token comes from ``$HF_TOKEN`` (or huggingface_hub's own login); it is never printed. ``--dry-run``
lists what would be uploaded and touches nothing. Caches, bytecode, local data (``owl_data/``), egg-info and
test artifacts are never uploaded.
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

#: Never uploaded (fnmatch patterns on paths relative to space/).
IGNORE_PATTERNS = [
    "__pycache__", "__pycache__/*", "*/__pycache__/*", "*.pyc", "*.pyo", "*.egg-info", "*.egg-info/*",
    "owl_data", "owl_data/*", ".cache", ".cache/*", "*/.cache/*", ".pytest_cache/*", ".ruff_cache/*",
    "test-artifacts/*", ".DS_Store", "*/.DS_Store", ".git/*", ".gitignore", "*.tmp", "flagged/*",
]
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _ignored(rel: str) -> bool:
    parts = rel.split("/")
    return any(fnmatch.fnmatch(rel, pat) for pat in IGNORE_PATTERNS) or any(
        fnmatch.fnmatch(part, pat) for part in parts[:-1] for pat in ("__pycache__", "*.egg-info", "owl_data",
                                                                        ".cache", ".git"))


def files_to_upload(folder: Path = SPACE_DIR) -> list[Path]:
    """The files :func:`deploy` uploads, relative to ``folder``, sorted."""
    out = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(folder).as_posix()
            if not _ignored(rel):
                out.append(Path(rel))
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
    files = files_to_upload(folder)
    total = sum((folder / f).stat().st_size for f in files)
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
