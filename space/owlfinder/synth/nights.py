"""Synthetic nights: long recordings with Powerful Owl calls and confusers at known times, plus ground truth.

:func:`make_night` lays synthetic calls (see :mod:`owlfinder.synth.calls`) on real background audio and writes
the result block by block with :class:`soundfile.SoundFile`, so memory stays at a few blocks whether the
night lasts two hours or twenty-four. Beside the audio it writes the ground truth twice: ``<stem>.truth.json``
and a Raven selection table ``<stem>.truth.raven.txt``; :func:`read_ground_truth` reads either back.

Each Powerful Owl call (a double hoot) is one event; so is each confuser call. Event times cover the notes
(first onset to last note end), not the echoes after them; no two events, echoes included, overlap.
"""

from __future__ import annotations

import bisect
import csv
import json
import logging
import math
import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from owlfinder.data import annotations
from owlfinder.synth.backgrounds import BackgroundPool, BackgroundStream, _as_pool, _NoiseLoop
from owlfinder.synth.calls import (
    OwlCallParams,
    SynthError,
    call_gain_for_snr,
    render_owl_call,
    sample_bout,
    snr_band,
)

__all__ = [
    "RAVEN_COLUMNS",
    "GroundTruth",
    "a2o_filename",
    "make_night",
    "read_ground_truth",
    "truth_paths",
    "write_raven",
]

log = logging.getLogger(__name__)

#: Raven selection-table columns written (the first seven are Raven's own).
RAVEN_COLUMNS: tuple[str, ...] = ("Selection", "View", "Channel", "Begin Time (s)", "End Time (s)",
                                  "Low Freq (Hz)", "High Freq (Hz)", "Kind", "Sex", "F0 (Hz)", "SNR (dB)", "Bout")
#: Raven column -> event key, with the type to parse it as.
_RAVEN_FIELDS: dict[str, tuple[str, type]] = {
    "Begin Time (s)": ("start_s", float), "End Time (s)": ("end_s", float), "Kind": ("kind", str),
    "Sex": ("sex", str), "F0 (Hz)": ("f0_hz", float), "SNR (dB)": ("snr_db", float),
    "Low Freq (Hz)": ("low_hz", float), "High Freq (Hz)": ("high_hz", float), "Bout": ("bout", int),
}
_A2O_START = re.compile(r"^\d{8}T\d{6}(Z|[+-]\d{4})$")
_A2O_SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
#: ``subtype`` values that name a container; the number is written as 16-bit PCM.
_CONTAINERS = {"FLAC": ".flac", "WAV": ".wav", "W64": ".w64", "OGG": ".ogg"}
_SUFFIX_FORMAT = {v: k for k, v in _CONTAINERS.items()}
#: Silence kept between events (echo tails included) and at the file's ends, in s.
_GUARD_S = 1.0


@dataclass
class GroundTruth:
    """What a synthetic night holds.

    Attributes:
        file: the audio file's name (no folder).
        duration_s: its duration in s.
        sample_rate: its rate in Hz.
        channels: its channel count.
        seed: the seed it was made from.
        events: one dict per call, sorted by time: ``start_s``, ``end_s`` (s), ``kind`` (``"owl"``,
            ``"boobook"``, ``"barking_owl"``), ``sex`` (``None`` for confusers), ``f0_hz`` (held pitch of
            the first note), ``snr_db`` (band SNR, see :func:`owlfinder.synth.calls.snr_band`), ``low_hz``/
            ``high_hz`` (the fundamental's range) and ``bout`` (calls of one bird share it).
    """

    file: str
    duration_s: float
    sample_rate: int
    channels: int
    seed: int
    events: list[dict] = field(default_factory=list)

    @property
    def owl_events(self) -> list[dict]:
        """The Powerful Owl calls only."""
        return [e for e in self.events if e["kind"] == "owl"]

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, audio_path: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``<stem>.truth.json`` and ``<stem>.truth.raven.txt`` beside ``audio_path``."""
        json_path, raven_path = truth_paths(audio_path)
        json_path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        write_raven(raven_path, self.events)
        return json_path, raven_path


def truth_paths(audio_path: str | os.PathLike) -> tuple[Path, Path]:
    """``(<stem>.truth.json, <stem>.truth.raven.txt)`` beside an audio file."""
    p = Path(audio_path)
    stem = p.with_suffix("") if p.suffix else p
    return stem.with_name(stem.name + ".truth.json"), stem.with_name(stem.name + ".truth.raven.txt")


def write_raven(path: str | os.PathLike, events: list[dict]) -> Path:
    """Write events as a Raven selection table (tab-separated, columns :data:`RAVEN_COLUMNS`)."""
    return annotations.write_raven(path, RAVEN_COLUMNS, (
        [i, annotations.RAVEN_VIEW, 1, f"{e['start_s']:.4f}", f"{e['end_s']:.4f}", _fmt(e.get("low_hz")),
         _fmt(e.get("high_hz")), e.get("kind") or "", e.get("sex") or "", _fmt(e.get("f0_hz")),
         _fmt(e.get("snr_db")), "" if e.get("bout") is None else e["bout"]] for i, e in enumerate(events, start=1)))


def _fmt(v: float | None) -> str:
    return "" if v is None else repr(float(v))


def _read_raven(path: Path) -> list[dict]:
    events = []
    for r in annotations.read_raven(path):  # Waveform rows (Raven lists a selection once per view) are dropped
        e: dict = {}
        for col, (key, typ) in _RAVEN_FIELDS.items():
            v = (r.get(col) or "").strip()
            e[key] = typ(v) if v else None
        events.append(e)
    return events


def read_ground_truth(path: str | os.PathLike) -> list[dict]:
    """Events of a synthetic night from its ``.truth.json``, its Raven table, or the audio file beside them.

    Returns:
        Event dicts sorted by ``start_s`` (keys as in :class:`GroundTruth`; a Raven table lacking a column
        gives ``None`` for it).

    Raises:
        SynthError: no ground truth found, or a file that is neither.
    """
    p = Path(path)
    if p.suffix.lower() not in (".json", ".txt"):
        json_path, raven_path = truth_paths(p)
        p = json_path if json_path.exists() else raven_path
    if not p.is_file():
        raise SynthError(f"no ground truth at {p}")
    try:
        if p.suffix.lower() == ".json":
            events = json.loads(p.read_text(encoding="utf-8"))["events"]
        else:
            events = _read_raven(p)
    except (OSError, ValueError, KeyError, TypeError, csv.Error) as err:
        raise SynthError(f"{p.name}: not a ground-truth file ({err})") from None
    return sorted(events, key=lambda e: e["start_s"])


def a2o_filename(start: str, site: str, seed: int, suffix: str = ".flac") -> str:
    """An Acoustic Observatory style name: ``20210603T200000+1000_Site-Name_<seed>.flac``.

    Args:
        start: local start time with UTC offset, ``YYYYMMDDTHHMMSS+HHMM`` (or ``Z``).
        site: site name (letters, digits and hyphens: underscores separate the fields).
        seed: the night's seed, appended so names are unique.
        suffix: file suffix.
    """
    if not _A2O_START.match(start):
        raise SynthError(f"start {start!r} is not like 20210603T200000+1000")
    if not _A2O_SITE.match(site):
        raise SynthError(f"site {site!r} may hold only letters, digits and hyphens")
    return f"{start}_{site}_{seed}{suffix}"


def _resolve_format(path: Path, subtype: str) -> tuple[Path, str, str]:
    """(path, soundfile format, soundfile subtype) from the path's suffix and ``subtype``."""
    key = subtype.upper()
    if key in _CONTAINERS:
        fmt, st = key, ("VORBIS" if key == "OGG" else "PCM_16")
        if not path.suffix:
            path = path.with_suffix(_CONTAINERS[key])
        elif _SUFFIX_FORMAT.get(path.suffix.lower()) != fmt:
            raise SynthError(f"{path.name}: suffix does not match format {fmt}")
    else:
        fmt = _SUFFIX_FORMAT.get(path.suffix.lower(), "")
        st = key
        if not fmt:
            raise SynthError(f"{path.name}: give a .flac, .wav or .w64 name for subtype {subtype}")
    if not sf.check_format(fmt, st):
        raise SynthError(f"soundfile cannot write {fmt} with subtype {st}")
    return path, fmt, st


@dataclass
class _Planned:
    start: int  # frame of the first note's onset
    params: OwlCallParams
    snr_db: float
    bout: int

    def span(self, sr: int) -> tuple[int, int]:
        """Frames the call and its echoes occupy."""
        return self.start, self.start + int(math.ceil((self.params.duration_s + self.params.tail_s) * sr)) + 1


def _schedule(rng: np.random.Generator, duration_s: float, sr: int, calls_per_hour: float,
              confusers_per_hour: float, snr_db_range: tuple[float, float]) -> list[_Planned]:
    """Place bouts at random, never overlapping (echoes and a guard gap included)."""
    hours = duration_s / 3600.0
    wanted = [("owl", int(rng.poisson(calls_per_hour * hours)))]
    n_conf = int(rng.poisson(confusers_per_hour * hours))
    n_boo = int(rng.binomial(n_conf, 0.5))
    wanted += [("boobook", n_boo), ("barking_owl", n_conf - n_boo)]
    taken: list[tuple[int, int]] = []  # sorted (start, end) frames, guards included
    guard = int(_GUARD_S * sr)
    total = int(round(duration_s * sr))
    plans: list[_Planned] = []
    dropped = 0
    for kind, n in wanted:
        left = n
        while left > 0:
            bout = sample_bout(rng, kind)[:left]
            left -= len(bout)
            last_t, last_p = bout[-1]
            foot = int(math.ceil((last_t + last_p.duration_s + last_p.tail_s) * sr)) + 1
            s = _place(rng, taken, guard, total - foot - guard, foot, guard)
            if s is None:
                dropped += len(bout)
                continue
            bout_id = len(taken) - 1  # bouts placed so far: a unique id
            snr = rng.uniform(*snr_db_range)  # one bird at one distance: the bout shares its level
            for t, p in bout:
                snr_call = float(np.clip(snr + rng.uniform(-1.0, 1.0), *snr_db_range))
                plans.append(_Planned(s + int(round(t * sr)), p, snr_call, bout_id))
    if dropped:
        log.warning("%d calls did not fit in %.0f s and were left out", dropped, duration_s)
    return sorted(plans, key=lambda q: q.start)


def _place(rng: np.random.Generator, taken: list[tuple[int, int]], lo: int, hi: int, foot: int, guard: int,
           tries: int = 200) -> int | None:
    """A random start frame in [lo, hi) whose span (plus guards) misses every interval in ``taken``."""
    for _ in range(tries if hi > lo else 0):
        s = int(rng.integers(lo, hi))
        a, b = s - guard, s + foot + guard
        k = bisect.bisect_left(taken, (a, b))
        if (k > 0 and taken[k - 1][1] > a) or (k < len(taken) and taken[k][0] < b):
            continue
        taken.insert(k, (a, b))
        return s
    return None


def _event(q: _Planned, sr: int, snr_db: float) -> dict:
    p = q.params
    lo, hi = p.freq_range_hz
    start = q.start / sr
    return {"start_s": round(start, 4), "end_s": round(start + p.duration_s, 4), "kind": p.kind, "sex": p.sex,
            "f0_hz": round(p.f0_hz, 1), "snr_db": round(snr_db, 2), "low_hz": round(lo, 1),
            "high_hz": round(hi, 1), "bout": q.bout}


def make_night(
    path: str | os.PathLike,
    duration_s: float,
    sr: int = 44100,
    channels: int = 2,
    backgrounds: BackgroundPool | list | str | os.PathLike | None = None,
    seed: int = 0,
    calls_per_hour: float = 20.0,
    snr_db_range: tuple[float, float] = (0.0, 15.0),
    confusers_per_hour: float = 10.0,
    subtype: str = "FLAC",
    *,
    block_s: float = 30.0,
    progress: bool | None = None,
) -> GroundTruth:
    """Write a synthetic night with owl calls and confusers at known times, and its ground truth.

    The background is real audio from ``backgrounds`` (random stretches crossfaded one into the next, see
    :class:`~owlfinder.synth.backgrounds.BackgroundPool`) over a faint pink-noise floor; ``None`` gives pink noise only.
    Powerful Owl calls come in bouts (one to three double hoots, seconds apart); Boobook and Barking Owl
    calls come in short series. Each call is mixed at a band SNR drawn per bout from ``snr_db_range``
    (dB, measured on channel 1 over the call's span). Channels share the background and the calls, with
    small per-channel gain and delay differences and independent self-noise.

    The file is written block by block (``block_s`` s), with encoding on a second thread, so memory does
    not grow with ``duration_s``.

    Args:
        path: output audio file; a missing suffix is taken from ``subtype``.
        duration_s: length in s.
        sr: sample rate in Hz.
        channels: channel count.
        backgrounds: a pool, folder(s) of audio, or ``None``.
        seed: makes the night reproducible.
        calls_per_hour: mean Powerful Owl calls (double hoots) per hour.
        snr_db_range: band SNR range in dB.
        confusers_per_hour: mean Boobook plus Barking Owl calls per hour.
        subtype: ``"FLAC"`` or ``"WAV"`` (16-bit) or a soundfile subtype such as ``"PCM_24"``/``"FLOAT"``
            with the container taken from the suffix.
        block_s: write block length in s.
        progress: show a tqdm bar (``None``: only on a terminal and for nights over 10 minutes).

    Returns:
        The :class:`GroundTruth`, also saved as ``<stem>.truth.json`` and ``<stem>.truth.raven.txt``.
    """
    from tqdm.auto import tqdm

    if duration_s <= 0:
        raise SynthError("duration must be positive")
    if channels < 1 or sr < 8000:
        raise SynthError("need at least one channel and a sample rate of at least 8000 Hz")
    if snr_db_range[0] > snr_db_range[1]:
        raise SynthError("snr_db_range must be (low, high)")
    path, fmt, st = _resolve_format(Path(path), subtype)
    pool = _as_pool(backgrounds)
    rng_plan, rng_bed, rng_mix = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    plans = _schedule(rng_plan, duration_s, sr, calls_per_hour, confusers_per_hour, snr_db_range)
    bed = BackgroundStream(pool, rng_bed, sr)
    self_noise = [_NoiseLoop(rng_mix, sr, -74.0, period_s=23.0 + 2 * c) for c in range(channels)]
    ch_gain = np.concatenate([[1.0], 10.0 ** (rng_mix.uniform(-1.5, 1.5, channels - 1) / 20.0)]).astype(np.float32)
    ch_delay = np.concatenate([[0], rng_mix.integers(0, max(1, int(0.0005 * sr)), channels - 1)])
    total = int(round(duration_s * sr))
    block = max(1, int(block_s * sr))
    events: list[dict] = []
    path.parent.mkdir(parents=True, exist_ok=True)
    # disable=None lets tqdm hide itself when stderr is not a terminal.
    hide = (None if duration_s > 600 else True) if progress is None else not progress
    bar = tqdm(total=round(duration_s), unit="s", desc=path.name, disable=hide)
    pending: Future | None = None
    with sf.SoundFile(path, "w", samplerate=sr, channels=channels, format=fmt, subtype=st) as out, \
            ThreadPoolExecutor(max_workers=1) as writer:
        pos, k = 0, 0
        while pos < total:
            end = min(pos + block, total)
            chunk_plans = []
            while k < len(plans) and plans[k].start < end:  # a chunk grows to hold its calls whole
                end = max(end, min(total, plans[k].span(sr)[1]))
                chunk_plans.append(plans[k])
                k += 1
            mono = bed.read(end - pos)
            audio = mono[:, None] * ch_gain[None, :]
            for c in range(channels):
                audio[:, c] += self_noise[c].read(end - pos)
            for q in chunk_plans:
                events.append(_mix_call(audio, mono, q, pos, sr, ch_gain, ch_delay))
            if pending is not None:
                pending.result()
            pending = writer.submit(out.write, audio)
            bar.update(round(end / sr) - round(pos / sr))
            pos = end
        if pending is not None:
            pending.result()
    bar.close()
    truth = GroundTruth(file=path.name, duration_s=total / sr, sample_rate=sr, channels=channels, seed=seed,
                        events=events)
    truth.save(path)
    return truth


def _mix_call(audio: np.ndarray, mono_bg: np.ndarray, q: _Planned, pos: int, sr: int, ch_gain: np.ndarray,
              ch_delay: np.ndarray) -> dict:
    """Add one call to a chunk in place at its band SNR (lowered if it would clip); return its event."""
    call = render_owl_call(q.params, sr)
    i = q.start - pos
    call = call[: len(mono_bg) - i]
    g = call_gain_for_snr(mono_bg[i:i + len(call)], call, sr, q.snr_db, snr_band(q.params))
    stop = min(len(audio), i + len(call) + int(ch_delay.max()))
    before = audio[i:stop].copy()
    scale = 1.0
    for _ in range(60):
        for c in range(audio.shape[1]):
            d = int(ch_delay[c])
            n = min(len(call), len(audio) - i - d)
            audio[i + d:i + d + n, c] += (g * scale * ch_gain[c]) * call[:n]
        if np.max(np.abs(audio[i:stop])) <= 0.999:
            break
        audio[i:stop] = before  # too loud for the file: lower this call rather than clip it
        scale *= 0.9
    return _event(q, sr, q.snr_db + 20.0 * math.log10(scale))
