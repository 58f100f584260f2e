"""Hostile inputs through the Space: the ``/detect`` API and the Detect tab's upload path.

Every file of ``tests/hostile.py`` is sent to a Space launched on loopback (tiny model, real labelling queue)
twice: through the documented API (``/detect``) and through the page's own event (``detect_ui``: the
``gr.File`` upload, ``Find owls`` and its callback, driven by ``gradio_client``), plus one broken file through a
real browser. A file that is not usable audio gives one line naming the file and the reason (no traceback, no
server path); odd but valid audio is processed; a good file right after each bad one works. A 24-hour
recording over ``OWL_MAX_HOURS`` is refused quickly from its header, and an upload over ``OWL_MAX_UPLOAD`` is
refused with a clear message (by the client, by the server's upload route, and by the service itself).
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from servers import free_port

import hostile
from conftest import REPO_ROOT, write_tone_file

MAX_UPLOAD = 20_000_000  # OWL_MAX_UPLOAD=20mb
MAX_HOURS = 12.0
#: A one-line text file named *.flac (audio.probe once said "unsupported channel count 0" for it).
TEXT_AS_FLAC_REASONS = ("not a recognised audio file",)



@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, tuple[str, Path]]:
    """kind -> (group, path) for every hostile input, plus text files named like FLAC."""
    d = tmp_path_factory.mktemp("hostile-api")
    out: dict[str, tuple[str, Path]] = {}
    for group_name, group in (("broken", hostile.BROKEN), ("truncated", hostile.TRUNCATED),
                              ("odd", hostile.ODD_VALID)):
        for kind, make in group.items():
            out[kind] = (group_name, make(d))
    for p in hostile.odd_names(d):
        out[f"name {p.name}"] = ("odd", p)
    for name in ("notes.flac", ".flac"):
        p = d / name
        p.write_text("Powerful Owl heard at 21:05, two hoots.\n")
        out[f"text as {name}"] = ("text", p)
    return out


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return write_tone_file(tmp_path_factory.mktemp("good") / "good-tone.wav", 6.0)


@pytest.fixture(scope="module")
def space(tiny_model_dir, tmp_path_factory):
    """The Space in-process on 127.0.0.1 with the tiny model, the real labelling queue and tight limits."""
    from owlfinder.ui.app import build_app, launch_kwargs, open_label_queue
    from owlfinder.ui.config import AppConfig

    root = tmp_path_factory.mktemp("space-hostile")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(root / "gradio"))
        for k, v in dict(OWL_MODEL=str(tiny_model_dir), OWL_DATA_DIR=str(root / "data"),
                         OWL_TMP_DIR=str(root / "scratch"), OWL_MAX_UPLOAD="20mb", OWL_MAX_HOURS=str(MAX_HOURS),
                         OWL_DEVICE="cpu", GRADIO_SERVER_PORT=str(free_port())).items():
            mp.setenv(k, v)
        for k in ("OWL_LABELLERS", "OWL_LABEL_TOKEN", "OWL_DATASET", "HF_TOKEN", "OWL_MAX_REQUEST_S"):
            mp.delenv(k, raising=False)
        cfg = AppConfig.from_env()
        demo = build_app(cfg, open_label_queue(cfg))
        demo.launch(**launch_kwargs(cfg), prevent_thread_lock=True, quiet=True)
        try:
            url = f"http://127.0.0.1:{cfg.server_port}/"
            yield dict(url=url, client=Client(url, verbose=False), cfg=cfg, root=root, service=demo.owl_service)
        finally:
            demo.close()


def assert_one_clean_line(message: str, name: str, space: dict) -> str:
    """``name: reason`` on one line, with no traceback and no server path; returns the reason."""
    line = message.strip()
    assert line and "\n" not in line and "Traceback" not in line, message
    assert line.startswith(f"{name}: "), (name, line)
    reason = line[len(name) + 2:]
    assert reason.strip(), line
    for root in (space["root"], REPO_ROOT, Path.home()):
        assert str(root) not in line, line
    assert not re.search(r"(^|[\s(\"'=])/\w[^\s]*/", line), line  # no absolute paths at all
    assert not re.search(r"\brecording\.\w+", line) and "run-" not in line, line  # no server-chosen names
    return reason


def _detect(space: dict, path: Path, endpoint: str) -> dict | tuple:
    if endpoint == "/detect":
        return space["client"].predict(handle_file(str(path)), api_name="/detect")
    return space["client"].predict(handle_file(str(path)), 0.5, api_name="/detect_ui")


def _check_good(space: dict, good: Path, endpoint: str) -> None:
    out = _detect(space, good, endpoint)
    if endpoint == "/detect":
        assert out["file"] == good.name and out["status"] == "complete" and len(out["windows"]) == 2
    else:
        summary = out[2]
        assert good.name in summary and "above threshold" in summary


def _scratch_files(space: dict) -> list[Path]:
    """Files in the scratch folder, but not the expiring hard links under scratch/recent."""
    scratch = Path(space["cfg"].tmp_dir)
    return [p for p in scratch.rglob("*") if p.is_file() and scratch / "recent" not in p.parents]


@pytest.mark.parametrize("endpoint", ["/detect", "/detect_ui"])
def test_every_hostile_input_gets_one_clean_line_and_the_server_keeps_serving(space, files, good, endpoint):
    outcomes = {}
    scratch_before = set(_scratch_files(space))  # page runs keep their session's files, API runs none
    for kind, (group, path) in files.items():
        t = time.monotonic()
        try:
            out = _detect(space, path, endpoint)
        except AppError as err:
            if endpoint == "/detect_ui" and path.name == ".flac":
                # The page's gr.File(file_types=...) refuses a name without a suffix before the callback,
                # with gradio's own one line (the browser's file dialog never offers such a file).
                assert str(err).strip().startswith("Invalid file type. Please upload a file that is one of")
                outcomes[kind] = "refused by gr.File"
                _check_good(space, good, "/detect")
                continue
            reason = assert_one_clean_line(str(err), path.name, space)
            assert group != "odd", (kind, reason)  # odd but valid audio must be processed
            if group == "text":
                assert reason.startswith(TEXT_AS_FLAC_REASONS), (kind, reason)
            outcomes[kind] = reason
        else:
            assert group in ("odd", "truncated"), (kind, out)
            if endpoint == "/detect":
                assert out["file"] == path.name and out["status"] == "complete", kind
                assert out["windows"] and all(0.0 <= w["score"] <= 1.0 and math.isfinite(w["score"])
                                              for w in out["windows"]), kind
            else:
                assert path.name in out[2] and "above threshold" in out[2], (kind, out[2])
            outcomes[kind] = "ok"
        assert time.monotonic() - t < 30, kind
        _check_good(space, good, "/detect")  # the server keeps serving right after every input...
    _check_good(space, good, endpoint)  # ...and the page's own run too
    assert {k for k, v in outcomes.items() if v != "ok"} >= set(hostile.BROKEN)
    assert outcomes["empty"] == "empty file (0 bytes)"
    assert outcomes["header only"].startswith("no audio samples")
    for kind in ("html as wav", "png as mp3", "zip as wav"):
        assert outcomes[kind].startswith("not a recognised audio file"), (kind, outcomes[kind])
    if endpoint == "/detect":  # every API request leaves nothing behind in the scratch folder
        assert set(_scratch_files(space)) <= scratch_before


def test_a_24_hour_recording_over_the_limit_is_refused_at_once(space, tmp_path, good):
    # 24 h at 50 Hz: a valid WAV header for a whole day in an 8.6 MB upload.
    day = hostile.sparse_long_wav(tmp_path / "20240101_000000.wav", hours=24.0, sr=50)
    assert day.stat().st_size < MAX_UPLOAD
    scratch_before = set(_scratch_files(space))
    for endpoint in ("/detect", "/detect_ui"):
        t = time.monotonic()
        with pytest.raises(AppError) as err:
            _detect(space, day, endpoint)
        assert time.monotonic() - t < 15  # refused from the header, never decoded
        reason = assert_one_clean_line(str(err.value), day.name, space)
        assert reason == f"recording is 24.0 h long; the limit is {MAX_HOURS:g} h", reason
        assert not set(_scratch_files(space)) - scratch_before  # no copy of it kept
        _check_good(space, good, endpoint)


def test_an_upload_over_the_size_limit_is_refused_with_a_clear_message(space, tmp_path, good):
    big = hostile.sparse_long_wav(tmp_path / "big.wav", hours=0.4)  # 23 MB > 20 MB
    assert big.stat().st_size > MAX_UPLOAD
    # gradio_client checks the Space's limit before sending anything.
    with pytest.raises(ValueError, match=rf"exceeds the maximum file size of {MAX_UPLOAD} bytes"):
        space["client"].predict(handle_file(str(big)), api_name="/detect")
    # A client that sends it anyway is cut off by the server's upload route (413), the message saying why.
    uploads_before = {p for p in (space["root"] / "gradio").rglob("*") if p.is_file()}
    with big.open("rb") as f:
        r = httpx.post(space["url"] + "gradio_api/upload", files={"files": ("big.wav", f)}, timeout=60)
    assert r.status_code == 413 and f"exceeded maximum allowed size of {MAX_UPLOAD} bytes" in r.text
    assert {p for p in (space["root"] / "gradio").rglob("*") if p.is_file()} <= uploads_before
    _check_good(space, good, "/detect")


@pytest.mark.browser
def test_the_page_refuses_a_broken_file_in_a_real_browser(space, files, good):
    """One broken file and then a good one through Chromium: the error toast is the one line."""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium (/usr/bin/chromium) is not installed")
    page_wav = files["html as wav"][1]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                          "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(space["url"], wait_until="load")
            page.wait_for_selector("#owl-run", timeout=60_000)
            page.locator("#owl-upload input[type=file]").set_input_files(str(page_wav))
            page.locator("#owl-upload").get_by_text(page_wav.name).first.wait_for(timeout=30_000)
            page.locator("#owl-run").click()
            toast = page.locator("[data-testid=toast-body]").first
            toast.wait_for(timeout=60_000)
            text = toast.inner_text()
            assert "page.wav: not a recognised audio file" in text, text
            assert "Traceback" not in text and str(space["root"]) not in text
            page.wait_for_selector("#owl-run:not([disabled])", timeout=30_000)  # the button comes back
            # The same page goes on to scan a good file.
            page.locator("#owl-upload button[aria-label='Clear']").first.click()
            page.locator("#owl-upload input[type=file]").set_input_files(str(good))
            page.locator("#owl-upload").get_by_text(good.name).first.wait_for(timeout=30_000)
            page.locator("#owl-run").click()
            page.wait_for_function(
                "document.querySelector('#owl-summary').innerText.includes('above threshold')", timeout=60_000)
            assert good.name in page.locator("#owl-summary").inner_text()
        finally:
            browser.close()
