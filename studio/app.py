"""nftgan studio: a local web app over a workspace (FastAPI, server-rendered Jinja2 pages).

It reads through the stages' public faces (:mod:`studio.views`) and writes only two things: generated
samples (into a temporary folder it owns) and exports (``nftgan export``'s folder in the workspace).

Safety: every request carries the token when one is set (header, cookie or ``?token=``); a POST must come
from the studio's own pages (its Origin, when sent, names this host); files are served only from inside
the workspace, with every symlink resolved (an escape is a 404); checkpoints load through the CLI's
``weights_only`` loader.
"""

from __future__ import annotations

import hmac
import io
import random
import tempfile
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipeline.errors import NftganError
from pipeline.workspace import Workspace, validate_slug
from studio import views
from studio.jobs import Jobs

HERE = Path(__file__).resolve().parent
TOKEN_COOKIE = "nftgan_studio_token"
#: the most images a sample grid asks the server for
SAMPLES_MAX = 64
SEED_MAX = 2**31 - 1


class NotFound(Exception):
    pass


def _png(image_hwc: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image_hwc)).save(buf, format="PNG")
    return buf.getvalue()


def _seed(value: str | None, default: int = 0) -> int:
    try:
        seed = int(value) if value not in (None, "") else default
    except ValueError:
        raise NftganError(f"the seed must be a whole number, got {value!r}") from None
    if not 0 <= seed <= SEED_MAX:
        raise NftganError(f"the seed must be between 0 and {SEED_MAX}, got {seed}")
    return seed


def create_app(ws: Workspace, *, token: str | None = None) -> FastAPI:
    app = FastAPI(title="nftgan studio", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["pct"] = lambda v: "–" if v is None else f"{100 * float(v):.1f}%"
    templates.env.filters["num"] = lambda v: "–" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))
    templates.env.filters["q"] = lambda v: quote(str(v), safe="")
    jobs = Jobs()
    scratch = tempfile.TemporaryDirectory(prefix="nftgan-studio-")
    app.state.scratch = scratch  # removed with the app
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        if token is not None:
            given = (request.headers.get("authorization", "").removeprefix("Bearer ").strip()
                     or request.cookies.get(TOKEN_COOKIE) or request.query_params.get("token") or "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return Response("a token is required: open the URL nftgan studio printed\n", status_code=401,
                                media_type="text/plain")
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            if origin and urlsplit(origin).netloc != request.headers.get("host"):
                return Response("cross-site request refused\n", status_code=403, media_type="text/plain")
        response = await call_next(request)
        if token is not None and request.query_params.get("token"):
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'")
        return response

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"home": str(ws.root), **context}, status_code=status_code)

    @app.exception_handler(NftganError)
    async def user_error(request: Request, exc: NftganError) -> HTMLResponse:
        return page(request, "message.html", 400, title="Cannot do that", message=str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return page(request, "message.html", 404, title="Not found", message="no such page")
        return Response(str(exc.detail), status_code=exc.status_code, media_type="text/plain")

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> HTMLResponse:
        return page(request, "message.html", 404, title="Not found", message=str(exc) or "no such page")

    def collection(slug: str) -> str:
        try:
            validate_slug(slug)
        except NftganError:
            raise NotFound(f"no collection {slug!r}") from None
        if slug not in ws.collections():
            raise NotFound(f"no collection {slug!r} in {ws.root}")
        return slug

    # -- pages ----------------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        return page(request, "index.html", cards=views.collection_cards(ws))

    @app.get("/c/{slug}", response_class=HTMLResponse)
    def data(request: Request, slug: str, size: int | None = None, trait: str | None = None,
             page_no: int = 1) -> HTMLResponse:
        slug = collection(slug)
        info = views.collection_page(ws, slug)
        size = size if size in info["sizes"] else info["size"]
        view = views.data_view(ws, slug, size, trait, page_no) if size is not None else None
        return page(request, "data.html", tab="data", c=info, view=view)

    @app.get("/c/{slug}/generator", response_model=None)
    def generator(request: Request, slug: str, seed: str | None = None, traits: str | None = None,
                  shuffle: bool = False) -> HTMLResponse | RedirectResponse:
        slug = collection(slug)
        if shuffle:
            target = f"/c/{quote(slug)}/generator?seed={random.randrange(SEED_MAX)}"
            return RedirectResponse(target + (f"&traits={quote(traits)}" if traits else ""), status_code=303)
        view = views.generator_view(ws, slug)
        # the trait pickers' choices (t.<type>=<value>, several for a set type) as one --traits request
        picked = {t["name"]: [v for v in request.query_params.getlist(f"t.{t['name']}") if v]
                  for t in view.get("vocabulary") or []}
        chosen = ",".join(f"{name}={v}" for name, values in picked.items() for v in values) or (traits or "")
        return page(request, "generator.html", tab="generator", c=views.collection_page(ws, slug), view=view,
                    seed=_seed(seed), traits=chosen, picked=picked)

    @app.get("/c/{slug}/history", response_class=HTMLResponse)
    def history(request: Request, slug: str) -> HTMLResponse:
        slug = collection(slug)
        return page(request, "history.html", tab="history", c=views.collection_page(ws, slug),
                    view=views.history_view(ws, slug))

    @app.get("/c/{slug}/export", response_class=HTMLResponse)
    def export_form(request: Request, slug: str) -> HTMLResponse:
        slug = collection(slug)
        return page(request, "export.html", tab="export", c=views.collection_page(ws, slug),
                    view=views.generator_view(ws, slug))

    @app.post("/c/{slug}/export")
    async def export_start(request: Request, slug: str) -> RedirectResponse:
        slug = collection(slug)
        from export.config import ExportConfig
        from export.mint import export_collection

        form = await _form(request)
        try:
            n = int(form.get("n", "16"))
        except ValueError:
            raise NftganError(f"tokens must be a whole number, got {form.get('n')!r}") from None
        config = ExportConfig(n=n, seed=_seed(form.get("seed", "0")), rarity=form.get("rarity", "").strip() or None,
                              extractor=_champion_extractor(ws, slug))

        def work(progress: Any) -> tuple[dict[str, Any], Path]:
            summary = export_collection(ws, slug, None, config, progress=progress)
            return summary.to_dict(), Path(summary.out)

        job = jobs.start(f"export of {n} {slug} tokens", work)
        return RedirectResponse(f"/jobs/{job.id}", status_code=303)

    @app.get("/jobs/{job_id}", response_class=HTMLResponse)
    def job_page(request: Request, job_id: str) -> HTMLResponse:
        job = jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return page(request, "job.html", job=job)

    @app.get("/jobs/{job_id}/state")
    def job_state(job_id: str) -> JSONResponse:
        job = jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return JSONResponse(job.to_dict())

    @app.get("/jobs/{job_id}/download.zip")
    def job_zip(job_id: str) -> Response:
        job = jobs.get(job_id)
        if job is None or job.state != "done" or job.folder is None:
            raise NotFound(f"no finished job {job_id!r}")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(job.folder.rglob("*")):
                if path.is_file() and not path.is_symlink() and views.inside(ws, path):
                    zf.write(path, path.relative_to(job.folder).as_posix())
        name = f"{job.folder.name}.zip"
        return Response(buf.getvalue(), media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    # -- images -----------------------------------------------------------------------------------------
    @app.get("/c/{slug}/cache/{size}/{row}.png")
    def cache_image(slug: str, size: int, row: int) -> Response:
        from pipeline.cache import open_cache

        slug = collection(slug)
        if size not in views.sizes_of(ws, slug):
            raise NotFound(f"no {size}px cache")
        cache = open_cache(ws, slug, size)
        if not 0 <= row < len(cache):
            raise NotFound(f"no row {row}")
        return Response(_png(np.asarray(cache.images[row]).transpose(1, 2, 0)), media_type="image/png",
                        headers={"Cache-Control": "max-age=60"})

    @app.get("/c/{slug}/item/{item_id}.png")
    def item_image(slug: str, item_id: int, size: int = 64) -> Response:
        """An item's stored image decoded by the cleaning stage's safe decoder (limits, no scripts)."""
        from cleaning.decode import Decoded, DecodeOptions, decode_file
        from pipeline.catalog import Catalog

        slug = collection(slug)
        with Catalog(ws.collection(slug).catalog) as cat:
            item = cat.get(item_id)
        if item is None or not item.stored_path:
            raise NotFound(f"no stored image for item {item_id}")
        path = ws.collection(slug).resolve(item.stored_path)
        if not views.inside(ws, path):
            raise NotFound(f"no stored image for item {item_id}")
        decoded = decode_file(path, DecodeOptions(size_px=min(max(16, size), 256), fit="pad"))
        if not isinstance(decoded, Decoded):
            raise NotFound(f"item {item_id} does not decode: {decoded.reason}")
        return Response(_png(decoded.array.transpose(1, 2, 0)), media_type="image/png")

    @app.get("/c/{slug}/samples.png")
    def samples(slug: str, seed: str | None = None, n: int = 16, traits: str | None = None) -> Response:
        from training.sampling import sample
        from training.config import SampleConfig

        slug = collection(slug)
        n = min(max(1, n), SAMPLES_MAX)
        out = Path(scratch.name) / f"{slug}-{random.randrange(1 << 30)}.png"
        asked = tuple(t for t in (traits or "").split(";") if t.strip()) or None
        try:
            sample(ws, slug, None, SampleConfig(n=n, seed=_seed(seed), out=out, device="cpu", traits=asked))
            return Response(out.read_bytes(), media_type="image/png")
        finally:
            out.unlink(missing_ok=True)

    @app.get("/c/{slug}/interpolate.gif")
    def interpolation(slug: str, seed: str | None = None, traits: str | None = None) -> Response:
        from training.config import InterpolateConfig
        from training.sampling import interpolate

        slug = collection(slug)
        out = Path(scratch.name) / f"{slug}-{random.randrange(1 << 30)}.gif"
        try:
            path = interpolate(ws, slug, None, InterpolateConfig(out=out, seed=_seed(seed), keyframes=3,
                                                                  frames_between=8, n=4, device="cpu",
                                                                  traits=traits or None))
            return Response(Path(path).read_bytes(), media_type="image/gif")
        finally:
            out.unlink(missing_ok=True)

    @app.get("/files/{relpath:path}")
    def files(relpath: str) -> FileResponse:
        """A file of the workspace (grids, sheets, reports); a path that leaves it, by ``..`` or a symlink,
        is a 404."""
        path = ws.root / relpath
        if ".." in Path(relpath).parts or not views.inside(ws, path) or not path.is_file():
            raise NotFound(f"no file {relpath!r} in the workspace")
        return FileResponse(path.resolve())

    return app


async def _form(request: Request) -> dict[str, str]:
    """A form post (application/x-www-form-urlencoded, what the studio's forms send), first value per name."""
    from urllib.parse import parse_qs

    body = await request.body()
    if len(body) > 64 * 1024:
        raise NftganError("the form is too large")
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", errors="replace")).items()}


def _champion_extractor(ws: Workspace, slug: str) -> str:
    """The feature network the champion was judged with: the export's memorization check uses the same."""
    from evaluation.extractors import INCEPTION_ID
    from pipeline.champion import read_champion

    current = read_champion(ws, slug).current or {}
    return "inception" if current.get("extractor") == INCEPTION_ID else "tiny" if current.get("extractor") else \
        "inception"
