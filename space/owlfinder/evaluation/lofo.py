"""The leave-one-family-out pipeline behind ``scripts/evaluate_generalisation.py`` and the starter model build.

:class:`Material` renders (once, cached under a work folder) everything the folds share: the band bank
(:class:`~owlfinder.train.bandmix.BandBank`: each family's calls alone, every confuser alone, the training sites'
recordings) and copies of the calibration and test recordings with each family's calls inserted (FLAC).
:func:`train_model` trains and calibrates one model on some families (:func:`train_or_reuse`: unless it is
trained already) and :func:`calibrate_model` sets its threshold, on the calibration sites or, for a model that
never trained on the test sites, on both groups; :func:`run_fold` evaluates it; :func:`held_out_sites` holds each
site of its calibration out in turn and counts false events and calls there at the threshold the others set;
:func:`choose_seed` keeps, of models trained alike with different seeds, the one that finds a generator none of
them trained on best on the calibration sites.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from owlfinder.durable import atomic_write, atomic_write_text
from owlfinder.evaluation.generalisation import (
    MARGIN_LOGIT,
    calibrate_threshold_fph,
    evaluate_fold,
    read_manifest,
    site_held_out_false_positives,
    write_recording,
)
from owlfinder.synth import channel, fieldclips
from owlfinder.synth.families import FAMILIES, family
from owlfinder.train.bandmix import BandBank, extractor_settings, sound_power

__all__ = ["Material", "birdnet_scan", "calibrate_model", "check_calibration_splits", "choose_seed", "detect_all",
           "held_out_sites", "inserted_call_detections", "last_weights_dir", "run_fold", "train_model",
           "train_or_reuse", "training_record"]

SR = 16000
WINDOW_S = 5.0
#: Bump when what the bank holds changes, so older caches are not reused.
BANK_VERSION = 2


def _at_least(y: np.ndarray, n: float) -> np.ndarray:
    """``y`` looped to at least ``n`` samples (a short clip still fills a window)."""
    return y if len(y) >= n else np.tile(y, int(n // max(1, len(y))) + 1)


class Material:
    """The shared, cached material of a leave-one-family-out run.

    Args:
        shared: the ``../shared/data`` folder (with ``MANIFEST.tsv``).
        work: the cache folder.
        n_calls: owl calls per family in the band bank.
        n_confusers: renders per confuser kind (the tonal near-misses get three times as many: they are the
            most varied).
        seed: seeds everything (each cached item has its own derived seed).
        log: progress lines.
        description_check: every scan of the folds checks its candidate windows against the published call
            description (:attr:`~owlfinder.detect.detection.DetectionParams.description_check_logit`), the
            calibration scans included, so the threshold is set with the check as it will run (on by default, as
            in the engine).
        description_unpaired_logit: with ``description_check``, what
            :attr:`~owlfinder.detect.detection.DetectionParams.description_unpaired_logit` the scans use.
    """

    def __init__(self, shared: str | os.PathLike, work: str | os.PathLike, *, n_calls: int = 2500,
                 n_confusers: int = 300, seed: int = 0, log: Callable = print, description_check: bool = True,
                 description_unpaired_logit: float | None = None):
        self.description_check, self.description_unpaired_logit = description_check, description_unpaired_logit
        self.shared, self.work = Path(shared), Path(work)
        self.n_calls, self.n_confusers, self.seed, self.log = n_calls, n_confusers, seed, log
        self.splits = read_manifest(self.shared)
        self.work.mkdir(parents=True, exist_ok=True)
        self._bg: dict[str, list[np.ndarray]] = {}

    def scan_settings(self) -> dict:
        """The scan settings a threshold is calibrated under (a threshold set with other ones does not carry over)."""
        return {"description_check": self.description_check,
                "description_unpaired_logit": self.description_unpaired_logit if self.description_check else None}

    def backgrounds(self, split: str) -> list[np.ndarray]:
        if split not in self._bg:
            self._bg[split] = fieldclips.load_backgrounds([f["path"] for f in self.splits[split]], SR, on_error=self.log)
        return self._bg[split]

    def _cached_sounds(self, path: Path, make: Callable[[], tuple[list[np.ndarray], dict]]
                       ) -> tuple[list[np.ndarray], dict]:
        """Variable-length ``[bands, frames]`` arrays (and a JSON-able dict) made once and kept in ``path``."""
        if path.is_file():
            with np.load(path, allow_pickle=False) as z:  # each z[...] reads the file again: read each once
                data, lengths, meta = z["data"], z["lengths"], json.loads(str(z["meta"]))
            cut = np.concatenate([[0], np.cumsum(lengths)])
            return [data[:, cut[i]:cut[i + 1]] for i in range(len(lengths))], meta
        t0 = time.monotonic()
        arrs, meta = make()
        atomic_write(path, lambda f: np.savez(f, data=np.concatenate(arrs, axis=1),
                                              lengths=np.array([a.shape[1] for a in arrs]),
                                              meta=np.array(json.dumps(meta))))
        self.log(f"cached {path.name}: {len(arrs)} sounds in {time.monotonic() - t0:.0f} s")
        return arrs, meta

    def bank(self, families: Sequence[str], fe=None, background_splits: Sequence[str] = ("train",)) -> BandBank:
        """The band bank for training on ``families``: their calls alone (each through a random propagation),
        every confuser kind alone, and the recordings of the ``background_splits`` sites (the training sites for
        a fold), as log band power of ``fe`` (default: :class:`~owlfinder.owlnet.OwlNetFeatureExtractor`).
        Each part is made once and cached under the work folder, keyed by the extractor's settings."""
        from owlfinder.owlnet import OwlNetFeatureExtractor

        fe = fe or OwlNetFeatureExtractor()
        settings = extractor_settings(fe)
        key = hashlib.sha256(json.dumps([settings, self.seed, BANK_VERSION], sort_keys=True).encode()).hexdigest()[:10]
        folder = self.work / f"bands-{key}"
        calls, keep, fams, notes = [], [], [], []
        for fam in families:
            arrs, meta = self._cached_sounds(folder / f"calls_{fam}_{self.n_calls}.npz",
                                             lambda fam=fam: self._render_calls(fe, fam))
            calls += arrs
            keep += meta["keep"]
            notes += meta["notes"]
            fams += [fam] * len(arrs)
        conf, meta = self._cached_sounds(folder / f"confusers_{self.n_confusers}.npz", lambda: self._render_confusers(fe))
        if "calibration" in background_splits:
            raise ValueError("the calibration sites set the threshold: they cannot be training negatives too")
        bgs = []
        for split in background_splits:
            bgs += self._cached_sounds(folder / f"backgrounds_{split}.npz", lambda split=split: (
                [sound_power(fe, _at_least(y, WINDOW_S * SR)) for y in self.backgrounds(split)], {}))[0]
        return BandBank.from_sounds(fe, calls, np.array(keep), fams, conf, bgs, window_s=WINDOW_S,
                                    confuser_kind=meta["kinds"], call_notes=notes)

    def _render_calls(self, fe, fam: str) -> tuple[list[np.ndarray], dict]:
        rng = np.random.default_rng([self.seed, 1, list(FAMILIES).index(fam)])
        f, lead, out, keep, n_notes = family(fam), 0.1, [], [], []
        pad = np.zeros(int(lead * SR), np.float32)
        for i in range(self.n_calls):
            params = f.sample(rng)
            wet = channel.propagate(f.render(params, SR), SR, channel.sample_propagation(rng))[: int(WINDOW_S * SR)]
            lp = sound_power(fe, np.concatenate([pad, wet, pad]))
            notes = f.notes(params)
            first, last = notes[0][0] + lead, notes[min(1, len(notes) - 1)][1] + lead  # the first two notes
            out.append(lp)
            keep.append([int(first * SR / fe.hop_length), min(lp.shape[1] - 1, int(last * SR / fe.hop_length))])
            n_notes.append(len(notes))
            if (i + 1) % 500 == 0:
                self.log(f"{fam}: {i + 1}/{self.n_calls} calls")
        return out, {"keep": keep, "notes": n_notes}

    def _render_confusers(self, fe) -> tuple[list[np.ndarray], dict]:
        from owlfinder.synth import confusers

        rng = np.random.default_rng([self.seed, 2])
        pad, n_max, out, kinds = np.zeros(int(0.1 * SR), np.float32), int(WINDOW_S * SR), [], []
        for kind in fieldclips.CONFUSER_KINDS:
            for _ in range(self.n_confusers * (3 if kind == "tonal_near_miss" else 1)):
                if kind == "boobook":
                    y = confusers.render_boobook(rng, SR)
                elif kind == "barking_owl":
                    y = confusers.render_barking_owl(rng, SR)
                else:
                    y = channel.propagate(confusers.render(confusers.sample(kind, rng), SR), SR,
                                          channel.sample_propagation(rng))
                if len(y) > n_max:  # a long chorus or hum: a random stretch of it
                    i = int(rng.integers(0, len(y) - n_max + 1))
                    y = y[i:i + n_max]
                out.append(sound_power(fe, np.concatenate([pad, y, pad])))
                kinds.append(kind)
            self.log(f"confusers: {kind} done")
        return out, {"kinds": kinds}

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


def detect_all(model_dir: str | os.PathLike, paths: Sequence[str], *, description_check: bool = True,
               unpaired_logit: float | None = None) -> list:
    """Finished engine detections (window scores kept) of each recording, on the CPU with one thread.

    The scan runs at threshold 0.5, so its second look (and with ``description_check``, the check of every window
    scoring 0.5 or more against the published call description) covers every window a calibrated (higher)
    threshold's would, and more."""
    from owlfinder.detect.engine import DetectionParams, detect
    from owlfinder.detect.model import load_classifier

    clf = load_classifier(str(model_dir), device="cpu")
    params = DetectionParams(threshold=0.5, num_threads=1, description_check_logit=0.0 if description_check else None,
                             description_unpaired_logit=unpaired_logit if description_check else None)
    return [detect(p, clf, params) for p in paths]


def _scan(mat: Material, model_dir: str | os.PathLike, paths: Sequence[str]) -> list:
    """:func:`detect_all` with the material's scan settings (the description check)."""
    return detect_all(model_dir, paths, description_check=mat.description_check,
                      unpaired_logit=mat.description_unpaired_logit)


def train_model(mat: Material, families: Sequence[str], out_dir: str | os.PathLike, recipe=None, *,
                target_fp_per_hour: float = 0.5, margin_logit: float = MARGIN_LOGIT,
                background_splits: Sequence[str] = ("train",),
                calibration_splits: Sequence[str] = ("calibration",)) -> dict:
    """Train on ``families`` (the bank of :meth:`Material.bank`), save to ``out_dir``, calibrate on the
    ``calibration_splits`` sites (:func:`calibrate_model`) and write the threshold into ``config.json``.

    Returns:
        ``{"threshold", "training", "calibration"}``; the calibration part has the false positives per hour
        of the calibration recordings and the training families' recall there.
    """
    from owlfinder.train.recipe import RecipeConfig, train_recipe

    out = Path(out_dir)
    check_calibration_splits(background_splits, calibration_splits)
    bank = mat.bank(families, background_splits=background_splits)

    def save(model, fe, folder: Path) -> None:
        model.config.owl_window_s = WINDOW_S
        model.save_pretrained(folder)
        fe.save_pretrained(folder)

    def keep_last(model) -> None:  # averaged weights: the run's last weights beside them, to compare the two
        save(model, bank.feature_extractor(), last_weights_dir(out))
        calibrate_model(mat, last_weights_dir(out), families, target_fp_per_hour=target_fp_per_hour,
                        margin_logit=margin_logit, splits=calibration_splits)

    model, fe, info = train_recipe(bank, recipe or RecipeConfig(), log=mat.log, on_last=keep_last)
    info["background_splits"] = list(background_splits)
    save(model, fe, out)
    calib = calibrate_model(mat, out, families, target_fp_per_hour=target_fp_per_hour, margin_logit=margin_logit,
                            splits=calibration_splits)
    return {"threshold": calib["threshold"], "training": info, "calibration": calib}


def check_calibration_splits(background_splits: Sequence[str], calibration_splits: Sequence[str]) -> None:
    """Refuse (``ValueError``) a threshold set on sites whose recordings were training negatives."""
    both = sorted(set(background_splits) & set(calibration_splits))
    if both:
        raise ValueError(f"the {', '.join(both)} sites cannot be training negatives and set the threshold too: "
                         "a model scores what it trained on low, and the threshold would come out too low")


def training_record(model_dir: str | os.PathLike) -> dict:
    """What a saved model trained on: ``{"families": [...], "background_splits": [...] or None (not recorded),
    "recipe": {...} or None}``.

    ``training.json`` (written by :func:`train_or_reuse` and the recipe scripts) says both. A fold folder of
    ``scripts/evaluate_generalisation.py`` (``fold-<family>``) has its record in the ``lofo.json`` beside it; failing
    both, the families are those whose recall the calibration recorded in ``config.json``.

    Raises:
        OSError: no ``config.json`` (not a model folder); ValueError: a record that is not JSON.
    """
    model = Path(model_dir)
    record = model / "training.json"
    if record.is_file():
        rec = json.loads(record.read_text(encoding="utf-8"))
        training = rec.get("training") or {}
        return {"families": list(rec.get("families") or []),
                "background_splits": training.get("background_splits"), "recipe": training.get("recipe")}
    lofo = model.parent / "lofo.json"
    if model.name.startswith("fold-") and lofo.is_file():
        fold = json.loads(lofo.read_text(encoding="utf-8")).get("folds", {}).get(model.name[len("fold-"):])
        if fold:
            training = fold.get("training") or {}
            return {"families": list(fold.get("train_families") or []),
                    "background_splits": training.get("background_splits"), "recipe": training.get("recipe")}
    cfg = json.loads((model / "config.json").read_text(encoding="utf-8"))
    return {"families": list(cfg.get("owl_calibration", {}).get("training_family_recall", {})),
            "background_splits": None, "recipe": None}


def last_weights_dir(model_dir: str | os.PathLike) -> Path:
    """Where :func:`train_model` keeps a weight-averaged model's last (not averaged) weights: ``<model_dir>-last``."""
    model_dir = Path(model_dir)
    return model_dir.with_name(model_dir.name + "-last")


def train_or_reuse(mat: Material, families: Sequence[str], out_dir: str | os.PathLike, recipe, *,
                   background_splits: Sequence[str] = ("train",), calibration_splits: Sequence[str] = ("calibration",),
                   margin_logit: float = MARGIN_LOGIT) -> dict:
    """:func:`train_model`, unless ``out_dir`` holds a model trained on the same families with the same recipe and
    negatives (its ``training.json``, written last, says so): then that record is returned and nothing is trained.
    A reused model calibrated on other sites, with another margin or under other scan settings
    (:meth:`Material.scan_settings`; a record from before they were kept counts as other) is calibrated again (and
    its record updated).
    """
    out = Path(out_dir)
    check_calibration_splits(background_splits, calibration_splits)
    done = out / "training.json"
    want = {"families": list(families), "recipe": json.loads(json.dumps(recipe.to_dict(), default=str)),
            "background_splits": list(background_splits)}
    if done.is_file() and (out / "model.safetensors").is_file():
        old = json.loads(done.read_text(encoding="utf-8"))
        have = {"families": old.get("families"), "recipe": old["training"].get("recipe"),
                "background_splits": old["training"].get("background_splits")}
        if have == want:
            mat.log(f"{out.name}: trained already with this recipe, reused")
            cal = old.get("calibration", {})
            if (cal.get("splits", ["calibration"]) != list(calibration_splits)
                    or cal.get("margin_logit") != margin_logit or cal.get("scan") != mat.scan_settings()):
                old["calibration"] = calibrate_model(mat, out, families, margin_logit=margin_logit,
                                                     splits=calibration_splits)
                old["threshold"] = old["calibration"]["threshold"]
                atomic_write_text(done, json.dumps(old, indent=1, default=str))
            return old
        mat.log(f"{out.name}: trained with another recipe, families or negatives: trained again")
    trained = train_model(mat, families, out, recipe, background_splits=background_splits,
                          calibration_splits=calibration_splits, margin_logit=margin_logit)
    trained["families"] = list(families)
    atomic_write_text(done, json.dumps(trained, indent=1, default=str))
    return trained


def calibrate_model(mat: Material, model_dir: str | os.PathLike, families: Sequence[str], *,
                    target_fp_per_hour: float = 0.5, margin_logit: float = MARGIN_LOGIT,
                    splits: Sequence[str] = ("calibration",)) -> dict:
    """Set a saved model's threshold from the sites of ``splits`` (the engine's scan, second look included) and
    write it into its ``config.json``.

    ``splits`` are the calibration sites alone for a fold model (the test sites are what it is measured on), or
    the calibration and test sites for a model that trained on neither: 20 sites instead of 9, so that the
    threshold clears more than one owl-like real sound (docs/generalisation.md).

    Returns:
        The calibration record: the threshold, the false positives per hour of those recordings and the recall
        of ``families``' calls inserted there.
    """
    out = Path(model_dir)
    splits = list(splits)
    cal = _recordings(mat, splits, None)
    cal_dets = _scan(mat, out, [p for p, _, _ in cal])
    thr = calibrate_threshold_fph(cal_dets, target_fp_per_hour, margin_logit)
    hours = sum(d.duration_s for d in cal_dets) / 3600
    cal_fp = sum(len(d.rethreshold(thr).events) for d in cal_dets)
    val = {}
    for f in families:  # the training families' calls in the calibration recordings
        recs = _recordings(mat, splits, f)
        call_dets = _scan(mat, out, [p for p, _, _ in recs])
        r = evaluate_fold(thr, cal_dets, [s for _, s, _ in cal], call_dets, [t for _, _, t in recs])
        val[f] = {"recall": r["recall"], "calls": r["calls"]}
    where = " and ".join(splits)
    calib = {"method": "fp_per_hour", "target_fp_per_hour": target_fp_per_hour, "margin_logit": margin_logit,
             "splits": splits, "scan": mat.scan_settings(), "sites": len({site for _, site, _ in cal}), "hours": round(hours, 4),
             "false_positives": cal_fp, "training_family_recall": val,
             "message": f"threshold {thr:.6f}: the lowest with <= {target_fp_per_hour:g} false positives per hour "
                        f"on {hours:.2f} h of {where}-site recordings, raised by {margin_logit:g} logit"}
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg.update({"owl_threshold": thr, "owl_window_s": WINDOW_S, "owl_calibration": calib})
    atomic_write_text(cfg_path, json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    mat.log(calib["message"] + "; training families' recall there: "
            + ", ".join(f"{k} {v['recall']:.2f}" for k, v in val.items()))
    return {"threshold": thr, **calib}


def _recordings(mat: Material, splits: Sequence[str], fam: str | None) -> list[tuple[str, str, list[dict]]]:
    """:meth:`Material.recordings` of several splits, one after the other."""
    return [r for split in splits for r in mat.recordings(split, fam)]


def inserted_call_detections(mat: Material, model_dir: str | os.PathLike, splits: Sequence[str],
                             families: Sequence[str | None]) -> list[tuple]:
    """``[(detection, site, truth)]`` of the copies of the ``splits`` recordings with each of ``families``' calls
    inserted, scanned by the model (the ``calls`` of
    :func:`~owlfinder.evaluation.generalisation.site_held_out_false_positives`); a ``None`` family scans the
    recordings as they are (no truth)."""
    recs = [r for fam in families for r in _recordings(mat, splits, fam)]
    return list(zip(_scan(mat, model_dir, [p for p, _, _ in recs]), [s for _, s, _ in recs],
                    [t for _, _, t in recs], strict=True))


def held_out_sites(mat: Material, model_dir: str | os.PathLike, splits: Sequence[str], families: Sequence[str], *,
                   margins: Sequence[float] = (MARGIN_LOGIT,), target_fp_per_hour: float = 0.5) -> dict:
    """How a model's threshold, calibrated as :func:`calibrate_model` does on the sites of ``splits``, fares at a
    site it never saw: each site held out in turn, the threshold calibrated on the others, and the held-out site's
    false events and the recall of each of ``families``' calls inserted there counted at it
    (:func:`owlfinder.evaluation.generalisation.site_held_out_false_positives`).

    Returns:
        ``{"splits", "sites", "negatives": [per margin, false positives], "families": {family: [per margin,
        with "calls" and "recall"]}}``.
    """
    splits = list(splits)
    clean = _recordings(mat, splits, None)
    dets = _scan(mat, model_dir, [p for p, _, _ in clean])
    sites = [site for _, site, _ in clean]
    res = {"splits": splits, "sites": len(set(sites)),
           "negatives": site_held_out_false_positives(dets, sites, margins, target_fp_per_hour), "families": {}}
    for fam in families:
        calls = inserted_call_detections(mat, model_dir, splits, [fam])
        res["families"][fam] = site_held_out_false_positives(dets, sites, margins, target_fp_per_hour, calls=calls)
        mat.log(f"{fam}: recall at each site's held-out threshold "
                + ", ".join(f"{r['recall']:.2f} (margin {r['margin_logit']:g})" for r in res["families"][fam]))
    return res


def run_fold(mat: Material, model_dir: str | os.PathLike | None, threshold: float, held_out: str,
             split: str = "test", *, scan: Callable[[list[str]], list] | None = None) -> dict:
    """The held-out family's numbers on the ``split`` sites (see
    :func:`owlfinder.evaluation.generalisation.evaluate_fold`): ``test`` for the table, ``calibration`` to compare
    recipes without looking at the test sites. ``scan`` (paths to detections with window scores) replaces the
    engine's scan of ``model_dir``, e.g. for another detector (:func:`birdnet_scan`)."""
    scan = scan or (lambda paths: _scan(mat, model_dir, paths))
    clean = mat.recordings(split, None)
    recs = mat.recordings(split, held_out)
    clean_dets = scan([p for p, _, _ in clean])
    call_dets = scan([p for p, _, _ in recs])
    return evaluate_fold(threshold, clean_dets, [s for _, s, _ in clean], call_dets, [t for _, _, t in recs])


def choose_seed(mat: Material, runs: Mapping[int | str, str | os.PathLike], family_name: str,
                trained_on: Sequence[str]) -> dict:
    """Of saved models trained alike but for their seed (keyed by seed, or by a name such as ``"shipped"``), the one
    that finds ``family_name``'s calls best on the *calibration* sites, each at its own calibrated threshold.

    The seed alone moves a held-out family's recall by up to 22 points (docs/generalisation.md), so it is worth
    choosing, but only on calls and places the models never saw: ``family_name`` must not be one of
    ``trained_on``, and the calibration sites never train. Ties go to the higher recall at <= 1 false positive per
    hour there, then to the model that comes first in ``runs`` (list the one in use first, so a tie keeps it).

    Returns:
        ``{"family", "chosen": seed, "seeds": {seed: {"recall", "recall_at_1_fph", "calls", "threshold",
        "training_family_recall"}}}``.

    Raises:
        ValueError: ``family_name`` was trained on, or ``runs`` is empty.
    """
    if family_name in trained_on:
        raise ValueError(f"cannot choose a seed on {family_name!r}: the models trained on it (choose on a family "
                         f"none of them saw, not one of {', '.join(trained_on)})")
    if not runs:
        raise ValueError("no trained seeds to choose from")
    seeds = {}
    for seed, run in runs.items():
        cfg = json.loads((Path(run) / "config.json").read_text(encoding="utf-8"))
        r = run_fold(mat, run, cfg["owl_threshold"], family_name, split="calibration")
        seeds[seed] = {"recall": r["recall"], "recall_at_1_fph": r["recall_at_1_fph"], "calls": r["calls"],
                       "threshold": cfg["owl_threshold"],
                       "training_family_recall": {k: v["recall"] for k, v in
                                                  cfg["owl_calibration"]["training_family_recall"].items()}}
        mat.log(f"seed {seed}: {family_name} recall on the calibration sites {r['recall']:.2f} "
                f"(at <= 1 FP/h there {r['recall_at_1_fph']:.2f}, {r['calls']} calls)")
    chosen = max(seeds, key=lambda k: (seeds[k]["recall"], seeds[k]["recall_at_1_fph"]))  # max keeps the first tie
    return {"family": family_name, "chosen": chosen, "seeds": seeds}


def birdnet_scan(log: Callable[[str], None] = print) -> Callable[[list[str]], list]:
    """A ``scan`` for :func:`run_fold` that runs BirdNET v2.4 (its *Ninox strenua* class, trained on recordings of
    real Powerful Owls and on none of this project's generators; the optional extra of
    :mod:`owlfinder.evaluation.birdnet`). Each recording is analysed once; later scans reuse it.

    Raises:
        BirdNETUnavailable: the optional extra is not installed (on the first scan).
    """
    from owlfinder.evaluation.birdnet import birdnet_detection

    seen: dict[str, object] = {}

    def scan(paths: list[str]) -> list:
        for i, p in enumerate(paths, 1):
            if p not in seen:
                seen[p] = birdnet_detection(p, threshold=0.5)
            if i % 20 == 0 or i == len(paths):
                log(f"BirdNET: {i}/{len(paths)} recordings")
        return [seen[p] for p in paths]

    return scan
