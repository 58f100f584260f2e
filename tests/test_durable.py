"""owlfinder.durable: atomic writes get the permissions of any new file (the umask), not mkstemp's 0600."""

from __future__ import annotations

import os
import stat

import pytest

from owlfinder.durable import atomic_write_text, umask_mode


@pytest.fixture
def umask():
    def set_mask(mask: int) -> None:
        os.umask(mask)

    old = os.umask(0o022)
    os.umask(old)
    yield set_mask
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    assert umask_mode() == mode
    path = tmp_path / "sub" / "result.json"
    atomic_write_text(path, "{}")
    assert stat.S_IMODE(path.stat().st_mode) == mode
    atomic_write_text(path, "{ }")  # replacing keeps the same rule
    assert stat.S_IMODE(path.stat().st_mode) == mode and path.read_text() == "{ }"
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
