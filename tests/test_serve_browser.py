"""The page of `googlenet serve` in a real browser: Playwright drives Debian's Chromium
(Playwright's own browser download needs the internet) against the real server."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from helpers.inference import picture, tiny_model
from helpers.serve import serve_process

import googlenet

pytest.importorskip("playwright", reason="needs playwright: pip install 'googlenet[dev]'")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing and we are root. Skips with the
    reason if it cannot be had, except on CI (CI set), where that is a failure."""
    path = shutil.which("chromium")
    if path is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            subprocess.run(cmd, env=env, capture_output=True, timeout=900)
        path = shutil.which("chromium")
    if path is None:
        reason = "no chromium: apt-get install -y chromium (needs root) to run the browser test"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.mark.slow
def test_the_page_shows_top_classes_and_the_cam_overlay(chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    weights = tmp_path / "fruit.safetensors"
    googlenet.save_weights(tiny_model("paper", seed=1), weights)
    image = tmp_path / "photo.png"
    picture(5, (160, 120)).resize((480, 360)).save(image)
    with serve_process(weights, "--backend", "eager") as (url, _):
        want = httpx.post(f"{url}/v1/predict", content=image.read_bytes()).json()["topk"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            page.goto(url)
            page.wait_for_selector("#model-info:has-text('fruit')")
            page.set_input_files("#file", str(image))
            page.wait_for_selector("#status:has-text('Top class')", timeout=30_000)
            page.wait_for_function(
                "() => { const o = document.getElementById('overlay');"
                " return o.src && o.complete && o.naturalWidth > 0 && !o.hidden; }",
                timeout=30_000,
            )
            status = page.text_content("#status")
            rows = page.locator("#topk li").all_text_contents()
            cam_class = page.get_attribute("#overlay", "data-class")
            page.select_option("#cam-class", "cherry")
            page.wait_for_function(
                "() => document.getElementById('overlay').dataset.class === 'cherry'"
            )
            shot = page.screenshot(path=str(tmp_path / "serve_page.png"), full_page=True)
            browser.close()
    print(f"screenshot: {tmp_path / 'serve_page.png'}")
    assert status == f"Top class: {want[0]['class']}"
    assert len(rows) == 5 and rows[0].startswith(want[0]["class"])
    assert cam_class == want[0]["class"]
    assert len(shot) > 10_000 and Path(tmp_path / "serve_page.png").is_file()


# Installed before the page's own script: every animation frame, the visible images that are
# broken (no source, or loaded with no pixels) are noted, so that a state shown for a moment only
# (between choosing an image and its map arriving) is seen as well as the one the test waits for.
WATCH_IMAGES = """
window.__broken = [];
const look = () => {
  for (const img of document.images) {
    const visible = img.checkVisibility();
    const noSource = !img.getAttribute("src");
    const empty = img.getAttribute("src") && img.complete && img.naturalWidth === 0;
    if (visible && (noSource || empty)) {
      window.__broken.push(`${img.id || img.alt}: ${noSource ? "no source" : "no pixels"}`);
    }
  }
  requestAnimationFrame(look);
};
requestAnimationFrame(look);
"""


@pytest.mark.slow
def test_the_page_shows_no_broken_image_before_or_after_an_upload(chromium, tmp_path):
    """The first screen (no image chosen yet) draws no empty <img>; choosing one shows the image
    and its map, never an image without a source on the way; nothing goes to the console."""
    from playwright.sync_api import sync_playwright

    weights = tmp_path / "fruit.safetensors"
    googlenet.save_weights(tiny_model("paper", seed=1), weights)
    image = tmp_path / "photo.png"
    picture(3, (160, 120)).resize((320, 240)).save(image)
    errors: list[str] = []
    with serve_process(weights, "--backend", "eager") as (url, _):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on(
                "response",
                lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None,
            )
            page.add_init_script(WATCH_IMAGES)
            page.goto(url)
            page.wait_for_selector("#model-info:has-text('fruit')")
            page.wait_for_timeout(200)  # a few frames of the first screen
            first = page.evaluate("window.__broken.splice(0)")
            visible_first = page.evaluate(
                "[...document.images].filter((i) => i.checkVisibility()).length"
            )
            page.screenshot(path=str(tmp_path / "empty_state.png"))
            page.set_input_files("#file", str(image))
            page.wait_for_function(
                "() => { const o = document.getElementById('overlay');"
                " return o.complete && o.naturalWidth > 0 && o.checkVisibility(); }",
                timeout=30_000,
            )
            page.wait_for_selector("#status:has-text('Top class')", timeout=30_000)
            after = page.evaluate("window.__broken.splice(0)")
            shown = page.evaluate(
                "[...document.images].filter((i) => i.checkVisibility()).map((i) => i.id)"
            )
            page.screenshot(path=str(tmp_path / "chosen.png"))
            browser.close()
    print(f"screenshots: {tmp_path / 'empty_state.png'}, {tmp_path / 'chosen.png'}")
    assert first == [] and visible_first == 0, first
    assert after == [], sorted(set(after))
    assert shown == ["photo", "overlay"]
    assert errors == []
