"""Recording times: wall-clock starts from recorder file names (A2O, AudioMoth, Song Meter) and the formats
times are shown and stored in.

- :func:`parse_recording_start`: when a recording started, from its file name;
- :func:`offset_time`: ISO 8601 time some seconds into a recording (events' ``start_time``, clips'
  ``wall_clock``); :func:`recording_start` reads such an ISO start back;
- :func:`fmt_hms`, :func:`wall_clock`, :func:`utc_offset_label`: times for people (tables, plots, captions).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

__all__ = ["fmt_hms", "offset_time", "parse_recording_start", "parse_site", "recording_start",
           "utc_offset_label", "wall_clock"]

# Australian Acoustic Observatory: 20210603T080000+1000_Site-Name_12345.flac (or a trailing Z for UTC).
_A2O = re.compile(r"(?<!\d)(\d{8})T(\d{6})(Z|[+-]\d{4})?(?!\d)")
# AudioMoth: 20240101_203000.WAV; Song Meter: SITE_20240101_203000.wav (local or UTC per recorder setup).
_MOTH = re.compile(r"(?<!\d)(\d{8})_(\d{6})(?!\d)")
# The site in an A2O name (between the start and the trailing recording id) or a Song Meter prefix.
_A2O_SITE = re.compile(r"^\d{8}T\d{6}(?:Z|[+-]\d{4})?_(.+)_\d+$")
_SM_SITE = re.compile(r"^(.*[^\d_].*?)_\d{8}_\d{6}$")


def parse_recording_start(name: str) -> datetime | None:
    """When the recording started, from its file name; ``None`` when the name does not say.

    A2O names carry a UTC offset and give an aware datetime; AudioMoth and Song Meter names give a naive
    one (the recorder's clock, whose zone the name does not record).
    """
    stem = Path(name).name
    m = _A2O.search(stem)
    if m:
        date, time, zone = m.groups()
        try:
            dt = datetime.strptime(date + time, "%Y%m%d%H%M%S")
        except ValueError:
            return None
        if zone == "Z":
            return dt.replace(tzinfo=timezone.utc)
        if zone:
            sign = 1 if zone[0] == "+" else -1
            delta = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
            return dt.replace(tzinfo=timezone(sign * delta))
        return dt
    m = _MOTH.search(stem)
    if m:
        try:
            return datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S")
        except ValueError:
            return None
    return None


def offset_time(start: datetime | None, seconds: float) -> str | None:
    """ISO 8601 time ``seconds`` after ``start`` (to the millisecond), or ``None``."""
    if start is None:
        return None
    return (start + timedelta(seconds=float(seconds))).isoformat(timespec="milliseconds")


def fmt_hms(seconds: float, decimals: int = 0) -> str:
    """``hh:mm:ss`` (``hh:mm:ss.s`` with ``decimals=1``) for a non-negative number of seconds.

    Hours are not wrapped at 24 (``25:00:00``); negative values are clamped to zero.
    """
    seconds = max(0.0, float(seconds))
    scale = 10**decimals
    total = int(round(seconds * scale))
    whole, frac = divmod(total, scale)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    text = f"{h:02d}:{m:02d}:{s:02d}"
    return f"{text}.{frac:0{decimals}d}" if decimals else text


def recording_start(recorded_at: str | None) -> datetime | None:
    """The recording's start from a Detection's ``recorded_at`` (ISO 8601), or ``None``."""
    if not recorded_at:
        return None
    try:
        return datetime.fromisoformat(recorded_at)
    except ValueError:
        return None


def wall_clock(recorded_at: str | None, seconds: float, with_date: bool = False) -> str:
    """Wall-clock ``HH:MM:SS`` (``YYYY-MM-DD HH:MM:SS`` with ``with_date``) ``seconds`` into a recording.

    Returns ``""`` when the recording's start is unknown. The time is local to the recorder (the file
    name's UTC offset is kept, not converted).
    """
    start = recording_start(recorded_at)
    if start is None:
        return ""
    t = start + timedelta(seconds=float(seconds))
    return t.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def utc_offset_label(recorded_at: str | None) -> str:
    """``UTC+10:00`` for a recording start with a UTC offset; ``""`` when it has none or is unknown."""
    start = recording_start(recorded_at)
    off = start.utcoffset() if start is not None else None
    if off is None:
        return ""
    minutes = int(off.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def parse_site(name: str) -> str | None:
    """The recording site a file name gives, or ``None``.

    A2O: ``20210603T080000+1000_Site-Name_12345.flac`` gives ``Site-Name``; Song Meter:
    ``SITE_20240101_203000.wav`` gives ``SITE``. AudioMoth names (``20240101_203000.WAV``) name no site.
    """
    stem = Path(str(name).replace("\\", "/")).name
    stem = stem[: stem.index(".")] if "." in stem else stem
    for rx in (_A2O_SITE, _SM_SITE):
        m = rx.match(stem)
        if m:
            return m.group(1)
    return None
