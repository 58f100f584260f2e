"""The Detect tab in a real browser: Playwright drives Debian's Chromium against the Space on loopback.

Upload a synthetic night, watch the timeline appear, pick an event, check the player, the spectrogram and
the four download links, and save screenshots to ``test-artifacts/`` (gitignored) for a person to look at.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from servers import free_port

from conftest import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium (/usr/bin/chromium) is not installed"),
]



@pytest.fixture(scope="module")
def night(tmp_path_factory) -> Path:
    from owlfinder.synth.nights import a2o_filename, make_night

    path = tmp_path_factory.mktemp("night") / a2o_filename("20210603T200000+1000", "Site-1", 5)
    make_night(path, 180.0, sr=16000, channels=1, backgrounds=None, seed=5, calls_per_hour=60,
               snr_db_range=(8.0, 15.0))
    return path


def band_energy_scores(clf) -> None:
    """Make a (random) test classifier score windows by their loudest quarter-second in the owl's band, so
    the synthetic night's calls become events and the page shows what a real run looks like."""
    import torch

    sr = clf.sampling_rate

    def features(batch):
        b = np.atleast_2d(np.asarray(batch, dtype=np.float32))
        n = sr // 4
        frames = b[:, : b.shape[1] // n * n].reshape(b.shape[0], -1, n)
        power = np.abs(np.fft.rfft(frames * np.hanning(n), axis=2)) ** 2
        f = np.fft.rfftfreq(n, 1 / sr)
        ratio = power[..., (f > 330) & (f < 560)].sum(-1) / (power[..., (f > 100) & (f < 4000)].sum(-1) + 1e-9)
        return {"ratio": torch.from_numpy(ratio.max(axis=1))}

    def predict(inputs):
        return (1 / (1 + np.exp(-(inputs["ratio"].numpy() - 0.5) * 10))).astype(np.float32)

    object.__setattr__(clf, "features", features)
    object.__setattr__(clf, "predict", predict)
    clf.threshold = 0.6


@pytest.fixture(scope="module")
def app_url(tiny_model_dir, night, tmp_path_factory):
    """The Space on 127.0.0.1 with the starter model, or the tiny test model scoring band energy."""
    from gradio.utils import get_upload_folder

    from owlfinder.detect.engine import detect
    from owlfinder.detect.model import BUNDLED_MODEL, load_classifier
    from owlfinder.ui.app import build_app, launch_kwargs
    from owlfinder.ui.config import AppConfig
    from owlfinder.ui.detect_service import DetectService

    root = tmp_path_factory.mktemp("space-browser")
    starter = (BUNDLED_MODEL / "config.json").exists()
    model = BUNDLED_MODEL if starter else tiny_model_dir
    clf = load_classifier(model, device="cpu")
    if not starter:
        band_energy_scores(clf)
    det = detect(night, clf)
    if not det.events:  # keep the page test about the page: some windows must pass the threshold
        clf.threshold = round(float(np.quantile(det.scores, 0.9)), 3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(root / "gradio"))
        cfg = AppConfig(model=str(model), data_dir=root / "data", tmp_dir=root / "scratch",
                        server_port=free_port())
        service = DetectService(cfg, classifier=clf, upload_root=get_upload_folder())
        demo = build_app(cfg, service=service)
        demo.launch(**launch_kwargs(cfg), prevent_thread_lock=True, quiet=True)
        try:
            yield f"http://127.0.0.1:{cfg.server_port}/"
        finally:
            demo.close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_upload_timeline_event_player_downloads(browser, app_url, night):
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(app_url, wait_until="load")
    page.wait_for_selector("#owl-run", timeout=60_000)
    assert page.locator("#owl-threshold input[type=number]").input_value()  # calibrated default shown

    page.locator("#owl-upload input[type=file]").set_input_files(str(night))
    page.locator("#owl-upload").get_by_text(".flac").first.wait_for(timeout=30_000)
    page.locator("#owl-run").click()

    # The run finishes with the download buttons enabled; the timeline and the events table are filled.
    page.wait_for_selector("#owl-dl-audacity:not([disabled])", timeout=90_000)
    # score, events, threshold (and event peaks): the final figure
    page.wait_for_function("document.querySelectorAll('#owl-timeline .scatterlayer .trace').length >= 3",
                           timeout=30_000)
    assert "wall-clock time (UTC+10:00)" in page.locator("#owl-timeline").inner_text()
    summary = page.locator("#owl-summary").inner_text()
    assert night.name in summary and "event" in summary and "recorded 2021-06-03 20:00:00" in summary
    first_start = page.locator("[data-testid=cell-0-1]").first
    first_start.wait_for(timeout=30_000)
    assert page.locator("[data-testid=cell-0-5]").first.inner_text().startswith("20:0")  # wall-clock column
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "space_detect_results.png"), full_page=True)

    downloads = {}
    for fmt in ("json", "csv", "raven", "audacity"):
        with page.expect_download() as info:
            page.locator(f"#owl-dl-{fmt}").click()
        downloads[fmt] = (info.value.suggested_filename, Path(info.value.path()).read_text())
    assert [name for name, _ in downloads.values()] == [
        f"{night.stem}.json", f"{night.stem}.csv", f"{night.stem}.raven.txt", f"{night.stem}.audacity.txt"]
    doc = json.loads(downloads["json"][1])
    assert doc["file"] == night.name and doc["events"] and doc["windows"]
    assert downloads["csv"][1].startswith("file,start_s,end_s,score")
    assert downloads["raven"][1].startswith("Selection\tView\tChannel")
    assert downloads["audacity"][1].count("\n") == len(doc["events"])

    # Pick the first event: its clip plays with context and its spectrogram appears.
    first_start.click()
    page.wait_for_selector("#owl-spectrogram img[src]", timeout=30_000)
    # The player holds the clip (a WAV with context, downloadable) and shows its length.
    link = page.locator("#owl-player a[data-testid=download-link]")
    link.wait_for(timeout=30_000)
    clip = page.request.get(link.get_attribute("href"))
    assert clip.ok and clip.body()[:4] == b"RIFF" and link.get_attribute("download").endswith(".wav")
    page.wait_for_function("(document.querySelector('#owl-player #duration') || {}).textContent > '0:00'",
                           timeout=30_000)
    assert "Event 1" in page.locator("#owl-event-caption").inner_text()
    img_src = page.locator("#owl-spectrogram img").get_attribute("src")
    assert img_src and page.request.get(img_src).ok
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "space_detect_event.png"), full_page=True)

    # A new threshold re-derives the events from the saved scores: at 0 every window is one event.
    box = page.locator("#owl-threshold input[type=number]")
    box.fill("0")
    box.press("Enter")
    page.wait_for_function("document.querySelector('#owl-summary').innerText.includes('1 event above "
                           "threshold 0.00')", timeout=30_000)
    assert page.locator("[data-testid=cell-1-0]").count() == 0
    assert not errors, errors
    page.close()
