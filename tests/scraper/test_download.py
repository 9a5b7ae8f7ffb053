"""The downloader against the fixture's faults: retried, or recorded with a reason; storage stays clean."""

from __future__ import annotations

import hashlib
import io
import time

import pytest
from PIL import Image

from pipeline.catalog import Catalog
from pipeline.errors import NftganError
from scraper import sinks, stage
from scraper.stage import download_items, scrape
from marketplace.fixture import Faults, serve_fixture

from .conftest import fast_config


def by_token(ws, slug: str = "demo") -> dict:
    with Catalog(ws.collection(slug).catalog) as cat:
        return {it.token_id: it for it in cat.items()}


def assert_storage_is_clean(ws, slug: str = "demo") -> set[str]:
    """Every stored file is complete (named by its own sha256), no temp file is left; returns the hashes."""
    col = ws.collection(slug)
    names = set()
    for path in col.images.rglob("*"):
        if path.is_file():
            assert not path.name.startswith("."), f"temp file left in storage: {path}"
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            assert path.stem == digest, f"stored file does not match its name: {path}"
            names.add(digest)
    return names


def test_faults_are_retried_or_recorded_with_reasons(ws) -> None:
    faults = Faults(
        image_errors_by_token={"4": 2, "6": -1}, truncated={"8"},
        html_as_png={"9"}, duplicate_of={"11": "10"}, ipfs={"12"}, video={"13"}, video_with_poster={"14"},
        slow_images={"15": 2.5}, svg={"16"},
    )
    with serve_fixture(n_items=20, faults=faults) as fx:
        summary = scrape(ws, "demo", fast_config(fx, source="api", timeout_s=1.0))
        requests = dict(fx.image_requests)
        gateway_requests = fx.counters["ipfs"]
    assert summary.listing.found == 20
    d = summary.download
    assert d.failed == {"http-500": 1, "truncated": 1, "not-an-image:html": 1, "timeout": 1}
    assert d.rejected == {"video-no-poster": 1}
    assert (d.downloaded, d.attempted, d.skipped) == (15, 20, 0)  # the SVG included

    items = by_token(ws)
    status = {t: (it.status, it.reason) for t, it in items.items()}
    assert status["4"] == ("downloaded", None) and requests["4"] == 3  # two 500s, then the image
    assert status["6"] == ("failed", "http-500") and requests["6"] == 3  # 1 try + max_retries
    assert status["8"] == ("failed", "truncated") and requests["8"] == 3
    assert status["9"] == ("failed", "not-an-image:html") and requests["9"] == 1  # final: not retried
    assert "image/png" in items["9"].detail
    assert status["13"] == ("rejected", "video-no-poster") and items["13"].stored_path is None
    assert status["14"] == ("downloaded", None) and items["14"].media_kind == "png"  # the poster, not the MP4
    assert status["12"] == ("downloaded", None) and gateway_requests == 1  # ipfs:// through the gateway
    assert items["11"].sha256 == items["10"].sha256 and items["11"].stored_path == items["10"].stored_path
    assert status["15"] == ("failed", "timeout")
    assert status["16"] == ("downloaded", None) and items["16"].media_kind == "svg"  # kept for the rasterizer
    assert items["16"].stored_path.endswith(".svg")

    stored = assert_storage_is_clean(ws)
    downloaded = [it for it in items.values() if it.status == "downloaded"]
    assert stored == {it.sha256 for it in downloaded}
    assert len(stored) == len(downloaded) - 1  # the duplicate image is stored once
    sample = ws.collection("demo").resolve(items["3"].stored_path)
    assert Image.open(io.BytesIO(sample.read_bytes())).size == (32, 32)  # the CDN was asked for --image-width


def test_a_second_run_downloads_nothing_new_and_retries_only_failures(ws) -> None:
    faults = Faults(image_errors_by_token={"2": -1})
    with serve_fixture(n_items=12, faults=faults) as fx:
        config = fast_config(fx, source="api", max_retries=0)
        first = scrape(ws, "demo", config)
        assert (first.download.downloaded, first.download.failed) == (11, {"http-500": 1})
        fx.reset_counters()
        faults.image_errors_by_token.clear()
        second = scrape(ws, "demo", config)
        assert second.listing.new == 0
        assert (second.download.attempted, second.download.downloaded, second.download.skipped) == (1, 1, 11)
        assert dict(fx.image_requests) == {"2": 1}
        fx.reset_counters()
        third = scrape(ws, "demo", config)
        assert (third.download.attempted, third.download.downloaded) == (0, 0)
        assert fx.counters["image"] == 0
    assert by_token(ws)["2"].attempts == 2
    assert len(assert_storage_is_clean(ws)) == 12


def test_a_rate_limit_pauses_the_whole_host_for_retry_after(ws) -> None:
    faults = Faults(image_errors=[429], retry_after="1")
    with serve_fixture(n_items=12, faults=faults) as fx:
        config = fast_config(fx, source="api", concurrency=4, per_host_limit=4)
        stage.list_items(ws, "demo", config)
        summary = download_items(ws, "demo", config)
        log = sorted(fx.image_log)
    assert summary.downloaded == 12 and len(log) == 12 + 1
    rate_limited_at = next(t for t, _, status in log if status == 429)
    during_pause = [t - rate_limited_at for t, _, _ in log if rate_limited_at + 0.1 < t < rate_limited_at + 0.9]
    assert during_pause == [], "requests went on while the host had asked to wait (Retry-After: 1)"
    assert max(t for t, _, _ in log) - rate_limited_at >= 0.95


def test_5xx_bursts_are_retried(ws) -> None:
    faults = Faults(image_errors=[500, 503, 500], retry_after="0")
    with serve_fixture(n_items=6, faults=faults) as fx:
        summary = scrape(ws, "demo", fast_config(fx, source="api", concurrency=2, per_host_limit=2))
        assert (summary.download.downloaded, fx.counters["image"]) == (6, 6 + 3)


def test_http_date_retry_after_is_honoured(ws) -> None:
    faults = Faults(image_errors=[429], retry_after="date:2")
    with serve_fixture(n_items=1, faults=faults) as fx:
        config = fast_config(fx, source="api")
        stage.list_items(ws, "demo", config)
        started = time.monotonic()
        assert download_items(ws, "demo", config).downloaded == 1
    assert time.monotonic() - started >= 0.9  # an HTTP date 2 s ahead (1 s resolution)


def test_files_over_max_bytes_are_refused_and_not_stored(ws) -> None:
    with serve_fixture(n_items=3) as fx:
        summary = scrape(ws, "demo", fast_config(fx, source="api", image_width=256, max_bytes=1024))
    assert summary.download.failed == {"file-too-large": 3}
    assert assert_storage_is_clean(ws) == set()


@pytest.mark.parametrize("spill_bytes", [0, 2**20])
def test_large_bodies_spill_to_a_temp_file_and_store_the_same_bytes(ws, monkeypatch, spill_bytes) -> None:
    """Past SPILL_BYTES a body streams into a temp file in storage; the stored files are the same either way,
    and a truncated body that had spilled leaves no temp file behind."""
    from scraper import download

    monkeypatch.setattr(download, "SPILL_BYTES", spill_bytes)
    with serve_fixture(n_items=6, faults=Faults(truncated={"5"})) as fx:
        summary = scrape(ws, "demo", fast_config(fx, source="api", image_width=128, max_retries=1))
        expected = {t: hashlib.sha256(fx.image_bytes(t, 128)).hexdigest() for t in "01234"}
    assert summary.download.downloaded == 5 and summary.download.failed == {"truncated": 1}
    assert {t: it.sha256 for t, it in by_token(ws).items() if it.status == "downloaded"} == expected
    assert assert_storage_is_clean(ws) == set(expected.values())


def test_stored_files_are_fsynced_before_their_rows_are_committed(ws, monkeypatch) -> None:
    """A row that says "downloaded" is committed only after its file was fsynced (durable through a power cut)."""
    synced: set[str] = set()
    unsynced_at_commit: list[str] = []
    real_sync, real_update = sinks.sync_files, Catalog.update_many

    def sync_files(paths):
        paths = list(paths)
        real_sync(paths)
        synced.update(str(p) for p in paths)

    def update_many(self, updates):
        updates = list(updates)
        for _id, fields in updates:
            if fields.get("stored_path") and str(ws.collection("demo").root / fields["stored_path"]) not in synced:
                unsynced_at_commit.append(fields["stored_path"])
        real_update(self, updates)

    monkeypatch.setattr(sinks, "sync_files", sync_files)
    monkeypatch.setattr(Catalog, "update_many", update_many)
    monkeypatch.setattr(sinks, "COMMIT_EVERY", 3)  # several batches
    with serve_fixture(n_items=10) as fx:
        summary = scrape(ws, "demo", fast_config(fx, source="api"))
    assert summary.download.downloaded == 10
    assert unsynced_at_commit == [] and len(synced) == 10


def test_items_sharing_an_image_url_are_fetched_once(ws) -> None:
    with serve_fixture(n_items=1) as fx:
        url = fx.image_url("0")
        with Catalog(ws.collection("demo").catalog) as cat:
            cat.add_items([{"item_key": f"ethereum/0xabc/{i}", "source": "api", "token_id": str(i), "image_url": url}
                           for i in range(3)])
        summary = download_items(ws, "demo", fast_config(fx))
        assert (summary.downloaded, summary.urls) == (3, 1)
        assert fx.counters["image"] == 1
    assert len({it.sha256 for it in by_token(ws).values()}) == 1


def test_urls_that_must_not_be_fetched_are_recorded_without_any_request(ws) -> None:
    import base64

    png = base64.b64encode(_tiny_png()).decode()
    urls = ["file:///etc/passwd", "ftp://example.org/a.png", f"data:image/png;base64,{png}",
            "javascript:alert(1)", None, "data:text/html,%3Chtml%3E%3Cbody%3Eno%3C/body%3E%3C/html%3E",
            "data:image/png;base64," + "A" * 80_000]
    with Catalog(ws.collection("demo").catalog) as cat:
        cat.add_items([{"item_key": f"ethereum/0xabc/{i}", "source": "api", "image_url": u} for i, u in enumerate(urls)])
    with serve_fixture(n_items=1) as fx:
        summary = download_items(ws, "demo", fast_config(fx, max_bytes=50_000))
        assert fx.counters["image"] == 0
    # data: URIs are decoded in place (size-capped, sniffed like any download); the rest is refused
    assert summary.failed == {"bad-scheme": 3, "no-image-url": 1, "not-an-image:html": 1, "file-too-large": 1}
    assert summary.downloaded == 1
    with Catalog(ws.collection("demo").catalog) as cat:
        by_url = {it.image_url: it for it in cat.items()}
    stored = by_url[urls[2]]
    assert stored.status == "downloaded" and stored.media_kind == "png"
    assert ws.collection("demo").resolve(stored.stored_path).read_bytes() == _tiny_png()


def _tiny_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (20, 20), (1, 2, 3)).save(buf, format="PNG")
    return buf.getvalue()


def test_a_deleted_original_is_downloaded_again(ws) -> None:
    with serve_fixture(n_items=4) as fx:
        config = fast_config(fx, source="api")
        scrape(ws, "demo", config)
        gone = by_token(ws)["1"]
        ws.collection("demo").resolve(gone.stored_path).unlink()
        fx.reset_counters()
        again = download_items(ws, "demo", config)
        assert (again.downloaded, dict(fx.image_requests)) == (1, {"1": 1})
    assert by_token(ws)["1"].sha256 == gone.sha256


def test_a_second_scrape_of_the_same_collection_is_refused_while_one_runs(ws) -> None:
    with serve_fixture(n_items=1) as fx, stage._scrape_lock(ws.collection("demo")):
        with pytest.raises(NftganError, match="another scrape"):
            scrape(ws, "demo", fast_config(fx, source="api"))


def test_the_config_is_saved_beside_the_catalog_without_the_api_key(ws) -> None:
    import json

    with serve_fixture(n_items=2, api_key="sekrit") as fx:
        scrape(ws, "demo", fast_config(fx, source="api", api_key="sekrit"))
    saved = ws.collection("demo").scrape_config.read_text()
    assert "sekrit" not in saved
    assert json.loads(saved)["api_key"] == "(set)" and json.loads(saved)["source"] == "api"


def test_progress_events_report_listing_and_downloading(ws) -> None:
    events: list = []
    with serve_fixture(n_items=7) as fx:
        scrape(ws, "demo", fast_config(fx, source="api", page_size=3), progress=events.append)
    listing = [e for e in events if e.stage == "list"]
    downloads = [e for e in events if e.stage == "download"]
    assert [e.done for e in listing] == [3, 6, 7] and listing[-1]["new"] == 7
    last = downloads[-1]
    assert downloads[0].done == 0 and (last.done, last.total, last["downloaded"], last["failed"]) == (7, 7, 7, 0)
    assert last.fraction == 1.0
    assert [e["done"] for e in downloads] == sorted(e["done"] for e in downloads)


def test_imported_files_are_left_to_the_importer(ws, tmp_path) -> None:
    from cleaning.importer import import_directory

    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "a.png").write_bytes(_png())
    import_directory(ws, "demo", folder)
    with Catalog(ws.collection("demo").catalog) as cat:
        imported = cat.items()[0]
        cat.update(imported.id, status="failed", reason="whatever")
    ws.collection("demo").resolve(imported.stored_path).unlink()
    with serve_fixture(n_items=2) as fx:
        summary = scrape(ws, "demo", fast_config(fx, source="api"))
    assert (summary.download.attempted, summary.download.downloaded, summary.download.failed) == (2, 2, {})
    with Catalog(ws.collection("demo").catalog) as cat:
        assert (cat.get(imported.id).status, cat.get(imported.id).reason) == ("failed", "whatever")


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


def test_ipfs_images_fall_back_to_the_next_gateway(ws) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # nothing listens there once the block ends
    with serve_fixture(n_items=6, faults=Faults(ipfs={"1", "4"})) as fx:
        gateways = f"http://127.0.0.1:{dead}/ipfs/,{fx.ipfs_gateway}"
        summary = scrape(ws, "demo", fast_config(fx, source="api", ipfs_gateway=gateways, max_retries=0))
        assert fx.counters["ipfs"] == 2  # each ipfs:// image fetched once, from the second gateway
    assert (summary.download.downloaded, summary.download.failed) == (6, {})
