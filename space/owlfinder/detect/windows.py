"""The window grid: fixed-length analysis windows over a recording, cut from streamed blocks.

Windows start every ``hop`` seconds; when the grid does not end exactly at the end of the file, one final
window ends at the file's end, so the tail is covered by real audio and never by zero padding (a model can
learn to spot padding). Audio shorter than one window is filled by reflecting its own samples
(:func:`owlfinder.audio.fill_to_length`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from owlfinder.audio import fill_to_length  # re-exported: the short-audio fill of the grid

__all__ = ["fill_to_length", "frame_batches", "frame_stream", "window_grid"]


def window_grid(n_samples: int, window: int, hop: int) -> np.ndarray:
    """Start offsets (in samples) of the windows covering ``n_samples`` samples.

    Args:
        n_samples: signal length in samples.
        window: window length in samples.
        hop: hop in samples (``0 < hop``).

    Returns:
        Increasing int64 start offsets. Every sample lies in at least one window; the last window ends
        exactly at ``n_samples`` (when ``n_samples >= window``). A signal shorter than one window gets one
        window starting at 0.
    """
    if hop <= 0 or window <= 0:
        raise ValueError("window and hop must be positive")
    if n_samples <= window:
        return np.zeros(1 if n_samples > 0 else 0, dtype=np.int64)
    starts = np.arange(0, n_samples - window + 1, hop, dtype=np.int64)
    if starts[-1] + window < n_samples:
        starts = np.append(starts, n_samples - window)
    return starts


def _frames(blocks: Iterable[np.ndarray], window: int, hop: int) -> Iterator[tuple[int, np.ndarray]]:
    """The core of :func:`frame_stream`: yields ``(start, view)`` where ``view`` is only valid until the
    next item is asked for (the caller copies what it keeps)."""
    buf = np.zeros(0, dtype=np.float32)
    buf_start = 0  # sample index of buf[0] in the stream
    next_start = 0
    last_emitted: int | None = None
    total = 0
    for block in blocks:
        if len(block) == 0:
            continue
        block = np.asarray(block, dtype=np.float32)
        # Keep the last `window` samples too: the final window may end at the end of the stream.
        keep_from = min(next_start, total - window) if total >= window else 0
        drop = max(0, keep_from - buf_start)
        buf = np.concatenate([buf[drop:], block])  # a copy: the caller may reuse its block
        buf_start += drop
        total += len(block)
        while next_start + window <= total:
            off = next_start - buf_start
            yield next_start, buf[off: off + window]
            last_emitted = next_start
            next_start += hop
    if total == 0:
        return
    if total < window:
        yield 0, fill_to_length(buf, window)
    elif last_emitted is None or last_emitted + window < total:
        start = total - window
        off = start - buf_start
        yield start, buf[off: off + window]


def frame_stream(
    blocks: Iterable[np.ndarray], window: int, hop: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Cut windows out of a stream of 1-D blocks without holding more than about one window plus a block.

    Yields ``(start_sample, window_samples)`` on the grid of :func:`window_grid` for the total length of
    the stream, which need not be known in advance (MP3 headers, for one, only estimate it). Each window
    is a fresh array the caller may keep.
    """
    for start, view in _frames(blocks, window, hop):
        yield start, view.copy()


def frame_batches(
    blocks: Iterable[np.ndarray], window: int, hop: int, batch_size: int,
    keep: Callable[[int], bool] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """:func:`frame_stream` in batches: yields ``(starts, windows)`` with ``starts`` an int64 array of
    at most ``batch_size`` start samples and ``windows`` a fresh float32 array ``[len(starts), window]``.
    ``keep(start)``, when given, picks the windows to batch (the others are skipped without a copy).

    Each window is copied once, straight from the stream buffer into its batch. When the block stream
    fails part-way (a truncated or corrupt file), the windows cut before the failure are yielded as a last,
    short batch, then the error is raised, so a caller can still score them.
    """
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    batch = np.empty((batch_size, window), dtype=np.float32)
    starts = np.empty(batch_size, dtype=np.int64)
    k = 0
    try:
        for start, view in _frames(blocks, window, hop):
            if keep is not None and not keep(start):
                continue
            batch[k] = view
            starts[k] = start
            k += 1
            if k == batch_size:
                yield starts, batch
                batch = np.empty((batch_size, window), dtype=np.float32)
                starts = np.empty(batch_size, dtype=np.int64)
                k = 0
    except Exception:
        if k:
            yield starts[:k].copy(), batch[:k].copy()
        raise
    if k:
        yield starts[:k].copy(), batch[:k].copy()
