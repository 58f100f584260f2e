"""Many recordings over N worker processes on the CPU, each with one intra-op thread (``scripts/detect.py --workers``).

On a many-core server, one process per core scanning whole files scales better than one process whose model
uses every core: the decoder, resampler and feature extractor are single-threaded per file, and small batches
parallelise poorly across threads. Each worker loads its own classifier once, then takes files one at a time
(the slowest file does not hold up the others), and writes results exactly as
:func:`owlfinder.detect.batch.detect_files` does, so runs stay resumable and ``summary.csv`` is the same.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path

from owlfinder.detect.batch import FileResult, InputFile, detect_files
from owlfinder.detect.detection import DetectionParams

__all__ = ["detect_files_parallel"]

_CLF = None  # the worker's classifier


def _init(model: str | None, backend: str, positive_label: str | None) -> None:
    global _CLF
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    from owlfinder.detect.model import load_classifier

    torch.set_num_threads(1)
    _CLF = load_classifier(model, device="cpu", positive_label=positive_label, backend=backend, threads=1)


def _scan(item: InputFile, out_dir: str, params: DetectionParams, formats: Sequence[str], force: bool
          ) -> FileResult:
    errors: list[str] = []
    (result,) = detect_files([item], out_dir, _CLF, params, formats=formats, force=force, on_error=errors.append)
    return result


def detect_files_parallel(
    inputs: Sequence[InputFile],
    out_dir: str | os.PathLike,
    model: str | None,
    params: DetectionParams,
    *,
    workers: int,
    backend: str = "torch",
    positive_label: str | None = None,
    formats: Sequence[str] = ("json",),
    force: bool = False,
    on_done: Callable[[FileResult], None] | None = None,
) -> list[FileResult]:
    """Scan ``inputs`` over ``workers`` processes (CPU, one thread each); results in input order.

    Args:
        inputs: recordings (see :func:`owlfinder.detect.batch.collect_inputs`).
        out_dir: output folder.
        model: Hub id or folder (``None``: the default model). Load (and for ONNX, export) it once in the
            calling process first, so that workers find the export cached instead of racing to make it.
        params: scan parameters; ``num_threads`` is set to 1.
        workers: number of processes.
        backend, positive_label: as for :func:`owlfinder.detect.model.load_classifier`.
        formats, force: as for :func:`owlfinder.detect.batch.detect_files`.
        on_done: called in this process with each file's result as it finishes.

    Returns:
        One :class:`FileResult` per input; a worker that dies gives its file an error row.
    """
    params = replace(params, num_threads=1)
    results: dict[int, FileResult] = {}
    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding torch's thread pools
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init,
                             initargs=(model, backend, positive_label)) as pool:
        futures = {pool.submit(_scan, item, str(Path(out_dir)), params, list(formats), force): i
                   for i, item in enumerate(inputs)}
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                res = fut.result()
            except BrokenProcessPool:
                res = FileResult(str(inputs[i].path), None, None, None, "error", "worker process died")
            except Exception as err:  # noqa: BLE001  (one line per file, the run goes on)
                res = FileResult(str(inputs[i].path), None, None, None, "error",
                                 " ".join(str(err).split()) or type(err).__name__)
            results[i] = res
            if on_done is not None:
                on_done(res)
    return [results[i] for i in range(len(inputs))]
