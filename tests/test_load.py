"""Load: eight gradio_client clients at once against one Space (``python space/app.py`` on loopback).

Four clients detect short recordings (two of them send the very same file at the same moment, which gradio
stores under one path), four label clips; every request is bounded (a few per client, retried a bounded
number of times, a deadline for the whole run). Every request succeeds or gets gradio's clean
"Queue is full" answer (``OWL_QUEUE_SIZE=4``); the server's memory (VmRSS) stays bounded; every acknowledged
label is in the dataset store exactly once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from servers import SpaceProcess

from owlfinder.data.store import DatasetStore

from conftest import write_tone_file

pytestmark = pytest.mark.slow

N_DETECTORS = 4
N_LABELLERS = 4
DETECTIONS_EACH = 3
LABELS_EACH = 5
DEADLINE_S = 150.0
MAX_TRIES = 40  # per request, when the queue is full
RSS_GROWTH_MB = 400
RSS_CEILING_MB = 3000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = Counter()
        self.busy = Counter()
        self.errors: list[str] = []
        self.acks: list[dict] = []


def call(stats: Stats, what: str, fn, deadline: float):
    """Run one request; a full queue is a clean answer: count it, wait a little, try again (bounded)."""
    for attempt in range(MAX_TRIES):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: past the deadline")
        try:
            out = fn()
        except Exception as err:  # noqa: BLE001 - classified here
            if "Queue is full" in str(err):
                with stats.lock:
                    stats.busy[what] += 1
                time.sleep(0.2 + 0.1 * attempt)
                continue
            raise
        with stats.lock:
            stats.ok[what] += 1
        return out
    raise TimeoutError(f"{what}: the queue stayed full for {MAX_TRIES} tries")


def test_eight_clients_at_once(tmp_path, tiny_model_dir):
    recs = tmp_path / "recs"
    recs.mkdir()
    seeds = [write_tone_file(recs / f"2024010{i}_200000.wav", 30.0, seed=10 + i) for i in range(4)]
    shared = write_tone_file(recs / "shared.wav", 8.0, seed=99)
    own = {(c, k): write_tone_file(recs / f"client{c}-{k}.wav", 8.0, seed=100 + 10 * c + k)
           for c in range(N_DETECTORS) for k in range(DETECTIONS_EACH)}

    app = SpaceProcess(tmp_path, tiny_model_dir, GRADIO_TEMP_DIR=str(tmp_path / "gradio"), OWL_QUEUE_SIZE="4")
    try:
        warm = app.client()
        for rec in seeds:  # 24 clips (four 30 s events) to label, and the model is warm
            assert warm.predict(handle_file(str(rec)), 0.0, api_name="/detect")["events"]
        assert warm.predict(api_name="/queue")["remaining"] >= N_LABELLERS * LABELS_EACH
        rss_before = rss_mb(app.proc.pid)

        stats = Stats()
        deadline = time.monotonic() + DEADLINE_S
        barrier = threading.Barrier(N_DETECTORS + N_LABELLERS, timeout=60)

        def detector(c: int) -> None:
            try:
                client = app.client()
                barrier.wait()
                for k in range(DETECTIONS_EACH):
                    rec = shared if (k == 0 and c < 2) else own[(c, k)]  # two clients send one file at once
                    doc = call(stats, "detect", lambda rec=rec: client.predict(handle_file(str(rec)),
                                                                               api_name="/detect"), deadline)
                    assert doc["file"] == rec.name and doc["status"] == "complete"
                    # the grid (0, 2.5 and the end-aligned 3.0), plus any second-look window between them
                    assert {w["start_s"] for w in doc["windows"]} >= {0.0, 2.5, 3.0}
            except BaseException as err:  # noqa: BLE001 - reported by the main thread
                with stats.lock:
                    stats.errors.append(f"detector {c}: {type(err).__name__}: {err}")

        def labeller(c: int) -> None:
            name = f"labeller{c}"
            verdicts = ["owl", "not_owl", "unsure"]
            try:
                client = app.client()
                barrier.wait()
                for k in range(LABELS_EACH):
                    clip = call(stats, "next", lambda: client.predict(name, api_name="/next"), deadline)["clip"]
                    if clip is None:
                        break
                    ack = call(stats, "label", lambda clip=clip, k=k: client.predict(
                        clip["clip_id"], verdicts[k % 3], "", name, api_name="/label"), deadline)
                    assert ack["stored"] is True and ack["clip_id"] == clip["clip_id"] and ack["labeller"] == name
                    with stats.lock:
                        stats.acks.append(ack)
            except BaseException as err:  # noqa: BLE001 - reported by the main thread
                with stats.lock:
                    stats.errors.append(f"labeller {c}: {type(err).__name__}: {err}")

        threads = [threading.Thread(target=detector, args=(c,), daemon=True) for c in range(N_DETECTORS)]
        threads += [threading.Thread(target=labeller, args=(c,), daemon=True) for c in range(N_LABELLERS)]
        t0 = time.monotonic()
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=max(1.0, deadline - time.monotonic() + 10))
        took = time.monotonic() - t0
        assert not any(th.is_alive() for th in threads), "a client is still waiting"
        assert not stats.errors, stats.errors
        assert stats.ok["detect"] == N_DETECTORS * DETECTIONS_EACH
        assert len(stats.acks) == N_LABELLERS * LABELS_EACH
        rss_after = rss_mb(app.proc.pid)
        print(f"load: {took:.1f} s, ok {dict(stats.ok)}, queue full {dict(stats.busy)}, "
              f"RSS {rss_before:.0f} -> {rss_after:.0f} MB")
        assert rss_after - rss_before < RSS_GROWTH_MB and rss_after < RSS_CEILING_MB, (rss_before, rss_after)

        # The server is still healthy afterwards, and nothing was left behind: no scratch copy, no upload
        # (only the short-lived hard links under scratch/recent, which expire by themselves).
        with pytest.raises(AppError, match="already labelled"):
            warm.predict(stats.acks[0]["clip_id"], "owl", "", "someone-else", api_name="/label")
        assert not list((tmp_path / "scratch").glob("run-*"))
        assert not [p for p in (tmp_path / "gradio").rglob("*.wav")]
    finally:
        app.stop()

    rows = DatasetStore.open(tmp_path / "data" / "dataset").load(resolve=False).remove_columns("audio")
    per_clip = Counter(rows["clip_id"])
    acked = Counter(a["clip_id"] for a in stats.acks)
    assert acked == per_clip and set(per_clip.values()) == {1}  # every label landed, exactly once
    by_clip = {r["clip_id"]: r for r in rows}
    for a in stats.acks:
        assert by_clip[a["clip_id"]]["labeller"] == a["labeller"] and by_clip[a["clip_id"]]["verdict"] == a["verdict"]
