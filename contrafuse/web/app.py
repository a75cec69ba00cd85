"""``contrafuse serve``: a local web app and JSON/HTTP API (FastAPI, served by uvicorn).

* ``GET /`` — the page (``index.html``): upload a pair or pick an example, choose methods and
  metrics, see the sources and each result side by side with a slider comparison and a zoom,
  the metrics under each result, and a download link.
* ``POST /api/fuse`` — multipart ``ir``, ``vis``, ``method`` (optional ``resize``,
  ``inference``) -> the fused PNG.
* ``POST /api/evaluate`` — multipart ``ir``, ``vis`` and ``fused`` (or ``method`` to fuse first),
  optional ``metrics`` (comma separated) and ``convention`` -> JSON metrics.
* ``GET /api/methods``, ``GET /api/examples``, ``GET /api/examples/{name}/{kind}``.

Bad uploads are a 4xx with ``{"error": "..."}``. Uploads are limited in bytes
(``CONTRAFUSE_WEB_MAX_UPLOAD``, default 25 MB) and pixels (``CONTRAFUSE_MAX_PIXELS``); fusion runs
in worker threads, at most ``CONTRAFUSE_WEB_WORKERS`` (default 1) at once, so memory stays bounded
and the page stays responsive while a long fusion runs.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import threading
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from PIL import Image

from ..api import fuse_images, match_sizes
from ..errors import ContrafuseError, positive_setting
from ..io import read_image, to_uint
from ..methods import DEFAULT_METHOD, METHODS, MethodCache

PAGE = Path(__file__).with_name("index.html")
DEFAULT_MAX_UPLOAD = 25_000_000
EXAMPLE_DATASETS = ("TNO_CoCoNet", "RoadScene", "Harvard_MRI_PET_CDDFuse", "Lytro")


def _max_upload() -> int:
    return positive_setting("CONTRAFUSE_WEB_MAX_UPLOAD", DEFAULT_MAX_UPLOAD, "number of bytes", int)


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _safe_name(name: str | None, fallback: str) -> str:
    stem = re.sub(r"[^\w.\- ]", "_", Path(name or fallback).name)[:80].strip(". ")
    return stem or fallback


async def _read_upload(upload: UploadFile | None, field: str) -> np.ndarray:
    """An uploaded image as [0, 1] float32, or a :class:`BadRequest` naming the field and file."""
    if upload is None or not upload.filename:
        raise BadRequest(f"{field}: no file uploaded")
    limit = _max_upload()
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise BadRequest(f"{field} ({upload.filename}): file is over the {limit // 1_000_000} MB upload limit", 413)
    if not data:
        raise BadRequest(f"{field} ({upload.filename}): the file is empty")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / _safe_name(upload.filename, field + ".png")
        path.write_bytes(data)
        try:
            return read_image(path)
        except ContrafuseError as exc:
            raise BadRequest(f"{field} ({upload.filename}): {exc.problem}",
                             413 if "pixel limit" in exc.problem else 400) from None


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(to_uint(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def create_app() -> FastAPI:
    app = FastAPI(title="contrafuse", docs_url="/api/docs", redoc_url=None)
    methods = MethodCache(size=8)  # learned models are loaded once and kept
    workers = threading.BoundedSemaphore(int(os.environ.get("CONTRAFUSE_WEB_WORKERS", "1")))

    def method_for(name: str, inference: str | None):
        if name not in METHODS:
            raise BadRequest(f"method: unknown method {name!r} (see GET /api/methods)")
        try:
            return methods.get(name, **({"inference": inference} if inference else {}))
        except ContrafuseError as exc:
            raise BadRequest(f"method {name}: {exc}") from None

    def fuse_arrays(first, second, name, resize, inference, labels):
        """The sources brought to one size, and their fusion."""
        if resize not in (None, "", "ir", "vis"):
            raise BadRequest(f"resize: must be 'ir' or 'vis', not {resize!r}")
        method = method_for(name, inference or None)
        try:
            first, second = match_sizes(first, second, resize=resize or None, labels=labels)
            with workers:
                return first, second, fuse_images(first, second, method, labels)
        except ContrafuseError as exc:
            raise BadRequest(str(exc)) from None

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.get("/", response_class=HTMLResponse)
    def page():
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    @app.get("/api/methods")
    def list_methods():
        return [{"name": n, "description": METHODS.get(n).description, "default": n == DEFAULT_METHOD,
                 "learned": bool(getattr(METHODS.get(n), "uses_torch", False))} for n in METHODS.names()]

    @app.get("/api/metrics")
    def list_metrics():
        from ..metrics import METRICS
        return [{"name": m.name, "higher_is_better": m.higher_is_better, "range": m.value_range} for m in METRICS.values()]

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
                   resize: str | None = Form(None), inference: str | None = Form(None)):
        first, second = await _read_upload(ir, "ir"), await _read_upload(vis, "vis")
        from starlette.concurrency import run_in_threadpool
        *_, fused = await run_in_threadpool(fuse_arrays, first, second, method, resize, inference,
                                            (f"ir ({ir.filename})", f"vis ({vis.filename})"))
        return Response(_png(fused), media_type="image/png",
                         headers={"Content-Disposition": f'inline; filename="fused_{method}.png"'})

    @app.post("/api/evaluate")
    async def evaluate(ir: UploadFile | None = None, vis: UploadFile | None = None,
                       fused: UploadFile | None = None, method: str | None = Form(None),
                       metrics: str | None = Form(None), convention: str = Form("standard"),
                       resize: str | None = Form(None)):
        from starlette.concurrency import run_in_threadpool

        from ..metrics import METRICS, conventions_used
        from ..metrics import evaluate as compute

        names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else ["EN", "SD", "SF", "AG", "MI", "VIFF"]
        try:
            used = conventions_used(names, convention)
        except ContrafuseError as exc:
            raise BadRequest(f"metrics: {exc}") from None
        first, second = await _read_upload(ir, "ir"), await _read_upload(vis, "vis")
        labels = (f"ir ({ir.filename})", f"vis ({vis.filename})")
        if fused is not None and fused.filename:
            result = await _read_upload(fused, "fused")
            try:
                first, second = match_sizes(first, second, resize=resize or None, labels=labels)
                if result.shape[:2] != first.shape[:2]:
                    raise BadRequest(f"fused ({fused.filename}): size {result.shape[1]}x{result.shape[0]} differs "
                                     f"from the sources' {first.shape[1]}x{first.shape[0]}")
            except ContrafuseError as exc:
                raise BadRequest(str(exc)) from None
        elif method:
            first, second, result = await run_in_threadpool(fuse_arrays, first, second, method, resize, None, labels)
        else:
            raise BadRequest("give a fused image ('fused') or a method to fuse with ('method')")
        values = await run_in_threadpool(compute, first, second, result, names, convention)
        return {"metrics": values, "convention": convention, "definitions": used,
                "higher_is_better": {n: METRICS[n].higher_is_better for n in names}}

    return app


def serve(host: str = "127.0.0.1", port: int = 7860) -> None:
    import uvicorn

    print(f"contrafuse: serving on http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")
