"""OwlNet's front end: log-frequency band powers (dB) of the low band where owls hoot.

Self-contained (``numpy``, ``torch``, ``transformers``): ``save_pretrained`` copies this file into the model
folder, so ``AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)`` needs no ``owlfinder``.

A centred Hann STFT (``n_fft`` samples, ``hop_length`` hop) gives power spectra; triangular filters spaced
``bins_per_octave`` to the octave from ``f_min`` to ``f_max`` Hz sum them into bands, so a change of pitch is a
shift along the band axis; the result is ``10 log10`` of the band power. Background removal is the model's
first layer (:class:`OwlNetForAudioClassification`), so training can mix calls and backgrounds as band powers
(powers of independent sounds add) before it.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import BatchFeature, SequenceFeatureExtractor

__all__ = ["OwlNetFeatureExtractor", "log_band_filters"]


def log_band_filters(sr: int, n_fft: int, f_min: float, f_max: float, bins_per_octave: int) -> np.ndarray:
    """Triangular band filters ``[n_bands, n_fft // 2 + 1]`` centred ``bins_per_octave`` to the octave from
    ``f_min`` to ``f_max`` Hz, each at least one FFT bin wide on either side and normalised to unit sum (a
    band's value is the mean power density under it)."""
    n_bands = int(np.floor(bins_per_octave * np.log2(f_max / f_min) + 1e-9)) + 1
    centres = f_min * 2.0 ** (np.arange(n_bands) / bins_per_octave)
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    df = sr / n_fft
    half = np.maximum(centres * (2.0 ** (1.0 / bins_per_octave) - 1.0), df)
    w = np.clip(1.0 - np.abs(freqs[None, :] - centres[:, None]) / half[:, None], 0.0, None)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


class OwlNetFeatureExtractor(SequenceFeatureExtractor):
    """Band powers in dB, ``input_features`` of shape ``[batch, feature_size, frames]``.

    Args:
        sampling_rate: the rate the audio must have, in Hz.
        n_fft, hop_length: STFT size and hop, in samples.
        f_min, f_max: centre of the lowest and (at most) the highest band, in Hz.
        bins_per_octave: band spacing.
        floor_db: power floor in dB (digital silence reads as this).
    """

    model_input_names = ["input_features"]

    def __init__(self, sampling_rate: int = 16000, n_fft: int = 1024, hop_length: int = 320, f_min: float = 150.0,
                 f_max: float = 3000.0, bins_per_octave: int = 16, floor_db: float = -100.0,
                 padding_value: float = 0.0, **kwargs):
        self.n_fft, self.hop_length = int(n_fft), int(hop_length)
        self.f_min, self.f_max, self.bins_per_octave = float(f_min), float(f_max), int(bins_per_octave)
        self.floor_db = float(floor_db)
        filters = log_band_filters(int(sampling_rate), self.n_fft, self.f_min, self.f_max, self.bins_per_octave)
        lo, hi = np.flatnonzero(filters.any(axis=0))[[0, -1]]
        self._bins = slice(int(lo), int(hi) + 1)  # only the FFT bins some band uses
        self._filters_t = torch.from_numpy(np.ascontiguousarray(filters[:, self._bins]))
        self._window = torch.hann_window(self.n_fft)
        kwargs.pop("feature_size", None)  # derived from the bands, saved for readers of the config only
        super().__init__(feature_size=len(filters), sampling_rate=sampling_rate, padding_value=padding_value,
                         **kwargs)

    def to_dict(self) -> dict:
        out = super().to_dict()
        for key in ("_bins", "_filters_t", "_window"):
            out.pop(key, None)
        return out

    #: Clips per STFT on the CPU: as fast as a whole batch, with a fraction of its scratch memory.
    cpu_chunk = 8

    def band_power_db(self, waveforms: torch.Tensor) -> torch.Tensor:
        """``[batch, samples]`` float32 audio at :attr:`sampling_rate` to ``[batch, bands, frames]`` dB."""
        if waveforms.device.type == "cpu" and len(waveforms) > self.cpu_chunk:
            return torch.cat([self.band_power_db(waveforms[i:i + self.cpu_chunk])
                              for i in range(0, len(waveforms), self.cpu_chunk)])
        x = waveforms.to(torch.float32)
        spec = torch.stft(x, self.n_fft, self.hop_length, window=self._window.to(x.device), center=True,
                          pad_mode="reflect", return_complex=True)
        spec = spec[:, self._bins]
        power = spec.real.square() + spec.imag.square()  # 2x cheaper than abs() ** 2 or view_as_real
        bands = torch.matmul(self._filters_t.to(x.device), power)
        return 10.0 * torch.log10(bands.clamp_min(10.0 ** (self.floor_db / 10.0)))

    def __call__(self, raw_speech, sampling_rate: int | None = None, return_tensors: str | None = None,
                 **kwargs) -> BatchFeature:
        """Features of one clip (1-D) or a batch (a list of 1-D arrays or a 2-D array).

        Clips of a batch shorter than its longest are looped to that length (zero padding would read as a
        quiet stretch and move the background floor).
        """
        if sampling_rate is not None and sampling_rate != self.sampling_rate:
            raise ValueError(f"OwlNet expects audio at {self.sampling_rate} Hz, not {sampling_rate} Hz")
        if isinstance(raw_speech, torch.Tensor):
            raw_speech = raw_speech.detach().cpu().numpy()
        if isinstance(raw_speech, np.ndarray) and raw_speech.ndim == 2:
            batch = np.asarray(raw_speech, dtype=np.float32)
        else:
            clips = [raw_speech] if isinstance(raw_speech, np.ndarray) and raw_speech.ndim == 1 else list(raw_speech)
            clips = [np.asarray(c, dtype=np.float32).reshape(-1) for c in clips]
            n = max(max(len(c) for c in clips), self.n_fft // 2 + 1)
            batch = np.stack([c if len(c) == n else np.resize(c if len(c) else np.zeros(1, np.float32), n)
                              for c in clips])
        with torch.inference_mode():
            feats = self.band_power_db(torch.from_numpy(np.ascontiguousarray(batch)))
        if return_tensors not in ("pt", None):
            feats_out = feats.numpy()
        else:
            feats_out = feats if return_tensors == "pt" else [f.numpy() for f in feats]
        return BatchFeature({"input_features": feats_out}, tensor_type=None)
