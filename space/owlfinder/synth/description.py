"""The draws from the published call description that the ``sourcefilter``, ``contours``, ``fm`` and ``syrinx``
families share: who is calling, how many notes a bout has, and the fundamental's range. Each family builds its
sound its own way; only these numbers of the description are common to them (``additive``,
:mod:`owlfinder.synth.calls`, keeps its own, wider draw).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

__all__ = ["draw_bout", "draw_f0", "draw_n_notes", "draw_sex", "note_times"]


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


def draw_bout(rng: np.random.Generator, n_notes: int, d1: float, d2: float, ratio2: float, gain2: float,
              spacing: float, more: Callable[[np.random.Generator], dict]) -> list[dict]:
    """The notes of a bout that repeats the woo-HOO pair: ``d1``/``d2`` the two notes' lengths (s), ``ratio2`` and
    ``gain2`` (dB) the second note's pitch and level, ``spacing`` the onset-to-onset time (s), kept in 0.62-1.25 s
    with at least 0.12 s after every note. ``more(rng)`` adds a family's own fields to each note, drawn after the
    shared ones. Each note: ``onset_s``, ``dur_s``, ``pitch_ratio``, ``gain_db`` and ``more``'s, rounded to 1e-5."""
    out: list[dict] = []
    onset = 0.0
    for i in range(n_notes):
        first = i % 2 == 0
        dur = float(np.clip((d1 if first else d2) * rng.uniform(0.95, 1.05), 0.25, 0.95))
        if i > 0:
            prev = out[-1]
            step = float(np.clip(spacing * rng.uniform(0.97, 1.03), prev["dur_s"] + 0.12, 1.25))
            onset = prev["onset_s"] + max(step, 0.62)
        note = {
            "onset_s": _r(onset), "dur_s": _r(dur),
            "pitch_ratio": 1.0 if first else _r(ratio2 * rng.uniform(0.995, 1.005)),
            "gain_db": _r(0.0 if first else gain2 + rng.uniform(-1.0, 1.0)),
        }
        note.update(more(rng))
        out.append(note)
    return out


def note_times(params: dict, lead_in_s: float) -> list[tuple[float, float]]:
    """Each note's (onset, offset) in s within a rendered array whose first note starts ``lead_in_s`` in (or at
    ``params["lead_in_s"]`` where given)."""
    lead = float(params.get("lead_in_s", lead_in_s))
    return [(lead + n["onset_s"], lead + n["onset_s"] + n["dur_s"]) for n in params["notes"]]


def _r(x: float, nd: int = 5) -> float:
    return float(round(float(x), nd))
