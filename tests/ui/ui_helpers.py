"""Running the UI in a thread and driving it with headless chromium (Debian's package)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

CHROMIUM = os.environ.get("DENTALAI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def browser_skip_reason() -> str | None:
    """Why a browser test cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright (python package of the `ui` extra) is not installed"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"{CHROMIUM} is absent (apt-get install chromium)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_ui(cfg: Any, backend: Any = None) -> Iterator[str]:
    """The UI app served by uvicorn in a thread; yields its base URL."""
    import uvicorn

    from ui.app import make_app

    server = uvicorn.Server(
        uvicorn.Config(make_app(cfg, backend), host="127.0.0.1", port=cfg.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{cfg.port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        raise RuntimeError("UI did not start within 30 s")
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def synthetic_radiograph(path: Path, width: int = 640, height: int = 800) -> Path:
    """A gray gradient with a bright skull-like ellipse: an image the test owns."""
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = (40 + 60 * xx / width).astype(np.float64)
    inside = ((xx - width * 0.45) / (width * 0.35)) ** 2 + ((yy - height * 0.4) / (height * 0.3)) ** 2 < 1
    pixels[inside] += 100
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path)
    return path


def drive(url: str, image: Path, task_type: str, screenshot: Path, timeout_s: float = 60) -> dict[str, Any]:
    """Upload, choose the task type, press Analyze, wait for a final status; returns what is shown."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(url + "/", wait_until="networkidle")
            page.locator("#upload input[type=file]").set_input_files(str(image))
            # The upload must finish before anything else: the function gets no file otherwise, and
            # the page re-renders while it runs, which can swallow a click on the task type (seen
            # once in CI: "Clicking the checkbox did not change its state").
            page.locator(f'#upload a[download="{image.name}"]').wait_for(timeout=15_000)
            page.locator("#task-type").get_by_label(task_type, exact=True).check()
            page.locator("#submit").click()
            status = page.locator("#status")
            page.wait_for_function(
                "() => /SUCCEEDED|FAILED|CANCELLED|Error/.test(document.querySelector('#status').innerText)",
                timeout=timeout_s * 1000,
            )
            page.wait_for_timeout(500)  # let the last update render before the screenshot
            page.screenshot(path=str(screenshot), full_page=True)
            return {
                "status": status.inner_text(),
                "overlay_visible": page.locator("#overlay img").count() > 0
                and page.locator("#overlay img").first.is_visible(),
                "measurements": page.locator("#measurements").inner_text(),
                "classes": page.locator("#classes").inner_text(),
                "raw": page.locator("#raw-json").inner_text(),
                "downloads": page.locator("#downloads a[download]").count(),
            }
        finally:
            browser.close()
