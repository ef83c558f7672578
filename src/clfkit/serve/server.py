"""The HTTP service's process: :func:`run_server` (the library function behind ``clf-serve``).

The listening socket is bound here, before uvicorn starts, so a port in use is one clear line (exit 1) and
``--port 0`` picks a free port that is printed (tests and benchmarks use that).  No torch import.
"""
from __future__ import annotations

import contextlib
import importlib.util
import signal
import socket
import threading
from typing import Callable, Iterator

from clfkit.errors import ConfigError
from clfkit.runtime.engine import Engine
from clfkit.serve.config import ServeConfig

__all__ = ["bind_socket", "require_serve_extra", "run_server"]


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


def require_serve_extra() -> None:
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
