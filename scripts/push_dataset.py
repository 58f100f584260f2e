#!/usr/bin/env python
"""Push a local dataset store to a Hub dataset repo, as it is.

    HF_TOKEN=hf_... python scripts/push_dataset.py owl_data/ds --to me/powerful-owl-clips [--private]

One commit per shard the Hub does not have yet (plus the dataset card), so an interrupted push continues
where it stopped when run again and never uploads a shard twice. The token comes from ``$HF_TOKEN`` (or
``hf auth login``); it is never printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from owlfinder.data.store import DatasetStore, StoreError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("local_dir", type=Path, metavar="LOCAL_DIR", help="a local dataset store folder")
    p.add_argument("--to", required=True, metavar="OWNER/NAME", help="Hub dataset repo id")
    p.add_argument("--private", action="store_true", help="create the repo private (if it does not exist)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None, api: object = None) -> int:
    args = parse_args(argv)
    if not (args.local_dir / "data").is_dir():
        print(f"error: {args.local_dir}: not a dataset store (no data/ folder)", file=sys.stderr)
        return 1
    store = DatasetStore.open(args.local_dir)  # a Path is always local
    try:
        pushed = store.push_to_hub(args.to, api=api, private=args.private or None)
    except StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"pushed {len(pushed)} shard(s) to https://huggingface.co/datasets/{args.to}"
          + ("" if pushed else " (it was up to date)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
