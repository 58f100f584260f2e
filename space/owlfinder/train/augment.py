"""On-the-fly augmentation of 5 s training clips (numpy, label-preserving, cheap on a CPU).

Each training draw of a clip gets, independently and with the probabilities of :class:`AugmentConfig`:

- a small pitch shift (resampling by a factor near 1, which also stretches time a little): owls differ
  in pitch, and a detector should not key on one exact frequency;
- a circular time shift (roll), so calls are not always where the synthesizer put them;
- mixing with another *negative* clip (a real background, or a confuser) at a random level below the
  clip, so that positives are heard over real backgrounds too and negatives over each other;
- low-frequency clutter: band-limited noise (wind, rumble, distant traffic) or a steady hum somewhere in
  60-1200 Hz, loud in negatives and below the call in positives, so that energy in the owl's band is
  not taken for an owl: only the shape of the double hoot is;
- a random gain (the recorder's level must not matter).

Owl clips keep their label: mixing is done at a level below the clip (``mix_snr_db`` above 0 dB), and
pitch shifts are small (default at most ±3 %, far less than the gap between a Powerful Owl and a Boobook).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import soxr

from owlfinder.data.clips import fit_to_length

__all__ = ["AugmentConfig", "Augmenter"]


@dataclass
class AugmentConfig:
    """Augmentation probabilities and ranges.

    Attributes:
        p_pitch: probability of a pitch shift; ``pitch_range`` is the max relative change (0.03 = ±3 %).
        p_roll: probability of a circular time shift by a uniform random offset.
        p_mix: probability of adding a random negative clip; its level is ``mix_snr_db`` dB (uniform)
            below the clip's RMS for owl clips, ``mix_snr_db_neg`` dB for negatives.
        p_gain: probability of a gain in ``gain_db`` dB (uniform); the result is kept below full scale.
        p_clutter: probability of low-frequency clutter (band noise or a hum with a few harmonics) inside
            ``clutter_hz``, ``clutter_snr_db`` dB below the clip's RMS for owl clips (``clutter_snr_db_neg``
            for negatives, which may be louder than the clip).
    """

    p_pitch: float = 0.3
    pitch_range: float = 0.03
    p_roll: float = 0.5
    p_mix: float = 0.5
    mix_snr_db: tuple[float, float] = (3.0, 20.0)
    mix_snr_db_neg: tuple[float, float] = (-5.0, 15.0)
    p_gain: float = 0.8
    gain_db: tuple[float, float] = (-18.0, 12.0)
    p_clutter: float = 0.35
    clutter_hz: tuple[float, float] = (60.0, 1200.0)
    clutter_snr_db: tuple[float, float] = (6.0, 20.0)
    clutter_snr_db_neg: tuple[float, float] = (-10.0, 10.0)

    def to_dict(self) -> dict:
        return asdict(self)


def _rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64)) + 1e-20))


class Augmenter:
    """Applies :class:`AugmentConfig` to float32 clips.

    Args:
        config: what to do.
        negatives: a pool of negative clips to mix in, int16 or float ``[M, samples]`` (may be empty).
        sampling_rate: Hz.
        seed: seeds the generator (one generator per Augmenter; use ``num_workers=0`` or one per worker).
    """

    def __init__(self, config: AugmentConfig | None = None, negatives: np.ndarray | None = None,
                 sampling_rate: int = 16000, seed: int = 0):
        self.config = config or AugmentConfig()
        self.negatives = negatives if negatives is not None and len(negatives) else None
        self.sr = sampling_rate
        self.rng = np.random.default_rng(seed)

    def _negative(self) -> np.ndarray:
        assert self.negatives is not None
        y = self.negatives[int(self.rng.integers(len(self.negatives)))]
        return y.astype(np.float32) / 32767.0 if y.dtype == np.int16 else y.astype(np.float32)

    def pitch_shift(self, y: np.ndarray, factor: float) -> np.ndarray:
        """Raise every frequency by ``factor`` (and shorten by it), keeping the length."""
        out = soxr.resample(y, self.sr * factor, self.sr, quality="LQ").astype(np.float32, copy=False)
        return fit_to_length(out, len(y))

    def clutter(self, n: int) -> tuple[np.ndarray, tuple[float, float]]:
        """Unit-RMS low-frequency clutter of ``n`` samples and the band (Hz) it occupies."""
        rng, (lo_hz, hi_hz) = self.rng, self.config.clutter_hz
        t = np.arange(n, dtype=np.float32) / self.sr
        if rng.random() < 0.6:  # band noise: wind, rumble, surf, traffic
            lo = float(np.exp(rng.uniform(np.log(lo_hz), np.log(hi_hz / 2))))
            hi = float(min(hi_hz, lo * rng.uniform(1.5, 6.0)))
            spec = np.fft.rfft(rng.standard_normal(n).astype(np.float32))
            f = np.fft.rfftfreq(n, 1.0 / self.sr)
            spec[(f < lo) | (f > hi)] = 0
            y = np.fft.irfft(spec, n).astype(np.float32)
            if rng.random() < 0.5:  # gusts
                k = max(2, int(n / self.sr * 2) + 2)
                env = np.interp(np.linspace(0, k - 1, n), np.arange(k), rng.uniform(0.2, 1.0, k))
                y *= env.astype(np.float32)
        else:  # a hum: engine, generator, insect drone
            f0 = float(np.exp(rng.uniform(np.log(lo_hz), np.log(hi_hz / 2))))
            y = np.zeros(n, dtype=np.float32)
            for k in range(1, int(rng.integers(1, 5)) + 1):
                if k * f0 < hi_hz:
                    y += np.float32(rng.uniform(0.2, 1.0) / k) * np.sin(
                        2 * np.pi * k * f0 * t * (1 + 0.002 * np.sin(2 * np.pi * 0.3 * t)) + rng.uniform(0, 6.3))
            lo, hi = f0 * 0.9, min(hi_hz, f0 * 4.5)
        return y / np.float32(_rms(y)), (lo, hi)

    def __call__(self, y: np.ndarray, is_owl: bool) -> np.ndarray:
        """An augmented copy of the float32 clip ``y``."""
        c, rng = self.config, self.rng
        y = np.asarray(y, dtype=np.float32)
        if c.p_pitch > 0 and rng.random() < c.p_pitch:
            y = self.pitch_shift(y, float(1.0 + rng.uniform(-c.pitch_range, c.pitch_range)))
        if c.p_roll > 0 and rng.random() < c.p_roll:
            y = np.roll(y, int(rng.integers(len(y))))
        else:
            y = y.copy()
        if self.negatives is not None and c.p_mix > 0 and rng.random() < c.p_mix:
            other = self._negative()
            if rng.random() < 0.5:
                other = np.roll(other, int(rng.integers(len(other))))
            lo, hi = c.mix_snr_db if is_owl else c.mix_snr_db_neg
            snr = rng.uniform(lo, hi)
            y = y + other[: len(y)] * np.float32(_rms(y) / _rms(other) * 10.0 ** (-snr / 20.0))
        if c.p_clutter > 0 and rng.random() < c.p_clutter:
            noise, _band = self.clutter(len(y))
            lo, hi = c.clutter_snr_db if is_owl else c.clutter_snr_db_neg
            y = y + noise * np.float32(_rms(y) * 10.0 ** (-rng.uniform(lo, hi) / 20.0))
        if c.p_gain > 0 and rng.random() < c.p_gain:
            y = y * np.float32(10.0 ** (rng.uniform(*c.gain_db) / 20.0))
        peak = float(np.max(np.abs(y))) if len(y) else 0.0
        if peak > 0.999:
            y = y * np.float32(0.999 / peak)
        return y
