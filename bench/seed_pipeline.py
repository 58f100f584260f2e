#!/usr/bin/env python
"""The seed project's detection pipeline, re-implemented faithfully for the benchmark.

    python bench/seed_pipeline.py RECORDING --model DIR [--batch-size 32]

What the seed did, step for step: ``librosa.load`` of the whole recording (mono, resampled to the model's
rate with librosa's default resampler), a reshape into back-to-back 5 s chunks (the tail that does not fill
a chunk is dropped), the Hugging Face feature extractor on each batch of chunks, the model under
``torch.no_grad`` with torch's default threads, and the softmax of the owl class. The whole file sits in
memory, at the native rate while it is decoded. Prints one JSON line with the stage times.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recording", type=Path)
    p.add_argument("--model", required=True)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--window-s", type=float, default=5.0)
    p.add_argument("--scores", type=Path, default=None, help="save the chunk scores here (.npy)")
    args = p.parse_args(argv)

    import librosa
    import numpy as np
    import torch
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    t_imported = time.perf_counter()
    # the bundled starter (OwlNet) carries its code in its folder, as a Hub checkpoint with custom code does
    fe = AutoFeatureExtractor.from_pretrained(args.model, trust_remote_code=True)
    model = AutoModelForAudioClassification.from_pretrained(args.model, trust_remote_code=True).eval()
    labels = {int(k): v for k, v in model.config.id2label.items()}
    owl = next(i for i, name in labels.items() if name.lower() == "owl" or "ninox" in name.lower())
    sr = int(fe.sampling_rate)
    t_loaded = time.perf_counter()

    y, _ = librosa.load(str(args.recording), sr=sr, mono=True)
    t_decoded = time.perf_counter()
    win = int(round(args.window_s * sr))
    n = len(y) // win
    chunks = y[: n * win].reshape(n, win)

    feat_s = model_s = 0.0
    scores = []
    with torch.no_grad():
        for i in range(0, n, args.batch_size):
            t = time.perf_counter()
            inputs = fe(list(chunks[i: i + args.batch_size]), sampling_rate=sr, return_tensors="pt")
            t1 = time.perf_counter()
            logits = model(**inputs).logits
            scores.append(torch.softmax(logits, dim=-1)[:, owl].numpy())
            t2 = time.perf_counter()
            feat_s += t1 - t
            model_s += t2 - t1
    t_done = time.perf_counter()
    sc = np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)
    if args.scores is not None:
        np.save(args.scores, sc.astype(np.float32))
    print(json.dumps({
        "duration_s": len(y) / sr,
        "n_windows": int(n),
        "import_s": t_imported - T_START,
        "load_s": t_loaded - t_imported,
        "scan_s": t_done - t_loaded,
        "timings": {"decode+resample": round(t_decoded - t_loaded, 4), "features": round(feat_s, 4),
                    "model": round(model_s, 4), "total": round(t_done - t_loaded, 4)},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
