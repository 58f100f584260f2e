"""Backgrounds and labelled clips: real recordings (or pink noise) to lay calls on, and 5 s training clips.

- :class:`BackgroundPool`: random crops of real recordings (negatives only, where a ``MANIFEST.tsv`` says
  so), tiled with crossfades, at any sample rate; :class:`BackgroundStream` reads one as a continuous
  stream (for whole nights, :mod:`owlfinder.synth.nights`);
- :func:`make_clip` / :func:`make_clips`: one whole call (owl, confuser) or none on a background at a band
  SNR, written as ``owl/*.wav``, ``not_owl/*.wav`` and ``clips.csv``.

Randomness comes only from the :class:`numpy.random.Generator` passed in; signals are mono float32 at
``sr`` Hz, times in seconds, levels in dB.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from owlfinder.audio import AudioError, is_audio_path, load, probe
from owlfinder.synth.calls import (
    CLIP_COLUMNS,
    KINDS,
    SynthError,
    mix_at_snr,
    render_owl_call,
    sample_params,
    snr_band,
)

__all__ = ["BackgroundPool", "BackgroundStream", "make_clip", "make_clips", "pink_noise"]

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------- backgrounds


def pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` samples of unit-RMS pink (1/f power) noise, float32, made in the frequency domain.

    The result is periodic with period ``n``: reading it in a loop has no seam.
    """
    if n < 2:
        return np.zeros(n, dtype=np.float32)
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    k = np.arange(n // 2 + 1, dtype=np.float64)
    k[0] = 1.0
    spec /= np.sqrt(k)
    spec[0] = 0.0
    y = np.fft.irfft(spec, n)
    return (y / (y.std() + 1e-20)).astype(np.float32)


class _NoiseLoop:
    """A seamless loop of pink noise read sequentially (cheap enough for a 24-hour night)."""

    def __init__(self, rng: np.random.Generator, sr: int, level_dbfs: float, period_s: float = 29.0):
        self.table = pink_noise(rng, max(2, int(period_s * sr))) * np.float32(10.0 ** (level_dbfs / 20.0))
        self.pos = int(rng.integers(0, len(self.table)))

    def read(self, n: int) -> np.ndarray:
        idx = (self.pos + np.arange(n)) % len(self.table)
        self.pos = (self.pos + n) % len(self.table)
        return self.table[idx]


def _manifest_negatives(root: Path) -> set[str] | None:
    """Paths a ``MANIFEST.tsv`` in ``root`` marks as field negatives (content starting "NEG"), or None."""
    manifest = root / "MANIFEST.tsv"
    if not manifest.is_file():
        return None
    try:
        with manifest.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if not rows or "path" not in rows[0] or "content" not in rows[0]:
            return None
        return {r["path"] for r in rows if (r.get("content") or "").upper().startswith("NEG")}
    except (OSError, csv.Error, UnicodeDecodeError):
        return None


@dataclass
class BackgroundPool:
    """Real recordings to lay calls on: random crops, tiled with crossfades, at any sample rate.

    Audio files are found recursively under ``roots``. Where a root holds a ``MANIFEST.tsv`` (as
    ``../shared/data`` does) only the files it marks as negatives (content "NEG ...") are used, which
    leaves out music, speech and the silence test file. Files are drawn with probability proportional to
    their duration, so long soundscapes dominate over one-second clips. Unreadable files are skipped (see
    ``skipped``) the first time they fail.

    Attributes:
        roots: folders (or single files) to search.
        min_duration_s: shorter files are not used.
        level_dbfs: each crop's RMS level is drawn from this range (dBFS); ``None`` keeps native levels.
        noise_floor_dbfs: RMS of pink noise added under everything (dBFS); ``None`` for none.
        crossfade_s: crossfade between tiled pieces, in s.
        max_piece_s: longest stretch taken from one file before switching, in s.
        skipped: ``{path: reason}`` for files that could not be read.
    """

    roots: Sequence[str | os.PathLike] | str | os.PathLike
    min_duration_s: float = 1.0
    level_dbfs: tuple[float, float] | None = (-42.0, -30.0)
    noise_floor_dbfs: float | None = -68.0
    crossfade_s: float = 0.25
    max_piece_s: float = 60.0
    skipped: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        roots = [self.roots] if isinstance(self.roots, (str, os.PathLike)) else list(self.roots)
        self.roots = [Path(r) for r in roots]
        files: list[Path] = []
        for root in self.roots:
            if root.is_file():
                files.append(root)
                continue
            if not root.is_dir():
                raise SynthError(f"background folder not found: {root}")
            keep = _manifest_negatives(root)
            for p in sorted(root.rglob("*")):
                if p.is_file() and is_audio_path(p):
                    if keep is None or p.relative_to(root).as_posix() in keep:
                        files.append(p)
        if not files:
            raise SynthError(f"no audio files under {', '.join(str(r) for r in self.roots)}")
        self._files = files
        self._durations: np.ndarray | None = None

    @property
    def files(self) -> list[Path]:
        """Audio files found (sorted; some may later prove unreadable)."""
        return list(self._files)

    def _probe_all(self) -> np.ndarray:
        if self._durations is None:
            durs = np.zeros(len(self._files))
            for k, p in enumerate(self._files):
                try:
                    durs[k] = probe(p).duration_s
                except AudioError as err:
                    self._skip(k, err)
            durs[durs < self.min_duration_s] = 0.0
            self._durations = durs
        if not self._durations.any():
            raise SynthError(f"no readable audio of at least {self.min_duration_s:g} s under "
                             f"{', '.join(str(r) for r in self.roots)}")
        return self._durations

    def _skip(self, k: int, err: Exception) -> None:
        self.skipped[str(self._files[k])] = str(err)
        if self._durations is not None:
            self._durations[k] = 0.0
        log.warning("skipping background %s", err)

    @property
    def duration_s(self) -> float:
        """Total usable audio in s (probes every file on first use)."""
        return float(self._probe_all().sum())

    def group(self, path: str | os.PathLike) -> str:
        """A source label for splitting data: the file's folder relative to the root it came from."""
        p = Path(path)
        for root in self.roots:
            if root.is_dir() and p.is_relative_to(root):
                return p.parent.relative_to(root).as_posix() or "."
        return p.parent.name or "."

    def piece(self, rng: np.random.Generator, sr: int, max_s: float) -> tuple[np.ndarray, str]:
        """One random stretch (at most ``max_s`` s) of one random file at ``sr`` Hz and its path."""
        while True:
            durs = self._probe_all()
            k = int(rng.choice(len(durs), p=durs / durs.sum()))
            take = min(max_s, durs[k])
            start = float(rng.uniform(0.0, durs[k] - take))
            try:
                y = load(self._files[k], sr, start_s=start, end_s=start + take, max_duration_s=None)
            except AudioError as err:
                self._skip(k, err)
                continue
            if len(y) >= 2 * int(self.crossfade_s * sr) + 2:
                return y, str(self._files[k])
            self._skip(k, AudioError(self._files[k], "decoded shorter than its header says"))

    def stream(self, rng: np.random.Generator, sr: int) -> BackgroundStream:
        """An endless background at ``sr`` Hz read with :meth:`BackgroundStream.read`."""
        return BackgroundStream(self, rng, sr)

    def crop(self, rng: np.random.Generator, duration_s: float, sr: int) -> tuple[np.ndarray, list[str]]:
        """A random background ``duration_s`` s long at ``sr`` Hz.

        Returns:
            (mono float32 audio, paths of the files it was cut from, in order).
        """
        bs = self.stream(rng, sr)
        y = bs.read(int(round(duration_s * sr)))
        return y, bs.sources


class BackgroundStream:
    """Background audio read sequentially without end: pieces of random files, crossfaded, levelled.

    Memory stays at one or two pieces (``max_piece_s``) whatever is read in total. ``pool=None`` gives
    pink noise only (at ``level_dbfs``).
    """

    def __init__(self, pool: BackgroundPool | None, rng: np.random.Generator, sr: int, *,
                 level_dbfs: tuple[float, float] | None = (-42.0, -30.0), noise_floor_dbfs: float | None = -68.0):
        self.pool, self.rng, self.sr = pool, rng, sr
        if pool is not None:
            level_dbfs, noise_floor_dbfs = pool.level_dbfs, pool.noise_floor_dbfs
        self.level = None if level_dbfs is None else float(rng.uniform(*level_dbfs))
        if pool is None:  # pink noise alone is the whole background
            noise_floor_dbfs = self.level if self.level is not None else -40.0
        self.floor = None if noise_floor_dbfs is None else _NoiseLoop(rng, sr, noise_floor_dbfs)
        self.sources: list[str] = []
        self._buf = np.zeros(0, dtype=np.float32)

    def _next_piece(self) -> np.ndarray:
        pool = self.pool
        assert pool is not None
        y, path = pool.piece(self.rng, self.sr, pool.max_piece_s)
        self.sources.append(path)
        if self.level is not None:
            rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
            target = 10.0 ** ((self.level + self.rng.uniform(-3.0, 3.0)) / 20.0)
            y = y * min(target / max(rms, 1e-9), 10.0 ** (30 / 20))  # never lift near-silence by > 30 dB
        peak = float(np.max(np.abs(y)))
        if peak > 0.9:  # leave headroom for the calls
            y = y * (0.9 / peak)
        return y.astype(np.float32)

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` samples (mono float32)."""
        if self.pool is None:
            out = np.zeros(n, dtype=np.float32)
        else:
            xf = int(self.pool.crossfade_s * self.sr)
            while len(self._buf) < n + xf:
                p = self._next_piece()
                if len(self._buf) >= xf > 0:
                    ramp = np.linspace(0.0, np.pi / 2, xf, dtype=np.float32)
                    tail = self._buf[-xf:] * np.cos(ramp) + p[:xf] * np.sin(ramp)  # equal power
                    self._buf = np.concatenate([self._buf[:-xf], tail, p[xf:]])
                else:
                    self._buf = np.concatenate([self._buf, p])
            out, self._buf = self._buf[:n].copy(), self._buf[n:]
        if self.floor is not None:
            out += self.floor.read(n)
        return out


# ---------------------------------------------------------------------------------------------- clips


def make_clip(rng: np.random.Generator, background_pool: BackgroundPool | None, sr: int = 16000,
              kind: str = "owl", snr_db: float | None = None, *, duration_s: float = 5.0,
              sex: str | None = None, snr_db_range: tuple[float, float] = (-3.0, 20.0)
              ) -> tuple[np.ndarray, dict]:
    """One labelled clip: a whole call (or none) on a random background.

    Args:
        rng: the random generator.
        background_pool: real backgrounds, or ``None`` for pink noise.
        sr: sample rate in Hz.
        kind: ``"owl"`` (positive), ``"boobook"``, ``"barking_owl"`` (hard negatives) or ``"background"``.
        snr_db: band SNR in dB (see :func:`snr_band`: 300-600 Hz for owls); ``None`` draws it uniformly
            from ``snr_db_range``.
        duration_s: clip length in s.
        sex: for owls, ``"male"``, ``"female"`` or ``None`` (random).

    Returns:
        (mono float32 audio of ``duration_s`` s, meta) where meta has ``label`` (``"owl"``/``"not_owl"``),
        ``kind``, ``snr_db``, ``f0_hz``, ``sex`` (``None`` where not applicable), ``start_s``/``end_s`` of
        the call's notes in the clip, ``group`` (the background's source folder, for splitting) and
        ``sources`` (background files used).
    """
    if kind not in (*KINDS, "background"):
        raise SynthError(f"unknown clip kind {kind!r}")
    n = int(round(duration_s * sr))
    if background_pool is None:
        bs = BackgroundStream(None, rng, sr)
        bg, sources, group = bs.read(n), [], "noise"
    else:
        bg, sources = background_pool.crop(rng, duration_s, sr)
        group = background_pool.group(sources[0])
    meta: dict = {"label": "owl" if kind == "owl" else "not_owl", "kind": kind, "snr_db": None, "f0_hz": None,
                  "sex": None, "start_s": None, "end_s": None, "group": group, "sources": sources}
    if kind == "background":
        return bg, meta
    p = sample_params(rng, kind, sex)
    call = render_owl_call(p, sr)
    if len(call) > n - int(0.2 * sr):  # keep the whole call and most of its echo inside the clip
        call = call[: n - int(0.2 * sr)]
    offset = float(rng.uniform(0.1, max(0.1, duration_s - len(call) / sr - 0.1)))
    snr = float(rng.uniform(*snr_db_range)) if snr_db is None else float(snr_db)
    mix = mix_at_snr(bg, call, sr, snr, offset, band=snr_band(p))
    meta.update(snr_db=round(snr, 2), f0_hz=round(p.f0_hz, 1), sex=p.sex, start_s=round(offset, 4),
                end_s=round(offset + p.duration_s, 4))
    return mix, meta


def make_clips(out_dir: str | os.PathLike, n: int, backgrounds: BackgroundPool | Sequence | str | os.PathLike | None,
               *, seed: int = 0, sr: int = 16000, duration_s: float = 5.0, owl_fraction: float = 0.5,
               confuser_fraction: float = 0.5, snr_db_range: tuple[float, float] = (-3.0, 20.0),
               progress: bool | None = None) -> Path:
    """Write ``n`` labelled clips as ``owl/*.wav`` and ``not_owl/*.wav`` plus ``clips.csv`` in ``out_dir``.

    About ``owl_fraction`` of the clips hold a Powerful Owl call; of the rest, ``confuser_fraction`` hold a
    Boobook or Barking Owl call (half each) and the others background only. Clip ``i`` is drawn from the
    generator seeded with ``(seed, i)``, so any clip can be remade alone. WAV files are 16-bit PCM mono.

    Returns:
        The path of ``clips.csv`` (columns :data:`CLIP_COLUMNS`; ``filename`` relative to ``out_dir``).
    """
    from tqdm.auto import tqdm

    if n < 1:
        raise SynthError("the number of clips must be at least 1")
    pool = _as_pool(backgrounds)
    out = Path(out_dir)
    for sub in ("owl", "not_owl"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    csv_path = out / "clips.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CLIP_COLUMNS)
        writer.writeheader()
        for i in tqdm(range(n), desc="clips", unit="clip", disable=(not progress) if progress is not None else None):
            rng = np.random.default_rng([seed, i])
            u = rng.random()
            if u < owl_fraction:
                kind = "owl"
            elif rng.random() < confuser_fraction:
                kind = "boobook" if rng.random() < 0.5 else "barking_owl"
            else:
                kind = "background"
            y, meta = make_clip(rng, pool, sr, kind, duration_s=duration_s, snr_db_range=snr_db_range)
            name = f"{meta['label']}/{kind}_s{seed}_{i:06d}.wav"
            sf.write(out / name, y, sr, subtype="PCM_16")
            writer.writerow({"filename": name, "label": meta["label"], "kind": kind,
                             "snr_db": "" if meta["snr_db"] is None else meta["snr_db"],
                             "f0_hz": "" if meta["f0_hz"] is None else meta["f0_hz"],
                             "sex": meta["sex"] or "", "group": meta["group"]})
    return csv_path


def _as_pool(backgrounds: BackgroundPool | Iterable | str | os.PathLike | None) -> BackgroundPool | None:
    if backgrounds is None or isinstance(backgrounds, BackgroundPool):
        return backgrounds
    return BackgroundPool(backgrounds if isinstance(backgrounds, (str, os.PathLike)) else list(backgrounds))
