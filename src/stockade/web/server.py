"""Serving the dashboard with uvicorn on the running asyncio loop (``stockade web`` and the
``web`` part of ``stockade run``), over TLS when a certificate is configured."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from stockade.context import Context
from stockade.daemon.tasks import spawn
from stockade.errors import ConfigError, StockadeError
from stockade.web.listen import parse_listen

log = logging.getLogger("stockade.web")


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handlers: the caller's loop owns the signals
    (``stockade run`` handles SIGTERM, SIGINT and SIGHUP itself)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def build_server(ctx: Context, listen: str | None = None) -> tuple[uvicorn.Server, socket.socket]:
    """The server and its bound socket."""
    from stockade.web.app import create_app

    cfg = ctx.config.web
    try:
        host, port = parse_listen(listen or cfg.listen)
    except ValueError as e:
        raise ConfigError(f"web.listen: {e}") from None
    tls = bool(cfg.tls_cert)
    if tls:
        _check_tls(cfg.tls_cert, cfg.tls_key)
    config = uvicorn.Config(
        create_app(ctx, tls=tls),
        host=host,
        port=port,
        ssl_certfile=cfg.tls_cert or None,
        ssl_keyfile=cfg.tls_key or None,
        log_config=None,
        access_log=False,
        proxy_headers=False,  # the client address is the peer's: no header decides it
        server_header=False,
        timeout_graceful_shutdown=2,
        lifespan="off",
    )
    return _Server(config), bind(host, port)


def _check_tls(cert: str, key: str) -> None:
    """A clear error before uvicorn's, naming the setting to fix."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except FileNotFoundError as e:
        raise ConfigError(f"web.tls_cert/tls_key: {e.filename}: no such file") from None
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(
            f"web.tls_cert/tls_key: cannot load {Path(cert).name} with {Path(key).name}: {e}"
        ) from None


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a taken port is a one-line error (uvicorn
    would exit the process)."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        raise StockadeError(
            f"the dashboard cannot listen on {host}:{port}: {e.strerror}; "
            "choose another address with --listen or web.listen"
        ) from None
    return sock


async def serve(server: uvicorn.Server, sock: socket.socket) -> None:
    """Serve on ``sock`` until cancelled; then stop accepting, let open requests finish (a
    short grace), close the socket."""
    task = spawn(server.serve(sockets=[sock]), name="web-server")
    try:
        await asyncio.shield(task)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
