"""nftgan studio in a real Chromium (Playwright), against a workspace made by the demo pipeline (`nftgan demo`,
shrunk): every page loads without console errors or failed requests, the grids decode, a new seed draws a
new picture, an export started from the form downloads as a zip, escapes are refused, and a non-loopback
host without a token does not start. With NFTGAN_STUDIO_SCREENSHOTS=DIR the pages' screenshots go to DIR
(docs/studio/ holds the README's)."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.workspace import Workspace

VENV_BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, ws: Workspace, token: str | None = None) -> None:
        import uvicorn

        from studio.app import create_app

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(ws, token=token), host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "Served":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the studio did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory) -> Path:
    """A workspace as `make demo` leaves it (few items, seconds of training, the tiny extractor). The README's
    screenshots are taken on a full `make demo` workspace instead: NFTGAN_STUDIO_DEMO_HOME names it."""
    given = os.environ.get("NFTGAN_STUDIO_DEMO_HOME")
    if given:
        return Path(given)
    root = tmp_path_factory.mktemp("studio")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(root / "prefect")
    home = root / "home"
    # the drawn avatars train unconditioned: an export of seconds of conditioned training would fail the trait check
    done = subprocess.run([str(VENV_BIN / "nftgan"), "--home", str(home), "demo", "--items", "32", "--minutes", "0.1",
                           "--eval-samples", "16", "--extractor", "tiny", "--art", "drawn"],
                          env=env, capture_output=True, text=True, timeout=600)
    # a failure shows where the items went (the scrape's coverage, the downloads, the cache) before the tail
    said = done.stdout + done.stderr
    stages = [line for line in said.splitlines()
              if any(w in line for w in ("scrape done", "partial", "download", "images of", "WARNING", "reject"))]
    assert done.returncode == 0, "\n".join(stages[-40:]) + "\n...\n" + said[-3000:]
    assert "nftgan studio" in done.stdout, done.stdout[-2000:]  # the demo says how to open the studio
    return home


@pytest.fixture(scope="module")
def served(demo_home) -> Iterator[Served]:
    with Served(Workspace(demo_home)) as s:
        yield s


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    from scraper.source_browser import find_chromium

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=find_chromium(), headless=True)
        yield b
        b.close()


class Watched:
    """A page whose console errors, page errors, failed requests and HTTP errors are collected."""

    def __init__(self, browser, **context) -> None:
        self.context = browser.new_context(viewport={"width": 1200, "height": 900}, **context)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"))

    def open(self, url: str) -> None:
        self.page.goto(url, wait_until="networkidle", timeout=120_000)

    def images_decoded(self) -> list[str]:
        """The page's images that did not decode (none, when all did)."""
        return self.page.evaluate(
            "() => Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")

    def close(self) -> None:
        self.context.close()


def _shot(page, name: str, *, full_page: bool = False) -> None:
    """A screenshot for the README (with NFTGAN_STUDIO_SCREENSHOTS), saved as a 256-colour PNG."""
    folder = os.environ.get("NFTGAN_STUDIO_SCREENSHOTS")
    if folder:
        from PIL import Image

        Path(folder).mkdir(parents=True, exist_ok=True)
        shot = Image.open(io.BytesIO(page.screenshot(full_page=full_page))).convert("RGB")
        shot.quantize(256).save(Path(folder) / f"{name}.png", optimize=True)


def test_every_page_loads_without_errors_and_its_images_decode(served, browser) -> None:
    w = Watched(browser)
    try:
        pages = {"collections": "/", "data": "/c/demo", "generator": "/c/demo/generator?seed=3",
                 "history": "/c/demo/history", "export": "/c/demo/export"}
        for name, path in pages.items():
            w.open(served.url + path)
            assert w.images_decoded() == [], name
            _shot(w.page, name, full_page=name == "history")
        # what each page is for, as a user sees it
        w.open(served.url + "/")
        assert "cataloged" in w.page.inner_text(".card") and "champion" in w.page.inner_text(".card")
        w.open(served.url + "/c/demo")
        assert w.page.locator(".thumbs img").count() >= 10
        assert "Traits and their rarity" in w.page.content()
        first = w.page.locator("select[name=trait] option").nth(1)
        w.page.select_option("select[name=trait]", first.get_attribute("value"))
        w.page.click("form.bar button[type=submit]")
        w.page.wait_for_load_state("networkidle")
        assert "with " in w.page.inner_text("main") and w.images_decoded() == []
        w.open(served.url + "/c/demo/history")
        assert w.page.locator("ol.timeline li").count() >= 1 and w.page.locator("svg.chart").count() >= 1
        assert w.page.locator("ol.timeline img").count() >= 1  # the decision's grids
        assert w.problems == [], w.problems
    finally:
        w.close()


def test_a_new_seed_draws_a_new_picture(served, browser) -> None:
    w = Watched(browser)
    try:
        w.open(served.url + "/c/demo/generator?seed=1")

        def picture() -> bytes:
            src = w.page.get_attribute("#samples", "src")
            return w.page.request.get(served.url + src).body()

        one = picture()
        assert picture() == one  # the same seed, the same picture
        w.page.fill("input[name=seed]", "2")
        w.page.click("button:has-text('draw')")
        w.page.wait_for_load_state("networkidle")
        assert "seed=2" in w.page.get_attribute("#samples", "src")
        assert picture() != one and w.images_decoded() == []
        w.page.click("button:has-text('shuffle')")
        w.page.wait_for_load_state("networkidle")
        assert "seed=2&" not in w.page.get_attribute("#samples", "src") and w.images_decoded() == []
        assert w.problems == [], w.problems
    finally:
        w.close()


def test_an_export_from_the_form_completes_and_downloads_a_zip(served, browser, demo_home) -> None:
    w = Watched(browser, accept_downloads=True)
    try:
        w.open(served.url + "/c/demo/export")
        w.page.fill("input[name=n]", "5")
        w.page.fill("input[name=seed]", "7")
        w.page.click("#export")
        w.page.wait_for_selector("#job-download:not([hidden])", timeout=120_000)
        assert w.page.get_attribute("#job-progress", "value") == "1"
        _shot(w.page, "export-done")
        with w.page.expect_download() as info:
            w.page.click("#job-download")
        data = Path(info.value.path()).read_bytes()
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        images = [n for n in names if n.startswith("images/") and n.endswith(".png")]
        metadata = [n for n in names if n.startswith("metadata/") and n.endswith(".json")]
        assert len(images) == 5 and len(metadata) == 5, names
        token = json.loads(zipfile.ZipFile(io.BytesIO(data)).read(metadata[0]))
        assert token["image"].startswith("images/") and token["attributes"]
        # Chromium reports the navigation a download replaces as aborted: that is the download, not a failure
        assert [p for p in w.problems if not p.endswith("/download.zip net::ERR_ABORTED")] == [], w.problems
    finally:
        w.close()


def test_paths_that_leave_the_workspace_are_refused(served, browser, demo_home, tmp_path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("not yours")
    (demo_home / "escape.txt").symlink_to(outside)
    (demo_home / "escape-dir").symlink_to(tmp_path, target_is_directory=True)
    (demo_home / "inside.txt").write_text("yours")
    (demo_home / "inside-link.txt").symlink_to(demo_home / "inside.txt")
    w = Watched(browser)
    try:
        get = w.page.request.get
        assert get(served.url + "/files/inside.txt").text() == "yours"
        assert get(served.url + "/files/inside-link.txt").text() == "yours"  # a link that stays inside is fine
        for path in ("/files/escape.txt", "/files/escape-dir/secret.txt", "/files/%2e%2e/%2e%2e/etc/passwd",
                     "/files/..%2f..%2fetc%2fpasswd", "/files/runs/%2e%2e/%2e%2e/%2e%2e/etc/hostname",
                     "/c/%2e%2e/data", "/c/demo/cache/32/99999.png"):
            r = get(served.url + path)
            assert r.status == 404 and "not yours" not in r.text(), (path, r.status)
    finally:
        w.close()


def test_a_token_guards_every_request_and_a_public_host_needs_one(demo_home, browser) -> None:
    token = "t0ken-for-the-studio-test"
    with Served(Workspace(demo_home), token=token) as s:
        w = Watched(browser)
        try:
            assert w.page.request.get(s.url + "/").status == 401
            assert w.page.request.get(s.url + "/static/studio.css").status == 401
            w.open(s.url + f"/?token={token}")  # sets the cookie: the page's own requests carry it
            assert "demo" in w.page.inner_text("main") and w.images_decoded() == []
            assert w.page.request.get(s.url + "/c/demo").status == 200
        finally:
            w.close()
    done = subprocess.run([str(VENV_BIN / "nftgan"), "--home", str(demo_home), "studio", "--host", "0.0.0.0",
                           "--port", str(_free_port())], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "needs" not in done.stdout
    assert done.stderr.strip().count("\n") == 0 and "--token" in done.stderr and "Traceback" not in done.stderr
    with socket.socket() as taken:  # a port in use: one line too
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = subprocess.run([str(VENV_BIN / "nftgan"), "--home", str(demo_home), "studio", "--port",
                               str(taken.getsockname()[1])], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "cannot listen on 127.0.0.1" in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr


def test_an_empty_workspace_and_a_collection_without_runs_say_what_to_run(tmp_path, browser) -> None:
    from cleaning.importer import import_directory
    from marketplace import democollection

    ws = Workspace(tmp_path / "home")
    with Served(ws) as s:
        w = Watched(browser)
        try:
            w.open(s.url + "/")
            assert "nftgan demo" in w.page.inner_text("main")
            _shot(w.page, "empty-workspace")
            src = tmp_path / "png"
            src.mkdir()
            for i in range(6):
                (src / f"{i}.png").write_bytes(democollection.render_png(i, size_px=64))
            import_directory(ws, "fresh", src)
            for path in ("/", "/c/fresh", "/c/fresh/generator", "/c/fresh/history", "/c/fresh/export"):
                w.open(s.url + path)
                assert "nftgan" in w.page.inner_text("main"), path  # a hint of what to run, not a 500
            w.open(s.url + "/c/fresh/generator")
            assert "no champion yet" in w.page.inner_text("main")
            w.open(s.url + "/c/fresh")
            assert "nftgan prepare fresh" in w.page.inner_text("main")
            assert w.problems == [], w.problems
        finally:
            w.close()
