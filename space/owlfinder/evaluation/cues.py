"""Which of a call generator's parameters does a model's score follow?

A model that generalises scores every call the description allows about alike. One that learned a generator's
habit scores calls by that habit: on 2026-12-07 the held-out family's logit followed the depth of the notes' onset
glide more than anything else, in all three folds looked at (Spearman 0.38-0.59; docs/generalisation.md). This
module measures that for any model and family: :func:`score_family_clips` renders calls into real background clips
at one band SNR and scores them; :func:`cue_table` ranks every numeric parameter by how strongly the logit follows
it; :func:`binned` gives the logit along one parameter. ``scripts/explain_scores.py`` is the command.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

__all__ = ["binned", "cue_table", "flatten_params", "logit", "score_family_clips"]


def logit(p: np.ndarray | float) -> np.ndarray:
    """``log(p / (1 - p))``, with ``p`` kept within [1e-7, 1 - 1e-7] (a saturated score stays finite)."""
    from scipy.special import logit as _logit

    return _logit(np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7))


def flatten_params(params: Mapping, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a nested parameter dict as ``{"voice.glide_depth": 0.1, "notes.0.dur_s": 0.4, ...}``
    (booleans as 0/1; strings and the ``seed`` fields left out), plus ``n.<list>`` for the length of each list."""
    out: dict[str, float] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if key == "seed" or isinstance(value, str) or value is None:
            continue
        if isinstance(value, bool | int | float | np.integer | np.floating):
            out[name] = float(value)
        elif isinstance(value, Mapping):
            out.update(flatten_params(value, name + "."))
        elif isinstance(value, list | tuple):
            out[f"n.{name}"] = float(len(value))
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    out.update(flatten_params(item, f"{name}.{i}."))
                elif isinstance(item, bool | int | float | np.integer | np.floating):
                    out[f"{name}.{i}"] = float(item)
    return out


def score_family_clips(score: Callable[[np.ndarray], np.ndarray], fam, backgrounds: Sequence[np.ndarray], sr: int,
                       n: int, *, window_s: float = 5.0, snr_db: float = 6.0, seed: int = 0, batch: int = 32,
                       progress: Callable[[int, int], None] | None = None) -> tuple[list[dict], np.ndarray]:
    """``n`` calls of the family ``fam`` (:class:`~owlfinder.synth.families.Family`), each through a random
    propagation and recorder into a random ``window_s`` crop of ``backgrounds`` at ``snr_db`` band SNR, scored by
    ``score`` (a batch of float32 windows ``[B, samples]`` at ``sr`` Hz -> owl probabilities).

    Returns:
        ``(metas, logits)``: each call's :func:`~owlfinder.synth.fieldclips.owl_clip` meta (its parameters, the
        channel) and the logit of its score.
    """
    from owlfinder.synth import fieldclips

    rng = np.random.default_rng([seed, 17])
    metas, probs, clips = [], [], []
    n_samples = int(round(window_s * sr))
    for i in range(n):
        clip, meta = fieldclips.owl_clip(rng, fam, fieldclips.crop(rng, backgrounds, n_samples), sr, (snr_db, snr_db))
        clips.append(clip)
        metas.append(meta)
        if len(clips) == batch or i == n - 1:
            probs.append(np.asarray(score(np.stack(clips)), dtype=np.float64))
            clips = []
            if progress:
                progress(i + 1, n)
    return metas, logit(np.concatenate(probs)) if probs else np.zeros(0)


def _features(metas: Sequence[dict]) -> list[dict[str, float]]:
    rows = []
    for m in metas:
        row = {f"params.{k}": v for k, v in flatten_params(m["params"]).items()}
        row.update({f"propagation.{k}": v for k, v in flatten_params(m.get("propagation") or {}).items()})
        rows.append(row)
    return rows


def cue_table(metas: Sequence[dict], logits: np.ndarray, *, min_count: int = 30) -> list[dict]:
    """Every numeric parameter (of the call and its propagation) that at least ``min_count`` calls have and that
    varies, with the Spearman correlation of the logit with it; strongest first.

    Returns:
        ``[{"parameter", "spearman", "calls"}]``.
    """
    from scipy.stats import spearmanr

    rows, logits = _features(metas), np.asarray(logits, dtype=np.float64)
    out = []
    for name in sorted({k for r in rows for k in r}):
        have = np.array([name in r for r in rows])
        x = np.array([r[name] for r in rows if name in r])
        if have.sum() < min_count or np.ptp(x) == 0:
            continue
        rho = float(spearmanr(x, logits[have]).statistic)
        if np.isfinite(rho):
            out.append({"parameter": name, "spearman": rho, "calls": int(have.sum())})
    return sorted(out, key=lambda r: -abs(r["spearman"]))


def binned(metas: Sequence[dict], logits: np.ndarray, parameter: str, *, bins: int = 5,
           threshold_logit: float | None = None) -> list[dict]:
    """The logit along ``parameter`` (a :func:`cue_table` name): calls in up to ``bins`` groups of about equal
    size (a value shared by many calls, such as 0, is one group), each with its range, median logit and, with
    ``threshold_logit``, the share of calls at or above it.

    Raises:
        KeyError: no call has ``parameter``.
    """
    rows, logits = _features(metas), np.asarray(logits, dtype=np.float64)
    have = np.array([parameter in r for r in rows])
    if not have.any():
        raise KeyError(f"no call has a parameter {parameter!r}")
    x, y = np.array([r[parameter] for r in rows if parameter in r]), logits[have]
    values, counts = np.unique(x, return_counts=True)
    common = values[counts >= len(x) / bins]  # a value many calls share (0: no glide) is a group of its own
    groups = [x == v for v in common]
    rest = ~np.isin(x, common)
    if rest.any():
        n_groups = max(1, bins - len(common))
        edges = np.quantile(x[rest], np.linspace(0, 1, n_groups + 1))
        for i in range(n_groups):
            upper = x <= edges[i + 1] if i == n_groups - 1 else x < edges[i + 1]
            groups.append(rest & (x >= edges[i]) & upper)
    out = []
    for m in sorted((g for g in groups if g.any()), key=lambda g: float(x[g].min())):
        row = {"from": float(x[m].min()), "to": float(x[m].max()), "calls": int(m.sum()),
               "median_logit": float(np.median(y[m]))}
        if threshold_logit is not None:
            row["above_threshold"] = float(np.mean(y[m] >= threshold_logit))
        out.append(row)
    return out
