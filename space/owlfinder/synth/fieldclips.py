"""Clips and long recordings that look like the field: a family's dry call sent through
:mod:`~owlfinder.synth.channel` (distance, trees, reverb), mixed into real background at a band SNR, then
through a recorder (high-pass, clipping, codec, source bandwidth).

- :func:`owl_clip`, :func:`confuser_clip`, :func:`background_clip`: 5 s training clips.
- :func:`insert_calls`: calls of one family placed into a long real recording, with their true times
  (for event-level evaluation of the detection engine).
- :func:`load_backgrounds`, :func:`crop`: real negative audio in memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from owlfinder import audio
from owlfinder.synth import channel, confusers
from owlfinder.synth.calls import OWL_BAND, SynthError, mix_at_snr
from owlfinder.synth.confusers import render_barking_owl, render_boobook
from owlfinder.synth.families import Family

__all__ = ["CONFUSER_KINDS", "background_clip", "confuser_clip", "crop", "insert_calls", "load_backgrounds",
           "owl_clip"]

#: Every hard negative: the field confusers plus the project's Southern Boobook and Barking Owl.
CONFUSER_KINDS: tuple[str, ...] = (*confusers.CONFUSERS, "boobook", "barking_owl")
_FLOOR = 1e-5  # RMS of a faint noise floor, so that digital silence still has a band power


def load_backgrounds(paths: Sequence[str | os.PathLike], sr: int, *, min_s: float = 0.25,
                     on_error: Callable[[str], None] | None = print) -> list[np.ndarray]:
    """Decode each recording whole as mono float32 at ``sr`` Hz; unreadable or too short files are reported
    through ``on_error`` (one line naming the file) and skipped."""
    out = []
    for p in paths:
        try:
            y = audio.load(p, sr, max_duration_s=None)
        except Exception as err:  # noqa: BLE001 - one bad file must not stop the rest
            if on_error:
                on_error(f"skipped {p}: {' '.join(str(err).split())[:160]}")
            continue
        if len(y) >= min_s * sr:
            out.append(np.asarray(y, dtype=np.float32))
    return out


def crop(rng: np.random.Generator, pool: Sequence[np.ndarray], n: int) -> np.ndarray:
    """``n`` samples from a random place in a random recording of ``pool`` (chosen by length; shorter ones
    are looped), plus a faint noise floor."""
    lengths = np.array([len(y) for y in pool], dtype=np.float64)
    y = pool[int(rng.choice(len(pool), p=lengths / lengths.sum()))]
    if len(y) < n:
        y = np.tile(y, n // len(y) + 1)
    i = int(rng.integers(0, len(y) - n + 1))
    return y[i:i + n] + rng.standard_normal(n).astype(np.float32) * np.float32(_FLOOR)


def _mix(rng: np.random.Generator, bg: np.ndarray, wet: np.ndarray, sr: int, snr_db: float, offset_s: float
         ) -> np.ndarray:
    try:
        return mix_at_snr(bg, wet, sr, snr_db, offset_s, band=OWL_BAND)
    except SynthError:  # a sound with nothing in the owl band (a low hum, say): level it over the full band
        return mix_at_snr(bg, wet, sr, snr_db, offset_s, band=(50.0, 0.45 * sr))


def owl_clip(rng: np.random.Generator, fam: Family, bg: np.ndarray, sr: int,
             snr_db_range: tuple[float, float] = (-5.0, 20.0), *, recorder: bool = True) -> tuple[np.ndarray, dict]:
    """A call of ``fam`` in the background clip ``bg`` (its length is the clip's).

    The first two notes (or the single hoot) lie inside the clip; longer bouts may run past its end.

    Returns:
        ``(clip, meta)``: float32 clip; meta holds the call parameters, channel settings, SNR and note times.
    """
    params = fam.sample(rng)
    call = fam.render(params, sr)
    notes = fam.notes(params)
    prop = channel.sample_propagation(rng)
    wet = channel.propagate(call, sr, prop)
    clip_s = len(bg) / sr
    end2 = notes[min(1, len(notes) - 1)][1]
    offset = float(rng.uniform(0.0, max(0.01, clip_s - end2 - 0.05)))
    snr = float(rng.uniform(*snr_db_range))
    y = _mix(rng, bg, wet, sr, snr, offset)
    rec = channel.sample_recorder(rng) if recorder else None
    if rec is not None:
        y = channel.record(y, sr, rec)
    meta = {"family": fam.name, "params": params, "propagation": prop, "recorder": rec, "snr_db": snr,
            "notes": [(offset + a, offset + b) for a, b in notes]}
    return np.asarray(y, dtype=np.float32), meta


def confuser_clip(rng: np.random.Generator, bg: np.ndarray, sr: int,
                  snr_db_range: tuple[float, float] = (-5.0, 20.0), kind: str | None = None
                  ) -> tuple[np.ndarray, dict]:
    """A hard negative (a random :data:`CONFUSER_KINDS` sound, or ``kind``) in the background clip ``bg``."""
    kind = kind or str(rng.choice(CONFUSER_KINDS))
    if kind == "boobook":
        call = render_boobook(rng, sr)
    elif kind == "barking_owl":
        call = render_barking_owl(rng, sr)
    else:
        call = confusers.render(confusers.sample(kind, rng), sr)
        call = channel.propagate(call, sr, channel.sample_propagation(rng))
    n = len(bg)
    if len(call) > n:  # a long chorus or hum: a random stretch of it
        i = int(rng.integers(0, len(call) - n + 1))
        call, offset = call[i:i + n], 0.0
    else:
        offset = float(rng.uniform(0.0, (n - len(call)) / sr))
    snr = float(rng.uniform(*snr_db_range))
    y = channel.record(_mix(rng, bg, call, sr, snr, offset), sr, channel.sample_recorder(rng))
    return np.asarray(y, dtype=np.float32), {"kind": kind, "snr_db": snr}


def background_clip(rng: np.random.Generator, bg: np.ndarray, sr: int) -> np.ndarray:
    """The background clip through a random recorder."""
    return np.asarray(channel.record(bg, sr, channel.sample_recorder(rng)), dtype=np.float32)


def insert_calls(rng: np.random.Generator, fam: Family, y: np.ndarray, sr: int, *,
                 snr_db_range: tuple[float, float] = (-3.0, 15.0), every_s: float = 14.0,
                 edge_s: float = 1.0) -> tuple[np.ndarray, list[dict]]:
    """Calls of ``fam`` (each through a random propagation) placed into the recording ``y``.

    One call per ``every_s`` seconds (at least one), each at a random place in its own slot, so calls never
    overlap; each at a band SNR drawn uniformly from ``snr_db_range`` over the background under it.

    Returns:
        ``(mixed, truth)``: float32 recording of the same length; truth is one dict per call with ``start_s``,
        ``end_s`` (first note onset to last note offset), ``snr_db`` and ``n_notes``.
    """
    n_slots = max(1, int(len(y) / sr // every_s))
    slot = len(y) / sr / n_slots
    out, truth = np.asarray(y, dtype=np.float32) + rng.standard_normal(len(y)).astype(np.float32) * _FLOOR, []
    for k in range(n_slots):
        params = fam.sample(rng)
        wet = channel.propagate(fam.render(params, sr), sr, channel.sample_propagation(rng))
        notes = fam.notes(params)
        span = min(len(wet) / sr, slot - 2 * edge_s)
        if span <= 0.5:
            continue
        offset = k * slot + edge_s + float(rng.uniform(0.0, max(0.0, slot - 2 * edge_s - span)))
        wet = wet[: int(span * sr)]
        snr = float(rng.uniform(*snr_db_range))
        out = _mix(rng, out, wet, sr, snr, offset)
        kept = [(a, b) for a, b in notes if a < span]
        truth.append({"start_s": offset + kept[0][0], "end_s": offset + min(kept[-1][1], span), "snr_db": snr,
                      "n_notes": len(kept)})
    return out, truth
