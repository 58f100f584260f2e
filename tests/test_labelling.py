"""The labelling queue (ingest, order, leases, verdicts, undo, crash recovery), Hub push and the gate.

Pure Python: no gradio server, no model, no network (the Hub is a fake ``HfApi`` in a folder).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from owlfinder.data.hubsync import HubSync, HubSyncError
from owlfinder.data.schema import SAMPLE_RATE, clip_id
from owlfinder.data.store import DatasetStore
from owlfinder.detect.engine import Detection
from owlfinder.detect.events import Event
from owlfinder.labelling.access import AccessDenied, LabelGate, parse_labellers
from owlfinder.labelling.queue import (
    UNDONE,
    AlreadyLabelled,
    ClipTaken,
    LabelQueue,
    NothingToUndo,
    UnknownClip,
    boost,
    clean_labeller,
    hub_sync_from_env,
)

from conftest import REPO_ROOT, write_tone_file

SOURCE = "siteA/20240101_200000.wav"


def make_detection(rec: Path, duration: float = 60.0, threshold: float = 0.5) -> Detection:
    """A detection like the engine's: windows every 2.5 s with rising scores, one event near the end."""
    starts = np.arange(0.0, duration - 4.99, 2.5)
    scores = np.linspace(0.0, 1.0, len(starts)).astype(np.float32)
    return Detection(file=str(rec), duration_s=duration, sample_rate=16000, model="tiny-owl",
                     threshold=threshold, window_s=5.0, hop_s=2.5, gap_s=0.7, min_duration_s=0.0,
                     recorded_at="2024-01-01T20:00:00", starts_s=starts, ends_s=starts + 5.0, scores=scores,
                     events=[Event(51.0, 54.0, 0.99, 0.95, 2, "2024-01-01T20:00:51.000")])


@pytest.fixture
def rec(tmp_path) -> Path:
    return write_tone_file(tmp_path / "20240101_200000.wav", 60.0, sr=44100, channels=2)


@pytest.fixture
def queue(tmp_path, rec) -> LabelQueue:
    q = LabelQueue(tmp_path / "data")
    assert q.add_detection(make_detection(rec), rec, n_uncertain=4, display_name=SOURCE) == 5
    return q


def history(q: LabelQueue) -> list[dict]:
    """Every row in the store (no resolving), as dicts without audio."""
    ds = q.store.load(resolve=False)
    return [{k: v for k, v in r.items() if k != "audio"} for r in ds.remove_columns("audio")]


# ------------------------------------------------------------------------------------------------ ingest


def test_add_detection_cuts_event_and_uncertain_clips_right_away(tmp_path, rec):
    q = LabelQueue(tmp_path / "data")
    det = make_detection(rec)
    assert q.add_detection(det, rec, n_uncertain=4, display_name=SOURCE) == 5
    rec.unlink()  # uploads are deleted after the request: the queue has its own copy
    clips = q.pending()
    kinds = sorted(c.kind for c in clips)
    assert kinds == ["event", "uncertain", "uncertain", "uncertain", "uncertain"]
    ev = next(c for c in clips if c.kind == "event")
    # One 5 s clip centred on the 51-54 s event, the event's span marked, wall clock from the file name.
    assert (ev.start_s, ev.end_s) == (50.0, 55.0)
    assert (ev.flag_start_s, ev.flag_end_s) == (51.0, 54.0)
    assert ev.wall_clock.startswith("2024-01-01T20:00:50")
    assert ev.clip_id == clip_id(sf.read(ev.audio_path, dtype="int16")[0], 50.0, 55.0)  # from the audio
    assert ev.source == SOURCE and ev.model == "tiny-owl"
    for c in clips:
        info = sf.info(c.audio_path)
        assert (info.samplerate, info.channels, info.format) == (SAMPLE_RATE, 1, "FLAC")
        assert info.frames == 5 * SAMPLE_RATE
        assert c.threshold == 0.5
    # The uncertain clips are the windows scored nearest the threshold.
    assert all(abs(c.score - 0.5) < 0.2 for c in clips if c.kind == "uncertain")
    # Queuing the same recording again (a fresh upload of the same file) adds nothing.
    again = write_tone_file(tmp_path / "20240101_200000.wav", 60.0, sr=44100, channels=2)
    assert q.add_detection(det, again, n_uncertain=4, display_name=SOURCE) == 0
    # Another recorder's file with the same name is other audio: all of its clips are queued.
    other = write_tone_file(tmp_path / "20240101_200000.wav", 60.0, sr=44100, channels=2, seed=1)
    assert q.add_detection(det, other, n_uncertain=4, display_name=SOURCE) == 5
    assert len(q.pending()) == 10 and {c.source for c in q.pending()} == {SOURCE}


def test_add_manifest_from_chunk_script(tmp_path):
    spec = importlib.util.spec_from_file_location("chunk_script", REPO_ROOT / "scripts" / "chunk.py")
    chunk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(chunk)
    (tmp_path / "night").mkdir()
    rec = write_tone_file(tmp_path / "night" / "20240105_220000.flac", 12.0, sr=22050)
    out = tmp_path / "to_label"
    assert chunk.main([str(rec), "--out", str(out), "--quiet"]) == 0
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == 3  # 0-5, 5-10, 10-12 (filled)
    with open(out / "manifest.jsonl", "a") as f:
        f.write("not json\n")
        missing = {**lines[0], "audio": "clips/missing.wav", "start_s": 99.0, "end_s": 104.0}
        f.write(json.dumps(missing) + "\n")
    q = LabelQueue(tmp_path / "data")
    assert q.add_manifest(out / "manifest.jsonl") == 3  # bad lines are skipped
    assert q.add_manifest(out) == 0  # a folder with a manifest works too; nothing new
    clips = {c.clip_id: c for c in q.pending(limit=None)}
    assert set(clips) == {r["clip_id"] for r in lines}
    c = clips[lines[1]["clip_id"]]
    assert (c.source, c.start_s, c.end_s) == ("night/20240105_220000.flac", 5.0, 10.0)
    assert (c.kind, c.score) == ("chunk", None)
    assert c.wall_clock.startswith("2024-01-05T22:00:05")
    assert sf.info(c.audio_path).samplerate == SAMPLE_RATE


def test_order_uncertainty_first_or_by_score(tmp_path, rec):
    q = LabelQueue(tmp_path / "data")
    q.add_detection(make_detection(rec), rec, n_uncertain=4, display_name=SOURCE)
    by_uncertainty = [c.uncertainty for c in q.pending()]
    assert by_uncertainty == sorted(by_uncertainty)
    assert q.pending()[-1].kind == "event"
    q2 = LabelQueue(tmp_path / "data", order="score")
    scores = [c.score for c in q2.pending()]
    assert scores == sorted(scores, reverse=True) and q2.pending()[0].kind == "event"
    q3 = LabelQueue(tmp_path / "data", order="added")
    assert [c.kind for c in q3.pending()][0] == "event"  # events are cut first
    with pytest.raises(ValueError):
        LabelQueue(tmp_path / "data", order="random")


# ------------------------------------------------------------------------------------------------ leases


def test_two_labellers_never_get_the_same_clip(queue):
    got: dict[str, str | None] = {}
    barrier = threading.Barrier(5)

    def grab(name):
        barrier.wait()
        c = queue.next(name)
        got[name] = c.clip_id if c else None

    threads = [threading.Thread(target=grab, args=(f"l{i}",)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert None not in got.values() and len(set(got.values())) == 5
    assert queue.next("l5") is None  # all five are leased
    assert queue.next("l0").clip_id == got["l0"]  # a labeller's own live lease comes back (page reload)
    with pytest.raises(ClipTaken):
        queue.label(got["l1"], "owl", "l0")  # someone else's lease
    assert queue.label(got["l1"], "owl", "l1").stored


def test_an_expired_lease_is_offered_again(tmp_path, rec):
    q = LabelQueue(tmp_path / "data", lease_s=0.3)
    q.add_detection(make_detection(rec), rec, n_uncertain=0, display_name=SOURCE)  # only the event
    a = q.next("alice")
    assert q.next("bob") is None
    time.sleep(0.4)
    b = q.next("bob")
    assert b is not None and b.clip_id == a.clip_id and b.lease_owner == "bob"
    with pytest.raises(ClipTaken):
        q.label(a.clip_id, "owl", "alice")  # alice's lease ran out and bob holds it now
    assert q.label(a.clip_id, "owl", "bob").stored


def test_skip_releases_without_a_verdict_and_comes_back_last(queue):
    first = queue.next("alice")
    queue.skip(first.clip_id, "alice")
    assert queue.counts() == {"labelled": 0, "remaining": 5, "mine": 0}
    assert history(queue) == []
    assert queue.next("bob").clip_id == first.clip_id  # free for others at once
    queue.skip(first.clip_id, "bob")
    seen = []
    while (c := queue.next("alice")) is not None and c.clip_id not in seen:
        seen.append(c.clip_id)
        queue.skip(c.clip_id, "alice")
    assert seen[-1] == first.clip_id  # her skipped clip comes after all the others


# ------------------------------------------------------------------------------------------------ verdicts


def test_a_verdict_is_stored_with_provenance_and_never_offered_again(queue):
    c = queue.next("alice")
    ack = queue.label(c.clip_id, "not_owl", "alice", reason="koala")
    assert ack.stored and ack.shard.startswith("data/train-") and ack.labeller == "alice"
    assert (queue.store.local_dir / ack.shard).is_file()
    [row] = history(queue)
    assert row["clip_id"] == c.clip_id and row["verdict"] == "not_owl" and row["label"] == 1
    assert row["reason"] == "koala" and row["labeller"] == "alice" and row["labelled_at"] == ack.labelled_at
    assert row["labelled_at"].endswith("Z")
    assert (row["source"], row["start_s"], row["end_s"], row["group"]) == (SOURCE, c.start_s, c.end_s, SOURCE)
    assert row["model"] == "tiny-owl" and row["score"] == pytest.approx(c.score)
    assert row["filename"].startswith("20240101_200000_") and row["filename"].endswith(".flac")
    # The raw clip (not the boosted one) is embedded.
    audio = queue.store.load()[0]["audio"]
    assert audio["sampling_rate"] == SAMPLE_RATE
    np.testing.assert_allclose(audio["array"], queue.raw_audio(c.clip_id)[1], atol=1e-4)

    assert c.clip_id not in {x.clip_id for x in queue.pending()}
    assert all(queue.next(f"p{i}").clip_id != c.clip_id for i in range(4))
    # A retried request (same labeller, same verdict) returns the first acknowledgement and writes nothing.
    assert queue.label(c.clip_id, "not_owl", "alice", reason="koala") == ack
    with pytest.raises(AlreadyLabelled):
        queue.label(c.clip_id, "owl", "bob")
    assert len(history(queue)) == 1
    assert queue.counts("alice") == {"labelled": 1, "remaining": 4, "mine": 1}
    # A clip labelled in the store is not queued again by a later detection run.
    assert LabelQueue(queue.data_dir).counts()["labelled"] == 1


def test_bad_verdicts_are_refused(queue):
    c = queue.next("alice")
    with pytest.raises(ValueError, match="label must be one of"):
        queue.label(c.clip_id, "maybe", "alice")
    with pytest.raises(ValueError, match="reason must be one of"):
        queue.label(c.clip_id, "not_owl", "alice", reason="dog")
    with pytest.raises(UnknownClip):
        queue.label("0123456789abcdef", "owl", "alice")
    assert queue.label(c.clip_id, "Not-Owl", "alice").verdict == "not_owl"


def test_undo_supersedes_the_verdict_and_reoffers_the_clip(queue):
    c = queue.next("alice")
    queue.label(c.clip_id, "owl", "alice")
    back = queue.undo("alice")
    assert back.clip_id == c.clip_id and back.status == "pending" and back.lease_owner == "alice"
    rows = history(queue)
    assert [r["verdict"] for r in rows] == ["owl", "unsure"]
    assert rows[1]["reason"] == UNDONE and rows[1]["labelled_at"] > rows[0]["labelled_at"]
    latest = queue.store.load()
    assert latest["verdict"] == ["unsure"] and latest["label"] == [-1]  # dropped from training
    assert len(queue.store.load(include_unsure=False)) == 0
    assert queue.counts("alice") == {"labelled": 0, "remaining": 5, "mine": 0}
    assert queue.next("bob").clip_id != c.clip_id  # leased back to alice
    assert queue.next("alice").clip_id == c.clip_id
    queue.label(c.clip_id, "not_owl", "alice", reason="boobook")
    assert [r["verdict"] for r in history(queue)] == ["owl", "unsure", "not_owl"]
    assert queue.store.load()["verdict"] == ["not_owl"]
    # Undo walks back through the labeller's verdicts, and only theirs.
    with pytest.raises(NothingToUndo):
        queue.undo("bob")
    queue.undo("alice")
    with pytest.raises(NothingToUndo):
        queue.undo("alice")
    # A reopened queue agrees: the clip is waiting again.
    assert c.clip_id in {x.clip_id for x in LabelQueue(queue.data_dir).pending()}


def test_boost_and_names():
    y = 0.05 * np.sin(np.linspace(0, 100, 16000)).astype(np.float32)  # +25 dB to reach 0.9
    assert np.max(np.abs(boost(y))) == pytest.approx(0.9, rel=1e-3)
    quiet = np.tile(np.array([1e-6, -1e-6], np.float32), 50)
    assert np.max(np.abs(boost(quiet))) <= 1e-6 * 10 ** 1.5 * 1.01  # capped at +30 dB
    assert clean_labeller("  Ann\n <b>Lee</b> ") == "Ann bLeeb" and clean_labeller("") == "anonymous"


# ------------------------------------------------------------------------------------------------ crashes


def _child_label(data_dir: str, ack_log: str, mode: str) -> None:
    """Label clips one after another, appending each acknowledged clip_id to ``ack_log`` (fsynced)."""
    q = LabelQueue(data_dir)
    if mode in ("die_after_append", "die_before_append"):
        real = q.store.append

        def append(rows, split="train"):
            if mode == "die_before_append":
                os._exit(9)
            path = real(rows, split)
            os._exit(9)  # the row is durable, the queue is not told
            return path

        q.store.append = append
    i = 0
    while (c := q.next(f"w{i % 2}")) is not None:
        ack = q.label(c.clip_id, ["owl", "not_owl", "unsure"][i % 3], f"w{i % 2}")
        with open(ack_log, "a") as f:
            f.write(ack.clip_id + "\n")
            f.flush()
            os.fsync(f.fileno())
        i += 1
        if mode == "slow":
            time.sleep(0.05)


def _run_child(data_dir: Path, log: Path, mode: str, kill_after_acks: int | None = None) -> None:
    ctx = mp.get_context("spawn")  # a fresh interpreter: no inherited SQLite handles
    p = ctx.Process(target=_child_label, args=(str(data_dir), str(log), mode))
    p.start()
    if kill_after_acks is not None:
        deadline = time.time() + 60
        while time.time() < deadline and p.is_alive():
            if log.exists() and len(log.read_text().split()) >= kill_after_acks:
                break
            time.sleep(0.01)
        os.kill(p.pid, signal.SIGKILL)
    p.join(60)
    assert not p.is_alive()


def _check_exactly_once(data_dir: Path, acked: list[str]) -> LabelQueue:
    q = LabelQueue(data_dir)  # reopening reconciles with the store
    ids = [r["clip_id"] for r in history(q)]
    assert len(ids) == len(set(ids)), "a clip was written twice"
    assert set(acked) <= set(ids), "an acknowledged verdict is missing"
    waiting = {c.clip_id for c in q.pending()}
    assert not waiting & set(ids), "a labelled clip is offered again"
    assert q.counts()["labelled"] == len(ids) and q.counts()["remaining"] == len(waiting)
    return q


def test_sigkill_mid_labelling_loses_and_duplicates_nothing(tmp_path):
    rec = write_tone_file(tmp_path / "20240101_200000.wav", 150.0)
    q = LabelQueue(tmp_path / "data")
    n = q.add_detection(make_detection(rec, 150.0), rec, n_uncertain=40, display_name=SOURCE)
    assert n >= 30
    log = tmp_path / "acks.txt"
    _run_child(tmp_path / "data", log, "slow", kill_after_acks=8)
    acked = log.read_text().split()
    assert len(acked) >= 8
    q = _check_exactly_once(tmp_path / "data", acked)
    assert q.counts()["remaining"] > 0
    # Labelling goes on where it stopped, and finishes the queue.
    while (c := q.next("after")) is not None:
        q.label(c.clip_id, "owl", "after")
    q = _check_exactly_once(tmp_path / "data", acked)
    assert q.counts() == {"labelled": n, "remaining": 0, "mine": 0}


@pytest.mark.parametrize("mode", ["die_after_append", "die_before_append"])
def test_a_crash_on_either_side_of_the_store_write_is_reconciled(tmp_path, rec, mode):
    q = LabelQueue(tmp_path / "data")
    q.add_detection(make_detection(rec), rec, n_uncertain=4, display_name=SOURCE)
    first = q.pending()[0].clip_id
    q.close()
    _run_child(tmp_path / "data", tmp_path / "acks.txt", mode)
    assert not (tmp_path / "acks.txt").exists()  # it died before acknowledging anything
    q = LabelQueue(tmp_path / "data")
    rows = history(q)
    if mode == "die_after_append":
        # The row reached the store: the clip counts as labelled, once, and is not offered again.
        assert [r["clip_id"] for r in rows] == [first]
        assert first not in {c.clip_id for c in q.pending()}
        assert q.history()[0]["state"] == "stored" and q.counts()["labelled"] == 1
    else:
        # Nothing reached the store: the clip is simply offered again.
        assert rows == [] and q.history() == []
        assert q.next("x").clip_id == first
    _check_exactly_once(tmp_path / "data", [])


# ------------------------------------------------------------------------------------------------ Hub


class FakeHub:
    """A tiny Hub in a folder with an outage switch. ``lose_next`` makes a commit land and then fail."""

    def __init__(self, root: Path):
        self.root = root
        self.down = False
        self.lose_next = False
        self.commits: list[list[str]] = []

    def _check(self):
        if self.down:
            raise ConnectionError("Hub unreachable (token hf_abcdefghijklmnop in a message)")

    def _repo(self, repo_id):
        return self.root / repo_id

    def create_repo(self, repo_id, *, repo_type=None, exist_ok=False, private=None, token=None):
        self._check()
        self._repo(repo_id).mkdir(parents=True, exist_ok=True)

    def list_repo_files(self, repo_id, *, repo_type=None, **kw):
        self._check()
        repo = self._repo(repo_id)
        return sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file())

    def create_commit(self, repo_id, operations, *, commit_message, repo_type=None, **kw):
        self._check()
        ops = list(operations)
        for op in ops:
            dest = self._repo(repo_id) / op.path_in_repo
            dest.parent.mkdir(parents=True, exist_ok=True)
            with op.as_file() as f:
                dest.write_bytes(f.read())
        self.commits.append([op.path_in_repo for op in ops])
        if self.lose_next:
            self.lose_next = False
            raise TimeoutError("response lost")

    def hf_hub_download(self, repo_id, filename, *, repo_type=None, **kw):
        self._check()
        return str(self._repo(repo_id) / filename)

    def shards(self) -> list[str]:
        return [p for c in self.commits for p in c if p.startswith("data/")]


def test_hub_push_survives_an_outage_and_sends_every_shard_once(queue, tmp_path, caplog):
    hub = FakeHub(tmp_path / "hub")
    sync = HubSync(queue.store.local_dir, "owls/labels", api=hub, every_s=3600, retries=1, backoff_s=0.01)
    c = queue.next("alice")
    queue.label(c.clip_id, "owl", "alice")
    assert sync.sync_once() == queue.store.shards()
    hub.down = True
    for name in ("bob", "carol"):
        queue.label(queue.next(name).clip_id, "not_owl", name, reason="frog/insect")
    queue.undo("carol")
    with caplog.at_level(logging.WARNING), pytest.raises(HubSyncError) as err:
        sync.sync_once()
    assert "hf_abcdefghijklmnop" not in str(err.value)
    assert len(queue.store.shards()) == 4  # labelling went on while the Hub was down
    hub.down = False
    hub.lose_next = True  # the commit lands but the answer is lost: the next round must not resend it
    with pytest.raises(HubSyncError):
        sync.sync_once()
    assert sync.sync_once() == []
    queue.label(queue.next("dave").clip_id, "unsure", "dave")
    assert len(sync.sync_once()) == 1
    assert sorted(hub.shards()) == queue.store.shards()  # every shard, exactly once
    assert len(hub.shards()) == len(set(hub.shards())) == 5
    hub_rows = DatasetStore.open(tmp_path / "hub" / "owls" / "labels").load()
    assert len(hub_rows) == 4 and sorted(hub_rows["verdict"]) == sorted(queue.store.load()["verdict"])
    assert "hf_abcdefghijklmnop" not in caplog.text


def test_hub_sync_starts_only_with_a_hub_dataset_and_a_token(queue, tmp_path, caplog):
    hub = FakeHub(tmp_path / "hub")
    assert hub_sync_from_env(queue, {"OWL_DATASET": "owls/labels"}, api=hub) is None  # no token
    assert hub_sync_from_env(queue, {"HF_TOKEN": "hf_secretsecret123"}, api=hub) is None  # no dataset
    assert hub_sync_from_env(queue, {"OWL_DATASET": "./local", "HF_TOKEN": "hf_secretsecret123"}) is None
    with caplog.at_level(logging.INFO):
        sync = hub_sync_from_env(queue, {"OWL_DATASET": "owls/labels", "HF_TOKEN": "hf_secretsecret123",
                                         "OWL_SYNC_EVERY_S": "60"}, api=hub, start=False)
    assert sync is not None and queue.hub_sync is sync and sync.every_s == 60
    queue.label(queue.next("a").clip_id, "owl", "a")
    assert len(sync.sync_once()) == 1
    assert "hf_secretsecret123" not in caplog.text + repr(sync.__dict__.get("hub"))
    for f in queue.data_dir.rglob("*"):
        if f.is_file() and f.suffix in (".md", ".jsonl", ".json", ".txt"):
            assert "hf_secretsecret123" not in f.read_text(errors="ignore")


# ------------------------------------------------------------------------------------------------ gate


def test_labellers_parse():
    assert parse_labellers(" alice, org:Owl-Lab ,@Bob,, org: ") == (frozenset({"alice", "bob"}),
                                                                      frozenset({"owl-lab"}))


def test_gate_is_open_until_configured():
    gate = LabelGate.from_env({})
    assert not gate.gated
    assert gate.check(labeller="Ann").name == "Ann"
    assert gate.check(labeller="Ann", profile={"preferred_username": "ann-hf"}).name == "ann-hf"


def test_gate_allowlist_by_login_token_or_key():
    calls = []

    def whoami(token):
        calls.append(token)
        if token == "hf_good_alice_token":
            return {"name": "alice", "orgs": []}
        if token == "hf_member_of_owl_lab":
            return {"name": "zed", "orgs": [{"name": "owl-lab"}]}
        raise OSError("401 Unauthorized")

    gate = LabelGate.from_env({"OWL_LABELLERS": "alice,org:owl-lab", "OWL_LABEL_TOKEN": "s3cret-key"},
                              whoami=whoami)
    assert gate.gated and gate.wants_login and "s3cret" not in repr(gate)
    # Page: a signed-in user on the list, or a member of a listed org (from the profile).
    assert gate.check(profile={"preferred_username": "Alice"}).via == "login"
    ident = gate.check(labeller="typed", profile={"preferred_username": "bob",
                                                  "orgs": [{"preferred_username": "owl-lab"}]})
    assert (ident.name, ident.verified) == ("bob", True)  # the login name wins over a typed one
    with pytest.raises(AccessDenied, match="carol is not on"):
        gate.check(profile={"preferred_username": "carol", "orgs": [{"name": "other"}]})
    # API: a Hugging Face token, verified with whoami (cached).
    assert gate.check(oauth_token="hf_good_alice_token").name == "alice"
    assert gate.check(oauth_token="hf_good_alice_token").via == "token"
    assert calls.count("hf_good_alice_token") == 1
    assert gate.check(oauth_token="hf_member_of_owl_lab").name == "zed"
    with pytest.raises(AccessDenied) as err:
        gate.check(oauth_token="hf_forged_token_value")
    assert "hf_forged" not in str(err.value)
    # The shared key, as a header (API) or typed on the page.
    assert gate.check(labeller="robot", headers={"X-Owl-Label-Token": "s3cret-key"}).name == "robot"
    assert gate.check(labeller="robot", key="s3cret-key").via == "key"
    for bad in ({"headers": {"x-owl-label-token": "wrong"}}, {"key": ""}, {}):
        with pytest.raises(AccessDenied):
            gate.check(labeller="robot", **bad)


def test_gate_with_only_a_key():
    gate = LabelGate.from_env({"OWL_LABEL_TOKEN": "k"})
    assert gate.gated and not gate.wants_login
    with pytest.raises(AccessDenied, match="labelling key"):
        gate.check(labeller="x", profile={"preferred_username": "alice"})
    assert gate.check(labeller="x", key="k").name == "x"
