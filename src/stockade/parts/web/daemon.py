"""The web part inside ``stockade run`` (``web.enabled``): uvicorn's server on the daemon's
event loop; cancelling the part stops it."""

from __future__ import annotations

import logging

from stockade.context import Context

log = logging.getLogger("stockade.web")


class WebPart:
    name = "web"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def run(self) -> None:
        from stockade.web.server import build_server, serve

        server, sock = build_server(self.ctx)
        scheme = "https" if self.ctx.config.web.tls_cert else "http"
        log.info("web: serving the dashboard on %s://%s", scheme, self.ctx.config.web.listen)
        await serve(server, sock)
