"""Workspace paths and the SQLite catalog."""

from __future__ import annotations

import pytest

from pipeline.catalog import Catalog, item_key_for_token
from pipeline.errors import NftganError
from pipeline.workspace import Workspace


@pytest.mark.parametrize("slug", ["", "A", "../x", "a/b", ".hidden", "-x", "a b", "x" * 101, "a\x00"])
def test_bad_slugs_are_refused(slug: str) -> None:
    with pytest.raises(NftganError):
        Workspace.from_home("/tmp/h").collection(slug)


def test_layout(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NFTGAN_HOME", str(tmp_path / "env-home"))
    assert Workspace.from_home(None).root == tmp_path / "env-home"
    ws = Workspace.from_home(tmp_path / "h")
    col = ws.collection("my-col_1")
    assert col.catalog == tmp_path / "h/collections/my-col_1/catalog.sqlite"
    assert col.cache_array(64) == tmp_path / "h/collections/my-col_1/cache/64/images.npy"
    assert ws.run("my-col_1", "r1").root == tmp_path / "h/runs/my-col_1/r1"
    sha = "ab" + "0" * 62
    assert col.image_relpath(sha, "PNG") == f"images/ab/{sha}.png"
    with pytest.raises(NftganError):
        col.resolve("../../etc/passwd")
    with pytest.raises(NftganError):
        ws.run("my-col_1", "../other")


def test_run_files_are_named_and_listed_by_the_workspace(tmp_path) -> None:
    ws = Workspace(str(tmp_path))  # a plain string root works too
    run = ws.run("c", "r")
    assert run.checkpoint(1000) == tmp_path / "runs/c/r/checkpoints/step_0001000.pt"
    assert run.eval.metrics == tmp_path / "runs/c/r/eval/metrics.json"
    assert ws.collection("c").scrape_config == tmp_path / "collections/c/scrape-config.json"
    assert run.checkpoint_files() == {} and run.sample_grids() == {}
    for step in (5, 12):
        for path in (run.checkpoint(step), run.sample_grid(step)):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
    (run.checkpoints / "step_12.pt").write_bytes(b"x")  # not a name we write: ignored
    (run.samples / "sample-step0000012-seed0-n4.png").write_bytes(b"x")
    assert run.checkpoint_files() == {5: run.checkpoint(5), 12: run.checkpoint(12)}
    assert sorted(run.sample_grids()) == [5, 12]


def test_catalog_add_is_idempotent_and_transactions_roll_back(tmp_path) -> None:
    with Catalog(tmp_path / "c.sqlite") as cat:
        rows = [{"item_key": item_key_for_token("ethereum", "0xABC", str(i)), "source": "api",
                 "image_url": f"https://x/{i}.png"} for i in range(3)]
        assert cat.add_items(rows) == 3
        assert cat.add_items(rows) == 0
        assert cat.counts()["pending"] == 3
        item = cat.get_by_key("ethereum/0xabc/1")
        assert item is not None and item.image_url == "https://x/1.png"
        with pytest.raises(RuntimeError):
            with cat.transaction():
                cat.update(item.id, status="downloaded")
                raise RuntimeError("crash mid-transaction")
        assert cat.get(item.id).status == "pending"
        cat.mark_failed(item.id, "http-404", "not found")
        assert cat.reasons("failed") == {"http-404": 1}
        cat.set_state("api.cursor", "abc")
        assert cat.get_state("api.cursor") == "abc"
        with pytest.raises(ValueError):
            cat.update(item.id, status="bogus")
    with Catalog(tmp_path / "c.sqlite") as again:  # state survives reopening
        assert len(again) == 3 and again.get_state("api.cursor") == "abc"
        assert again.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
