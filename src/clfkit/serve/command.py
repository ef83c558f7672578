"""``clf-serve``: the HTTP service.  :func:`run_server` is the library function, ``serve_cmd`` the click layer.

The listening socket is bound here, before uvicorn starts, so a port in use is one clear line (exit 1) and
``--port 0`` picks a free port that is printed (tests and benchmarks use that).  No torch import.
"""
from __future__ import annotations

import contextlib
import importlib.util
import signal
import socket
import threading
from pathlib import Path
from typing import Callable, Iterator

import click

from clfkit.cli import user_errors
from clfkit.errors import ConfigError
from clfkit.infer.command import device_option, model_option, threads_option
from clfkit.infer.engine import Engine
from clfkit.serve.config import ServeConfig

__all__ = ["bind_socket", "run_server", "serve_cmd"]


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0 = any free port); ConfigError naming the flags if not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: not an address or a host name this machine can resolve "
                          f"({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)  # connections made before uvicorn accepts wait in the backlog instead of failing
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc}); choose "
                          "another --port (0 = any free port)") from None
    sock.set_inheritable(True)
    return sock


def _require_serve_extra() -> None:
    missing = [name for name in ("fastapi", "uvicorn", "python_multipart")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"clf-serve needs {', '.join(missing)}: pip install 'clfkit[serve]'")


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Stopped(Exception):
    pass


def _raise_stopped(signum: int, frame: object) -> None:
    raise _Stopped()


@contextlib.contextmanager
def _stop_signals_exit_cleanly() -> Iterator[None]:
    """uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal (KeyboardInterrupt, or death by
    SIGTERM).  A stop that was asked for is a clean exit (0) for clf-serve."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        yield
    except (KeyboardInterrupt, _Stopped):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_server(engine: Engine, config: ServeConfig, *, host: str = "127.0.0.1", port: int = 8000,
               access_log: bool = True, log: Callable[[str], None] = lambda msg: None) -> None:
    """Serve ``engine`` until SIGINT/SIGTERM (graceful: requests in flight finish)."""
    import uvicorn

    from clfkit.serve.app import create_app

    sock = bind_socket(host, port)
    try:
        app = create_app(engine, config)
        server = uvicorn.Server(uvicorn.Config(app, log_level="info", access_log=access_log, lifespan="on",
                                               timeout_graceful_shutdown=10))
        url = _url(sock)
        log(f"serving on {url} (web page {url}/, API docs {url}/docs); Ctrl+C stops")
        with _stop_signals_exit_cleanly():
            server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        raise ConfigError("the server did not start; uvicorn's log above says why")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@model_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 = every interface: reachable from other machines).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port (0 = any free port, printed at start).")
@device_option
@threads_option
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Decode threads in the one server process (default: cores + 1).")
@click.option("--max-batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="Most images per model call; concurrent requests are gathered up to this.")
@click.option("--max-wait-ms", type=click.FloatRange(0, 10_000), default=5.0, show_default=True,
              help="How long the first image of a batch waits for more before the model runs.")
@click.option("--tta", type=click.IntRange(min=0), default=0, show_default=True,
              help="Test-time augmentation: average N views per image (0 or 1 = off), as clf-infer --tta.")
@click.option("--topk", "-k", type=click.IntRange(min=1), default=5, show_default=True,
              help="Most likely classes per prediction (capped at the number of classes).")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True,
              help="Largest upload per request (a batch request's files together); larger ones get 413.")
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="One log line per request.")
@user_errors
def serve_cmd(model: Path, host: str, port: int, device: str, threads: int | None, workers: int | None,
              max_batch: int, max_wait_ms: float, tta: int, topk: int, max_upload_mb: float,
              access_log: bool) -> None:
    """Serve an ONNX classifier over HTTP: POST /predict, POST /predict/batch, GET /health, GET /model,
    API docs at /docs and a web page at / to try it with a photo.

    Concurrent requests are micro-batched: images arriving within --max-wait-ms of the first (up to
    --max-batch) run as one model call.  Predictions equal clf-infer's for the same files and --tta.
    """
    def log(msg: str) -> None:
        click.echo(f"clf-serve: {msg}", err=True)

    _require_serve_extra()
    config = ServeConfig(max_batch=max_batch, max_wait_ms=max_wait_ms, tta=tta, topk=topk,
                         max_upload_mb=max_upload_mb, workers=workers)
    engine = Engine.from_onnx(model, device=device, threads=threads, log=log)
    log(f"model {engine.describe()}" + (f", {threads} threads" if threads else ""))
    log(f"micro-batching up to {max_batch} images or {max_wait_ms:g} ms"
        + (f", TTA {tta} views" if tta > 1 else ""))
    run_server(engine, config, host=host, port=port, access_log=access_log, log=log)
