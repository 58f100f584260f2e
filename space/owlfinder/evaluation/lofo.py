"""The leave-one-family-out pipeline behind ``scripts/evaluate_generalisation.py`` and the starter model build.

:class:`Material` renders (once, cached as ``.npy`` and FLAC under a work folder) everything the folds share:
owl clips of each family on training-site backgrounds, confuser and background clips, the training sites'
real 5 s windows, and copies of the calibration and test recordings with each family's calls inserted.
:func:`train_model` trains and calibrates one model on some families; :func:`run_fold` evaluates it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from owlfinder.evaluation.generalisation import (
    calibrate_threshold_fph,
    evaluate_fold,
    read_manifest,
    write_recording,
)
from owlfinder.synth import fieldclips
from owlfinder.synth.families import FAMILIES, family

__all__ = ["Material", "detect_all", "run_fold", "train_model"]

SR = 16000
WINDOW_S = 5.0


def _int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(x) * 32767.0), -32767, 32767).astype(np.int16)


class Material:
    """The shared, cached material of a leave-one-family-out run.

    Args:
        shared: the ``../shared/data`` folder (with ``MANIFEST.tsv``).
        work: the cache folder.
        n_pos: owl clips per family; n_confusers, n_background: negative clips.
        seed: seeds everything (each cached item has its own derived seed).
        log: progress lines.
    """

    def __init__(self, shared: str | os.PathLike, work: str | os.PathLike, *, n_pos: int = 1000,
                 n_confusers: int = 1200, n_background: int = 500, seed: int = 0, log: Callable = print):
        self.shared, self.work = Path(shared), Path(work)
        self.n_pos, self.n_confusers, self.n_background, self.seed, self.log = (
            n_pos, n_confusers, n_background, seed, log)
        self.splits = read_manifest(self.shared)
        self.work.mkdir(parents=True, exist_ok=True)
        self._bg: dict[str, list[np.ndarray]] = {}

    def backgrounds(self, split: str) -> list[np.ndarray]:
        if split not in self._bg:
            self._bg[split] = fieldclips.load_backgrounds([f["path"] for f in self.splits[split]], SR, on_error=self.log)
        return self._bg[split]

    def _cached(self, name: str, make: Callable[[], np.ndarray]) -> np.ndarray:
        path = self.work / f"{name}.npy"
        if path.is_file():
            return np.load(path, mmap_mode="r")
        t0 = time.monotonic()
        arr = make()
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, arr)
        os.replace(tmp, path)
        self.log(f"cached {path.name}: {arr.shape} in {time.monotonic() - t0:.0f} s")
        return np.load(path, mmap_mode="r")

    def _rng(self, *key) -> np.random.Generator:
        return np.random.default_rng([self.seed, *(abs(hash(k)) % 2**31 if isinstance(k, str) else k for k in key)])

    def owl_clips(self, fam: str) -> np.ndarray:
        """``n_pos`` clips of family ``fam`` on training-site backgrounds (int16)."""
        def make():
            rng = np.random.default_rng([self.seed, 1, list(FAMILIES).index(fam)])
            bgs, n = self.backgrounds("train"), int(WINDOW_S * SR)
            return np.stack([_int16(fieldclips.owl_clip(rng, family(fam), fieldclips.crop(rng, bgs, n), SR)[0])
                             for _ in range(self.n_pos)])
        return self._cached(f"pos_{fam}_{self.n_pos}", make)

    def negatives(self) -> tuple[np.ndarray, np.ndarray]:
        """``(clips, is_real)``: confusers, recorder-treated backgrounds and every training-site real window."""
        n = int(WINDOW_S * SR)

        def conf():
            rng = np.random.default_rng([self.seed, 2])
            bgs = self.backgrounds("train")
            return np.stack([_int16(fieldclips.confuser_clip(rng, fieldclips.crop(rng, bgs, n), SR)[0])
                             for _ in range(self.n_confusers)])

        def back():
            rng = np.random.default_rng([self.seed, 3])
            bgs = self.backgrounds("train")
            return np.stack([_int16(fieldclips.background_clip(rng, fieldclips.crop(rng, bgs, n), SR))
                             for _ in range(self.n_background)])

        def real():
            hop, out = n // 2, []
            for y in self.backgrounds("train"):
                if len(y) < n:
                    y = np.tile(y, n // len(y) + 1)[:n]
                out += [y[i:i + n] for i in range(0, len(y) - n + 1, hop)]
            return np.stack([_int16(w) for w in out])

        parts = [self._cached(f"neg_confusers_{self.n_confusers}", conf),
                 self._cached(f"neg_background_{self.n_background}", back), self._cached("neg_real", real)]
        is_real = np.concatenate([np.zeros(len(parts[0]), bool), np.zeros(len(parts[1]), bool),
                                  np.ones(len(parts[2]), bool)])
        return np.concatenate(parts), is_real

    def recordings(self, split: str, fam: str | None) -> list[tuple[str, str, list[dict]]]:
        """``[(path, site, truth)]``: the split's recordings as they are (``fam=None``), or copies with calls of
        ``fam`` inserted (written once as FLAC + truth under the work folder)."""
        files = self.splits[split]
        if fam is None:
            return [(f["path"], f["site"], []) for f in files]
        folder = self.work / f"{split}_{fam}"
        index = folder / "index.json"
        if index.is_file():
            return [tuple(r) for r in json.loads(index.read_text())]
        rng = np.random.default_rng([self.seed, 4, list(FAMILIES).index(fam), ["calibration", "test"].index(split)])
        out = []
        loaded = fieldclips.load_backgrounds([f["path"] for f in files], SR, min_s=0.0, on_error=self.log)
        for i, (f, y) in enumerate(zip(files, loaded, strict=False)):
            if len(y) < 4 * SR:
                continue
            mixed, truth = fieldclips.insert_calls(rng, family(fam), y, SR)
            path = folder / f"{i:03d}.flac"
            write_recording(path, mixed, SR, truth)
            out.append((str(path), f["site"], truth))
        index.write_text(json.dumps(out))
        return out


def detect_all(model_dir: str | os.PathLike, paths: Sequence[str]) -> list:
    """Finished engine detections (window scores kept) of each recording, on the CPU with one thread."""
    from owlfinder.detect.engine import DetectionParams, detect
    from owlfinder.detect.model import load_classifier

    clf = load_classifier(str(model_dir), device="cpu")
    params = DetectionParams(threshold=0.5, num_threads=1)
    return [detect(p, clf, params) for p in paths]


def train_model(mat: Material, families: Sequence[str], out_dir: str | os.PathLike, recipe=None, *,
                target_fp_per_hour: float = 0.5, margin_logit: float = 0.5) -> dict:
    """Train on ``families`` (with the shared negatives), save to ``out_dir``, calibrate on the calibration
    sites and write the threshold into ``config.json``.

    Returns:
        ``{"threshold", "training", "calibration"}``; the calibration part has the false positives per hour
        of the calibration recordings and the training families' recall there.
    """
    from owlfinder.train.recipe import RecipeConfig, train_recipe

    out = Path(out_dir)
    pos = np.concatenate([mat.owl_clips(f) for f in families])
    neg, is_real = mat.negatives()
    model, fe, info = train_recipe(pos, neg, recipe or RecipeConfig(), real_mask=is_real, sampling_rate=SR,
                                   window_s=WINDOW_S, log=mat.log)
    model.save_pretrained(out)
    fe.save_pretrained(out)
    cal = mat.recordings("calibration", None)
    cal_dets = detect_all(out, [p for p, _, _ in cal])
    thr = calibrate_threshold_fph(cal_dets, target_fp_per_hour, margin_logit)
    hours = sum(d.duration_s for d in cal_dets) / 3600
    cal_fp = sum(len(d.rethreshold(thr).events) for d in cal_dets)
    val = {}
    for f in families:  # the training families' calls in the calibration recordings
        recs = mat.recordings("calibration", f)
        r = evaluate_fold(thr, cal_dets, [s for _, s, _ in cal], detect_all(out, [p for p, _, _ in recs]),
                          [t for _, _, t in recs])
        val[f] = {"recall": r["recall"], "calls": r["calls"]}
    calib = {"method": "fp_per_hour", "target_fp_per_hour": target_fp_per_hour, "margin_logit": margin_logit,
             "hours": round(hours, 4), "false_positives": cal_fp, "training_family_recall": val,
             "message": f"threshold {thr:.6f}: the lowest with <= {target_fp_per_hour:g} false positives per hour "
                        f"on {hours:.2f} h of calibration-site recordings, raised by {margin_logit:g} logit"}
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg.update({"owl_threshold": thr, "owl_window_s": WINDOW_S, "owl_calibration": calib})
    tmp = cfg_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, cfg_path)
    mat.log(calib["message"] + "; training families' recall there: "
            + ", ".join(f"{k} {v['recall']:.2f}" for k, v in val.items()))
    return {"threshold": thr, "training": info, "calibration": calib}


def run_fold(mat: Material, model_dir: str | os.PathLike, threshold: float, held_out: str) -> dict:
    """The held-out family's numbers on the test sites (see
    :func:`owlfinder.evaluation.generalisation.evaluate_fold`)."""
    clean = mat.recordings("test", None)
    recs = mat.recordings("test", held_out)
    clean_dets = detect_all(model_dir, [p for p, _, _ in clean])
    call_dets = detect_all(model_dir, [p for p, _, _ in recs])
    return evaluate_fold(threshold, clean_dets, [s for _, s, _ in clean], call_dets, [t for _, _, t in recs])
