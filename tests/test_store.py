"""The append-only dataset store, on disk for real and on the Hub through a fake HfApi; HubSync."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import threading
import time
import zlib
from pathlib import Path

import datasets
import numpy as np
import pytest

from owlfinder.data.hubsync import HubSync, HubSyncError
from owlfinder.data.store import DatasetStore, StoreError, is_hub_id, latest_indices

SR = 16000
TOKEN = "hf_FAKEtokenFAKEtokenFAKEtoken1234"


def tone(seconds: float = 5.0, freq: float = 400.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def rows(n: int, label: str = "owl", source: str = "siteA/night.wav", **extra) -> list[dict]:
    # Each recording sounds different: clip ids come from the audio, so equal audio would be one clip.
    base = 300 if source == "siteA/night.wav" else 1000 + zlib.crc32(source.encode()) % 997
    return [{"audio": tone(freq=base + 10 * i), "sr": SR, "label": label, "source": source,
             "start_s": 5.0 * i, "end_s": 5.0 * i + 5, **extra} for i in range(n)]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FakeHfApi:
    """Records calls and keeps committed files in a folder, like a tiny Hub. Never touches the network.

    ``fail`` holds exceptions raised by the next ``create_commit`` calls, one each; ``lose_response`` makes
    the next commit land and then raise, like a timeout after the Hub accepted it.
    """

    def __init__(self, root: Path):
        self.root = root
        self.calls: list[tuple[str, dict]] = []
        self.commits: list[dict] = []
        self.fail: list[BaseException] = []
        self.lose_response = 0

    def _repo(self, repo_id: str) -> Path:
        return self.root / repo_id

    def create_repo(self, repo_id, *, repo_type=None, exist_ok=False, private=None, token=None):
        self.calls.append(("create_repo", {"repo_id": repo_id, "repo_type": repo_type, "exist_ok": exist_ok,
                                           "private": private}))
        self._repo(repo_id).mkdir(parents=True, exist_ok=True)

    def list_repo_files(self, repo_id, *, repo_type=None, revision=None, token=None):
        self.calls.append(("list_repo_files", {"repo_id": repo_id, "repo_type": repo_type}))
        repo = self._repo(repo_id)
        return sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file())

    def create_commit(self, repo_id, operations, *, commit_message, repo_type=None, **kw):
        operations = list(operations)
        self.calls.append(("create_commit", {"repo_id": repo_id, "repo_type": repo_type}))
        if self.fail:
            raise self.fail.pop(0)
        for op in operations:
            dest = self._repo(repo_id) / op.path_in_repo
            dest.parent.mkdir(parents=True, exist_ok=True)
            with op.as_file() as f:
                dest.write_bytes(f.read())
        self.commits.append({"repo_id": repo_id, "repo_type": repo_type, "message": commit_message,
                             "paths": [op.path_in_repo for op in operations]})
        if self.lose_response:
            self.lose_response -= 1
            raise TimeoutError("read timed out")

    def hf_hub_download(self, repo_id, filename, *, repo_type=None, **kw):
        self.calls.append(("hf_hub_download", {"repo_id": repo_id, "filename": filename, "repo_type": repo_type}))
        return str(self._repo(repo_id) / filename)

    def snapshot_download(self, repo_id, *, repo_type=None, allow_patterns=None, **kw):
        self.calls.append(("snapshot_download", {"repo_id": repo_id, "repo_type": repo_type,
                                                 "allow_patterns": allow_patterns}))
        return str(self._repo(repo_id))

    def uploaded(self) -> list[str]:
        return [p for c in self.commits for p in c["paths"] if p.startswith("data/")]


class HTTPStatusError(OSError):
    def __init__(self, status: int):
        super().__init__(f"{status} Client Error")
        self.response = type("R", (), {"status_code": status})()


# ------------------------------------------------------------------------------------------------ local


def test_roundtrip_with_the_seeds_columns(tmp_path):
    store = DatasetStore.open(tmp_path / "ds")
    shard = store.append(rows(2, "owl") + rows(1, "not_owl", source="siteB/x.wav", reason="koala"))
    assert shard.startswith("data/train-") and shard.endswith(".parquet")
    assert store.shards() == [shard] and store.splits() == ["train"]

    ds = store.load("train")
    assert ds.features["label"].names == ["owl", "not_owl"]
    assert isinstance(ds.features["audio"], datasets.Audio) and ds.features["audio"].sampling_rate == SR
    assert ds.column_names[:3] == ["audio", "label", "filename"]
    ex = ds[0]
    assert ex["audio"]["array"].shape == (80000,) and ex["audio"]["sampling_rate"] == SR
    np.testing.assert_allclose(ex["audio"]["array"], tone(freq=300), atol=2e-4)
    assert ex["filename"] == "night.wav" and ex["label"] == 0 and ex["verdict"] == "owl"
    assert ds.features["label"].int2str(ds[2]["label"]) == "not_owl" and ds[2]["reason"] == "koala"
    assert ex["labelled_at"].endswith("Z") and ex["group"] == "siteA/night.wav"

    card = (tmp_path / "ds" / "README.md").read_text()
    assert card.startswith("---\n") and "license: cc-by-4.0" in card
    assert "config_name: default" in card and "path: data/train-*.parquet" in card and "class_label" in card


def test_shards_are_readable_by_datasets_itself(tmp_path):
    root = tmp_path / "ds"
    store = DatasetStore.open(root)
    store.append(rows(2))
    store.append(rows(1, "not_owl", source="siteC/y.flac"), split="test")
    files = [str(root / s) for s in store.shards("train")]
    ds = datasets.load_dataset("parquet", data_files={"train": files}, split="train")
    assert ds.features["label"].names == ["owl", "not_owl"]
    assert ds[0]["audio"]["array"].shape == (80000,) and ds[0]["audio"]["sampling_rate"] == SR
    # The folder itself, through the card's configs: both splits.
    dd = datasets.load_dataset(str(root))
    assert set(dd) == {"train", "test"} and dd["test"].num_rows == 1
    assert dd["test"][0]["audio"]["array"].shape == (80000,)


def test_append_never_rewrites_old_shards(tmp_path):
    root = tmp_path / "ds"
    store = DatasetStore.open(root)
    first = store.append(rows(2))
    digest, card = sha(root / first), sha(root / "README.md")
    second = store.append(rows(1, "not_owl", source="siteB/z.wav"))
    assert second != first and sha(root / first) == digest
    assert sha(root / "README.md") == card  # same splits: the card is left alone
    store.append(rows(1), split="validation")
    assert sha(root / first) == digest and "data/validation-*.parquet" in (root / "README.md").read_text()
    assert len(store.load()) == 3  # split=None: all splits; the validation row duplicates a train clip_id


def test_duplicates_resolve_to_the_latest_labelled_at(tmp_path):
    store = DatasetStore.open(tmp_path / "ds")
    clip = {"audio": tone(), "sr": SR, "source": "siteA/n.wav", "start_s": 10.0, "end_s": 15.0}
    # Written out of time order on purpose: the latest labelled_at wins, not the latest write.
    store.append([{**clip, "verdict": "not_owl", "labelled_at": "2024-06-02T10:00:00Z", "labeller": "b"}])
    store.append([{**clip, "verdict": "owl", "labelled_at": "2024-06-01T10:00:00Z", "labeller": "a"}])
    store.append([{**clip, "verdict": "unsure", "labelled_at": "2024-06-01T12:00:00+10:00"}])  # 02:00Z
    store.append(rows(1, source="siteZ/other.wav"))
    ds = store.load()
    mine = [r for r in ds if r["source"] == "siteA/n.wav"]
    assert len(ds) == 2 and len(mine) == 1 and mine[0]["labeller"] == "b" and mine[0]["label"] == 1
    assert len(store.load(resolve=False)) == 4  # the history stays
    assert len(store.clip_ids()) == 2

    # An unsure verdict that is the latest makes the clip untrainable; label stays a ClassLabel (-1).
    store.append([{**clip, "verdict": "unsure", "labelled_at": "2024-07-01T00:00:00Z"}])
    latest = [r for r in store.load() if r["source"] == "siteA/n.wav"][0]
    assert latest["label"] == -1 and latest["verdict"] == "unsure"
    assert [r["source"] for r in store.load(include_unsure=False)] == ["siteZ/other.wav"]
    assert latest_indices(["a", None, "a", "b"], ["2", None, "2", "1"]) == [1, 2, 3]  # ties: later row


def test_rows_are_validated_with_one_line_errors(tmp_path):
    store = DatasetStore.open(tmp_path / "ds")
    bad = [
        ({"audio": tone(), "sr": SR, "label": "owlish", "source": "a"}, "label"),
        ({"audio": tone(), "sr": SR, "label": "owl", "lable": 1, "source": "a"}, "unknown column"),
        ({"audio": tone(), "label": "owl", "source": "a"}, "'sr'"),
        ({"audio": b"not audio", "label": "owl", "source": "a"}, "not a readable audio"),
        ({"audio": tone(), "sr": SR, "label": 0, "verdict": "not_owl", "source": "a"}, "contradicts"),
        ({"audio": tone(), "sr": SR, "label": "owl", "source": "a", "labelled_at": "yesterday"}, "ISO"),
    ]
    for row, words in bad:
        with pytest.raises(ValueError, match=words) as err:
            store.append([rows(1)[0], row])
        assert "row 1" in str(err.value) and "\n" not in str(err.value)
    assert store.shards() == []  # nothing half-written
    with pytest.raises(ValueError, match="split"):
        store.append(rows(1), split="train-2")
    # 44.1 kHz stereo arrays and ready-made FLAC bytes are accepted; arrays are resampled to 16 kHz.
    from owlfinder.data.clips import encode_flac

    stereo = np.stack([tone(5.0, sr=44100)] * 2, axis=1)
    store.append([{"audio": stereo, "sr": 44100, "verdict": "owl", "source": "s/a.wav"},
                  {"audio": {"bytes": encode_flac(tone())}, "label": 1, "filename": "seed_0001.wav"}])
    ds = store.load()
    assert [len(r["audio"]["array"]) for r in ds] == [80000, 80000]
    assert ds[1]["filename"] == "seed_0001.wav" and ds[1]["end_s"] == pytest.approx(5.0)


def test_reads_a_seed_style_shard_written_by_datasets(tmp_path):
    # The seed's layout: data/train-00000-of-00001.parquet with only audio, label, filename.
    from owlfinder.data.clips import encode_flac

    seed = datasets.Features({"audio": datasets.Audio(sampling_rate=SR),
                              "label": datasets.ClassLabel(names=["owl", "not_owl"]),
                              "filename": datasets.Value("string")})
    ds = datasets.Dataset.from_dict({"audio": [{"bytes": encode_flac(tone()), "path": "owl_1.wav"}],
                                     "label": [0], "filename": ["owl_1.wav"]}, features=seed)
    (tmp_path / "ds" / "data").mkdir(parents=True)
    ds.to_parquet(tmp_path / "ds" / "data" / "train-00000-of-00001.parquet")
    store = DatasetStore.open(tmp_path / "ds")
    store.append([{"audio": np.stack([tone()] * 2), "sr": SR, "verdict": "not_owl", "source": "s/b.wav"}])
    both = store.load("train")
    assert both["filename"] == ["owl_1.wav", "b.wav"] and both["label"] == [0, 1]
    assert both[0]["clip_id"] is None and len(both[1]["audio"]["array"]) == 80000  # (channels, samples) ok


def _writer(root: str, split: str, n: int, go) -> None:
    go.wait(30)
    store = DatasetStore.open(Path(root))
    for i in range(n):
        store.append([{"audio": tone(0.5 + 0.1 * i), "sr": SR, "label": "owl", "source": f"{split}/{i}.wav"}],
                     split=split)


def test_concurrent_writers_processes_and_threads_all_land(tmp_path):
    root = tmp_path / "ds"
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(str(root), split, 3, go)) for split in ("train", "test")]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    tgo = threading.Event()
    threads = [threading.Thread(target=_writer, args=(str(root), "train", 2, tgo)) for _ in range(2)]
    for t in threads:
        t.start()
    tgo.set()
    for t in threads:
        t.join()
    store = DatasetStore.open(root)
    assert len(store.shards("train")) == 7 and len(store.shards("test")) == 3
    assert len(store.load(resolve=False)) == 10
    card = (root / "README.md").read_text()
    assert "data/train-*.parquet" in card and "data/test-*.parquet" in card
    assert not list((root / "data").glob(".*"))  # no temp files left behind


def test_is_hub_id(tmp_path):
    assert is_hub_id("me/owls") and is_hub_id("hf://datasets/me/owls")
    assert not is_hub_id("./me/owls") and not is_hub_id("/abs/owls") and not is_hub_id("a/b/c")
    assert not is_hub_id("owl_data") and not is_hub_id(tmp_path) and not is_hub_id(Path("me/owls"))


# ------------------------------------------------------------------------------------------------ hub (fake)


def test_hub_append_commits_one_shard_with_the_card(tmp_path):
    api = FakeHfApi(tmp_path / "hub")
    store = DatasetStore.open("me/owls", api=api, backoff_s=0)
    assert not store.is_local
    first = store.append(rows(2))
    store.append(rows(1, "not_owl", source="siteB/q.wav"))
    assert [c["repo_type"] for c in api.commits] == ["dataset", "dataset"]
    assert api.commits[0]["paths"] == [first, "README.md"] and first.startswith("data/train-")
    assert len(api.commits[1]["paths"]) == 1  # card unchanged: shard only
    assert ("create_repo", {"repo_id": "me/owls", "repo_type": "dataset", "exist_ok": True,
                            "private": None}) in api.calls
    assert all(kw.get("repo_type") == "dataset" for name, kw in api.calls if name != "create_repo")
    # Reading downloads through the api and sees what was committed.
    ds = store.load()
    assert len(ds) == 3 and ds[0]["audio"]["array"].shape == (80000,)
    assert any(name == "snapshot_download" for name, _ in api.calls)
    assert len(store.clip_ids()) == 3


def test_hub_append_retries_transient_errors_only(tmp_path):
    api = FakeHfApi(tmp_path / "hub")
    store = DatasetStore.open("me/owls", api=api, backoff_s=0, retries=4)
    api.fail = [ConnectionError("connection reset"), HTTPStatusError(503)]
    store.append(rows(1))
    assert sum(name == "create_commit" for name, _ in api.calls) == 3 and len(api.commits) == 1
    api.fail = [HTTPStatusError(401)]
    with pytest.raises(StoreError, match="401"):
        store.append(rows(1))
    assert len(api.commits) == 1  # no retry for an auth error


def test_push_to_hub_one_commit_per_missing_shard(tmp_path):
    local = DatasetStore.open(tmp_path / "ds")
    shards = [local.append(rows(1, source=f"s/{i}.wav")) for i in range(3)]
    api = FakeHfApi(tmp_path / "hub")
    assert local.push_to_hub("me/owls", api=api, progress=False) == shards
    assert [c["paths"] for c in api.commits] == [[shards[0], "README.md"], [shards[1]], [shards[2]]]
    assert ("create_repo", {"repo_id": "me/owls", "repo_type": "dataset", "exist_ok": True,
                            "private": None}) in api.calls
    for s in shards:
        assert sha(api.root / "me/owls" / s) == sha(tmp_path / "ds" / s)
    assert local.push_to_hub("me/owls", api=api, progress=False) == [] and len(api.commits) == 3
    new = local.append(rows(1, "not_owl", source="s/new.wav"), split="test")  # a new split: card changes
    assert local.push_to_hub("me/owls", api=api, progress=False) == [new]
    assert api.commits[-1]["paths"] == [new, "README.md"]
    assert DatasetStore.open("me/owls", api=api).splits() == ["test", "train"]


def test_hubsync_exactly_once_through_failures(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    local = DatasetStore.open(tmp_path / "ds")
    shards = [local.append(rows(1, source=f"s/{i}.wav")) for i in range(2)]
    api = FakeHfApi(tmp_path / "hub")
    sync = HubSync(tmp_path / "ds", "me/owls", api=api, every_s=3600, backoff_s=0, retries=2)

    # Hub down for a whole round (both tries): nothing is marked done, the token never shows.
    api.fail = [ConnectionError(f"502 Bad Gateway for url with Authorization: Bearer {TOKEN}")] * 2
    with caplog.at_level(logging.DEBUG), pytest.raises(HubSyncError) as err:
        sync.sync_once()
    assert TOKEN not in str(err.value) and TOKEN not in caplog.text and api.uploaded() == []

    assert sync.sync_once() == shards  # recovered: everything in one commit
    assert len(api.commits) == 1 and api.commits[0]["paths"] == [*shards, "README.md"]
    assert sync.sync_once() == [] and len(api.commits) == 1

    # The commit lands but its response is lost: the retry sees the shard on the Hub and does not resend.
    third = local.append(rows(1, source="s/3.wav"))
    api.lose_response = 1
    assert sync.sync_once() == [third]
    # Same, with no retry left in the round: the round fails, the next round finds nothing to send.
    fourth = local.append(rows(1, source="s/4.wav"))
    once = HubSync(tmp_path / "ds", "me/owls", api=api, every_s=3600, backoff_s=0, retries=1)
    api.lose_response = 1
    with pytest.raises(HubSyncError):
        once.sync_once()
    assert once.sync_once() == [] and sync.sync_once() == []
    fifth = local.append(rows(1, source="s/5.wav"))
    assert sync.sync_once() == [fifth]
    up = api.uploaded()
    assert sorted(up) == sorted([*shards, third, fourth, fifth]) and len(up) == len(set(up))  # exactly once
    assert TOKEN not in caplog.text


def test_hubsync_thread_pushes_in_the_background(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    local = DatasetStore.open(tmp_path / "ds")
    api = FakeHfApi(tmp_path / "hub")
    api.fail = [ConnectionError(f"down {TOKEN}")]
    with caplog.at_level(logging.WARNING), HubSync(tmp_path / "ds", "me/owls", api=api, every_s=0.05,
                                                   backoff_s=0, retries=1) as sync:
        shard = local.append(rows(1))
        deadline = time.time() + 20
        while shard not in api.uploaded() and time.time() < deadline:
            time.sleep(0.05)
        last = local.append(rows(1, source="s/last.wav"))
    assert api.uploaded().count(shard) == 1 and api.uploaded().count(last) == 1  # stop() ran a final round
    assert sync.last_error is None and "Hub sync failed" in caplog.text and TOKEN not in caplog.text
