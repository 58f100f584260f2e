"""Wall-clock times from recorder file names (A2O, AudioMoth, Song Meter)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

__all__ = ["offset_time", "parse_recording_start", "parse_site"]

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
