"""``python -m owlfinder.labelling ingest MANIFEST... [--data-dir DIR]`` and ``... status``: queue
``scripts/chunk.py`` manifests for the Label tab, or print the queue's counts."""

from __future__ import annotations

import json
import logging
import os

from owlfinder.labelling.queue import LabelQueue

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """``python -m owlfinder.labelling ingest MANIFEST... [--data-dir DIR]`` and ``... status``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m owlfinder.labelling",
                                description="Queue scripts/chunk.py manifests for the Label tab, or show "
                                            "counts.")
    p.add_argument("command", choices=["ingest", "status"])
    p.add_argument("manifests", nargs="*", help="manifest.jsonl files (or folders holding one)")
    p.add_argument("--data-dir", default=os.environ.get("OWL_DATA_DIR") or "owl_data",
                   help="the Space's data folder (default $OWL_DATA_DIR or ./owl_data)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    queue = LabelQueue(args.data_dir)
    if args.command == "ingest":
        if not args.manifests:
            p.error("ingest needs at least one manifest")
        for m in args.manifests:
            print(f"{m}: {queue.add_manifest(m)} clip(s) queued")
    print(json.dumps(queue.counts()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
