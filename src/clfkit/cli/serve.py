"""``clf-serve``: the thin click layer over :func:`clfkit.serve.server.run_server`.  No torch import."""
from __future__ import annotations

from pathlib import Path

import click

from clfkit.cli.common import (CONTEXT, device_option, model_option, runtime_option, threads_option, topk_option,
                               tta_option, user_errors, workers_option)
from clfkit.runtime.engine import Engine
from clfkit.serve.config import ServeConfig
from clfkit.serve.server import require_serve_extra, run_server

__all__ = ["serve_cmd"]


@click.command("clf-serve", context_settings=CONTEXT)
@model_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 = every interface: reachable from other machines).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port (0 = any free port, printed at start).")
@runtime_option
@device_option
@threads_option
@workers_option
@click.option("--max-batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="Most images per model call; concurrent requests are gathered up to this.")
@click.option("--max-wait-ms", type=click.FloatRange(0, 10_000), default=5.0, show_default=True,
              help="How long the first image of a batch waits for more before the model runs.")
@tta_option
@topk_option
@click.option("--reject-below", type=float, default=None, metavar="P",
              help='Answer pred "unknown" when the top probability is below P (0 < P < 1); prob, index and '
                   "topk still give the top class.  As clf-infer --reject-below.")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True,
              help="Largest upload per request (a batch request's files together); larger ones get 413.")
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="One log line per request.")
@user_errors
def serve_cmd(model: Path, host: str, port: int, runtime: str, precision: str, device: str, threads: int | None, workers: int | None,
              max_batch: int, max_wait_ms: float, tta: int, topk: int, reject_below: float | None,
              max_upload_mb: float, access_log: bool) -> None:
    """Serve an ONNX classifier over HTTP: POST /predict, POST /predict/batch, GET /health, GET /model,
    API docs at /docs and a web page at / to try it with a photo.

    Concurrent requests are micro-batched: images arriving within --max-wait-ms of the first (up to
    --max-batch) run as one model call.  Predictions equal clf-infer's for the same files and --tta.
    """
    def log(msg: str) -> None:
        click.echo(f"clf-serve: {msg}", err=True)

    require_serve_extra()
    config = ServeConfig(max_batch=max_batch, max_wait_ms=max_wait_ms, tta=tta, topk=topk,
                         max_upload_mb=max_upload_mb, workers=workers, reject_below=reject_below)
    engine = Engine.from_onnx(model, device=device, threads=threads, runtime=runtime, precision=precision, log=log)
    log(f"model {engine.describe()}" + (f", {threads} threads" if threads else ""))
    log(engine.describe_choice())
    log(f"micro-batching up to {max_batch} images or {max_wait_ms:g} ms"
        + (f", TTA {tta} views" if tta > 1 else "")
        + (f", unknown below {reject_below:g}" if reject_below is not None else ""))
    run_server(engine, config, host=host, port=port, access_log=access_log, log=log)
