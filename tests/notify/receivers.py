"""Real receivers on loopback for the notification tests: a syslog collector (UDP, TCP with
octet counting, TLS) that parses RFC 5424, an HTTP receiver, an SMTP server with STARTTLS
(aiosmtpd), and a certificate authority made for the test."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import socketserver
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography.hazmat.primitives import serialization

from tests.scan.certgen import Issued, issue, name


@dataclass
class Pki:
    ca_file: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path

    def server_context(
        self, *, require_client_cert: bool = False, max_tls: ssl.TLSVersion | None = None
    ) -> ssl.SSLContext:
        """The server's context; ``require_client_cert``: only clients with a certificate
        from this CA get through (mutual TLS)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        if max_tls is not None:
            ctx.maximum_version = max_tls
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.ca_file)
        return ctx


def _write_leaf(leaf: Issued, cert: Path, key: Path) -> None:
    cert.write_bytes(leaf.pem)
    key.write_bytes(
        leaf.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def make_pki(folder: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate."""
    ca = issue(name("Notify Test CA"), None, ca=True, days=30)
    folder.mkdir(parents=True, exist_ok=True)
    pki = Pki(
        *(folder / f for f in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key"))
    )
    pki.ca_file.write_bytes(ca.pem)
    server = issue(name("localhost"), ca, ca=False, days=30, sans=("127.0.0.1", "localhost"))
    _write_leaf(server, pki.cert, pki.key)
    _write_leaf(
        issue(name("stockade client"), ca, ca=False, days=30), pki.client_cert, pki.client_key
    )
    return pki


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- RFC 5424 ------------------------------------------------------------------------------

_HEADER = re.compile(
    r"<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S{1,255}) (?P<app>\S{1,48}) "
    r"(?P<procid>\S{1,128}) (?P<msgid>\S{1,32}) "
)
_ELEMENT = re.compile(r'\[(?P<id>[^ \]=]+)(?P<params>(?: [^ =\]"]+="(?:[^"\\]|\\.)*")*)\]')
_PARAM = re.compile(r' ([^ =\]"]+)="((?:[^"\\]|\\.)*)"')


def parse_rfc5424(text: str) -> dict[str, Any]:
    """A syslog message split as RFC 5424 section 6 defines it; AssertionError if it is not one."""
    m = _HEADER.match(text)
    assert m, f"not an RFC 5424 header: {text[:120]!r}"
    ts = m["ts"]
    assert ts == "-" or dt.datetime.fromisoformat(ts.replace("Z", "+00:00")), ts
    rest = text[m.end() :]
    sd: dict[str, dict[str, str]] = {}
    if rest.startswith("-"):
        rest = rest[1:]
    else:
        while rest.startswith("["):
            e = _ELEMENT.match(rest)
            assert e, f"bad structured data: {rest[:120]!r}"
            sd[e["id"]] = {k: re.sub(r"\\(.)", r"\1", v) for k, v in _PARAM.findall(e["params"])}
            rest = rest[e.end() :]
    assert rest == "" or rest.startswith(" "), rest[:40]
    msg = rest[1:]
    bom = msg.startswith("\ufeff")
    return {
        "pri": int(m["pri"]),
        "facility": int(m["pri"]) // 8,
        "severity": int(m["pri"]) % 8,
        "timestamp": ts,
        "host": m["host"],
        "app": m["app"],
        "procid": m["procid"],
        "msgid": m["msgid"],
        "sd": sd,
        "bom": bom,
        "msg": msg[1:] if bom else msg,
    }


@dataclass
class Inbox:
    """What a receiver got, with a wait for more."""

    items: list[Any] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def add(self, item: Any) -> None:
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()

    def wait(self, n: int = 1, timeout: float = 30) -> list[Any]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.items) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"got {len(self.items)} of {n}: {self.items[:3]}"
                self.cond.wait(left)
            return list(self.items)


class SyslogReceiver:
    """A syslog collector on 127.0.0.1 (``udp``, ``tcp`` or ``tls``); each message parsed."""

    def __init__(
        self,
        transport: str,
        pki: Pki | None = None,
        port: int = 0,
        *,
        require_client_cert: bool = False,
        max_tls: ssl.TLSVersion | None = None,
    ) -> None:
        self.transport = transport
        self.inbox = Inbox()
        self.raw: list[bytes] = []
        inbox, raw = self.inbox, self.raw
        if transport == "udp":
            self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._udp.bind(("127.0.0.1", port))
            self.port = self._udp.getsockname()[1]
            self._thread = threading.Thread(target=self._read_udp, daemon=True)
        else:
            ctx = None
            if pki is not None and transport == "tls":
                ctx = pki.server_context(require_client_cert=require_client_cert, max_tls=max_tls)
            assert transport == "tcp" or ctx is not None

            class Handler(socketserver.StreamRequestHandler):
                def handle(self) -> None:
                    conn = self.request
                    if ctx is not None:
                        try:
                            conn = ctx.wrap_socket(conn, server_side=True)
                        except ssl.SSLError:
                            return  # refused: a client certificate it does not accept
                    stream = conn.makefile("rb")
                    while True:
                        length = b""
                        while (c := stream.read(1)) not in (b" ", b""):
                            assert c.isdigit(), f"not octet counting: {length + c!r}"
                            length += c
                        if not length:
                            return
                        data = stream.read(int(length))
                        raw.append(data)
                        inbox.add(parse_rfc5424(data.decode("utf-8")))

            socketserver.ThreadingTCPServer.allow_reuse_address = True
            self._server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
            self._server.daemon_threads = True
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _read_udp(self) -> None:
        while True:
            try:
                data = self._udp.recv(65536)
            except OSError:
                return
            self.raw.append(data)
            self.inbox.add(parse_rfc5424(data.decode("utf-8")))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        if self.transport == "udp":
            self._udp.close()
        else:
            self._server.shutdown()
            self._server.server_close()


class HttpReceiver:
    """An HTTP server on 127.0.0.1 that keeps every POSTed JSON body."""

    def __init__(
        self,
        port: int = 0,
        status: int = 200,
        pki: Pki | None = None,
        *,
        require_client_cert: bool = False,
    ) -> None:
        self.inbox = Inbox()
        self.status = status
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.headers.append(dict(self.headers))
                if outer.status == 200:
                    outer.inbox.add(json.loads(body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.scheme = "http"
        if pki is not None:
            self.scheme = "https"
            ctx = pki.server_context(require_client_cert=require_client_cert)
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _MailHandler:
    def __init__(self) -> None:
        self.inbox = Inbox()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.inbox.add(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                # STARTTLS sets session.ssl; implicit TLS is seen on the transport
                "tls": session.ssl is not None
                or server.transport.get_extra_info("ssl_object") is not None,
                "data": envelope.content.decode("utf-8", "replace"),
            }
        )
        return "250 OK"


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1 that requires STARTTLS with the test's certificate, or with
    ``implicit`` speaks TLS from the first byte (SMTPS, port 465 style)."""

    def __init__(
        self, pki: Pki, *, login: tuple[str, str] | None = None, implicit: bool = False
    ) -> None:
        self.handler = _MailHandler()
        self.inbox = self.handler.inbox
        self.port = free_port()
        extra: dict[str, Any] = {}
        if login is not None:

            def authenticator(
                server: Any, session: Any, envelope: Any, mechanism: str, data: Any
            ) -> AuthResult:
                ok = (
                    isinstance(data, LoginPassword)
                    and (
                        data.login.decode(),
                        data.password.decode(),
                    )
                    == login
                )
                return AuthResult(success=ok, handled=False)

            extra = {"authenticator": authenticator, "auth_required": True}
        if implicit:
            # aiosmtpd only counts STARTTLS as encryption for AUTH; here all of it is TLS
            extra |= {"ssl_context": pki.server_context(), "auth_require_tls": False}
        else:
            extra |= {"tls_context": pki.server_context(), "require_starttls": True}
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **extra)
        self._controller.start()

    def close(self) -> None:
        self._controller.stop()
