#!/usr/bin/env python
"""Screenshots of the Space's Detect and Label tabs on a real night recording, for docs/using-the-space.md.

    python scripts/docs_screenshots.py --out docs/img            # detect.png and label.png

The recording is the QUT Ecoacoustics midnight recording in ../shared/data (two minutes of a real South-East
Queensland night, no owl in it) with synthetic Powerful Owl calls mixed in at a band SNR of ``--snr`` dB (the
shared recordings hold no real owl). The file keeps the recorder's time in its name, so the Space shows
wall-clock times. The Space runs in this process with the bundled starter model and a throw-away data folder;
Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
NIGHT = ("QutEcoacoustics__bioacoustic-workbench/media/original/1b/"
         "1bd0d668-1471-4396-adc3-09ccd8fe949a_20121106_000000.flac")
CHROMIUM = Path("/usr/bin/chromium")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="folder for detect.png and label.png")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the shared recordings")
    p.add_argument("--calls-at", type=float, nargs="*", default=[38.0, 83.0],
                   help="where synthetic owl calls start, in s (none: the recording as it is)")
    p.add_argument("--snr", type=float, default=10.0, help="band SNR of the mixed-in calls in dB (default 10)")
    p.add_argument("--seed", type=int, default=11)
    return p.parse_args(argv)


def make_recording(data: Path, folder: Path, calls_at: list[float], snr_db: float, seed: int) -> Path:
    """The real night with synthetic calls mixed in, written as FLAC under its recorder's time stamp."""
    from owlfinder import audio
    from owlfinder.synth import calls

    info = audio.probe(data / NIGHT)
    sr = info.sample_rate
    y = audio.load(data / NIGHT, sr)
    rng = np.random.default_rng(seed)
    for start in calls_at:
        params = calls.sample_owl_params(rng, sex="male")
        y = calls.mix_at_snr(y, calls.render_owl_call(params, sr), sr, snr_db, start)
    out = folder / "QUT-SEQ-night_20121106_000000.flac"
    sf.write(out, y, sr)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.data / NIGHT).exists():
        print(f"error: {args.data / NIGHT}: not found (the shared recordings)", file=sys.stderr)
        return 2
    if not CHROMIUM.exists():
        print(f"error: {CHROMIUM}: Debian's chromium is not installed", file=sys.stderr)
        return 2
    from playwright.sync_api import expect, sync_playwright

    from owlfinder.ui.app import build_app, launch_kwargs, open_label_queue
    from owlfinder.ui.config import AppConfig

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="owl-shots-") as tmp:
        tmp = Path(tmp)
        rec = make_recording(args.data, tmp, args.calls_at, args.snr, args.seed)
        port = _free_port()
        cfg = AppConfig.from_env({"OWL_DATA_DIR": str(tmp / "data"), "OWL_TMP_DIR": str(tmp / "scratch"),
                                  "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
                                  "OWL_N_UNCERTAIN": "4"})
        demo = build_app(cfg, open_label_queue(cfg))
        demo.launch(**launch_kwargs(cfg), prevent_thread_lock=True, quiet=True)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                            args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
                page = browser.new_page(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)
                page.set_default_timeout(180_000)
                expect.set_options(timeout=180_000)
                page.goto(f"http://127.0.0.1:{port}/", wait_until="load")
                page.locator("#owl-upload input[type=file]").set_input_files(str(rec))
                expect(page.locator("#owl-upload a[href*='/gradio_api/file=']")).to_have_count(1)
                page.locator("#owl-run").click()
                expect(page.locator("#owl-dl-json")).to_be_enabled()
                page.locator("[data-testid=cell-0-1]").first.click()
                page.wait_for_function("(document.querySelector('#owl-spectrogram img') || {}).complete && "
                                       "document.querySelector('#owl-spectrogram img').naturalWidth > 0")
                expect(page.locator("#owl-player a[data-testid=download-link]")).to_have_count(1)
                page.wait_for_function("(document.querySelector('#owl-player #duration') || {}).textContent "
                                       "> '0:00'")
                page.screenshot(path=str(args.out / "detect.png"), full_page=True)

                page.get_by_role("tab", name="Label").click()
                page.locator("#owl-labeller input, #owl-labeller textarea").first.fill("docs")
                page.keyboard.press("Enter")
                expect(page.locator("#owl-label-info")).to_contain_text("in file")
                page.wait_for_function("(document.querySelector('#owl-label-spec img') || {}).complete && "
                                       "document.querySelector('#owl-label-spec img').naturalWidth > 0")
                page.screenshot(path=str(args.out / "label.png"), full_page=True)
                browser.close()
        finally:
            demo.close()
    print(f"wrote {args.out / 'detect.png'} and {args.out / 'label.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
