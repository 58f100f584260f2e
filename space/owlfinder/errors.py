"""One base class for the errors this package raises on purpose, and how they are shown to people.

Every error meant for a person derives from :class:`OwlFinderError` (keeping its older base too, e.g.
``ConfigError(OwlFinderError, ValueError)``), so a caller can catch them all, and the Space shows any of them
as :attr:`OwlFinderError.public_message`: one line, without server folders. Anything else is a bug and is
shown by :func:`public_message` as its type and a scrubbed message.
"""

from __future__ import annotations

import re

__all__ = ["OwlFinderError", "public_message", "scrub_paths"]

_ABS_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/'\"`]+/)+([^\s/'\"`]*)")


def scrub_paths(text: str) -> str:
    """``text`` on one line, every absolute path in it cut down to its last component (no server folders)."""
    return _ABS_PATH.sub(r"\1", " ".join(str(text).split()))


class OwlFinderError(Exception):
    """Base of the package's own errors; ``str(err)`` is one line naming the file (or setting) and the problem."""

    @property
    def public_message(self) -> str:
        """The message as shown to anyone: one line, absolute paths cut to their file names."""
        return scrub_paths(str(self)) or type(self).__name__


def public_message(err: BaseException) -> str:
    """One line for any error, safe to show anyone.

    An :class:`OwlFinderError` gives its :attr:`~OwlFinderError.public_message`; any other error (a bug) its
    type and the first 200 characters of its message, without server paths.
    """
    if isinstance(err, OwlFinderError):
        return err.public_message
    text = scrub_paths(str(err))
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__
