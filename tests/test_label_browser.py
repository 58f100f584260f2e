"""The Label tab in Debian's Chromium (Playwright): three clips labelled with the keyboard alone.

The queue is filled before the Space starts (no detection needed); the test types a name, then labels with
``o``, ``3`` (not owl: koala) and ``u``, undoes with ``z`` and relabels with ``o``, replays with ``r`` and
checks the counter, the autoplaying player and the store. A screenshot goes to ``test-artifacts/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from servers import SpaceProcess
from test_labelling import SOURCE, make_detection

from owlfinder.labelling.queue import LabelQueue

from conftest import REPO_ROOT, write_tone_file

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
PLAYER = ("() => [document.querySelector('#owl-label-audio #time')?.textContent,"
          " document.querySelector('#owl-label-audio button.play-pause-button')?.getAttribute('aria-label')]")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_label_three_clips_with_the_keyboard(tmp_path, tiny_model_dir):
    sync_api = pytest.importorskip("playwright.sync_api")
    rec = write_tone_file(tmp_path / "20240101_200000.wav", 60.0)
    q = LabelQueue(tmp_path / "data")
    assert q.add_detection(make_detection(rec), rec, n_uncertain=4, display_name=SOURCE) == 5
    q.close()

    app = SpaceProcess(tmp_path, tiny_model_dir)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1150})
            page.set_default_timeout(30_000)
            sync_api.expect.set_options(timeout=30_000)  # two CPU cores shared with other work
            page.goto(app.url, wait_until="load")
            page.get_by_role("tab", name="Label").click()
            page.locator("#owl-labeller input, #owl-labeller textarea").first.fill("keyboard kim")
            page.keyboard.press("Enter")
            info = page.locator("#owl-label-info")
            counter = page.locator("#owl-label-counter")
            sync_api.expect(info).to_contain_text("in file")
            sync_api.expect(counter).to_contain_text("0 labelled · 5 remaining")
            first = info.inner_text()
            page.locator("#owl-label-info").click()  # focus leaves the name box; keys now label

            def press(key: str, labelled: int, remaining: int) -> None:
                before = info.inner_text()
                page.keyboard.press(key)
                sync_api.expect(counter).to_contain_text(f"{labelled} labelled · {remaining} remaining")
                if remaining:
                    sync_api.expect(info).not_to_have_text(before)  # the next clip is up

            press("o", 1, 4)
            press("3", 2, 3)
            press("u", 3, 2)
            sync_api.expect(counter).to_contain_text("you: 3")
            press("z", 2, 3)  # undo: the last clip comes back
            sync_api.expect(page.locator("#owl-label-status")).to_contain_text("Undid")
            press("o", 3, 2)
            # The new clip autoplays; r replays it from the start.
            page.wait_for_function(f"() => ({PLAYER})()[1] === 'Pause'")
            page.wait_for_timeout(1200)
            page.keyboard.press("r")
            page.wait_for_function(
                f"() => ['0:00', '0:01'].includes(({PLAYER})()[0]) && ({PLAYER})()[1] === 'Pause'")
            assert re.search(r"score 0\.\d{3} \(threshold 0\.50\)", first), first
            assert SOURCE in first and "recorded 2024-01-01 20:00" in first
            # The name is remembered in the browser: a reload brings the tab straight back to work.
            page.reload(wait_until="load")
            page.get_by_role("tab", name="Label").click()
            sync_api.expect(page.locator("#owl-labeller input, #owl-labeller textarea").first).to_have_value(
                "keyboard kim")
            sync_api.expect(info).to_contain_text("in file")
            sync_api.expect(page.locator("#owl-label-audio #duration")).to_have_text("0:05")  # player ready
            out = REPO_ROOT / "test-artifacts"
            out.mkdir(exist_ok=True)
            page.screenshot(path=str(out / "label_tab.png"), full_page=True)
            browser.close()
    finally:
        app.stop()

    q = LabelQueue(tmp_path / "data")
    rows = list(q.store.load(resolve=False).remove_columns("audio"))
    assert [(r["verdict"], r["reason"]) for r in rows] == [
        ("owl", None), ("not_owl", "koala"), ("unsure", None), ("unsure", "undone"), ("owl", None)]
    assert {r["labeller"] for r in rows} == {"keyboard kim"}
    latest = q.store.load()
    assert sorted(latest["verdict"]) == ["not_owl", "owl", "owl"]
    assert q.counts() == {"labelled": 3, "remaining": 2, "mine": 0}
