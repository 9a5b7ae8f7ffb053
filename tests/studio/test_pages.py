"""Studio pages through FastAPI's test client (no browser): a trait-conditioned champion gets trait pickers,
asked-for traits reach the generator, and a bad request is a page with one line, never a 500."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from cleaning.importer import import_directory
from cleaning.prepare import PrepareConfig, prepare
from marketplace import pixelcollection as pc
from pipeline.catalog import Catalog
from pipeline.champion import record_decision
from pipeline.workspace import Workspace
from training.train import train

from ..training.conftest import tiny_config


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from studio.app import create_app

    root = tmp_path_factory.mktemp("studio-pages")
    ws, src = Workspace(root / "home"), root / "png"
    src.mkdir()
    for i in range(60):
        (src / f"{i:04d}.png").write_bytes(pc.render_png(i))
    import_directory(ws, "punks", src)
    with Catalog(ws.collection("punks").catalog) as cat:
        cat.update_many([(it.id, {"traits": json.dumps([list(p) for p in pc.punks_style_traits(int(Path(it.file_path).stem))])})
                         for it in cat.items()])
    prepare(ws, "punks", PrepareConfig(size_px=32, workers=1))
    train(ws, "punks", tiny_config(run="c", steps=2, checkpoint_every=2, sample_every=0, condition="traits",
                                   condition_min_count=2))
    record_decision(ws, "punks", {"run": "c", "step": 2, "decision": "promoted", "reason": "test"},
                    new_current={"run": "c", "step": 2})
    return TestClient(create_app(ws))


def test_a_conditioned_champion_gets_trait_pickers_and_draws_what_is_asked(client) -> None:
    page = client.get("/c/punks/generator?seed=4&t.type=Dark&t.accessory=Earring")
    assert page.status_code == 200
    assert 'name="t.type"' in page.text and 'name="t.accessory"' in page.text and 'type="checkbox"' in page.text
    assert "accessory=Earring,type=Dark" in page.text  # the pickers' choice, asked of the generator
    assert 'value="Dark" selected' in page.text and 'value="Earring" checked' in page.text  # and kept
    plain = client.get("/c/punks/samples.png?seed=4&n=4")
    asked = client.get("/c/punks/samples.png?seed=4&n=4&traits=type%3DDark%2Caccessory%3DEarring")
    assert plain.status_code == asked.status_code == 200 and plain.content != asked.content
    assert Image.open(io.BytesIO(asked.content)).size[0] > 32


@pytest.mark.parametrize("url, says", [
    ("/c/punks/samples.png?traits=hat%3DCap", "unknown trait type 'hat'"),
    ("/c/punks/generator?seed=-3", "the seed must be between"),
    ("/c/punks/samples.png?seed=abc", "the seed must be a whole number"),
    ("/c/nobody", "no collection 'nobody'"),
])
def test_bad_requests_are_pages_with_one_line(client, url, says) -> None:
    from html import unescape

    r = client.get(url)
    assert r.status_code in (400, 404) and says in unescape(r.text) and "Traceback" not in r.text


def test_a_post_from_another_site_is_refused(client) -> None:
    r = client.post("/c/punks/export", data={"n": "2"}, headers={"origin": "http://evil.example"})
    assert r.status_code == 403


def test_charts_draw_single_points_and_leave_out_what_is_not_a_number() -> None:
    from studio.charts import line_chart

    one = line_chart("KID", [("KID", [(750, 0.38)])])
    assert one.count("<circle") == 1 and "0.38 at 750" in one
    mixed = line_chart("loss", [("G", [(1, 1.0), (2, float("nan")), (3, 2.0)]), ("D", [])])
    assert mixed.count("<circle") == 2 and "nan" not in mixed
    assert "no points yet" in line_chart("empty", [("G", [])])
