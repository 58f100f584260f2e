"""Hard negatives in the Powerful Owl's band, rendered with the same generator as the owl
(:func:`owlfinder.synth.calls.render_owl_call`): the Southern Boobook "mo-poke" (550-750 Hz, second note
lower, short notes) and the Barking Owl "wook-wook" (400-600 Hz, short harsh dog-like notes with strong
harmonics and a noisy onset).

Pure functions of a :class:`numpy.random.Generator`; signals are mono float32 at ``sr`` Hz.
"""

from __future__ import annotations

import numpy as np

from owlfinder.synth.calls import OwlCallParams, _distance_lowpass, _echoes, _seed, render_owl_call

__all__ = ["render_barking_owl", "render_boobook", "sample_barking_owl_params", "sample_boobook_params"]


def sample_boobook_params(rng: np.random.Generator) -> OwlCallParams:
    """Draw a Southern Boobook "mo-poke": two short notes, 600-750 Hz, the second 4-12 % lower."""
    d1 = rng.uniform(0.12, 0.25)
    return OwlCallParams(
        kind="boobook", sex=None, f0_hz=float(rng.uniform(600.0, 750.0)),
        note_onsets_s=(0.0, float(d1 + rng.uniform(0.12, 0.25))),
        note_durations_s=(float(d1), float(rng.uniform(0.12, 0.25))),
        note_f0_ratios=(1.0, float(rng.uniform(0.88, 0.96))),
        note_gains=(1.0, float(rng.uniform(0.7, 1.0))),
        glide_s=float(rng.uniform(0.02, 0.05)),
        glide_depth=float(rng.uniform(0.02, 0.06)),
        arch_depth=float(rng.uniform(0.0, 0.02)),
        fall_depth=float(rng.uniform(0.04, 0.12)),
        fall_frac=float(rng.uniform(0.4, 0.6)),
        attack_s=float(rng.uniform(0.01, 0.03)),
        release_frac=float(rng.uniform(0.25, 0.45)),
        harmonics=(float(rng.uniform(0.1, 0.3)), float(rng.uniform(0.03, 0.12)), float(rng.uniform(0.0, 0.05))),
        noise=float(rng.uniform(0.0, 0.04)),
        vibrato_hz=float(rng.uniform(4.0, 9.0)),
        vibrato_depth=float(rng.uniform(0.0, 0.005)),
        jitter=float(rng.uniform(0.001, 0.005)),
        lowpass_hz=_distance_lowpass(rng, lo_hz=1200.0),
        seed=_seed(rng),
        **_echoes(rng, p_echo=0.5),
    )


def sample_barking_owl_params(rng: np.random.Generator) -> OwlCallParams:
    """Draw a Barking Owl "wook-wook": two short harsh notes at 400-600 Hz with strong harmonics."""
    d1 = rng.uniform(0.1, 0.2)
    return OwlCallParams(
        kind="barking_owl", sex=None, f0_hz=float(rng.uniform(420.0, 580.0)),
        note_onsets_s=(0.0, float(d1 + rng.uniform(0.1, 0.25))),
        note_durations_s=(float(d1), float(rng.uniform(0.1, 0.2))),
        note_f0_ratios=(1.0, float(rng.uniform(0.96, 1.03))),
        note_gains=(1.0, float(rng.uniform(0.8, 1.05))),
        glide_s=float(rng.uniform(0.02, 0.05)),
        glide_depth=float(rng.uniform(0.12, 0.25)),
        arch_depth=float(rng.uniform(0.02, 0.05)),
        fall_depth=float(rng.uniform(0.1, 0.2)),
        fall_frac=float(rng.uniform(0.4, 0.6)),
        attack_s=float(rng.uniform(0.005, 0.015)),
        release_frac=float(rng.uniform(0.3, 0.5)),
        harmonics=(float(rng.uniform(0.5, 0.9)), float(rng.uniform(0.3, 0.6)), float(rng.uniform(0.15, 0.4)),
                   float(rng.uniform(0.1, 0.25)), float(rng.uniform(0.05, 0.15))),
        noise=float(rng.uniform(0.05, 0.12)),
        onset_noise=float(rng.uniform(0.3, 0.7)),
        roughness=float(rng.uniform(0.2, 0.5)),
        roughness_hz=float(rng.uniform(30.0, 70.0)),
        vibrato_hz=float(rng.uniform(4.0, 9.0)),
        vibrato_depth=float(rng.uniform(0.0, 0.006)),
        jitter=float(rng.uniform(0.003, 0.008)),
        lowpass_hz=_distance_lowpass(rng, lo_hz=1500.0),
        seed=_seed(rng),
        **_echoes(rng, p_echo=0.5),
    )


def render_boobook(rng: np.random.Generator, sr: int) -> np.ndarray:
    """A Southern Boobook "mo-poke" (hard negative), peak 1.0, mono float32 at ``sr`` Hz."""
    return render_owl_call(sample_boobook_params(rng), sr)


def render_barking_owl(rng: np.random.Generator, sr: int) -> np.ndarray:
    """A Barking Owl "wook-wook" (hard negative), peak 1.0, mono float32 at ``sr`` Hz."""
    return render_owl_call(sample_barking_owl_params(rng), sr)
