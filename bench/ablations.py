#!/usr/bin/env python
"""What each engine optimisation buys, measured one at a time in CPU time (run by bench/run.py).

    python bench/ablations.py --model DIR [--recording FILE]

Each line times the old way and the new way of one step on the same input, in process CPU seconds (less
sensitive than wall time to other work on a shared machine), scaled to one hour of 44.1 kHz stereo audio
scanned with 5 s windows every 2.5 s. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _cpu(fn, reps: int) -> float:
    fn()  # warm up
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        for _ in range(reps):
            fn()
        best = min(best, (time.process_time() - t) / reps)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--recording", type=Path, default=None, help="a 44.1 kHz stereo file for the decode steps")
    args = p.parse_args(argv)

    import numpy as np
    import soxr
    import torch

    from owlfinder import audio
    from owlfinder.detect.engine import _Deferred, _events
    from owlfinder.detect.model import load_classifier
    from owlfinder.detect.windows import frame_batches, frame_stream

    torch.set_num_threads(1)
    clf = load_classifier(args.model, device="cpu")
    sr, win = clf.sampling_rate, clf.window_samples
    hop = win // 2
    rng = np.random.default_rng(0)
    hour = 3600.0
    windows_per_hour = hour / (hop / sr)
    batches_per_hour = windows_per_hour / 32
    out: dict[str, dict] = {}

    def entry(key: str, what: str, old_s: float, new_s: float, per_hour: float, **extra) -> None:
        out[key] = {"what": what, "old_cpu_s_per_h": old_s * per_hour, "new_cpu_s_per_h": new_s * per_hour,
                    "speedup": old_s / new_s if new_s > 0 else float("nan"), **extra}

    # 1. downmix of a 10 s stereo float32 block (44.1 kHz)
    block = (rng.standard_normal((441_000, 2)) * 0.1).astype(np.float32)
    buf = np.empty(len(block), dtype=np.float32)
    old = _cpu(lambda: block.mean(axis=1, dtype=np.float32), 20)
    new = _cpu(lambda: audio._downmix(block, buf), 20)
    entry("downmix", "stereo downmix: y.mean(axis=1) -> column add into a reused buffer", old, new, hour / 10)

    # 2. soxr qualities on a 10 s mono block, 44.1 kHz -> the model's rate
    mono = block[:, 0].copy()
    base = None
    for q in ("HQ", "MQ", "LQ", "QQ"):
        rs = soxr.ResampleStream(44100, sr, 1, dtype="float32", quality=q)
        t = _cpu(lambda rs=rs: rs.resample_chunk(mono), 20)
        if base is None:
            base = t
            continue
        entry(f"soxr-{q}", f"resampling: soxr HQ -> {q} (not adopted: see the score changes)", base, t, hour / 10)

    # 3. features for a batch of 32 windows
    batch = (rng.standard_normal((32, win)) * 0.1).astype(np.float32)
    fe = clf.feature_extractor

    def fe_call():
        return fe(list(batch), sampling_rate=sr, return_tensors="pt")

    old = _cpu(fe_call, 3)
    new = _cpu(lambda: clf.features(batch), 3)
    ref = next(v for v in fe_call().values() if isinstance(v, torch.Tensor) and v.is_floating_point())
    got = next(iter(clf.features(batch).values()))
    entry("features", f"features of 32 windows: {type(fe).__name__}(list) -> "
          + ("one batched torch pass (WhisperLogMel)" if clf._fast_features is not None else "same path"),
          old, new, batches_per_hour, max_abs_diff=float((ref - got).abs().max()))

    # 4. model: one forward of 32 windows vs forwards of 8
    feats = clf.features(batch)
    chunk = clf.cpu_chunk
    clf.cpu_chunk = 0
    old = _cpu(lambda: clf.predict(feats), 2)
    s_old = clf.predict(feats)
    clf.cpu_chunk = 8
    new = _cpu(lambda: clf.predict(feats), 2)
    s_new = clf.predict(feats)
    clf.cpu_chunk = chunk
    entry("model-chunk", "model on 32 windows: one forward -> forwards of 8 (this model's default: "
          + (f"{chunk})" if chunk else "one forward)"), old, new, batches_per_hour,
          max_abs_diff=float(np.abs(s_old - s_new).max()))

    # 5. framing: per-window copies (frame_stream + copy into the batch) vs frame_batches
    sig = (rng.standard_normal(sr * 300) * 0.1).astype(np.float32)
    blocks = np.array_split(sig, 30)

    def old_frames():
        b = np.empty((32, win), dtype=np.float32)
        k = 0
        for _, w in frame_stream(iter(blocks), win, hop):
            b[k % 32] = w
            k += 1

    def new_frames():
        for _ in frame_batches(iter(blocks), win, hop, 32):
            pass

    entry("framing", "windows: a copy per window, then into the batch -> straight into the batch",
          _cpu(old_frames, 2), _cpu(new_frames, 2), hour / 300)

    # 6. the partial result yielded after each batch: events derived eagerly vs on first read
    n_batches = int(batches_per_hour)
    starts = np.arange(n_batches * 32) * (hop / sr)
    ends = starts + win / sr
    scores = rng.uniform(0, 1, len(starts)).astype(np.float32)

    def eager():
        for k in range(1, n_batches + 1):
            _events(starts[: 32 * k], ends[: 32 * k], scores[: 32 * k], 0.5, 0.7, 0.0, None)

    def lazy():
        for k in range(1, n_batches + 1):
            _Deferred(_events, starts[: 32 * k], ends[: 32 * k], scores[: 32 * k], 0.5, 0.7, 0.0, None)

    entry("partials", "events of the partial result after every batch: eager -> when first read",
          _cpu(eager, 1), _cpu(lazy, 1), 1.0)

    # 7. decode of the recording: float32 into a new array per block vs into one reused buffer
    if args.recording is not None and args.recording.exists():
        import soundfile as sf

        info = sf.info(str(args.recording))
        frames = min(info.frames, 600 * info.samplerate)

        def dec(reuse: bool):
            with sf.SoundFile(str(args.recording)) as f:
                b = np.empty((441_000, f.channels), dtype=np.float32)
                done = 0
                while done < frames:
                    got = f.read(441_000, dtype="float32", always_2d=True, out=b if reuse else None)
                    if not len(got):
                        break
                    done += len(got)

        entry("decode-buffer", "FLAC decode: a new array per 10 s block -> one reused buffer",
              _cpu(lambda: dec(False), 1), _cpu(lambda: dec(True), 1), hour / (frames / info.samplerate))

    print(json.dumps({"model_rate": sr, "window": win, "ablations": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
