"""The Label tab's back end without gradio: page flow, per-session leases, the gate, errors, the API.

:class:`owlfinder.ui.label_service.LabelService` on a real :class:`LabelQueue` in a temporary folder; no
server, no model (the browser and ``gradio_client`` paths are in test_label_browser.py and test_label_api.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from owlfinder.errors import OwlFinderError
from owlfinder.labelling.access import AccessDenied, LabelGate
from owlfinder.labelling.queue import LabelQueue, NothingToUndo, QueueError, UnknownClip
from owlfinder.ui.config import AppConfig
from owlfinder.ui.detect_service import ServiceError
from owlfinder.ui.label_service import EMPTY, Caller, LabelService

SR = 16000


def _queue(tmp_path, n: int = 3) -> LabelQueue:
    q = LabelQueue(tmp_path / "data")
    t = np.arange(5 * SR) / SR
    for i in range(n):
        y = (0.3 * np.sin(2 * np.pi * (400 + 50 * i) * t)).astype(np.float32)
        assert q.add_clip(y, source=f"site/rec{i}.wav", start_s=10.0 * i, end_s=10.0 * i + 5, score=0.4 + 0.1 * i,
                          threshold=0.5, model="tiny-owl", kind="uncertain")
    return q


@pytest.fixture
def svc(tmp_path) -> LabelService:
    return LabelService(_queue(tmp_path), LabelGate())


PAGE = Caller(session="session-aaaaaaaaaaaa")


def test_the_page_leases_labels_and_moves_on(svc):
    assert svc.start("", None, PAGE) is None  # no name yet: the page stays as it is
    view = svc.start("Alice", None, PAGE)
    assert view.clip_id and view.audio[0] == SR and view.audio[1].dtype == np.int16
    assert view.image.ndim == 3 and view.image.shape[2] == 3  # an RGB spectrogram
    assert "site/rec" in view.info and "0 labelled" in view.counter.replace("*", "")
    first = view.clip_id
    view = svc.verdict(first, "not_owl", "koala", "Alice", None, PAGE)
    assert f"Saved not_owl (koala) for `{first}`." in view.status and view.clip_id not in ("", first)
    assert "1 labelled" in view.counter.replace("*", "") and "you: 1" in view.counter.replace("*", "")
    second = view.clip_id
    view = svc.skip(second, "Alice", None, PAGE)
    assert f"Skipped `{second}`." in view.status
    # Undo brings back the verdicted clip and gives back the one that was on the page.
    view = svc.undo(view.clip_id, "Alice", None, PAGE)
    assert view.clip_id == first and "Undid your verdict" in view.status
    with pytest.raises(NothingToUndo):
        svc.undo(first, "Alice", None, PAGE)
    with pytest.raises(ServiceError, match="Type your name first"):
        svc.verdict(first, "owl", None, "  ", None, PAGE)


def test_a_lease_belongs_to_one_browser_session_and_is_freed_when_it_closes(svc):
    a = svc.start("Sam", None, Caller(session="tab-one"))
    b = svc.start("Sam", None, Caller(session="tab-two"))
    assert a.clip_id != b.clip_id  # the same typed name in two tabs never gets the same clip
    svc.closed(Caller(session="tab-one"))
    c = svc.start("Kim", None, Caller(session="tab-three"))
    assert c.clip_id == a.clip_id  # freed at once, not after the lease runs out


def test_nothing_left_shows_the_empty_message(tmp_path):
    svc = LabelService(_queue(tmp_path, n=1), LabelGate())
    view = svc.start("Alice", None, PAGE)
    view = svc.verdict(view.clip_id, "owl", None, "Alice", None, PAGE)
    assert view.clip_id == "" and view.audio is None and view.info == EMPTY


def test_a_failed_write_says_not_saved_and_records_nothing(svc, monkeypatch):
    view = svc.start("Alice", None, PAGE)

    def broken(*args, **kwargs):
        raise OSError("disk full at /srv/secret/place/shard.parquet")

    monkeypatch.setattr(svc.queue, "label", broken)
    with pytest.raises(ServiceError) as err:
        svc.verdict(view.clip_id, "owl", None, "Alice", None, PAGE)
    assert err.value.public_message == "Not saved: OSError: disk full at shard.parquet"
    with pytest.raises(ServiceError, match=r"^not saved: OSError"):
        svc.api_label(view.clip_id, "owl", "", "Alice", Caller())
    monkeypatch.undo()
    assert svc.queue.counts()["labelled"] == 0


def test_the_gate_is_checked_for_page_and_api(tmp_path):
    svc = LabelService(_queue(tmp_path), LabelGate.from_env({"OWL_LABEL_TOKEN": "k3y"}))
    for call in (lambda: svc.start("Eve", None, PAGE), lambda: svc.api_queue(10, Caller()),
                 lambda: svc.api_next("Eve", Caller()), lambda: svc.api_undo("Eve", Caller())):
        with pytest.raises(AccessDenied) as err:
            call()
        assert isinstance(err.value, OwlFinderError) and "OWL_LABEL_TOKEN" in err.value.public_message
    assert svc.start("Eve", "k3y", PAGE).clip_id  # the key box
    assert svc.api_queue(10, Caller(headers={"X-Owl-Label-Token": "k3y"}))["remaining"] == 3  # the header


def test_the_api(svc):
    listed = svc.api_queue(2, Caller())
    assert len(listed["clips"]) == 2 and (listed["labelled"], listed["remaining"]) == (0, 3)
    nxt = svc.api_next("bot", Caller())
    clip = nxt["clip"]
    assert nxt["labeller"] == "bot" and clip["kind"] == "uncertain" and clip["threshold"] == 0.5
    ack = svc.api_label(clip["clip_id"], "owl", "", "bot", Caller())
    assert ack["clip_id"] == clip["clip_id"] and ack["stored"] is True
    assert svc.api_label(clip["clip_id"], "owl", "", "bot", Caller()) == ack  # a retry writes nothing twice
    with pytest.raises(QueueError):
        svc.api_label(clip["clip_id"], "not_owl", "", "someone-else", Caller())  # already labelled
    with pytest.raises(ServiceError):
        svc.api_label(svc.api_next("bot", Caller())["clip"]["clip_id"], "maybe", "", "bot", Caller())
    assert svc.api_undo("bot", Caller()) == {"clip_id": clip["clip_id"], "undone": True}
    with pytest.raises(UnknownClip):
        svc.api_skip("no-such-clip", "bot", Caller())
    assert svc.api_skip(clip["clip_id"], "bot", Caller()) == {"clip_id": clip["clip_id"], "skipped": True}


def test_from_config_opens_the_queue_in_the_data_dir(tmp_path):
    svc = LabelService.from_config(AppConfig(data_dir=tmp_path / "data"))
    assert svc.queue.data_dir == tmp_path / "data" and svc.queue.hub_sync is None and not svc.gate.gated
    assert "local dataset" in svc.status()


def test_the_label_settings_come_from_one_appconfig(tmp_path):
    """AppConfig reads the labelling and Spaces variables once; the service takes them from it, and the
    secrets stay out of the config's repr."""
    cfg = AppConfig.from_env({"OWL_DATA_DIR": str(tmp_path / "data"), "OWL_LABELLERS": "ann,org:owl-lab",
                              "OWL_LABEL_TOKEN": "k3y-secret", "HF_TOKEN": "hf_notarealtokenatall",
                              "OWL_SYNC_EVERY_S": "60", "SPACE_ID": "owls/finder", "SPACES_ZERO_GPU": "true"})
    assert (cfg.labellers, cfg.sync_every_s, cfg.space_id, cfg.zero_gpu) == ("ann,org:owl-lab", 60.0,
                                                                             "owls/finder", True)
    assert "k3y-secret" not in repr(cfg) and "hf_notarealtokenatall" not in repr(cfg)
    svc = LabelService.from_config(cfg)
    assert svc.gate.users == {"ann"} and svc.gate.orgs == {"owl-lab"} and svc.gate.key_ok("k3y-secret")
    assert svc.queue.hub_sync is None  # a token without OWL_DATASET pushes nothing
    assert not AppConfig.from_env({}).zero_gpu
