"""The spectrogram people look at: one pure-numpy function, scaled per clip so the owl band is readable.

Used by the Detect tab, the Label tab and the event exports (``event_NNN.png``), so a clip looks the same
everywhere. Field recordings often carry a loud low band (wind, traffic, a creek, handling rumble) far below
the Powerful Owl's 300–600 Hz hoots, and night recordings a steady insect chorus. Scaling colours on the whole
0–2 kHz picture lets the loud band set the top of the scale and crushes everything else to black. Here:

1. the rumble under an optional high-pass corner is attenuated as a Butterworth high-pass would;
2. each frequency's noise floor (its median over the clip) is subtracted, so steady hums and choruses sink
   to the background and brief calls stand out of it (optional);
3. the colour range comes from robust percentiles of the shown band above the high-pass corner.

The layout follows librosa: ``db`` is shaped ``[n_freqs, n_frames]`` (frequency rows, time columns) and frame
``t`` is centred at ``t * hop_length / sr`` seconds; no librosa import is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DEFAULT_FMAX_HZ", "DEFAULT_HIGHPASS_HZ", "DEFAULT_PERCENTILES", "MIN_RANGE_DB", "MIN_RANGE_RAW_DB",
           "Spectrogram",
           "band_contrast", "owl_spectrogram", "parabolic_peak"]

#: Top of the shown band: the owl's fundamental and first harmonics (Hz).
DEFAULT_FMAX_HZ = 2000.0
#: High-pass corner for display: well under the owl band's 300 Hz floor, above most rumble (Hz).
DEFAULT_HIGHPASS_HZ = 150.0
#: Colour range from these percentiles of the shown band: most of the background is drawn dark, the loudest
#: 0.1 % of pixels bright; a few extreme pixels cannot stretch the scale.
DEFAULT_PERCENTILES = (60.0, 99.9)
#: The colour range spans at least this many dB (noise floor removed / kept), so a clip of pure noise (or
#: silence) is drawn dark rather than blown up to full contrast.
MIN_RANGE_DB = 12.0
MIN_RANGE_RAW_DB = 30.0
#: Order of the Butterworth-shaped high-pass applied to the power spectrum (12 dB per octave per order/2).
_HIGHPASS_ORDER = 4


@dataclass(frozen=True)
class Spectrogram:
    """A clip's display spectrogram.

    Attributes:
        times_s: frame centres, seconds from the start of the clip, shape ``[n_frames]``.
        freqs_hz: bin centres in Hz, from 0 to at most ``fmax_hz``, shape ``[n_freqs]``.
        db: power in dB, shape ``[n_freqs, n_frames]``, high-pass applied: relative to full scale, or, with
            the noise floor removed, to each frequency's median over the clip.
        vmin: bottom of the colour range in dB (drawn darkest).
        vmax: top of the colour range in dB (drawn brightest).
    """

    times_s: np.ndarray
    freqs_hz: np.ndarray
    db: np.ndarray
    vmin: float
    vmax: float

    @property
    def scaled(self) -> np.ndarray:
        """``db`` mapped to 0 (``vmin`` and below) … 1 (``vmax`` and above), float32, for colouring."""
        span = max(self.vmax - self.vmin, 1e-6)
        return np.clip((self.db - self.vmin) / span, 0.0, 1.0).astype(np.float32)


def owl_spectrogram(y: np.ndarray, sr: int, *, fmax_hz: float = DEFAULT_FMAX_HZ,
                    highpass_hz: float | None = DEFAULT_HIGHPASS_HZ,
                    noise_floor: bool = True, percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
                    min_range_db: float | None = None, n_fft: int | None = None,
                    hop_length: int | None = None) -> Spectrogram:
    """Power spectrogram of a mono clip from 0 to ``fmax_hz``, with a colour range set by this clip alone.

    Args:
        y: mono audio, any float dtype, shape ``[n_samples]``.
        sr: sample rate in Hz.
        fmax_hz: top of the shown band in Hz.
        highpass_hz: corner of the display high-pass in Hz: power below it is attenuated (Butterworth-shaped,
            order 4) and left out of the colour statistics. ``None`` or ``0`` keeps everything and takes the
            statistics over the whole shown band.
        noise_floor: subtract each frequency's median dB over the clip. Right for short clips around brief
            calls (an event, a labelling clip); a sound present at one pitch for more than half the clip
            (a steady tone) sinks into the background.
        percentiles: ``(low, high)`` percentiles (0–100) of the shown band's dB values that map to the
            darkest and brightest colours.
        min_range_db: the smallest colour range in dB (``vmax - vmin``); ``vmax`` is raised to keep it
            (default :data:`MIN_RANGE_DB` with the noise floor removed, else :data:`MIN_RANGE_RAW_DB`).
        n_fft: FFT length in samples (default: the power of two nearest ``sr / 8``, about 8 Hz bins).
        hop_length: samples between frames (default: 16 ms).

    Returns:
        A :class:`Spectrogram`. A clip shorter than one FFT is zero-padded; a silent clip gives a flat picture.
    """
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    lo_pct, hi_pct = percentiles
    if not 0.0 <= lo_pct < hi_pct <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
    n_fft = n_fft or int(2 ** np.ceil(np.log2(max(256, sr / 8))))
    hop_length = hop_length or max(1, int(sr * 0.016))
    if len(y) < n_fft:
        y = np.pad(y, (0, n_fft - len(y)))
    n_frames = 1 + (len(y) - n_fft) // hop_length
    idx = np.arange(n_fft)[None, :] + hop_length * np.arange(n_frames)[:, None]
    window = np.hanning(n_fft).astype(np.float32)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    keep = freqs <= fmax_hz
    power = np.abs(np.fft.rfft(y[idx] * window[None, :], axis=1)[:, keep]).T ** 2
    # Normalise so a full-scale sine reads about 0 dB whatever n_fft is.
    power /= (window.sum() / 2.0) ** 2
    freqs = freqs[keep]
    db = 10.0 * np.log10(power + 1e-12)
    if noise_floor:
        db -= np.median(db, axis=1, keepdims=True)
    if highpass_hz:
        # After the noise floor is removed, or removing it would undo the cut: rumble stays dark.
        ratio = (freqs / float(highpass_hz)) ** (2 * _HIGHPASS_ORDER)
        db += (10.0 * np.log10(ratio / (1.0 + ratio) + 1e-12))[:, None]
    times = (np.arange(n_frames) * hop_length + n_fft / 2) / sr
    band = db[freqs >= highpass_hz] if highpass_hz else db
    if band.size == 0:
        band = db
    vmin, vmax = (float(v) for v in np.percentile(band, [lo_pct, hi_pct]))
    if min_range_db is None:
        min_range_db = MIN_RANGE_DB if noise_floor else MIN_RANGE_RAW_DB
    vmax = max(vmax, vmin + min_range_db)  # raise the top, so noise alone (or silence) stays dark
    return Spectrogram(times, freqs, db.astype(np.float32), vmin, vmax)


def band_contrast(spec: Spectrogram, band_hz: tuple[float, float], span_s: tuple[float, float]) -> float:
    """How much brighter ``band_hz`` is drawn during ``span_s`` than in the rest of the clip.

    The mean of :attr:`Spectrogram.scaled` inside the band and span minus its mean in the same band outside
    the span: about 0 when a sound there is invisible, up to 1 for a full-brightness sound on black. Used to
    check that the colour scaling does not crush a call (give the call's own band and span).
    """
    rows = (spec.freqs_hz >= band_hz[0]) & (spec.freqs_hz <= band_hz[1])
    cols = (spec.times_s >= span_s[0]) & (spec.times_s <= span_s[1])
    img = spec.scaled[rows]
    inside, outside = img[:, cols], img[:, ~cols]
    if inside.size == 0 or outside.size == 0:
        raise ValueError("the band and span must leave pixels both inside and outside the span")
    return float(inside.mean() - outside.mean())


def parabolic_peak(db: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The fractional row of each column's peak: ``k`` (a peak row per column of ``db``, dB ``[rows, columns]``)
    moved by the vertex of the parabola through it and its two neighbours, by at most half a row. A peak on the
    first or last row, or one that is not a local maximum, stays where it is."""
    rows, cols = db.shape[0], np.arange(db.shape[1])
    km, kp = np.clip(k - 1, 0, rows - 1), np.clip(k + 1, 0, rows - 1)
    a, b, c = db[km, cols], db[k, cols], db[kp, cols]
    den = a - 2 * b + c
    delta = np.where((den < 0) & (k > 0) & (k < rows - 1), 0.5 * (a - c) / np.where(den == 0, -1, den), 0.0)
    return k + np.clip(delta, -0.5, 0.5)
