"""The HTTP API and web page over one :class:`~clfkit.infer.engine.Engine`: :func:`create_app`.  No torch import.

Every error is JSON ``{"error": "..."}`` with a 4xx status when the request was at fault (see
:data:`DESCRIPTION`); a bad upload never takes the server down or becomes a 500.
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles

from clfkit.errors import ImageError, ModelError, printable
from clfkit.runtime.engine import Engine
from clfkit.runtime.pipeline import check_views
from clfkit.runtime.records import check_reject_below
from clfkit.serve.batcher import BatcherClosed
from clfkit.serve.config import ServeConfig
from clfkit.serve.docs import ASSETS_URL, docs_page, swagger_assets
from clfkit.serve.predictor import Predictor
from clfkit.serve.schemas import BATCH_BODY, ERRORS, PREDICT_BODY, BatchOut, HealthOut, ModelOut, PredictionOut
from clfkit.serve.uploads import ApiError, Upload, read_images
from clfkit.version import __version__

__all__ = ["DESCRIPTION", "STATIC", "create_app"]

STATIC = Path(str(resources.files("clfkit.serve") / "static"))

DESCRIPTION = """\
An image classifier exported by `clf-export`, served by `clf-serve`.

**One image**: `POST /predict` with the image as multipart field `file`
(`curl -F file=@photo.jpg http://HOST/predict`) or as the raw body with an `image/*` or
`application/octet-stream` Content-Type (`curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg' ...`).

**Several images**: `POST /predict/batch` with the multipart field `files` repeated once per image
(`curl -F files=@a.jpg -F files=@b.jpg http://HOST/predict/batch`) → `{"results": [...]}` in request order; a
file that cannot be read gets `{"file": name, "error": reason}` in its place and the others are still predicted
(status 200).

Concurrent requests are micro-batched: images arriving within `--max-wait-ms` of each other (up to
`--max-batch`) run as one model call. `GET /health` shows the queue and the batch sizes run so far; `GET /model`
the classes, the preprocessing spec, and the runtime, precision and provider actually used (and why).

**Errors** are JSON `{"error": "..."}`: 400 not a decodable image (empty, truncated, unknown format,
decompression bomb over 120 megapixels) or no image field; 413 upload over `--max-upload-mb` (checked while the
body streams in); 415 a Content-Type the endpoint does not take; 404/405 unknown path or method; 503 shutting
down; 500 only for a failure of the model itself.
"""


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(engine: Engine, config: ServeConfig | None = None) -> FastAPI:
    """A FastAPI app serving ``engine``; the micro-batcher runs while the app's lifespan is active."""
    config = config or ServeConfig()
    check_views(engine, config.tta)  # a self-contained model takes one view: refuse at start, not per request
    check_reject_below(config.reject_below, engine.spec.class_names)  # a class named "unknown": refuse at start
    predictor = Predictor(engine, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        predictor.start()
        try:
            yield
        finally:
            await predictor.close()

    app = FastAPI(title=f"clf-serve: {engine.path.name}", version=__version__, description=DESCRIPTION,
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.predictor = predictor

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors())
        return _error(422, problems or "invalid request")

    async def _predict_upload(upload: Upload) -> dict[str, Any]:
        try:
            return await predictor.predict(upload.data)
        except ImageError as exc:
            raise ApiError(400, f"{printable(upload.name)}: {exc.reason}") from None
        except BatcherClosed as exc:
            raise ApiError(503, str(exc)) from None
        except ModelError as exc:  # onnxruntime failed on a batch: the server's problem, said in one line
            raise ApiError(500, str(exc)) from None

    @app.post("/predict", response_model=PredictionOut, responses=ERRORS, openapi_extra=PREDICT_BODY,
              summary="Classify one image")
    async def predict(request: Request) -> JSONResponse:
        uploads = await read_images(request, fields=("file",), max_bytes=config.max_upload_bytes)
        if len(uploads) > 1:
            raise ApiError(400, f"{len(uploads)} images in field `file`: /predict takes one; send several as "
                                "repeated field `files` to /predict/batch")
        return JSONResponse(await _predict_upload(uploads[0]))

    @app.post("/predict/batch", response_model=BatchOut, responses=ERRORS, openapi_extra=BATCH_BODY,
              summary="Classify several images (multipart field `files`, repeated)")
    async def predict_batch(request: Request) -> JSONResponse:
        uploads = await read_images(request, fields=("files", "file"), max_bytes=config.max_upload_bytes,
                                    allow_raw=False)

        async def one(upload: Upload) -> dict[str, Any]:
            try:
                return {"file": upload.name, **await _predict_upload(upload)}
            except ApiError as exc:
                if exc.status != 400:
                    raise
                return {"file": upload.name, "error": exc.message}

        return JSONResponse({"results": list(await asyncio.gather(*(one(u) for u in uploads)))})

    @app.get("/health", response_model=HealthOut, summary="Liveness, queue depth and batch sizes")
    async def health() -> JSONResponse:
        return JSONResponse(predictor.health())

    @app.get("/model", response_model=ModelOut, summary="The model, its classes and how it is served")
    async def model() -> JSONResponse:
        return JSONResponse(predictor.describe())

    assets = swagger_assets()

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return docs_page(app.title, app.openapi_url or "/openapi.json", assets)

    if assets is not None:
        app.mount(ASSETS_URL, StaticFiles(directory=assets), name="docs-assets")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
