"""``contrafuse serve``: a local web app and JSON/HTTP API (FastAPI, served by uvicorn).

* ``GET /`` — the page (``index.html``): upload a pair or pick an example, choose methods and
  metrics, see the sources and each result side by side with a slider comparison and a zoom,
  the metrics under each result, and a download link.
* ``POST /api/fuse`` — multipart ``ir``, ``vis``, ``method`` (optional ``resize``,
  ``inference``, ``register`` = ``affine`` or ``homography``, ``recolour``) -> the fused PNG.
* ``POST /api/evaluate`` — multipart ``ir``, ``vis`` and ``fused`` (or ``method`` to fuse first, with
  ``/api/fuse``'s options), optional ``metrics`` (comma separated) and ``convention`` -> JSON metrics.
* ``GET /api/methods``, ``GET /api/examples``, ``GET /api/examples/{name}/{kind}``.

Bad uploads (and images too small for a metric) are a 4xx with ``{"error": "..."}``; anything
else that goes wrong is a 500 with the same JSON shape, never a plain-text page. Uploads are
limited in bytes (``CONTRAFUSE_WEB_MAX_UPLOAD``, default 25 MB) and pixels
(``CONTRAFUSE_MAX_PIXELS``); fusion runs in worker threads, at most ``CONTRAFUSE_WEB_WORKERS``
(default 1) at once, so memory stays bounded and the page stays responsive while a long fusion
runs. These settings, the address and the port are checked before the server says it serves.
The interactive API docs (``/api/docs``, Swagger UI) are served from the package
``fastapi-offline``, so they work without the internet.
"""

from __future__ import annotations

import errno
import io
import socket
import sys
import threading
from pathlib import Path

import numpy as np
from fastapi import Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline
from PIL import Image
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..api import fuse_images, match_sizes
from ..errors import ContrafuseError, positive_setting
from ..io import read_image, to_uint
from ..methods import DEFAULT_METHOD, METHODS, MethodCache

PAGE = Path(__file__).with_name("index.html")
DEFAULT_MAX_UPLOAD = 25_000_000
EXAMPLE_DATASETS = ("TNO_CoCoNet", "RoadScene", "Harvard_MRI_PET_CDDFuse", "Lytro")


def _max_upload() -> int:
    return positive_setting("CONTRAFUSE_WEB_MAX_UPLOAD", DEFAULT_MAX_UPLOAD, "whole number of bytes", int)


def _workers() -> int:
    return positive_setting("CONTRAFUSE_WEB_WORKERS", 1, "whole number of fusions at once", int)


#: The size hint of a size mismatch, in the API's words (the command line's says --resize).
RESIZE_HINT = "send resize=ir or resize=vis (on the page: 'If sizes differ, resample') to resample one"


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


async def _read_upload(upload: UploadFile | None, field: str) -> np.ndarray:
    """An uploaded image as [0, 1] float32, read from its bytes as a file of that content is
    (:func:`contrafuse.io.read_image`), or a :class:`BadRequest` naming the field and file."""
    if upload is None or not upload.filename:
        raise BadRequest(f"{field}: no file uploaded")
    limit = _max_upload()
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise BadRequest(f"{field} ({upload.filename}): file is over the {limit // 1_000_000} MB upload limit", 413)
    try:
        return read_image(data, label=f"{field} ({upload.filename})")
    except ContrafuseError as exc:
        raise BadRequest(str(exc), 413 if "pixel limit" in exc.problem else 400) from None


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(to_uint(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def create_app():
    """The FastAPI app; a bad ``CONTRAFUSE_WEB_*`` setting is a :class:`ContrafuseError` here."""
    _max_upload()
    app = FastAPIOffline(title="contrafuse", docs_url="/api/docs", redoc_url=None, static_url="/api/docs-static")
    methods = MethodCache(size=8)  # learned models are loaded once and kept
    workers = threading.BoundedSemaphore(_workers())

    def method_for(name: str, inference: str | None, recolour: str | None = None):
        if name not in METHODS:
            raise BadRequest(f"method: unknown method {name!r} (see GET /api/methods)")
        options = {key: value for key, value in (("inference", inference), ("recolour", recolour)) if value}
        try:
            return methods.get(name, **options)
        except ContrafuseError as exc:
            raise BadRequest(f"method {name}: {exc}") from None

    def fuse_arrays(first, second, name, resize, inference, labels, register=None, recolour=None):
        """The sources brought to one size (or registered), and their fusion."""
        if resize not in (None, "", "ir", "vis"):
            raise BadRequest(f"resize: must be 'ir' or 'vis', not {resize!r}")
        method = method_for(name, inference or None, recolour or None)
        try:
            first, second = match_sizes(first, second, resize=resize or None, labels=labels, hint=RESIZE_HINT,
                                        register=register or None)
            with workers:
                return first, second, fuse_images(first, second, method, labels)
        except ContrafuseError as exc:
            raise BadRequest(str(exc)) from None

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(ContrafuseError)
    async def bad_input(request: Request, exc: ContrafuseError):
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def bad_form(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e.get('loc', ())[1:])) or 'request'}: {e.get('msg', '')}"
                             for e in exc.errors())
        return JSONResponse({"error": problems or "malformed request"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception):  # a bug: still JSON, and logged
        import traceback
        traceback.print_exception(exc, file=sys.stderr)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}: {exc}); see the server's log"},
                            status_code=500)

    @app.get("/", response_class=HTMLResponse)
    def page():
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    @app.get("/api/methods")
    def list_methods():
        return [{"name": n, "description": METHODS.get(n).description, "default": n == DEFAULT_METHOD,
                 "learned": METHODS.get(n).uses_torch} for n in METHODS.names()]

    @app.get("/api/metrics")
    def list_metrics():
        from ..metrics import DEFAULT_METRICS, METRICS
        return [{"name": m.name, "higher_is_better": m.higher_is_better, "range": m.value_range,
                 "default": m.name in DEFAULT_METRICS} for m in METRICS.values()]

    def examples() -> dict[str, tuple[Path, Path]]:
        from ..data.datasets import dataset_pairs
        found = {}
        for dataset in EXAMPLE_DATASETS:
            try:
                pair = dataset_pairs(dataset)[0]
            except ContrafuseError:
                continue
            found[f"{dataset}/{pair.name}"] = (pair.first, pair.second)
        return found

    @app.get("/api/examples")
    def list_examples():
        return [{"name": name, "ir": f"/api/examples/{name}/ir", "vis": f"/api/examples/{name}/vis"}
                for name in examples()]

    @app.get("/api/examples/{dataset}/{name}/{kind}")
    def example_image(dataset: str, name: str, kind: str):
        pair = examples().get(f"{dataset}/{name}")
        if pair is None or kind not in ("ir", "vis"):
            raise BadRequest("no such example", 404)
        return FileResponse(pair[0] if kind == "ir" else pair[1])

    @app.post("/api/fuse")
    async def fuse(ir: UploadFile | None = None, vis: UploadFile | None = None, method: str = Form(DEFAULT_METHOD),
                   resize: str | None = Form(None), inference: str | None = Form(None),
                   registration: str | None = Form(None, alias="register"),  # 'register' would shadow pydantic's
                   recolour: str | None = Form(None)):
        first, second = await _read_upload(ir, "ir"), await _read_upload(vis, "vis")
        from starlette.concurrency import run_in_threadpool
        *_, fused = await run_in_threadpool(fuse_arrays, first, second, method, resize, inference,
                                            (f"ir ({ir.filename})", f"vis ({vis.filename})"), registration, recolour)
        return Response(_png(fused), media_type="image/png",
                         headers={"Content-Disposition": f'inline; filename="fused_{method}.png"'})

    @app.post("/api/evaluate")
    async def evaluate(ir: UploadFile | None = None, vis: UploadFile | None = None,
                       fused: UploadFile | None = None, method: str | None = Form(None),
                       metrics: str | None = Form(None), convention: str = Form("standard"),
                       resize: str | None = Form(None), registration: str | None = Form(None, alias="register"),
                       inference: str | None = Form(None), recolour: str | None = Form(None)):
        from starlette.concurrency import run_in_threadpool

        from ..metrics import DEFAULT_METRICS, METRICS, conventions_used
        from ..metrics import evaluate as compute

        names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else list(DEFAULT_METRICS)
        try:
            used = conventions_used(names, convention)
        except ContrafuseError as exc:
            raise BadRequest(f"metrics: {exc}") from None
        first, second = await _read_upload(ir, "ir"), await _read_upload(vis, "vis")
        labels = (f"ir ({ir.filename})", f"vis ({vis.filename})")
        if fused is not None and fused.filename:
            result = await _read_upload(fused, "fused")
            try:
                first, second = await run_in_threadpool(match_sizes, first, second, resize=resize or None,
                                                        labels=labels, hint=RESIZE_HINT, register=registration or None)
                if result.shape[:2] != first.shape[:2]:
                    raise BadRequest(f"fused ({fused.filename}): size {result.shape[1]}x{result.shape[0]} differs "
                                     f"from the sources' {first.shape[1]}x{first.shape[0]}")
            except ContrafuseError as exc:
                raise BadRequest(str(exc)) from None
        elif method:
            first, second, result = await run_in_threadpool(fuse_arrays, first, second, method, resize, inference,
                                                            labels, registration, recolour)
        else:
            raise BadRequest("give a fused image ('fused') or a method to fuse with ('method')")
        try:
            values = await run_in_threadpool(compute, first, second, result, names, convention)
        except ContrafuseError as exc:  # e.g. an image smaller than a metric's window
            raise BadRequest(f"metrics: {exc}") from None
        return {"metrics": values, "convention": convention, "definitions": used,
                "higher_is_better": {n: METRICS[n].higher_is_better for n in names}}

    return app


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (port 0: any free one), or a one-line error naming the option."""
    if not 0 <= port <= 65535:
        raise ContrafuseError("--port", f"must be a port number from 1 to 65535 (0: any free port), not {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ContrafuseError("--host", f"{host!r} is not an address of this machine "
                              f"({getattr(exc, 'strerror', None) or exc})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart is not refused for TIME_WAIT
        sock.bind(address)
    except OSError as exc:
        sock.close()
        where = "--port" if exc.errno in (errno.EADDRINUSE, errno.EACCES) else "--host"
        raise ContrafuseError(where, f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    return sock


def serve(host: str = "127.0.0.1", port: int = 7860) -> None:
    """Check the settings, take the port, then say so and serve until Ctrl-C."""
    import uvicorn

    app = create_app()
    sock = listening_socket(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"contrafuse: serving on http://{shown}:{bound}/ (Ctrl-C stops)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])
