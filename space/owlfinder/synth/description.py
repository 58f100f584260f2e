"""The draws from the published call description that the ``sourcefilter``, ``contours``, ``fm`` and ``syrinx``
families share: who is calling, how many notes a bout has, and the fundamental's range. Each family builds its
sound its own way; only these numbers of the description are common to them (``additive``,
:mod:`owlfinder.synth.calls`, keeps its own, wider draw).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["draw_f0", "draw_n_notes", "draw_sex"]


def draw_sex(rng: np.random.Generator, sex: str | None) -> str:
    """``sex`` checked, or drawn (60 % male) when ``None``."""
    if sex is None:
        sex = "male" if rng.random() < 0.6 else "female"
    if sex not in ("male", "female"):
        raise ValueError(f"sex must be 'male' or 'female', got {sex!r}")
    return sex


def draw_n_notes(rng: np.random.Generator, n_notes: int | None, probs: Mapping[int, float]) -> int:
    """``n_notes`` checked (1..6), or drawn from ``probs`` (notes per bout -> probability) when ``None``."""
    if n_notes is None:
        n_notes = int(rng.choice(list(probs), p=list(probs.values())))
    if not 1 <= int(n_notes) <= 6:
        raise ValueError("n_notes must be in 1..6")
    return int(n_notes)


def draw_f0(rng: np.random.Generator, sex: str) -> float:
    """The held fundamental in Hz: males 350-430 Hz (60 % of them in 350-380 Hz), females 450-550 Hz."""
    if sex == "male":
        return rng.uniform(350, 380) if rng.random() < 0.6 else rng.uniform(380, 430)
    return rng.uniform(450, 550)
