"""Services for the service-facts tests, run inside a test namespace: ``python facts_server.py
CONFIG.json``. Each entry of the JSON list serves one port (IPv4 and IPv6) as one kind:

- ``greet``: sends ``text`` (hex) on connect, then waits for the client to go;
- ``silent``: accepts and never says anything;
- ``reset``: accepts and resets the connection at once;
- ``tls``: TLS with ``cert``/``key`` (or ``sni``: {name: [cert, key]} chosen by the SNI), then
  ``after`` = ``http`` (answers a request with a short HTTP response) or a greeting ``text``;
- ``smtp``: an SMTP greeting; EHLO lists STARTTLS, STARTTLS upgrades with ``cert``/``key``.

Prints ``ready`` once every port listens.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import sys
import threading
import time
from typing import Any


def _recv_until_gone(conn: socket.socket | ssl.SSLSocket, seconds: float = 30) -> bytes:
    conn.settimeout(seconds)
    got = b""
    try:
        while chunk := conn.recv(4096):
            got += chunk
    except OSError:
        pass
    return got


def _line(conn: socket.socket | ssl.SSLSocket) -> bytes:
    buf = b""
    conn.settimeout(30)
    while not buf.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            break
        buf += chunk
    return buf


def _context(cert: str, key: str, sni: dict[str, list[str]] | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if sni:
        by_name = {}
        for host, (c, k) in sni.items():
            named = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            named.load_cert_chain(c, k)
            by_name[host] = named

        def pick(sock: Any, server_name: str | None, _: ssl.SSLContext) -> None:
            if server_name in by_name:
                sock.context = by_name[server_name]

        ctx.sni_callback = pick
    return ctx


def handle(conn: socket.socket, entry: dict[str, Any], ctx: ssl.SSLContext | None) -> None:
    kind = entry["kind"]
    try:
        if kind == "greet":
            conn.sendall(bytes.fromhex(entry["text"]))
            _recv_until_gone(conn)
        elif kind == "silent":
            _recv_until_gone(conn)
        elif kind == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif kind == "tls":
            assert ctx is not None
            tls = ctx.wrap_socket(conn, server_side=True)
            if entry.get("after") == "http":
                request = _line(tls)
                if request.startswith((b"HEAD ", b"GET ")):
                    tls.sendall(b"HTTP/1.0 200 OK\r\nServer: facts-test/1.0\r\n\r\n")
            else:
                tls.sendall(bytes.fromhex(entry["text"]))
            _recv_until_gone(tls)
        elif kind == "smtp":
            assert ctx is not None
            conn.sendall(b"220 mail.facts.test ESMTP facts-test\r\n")
            while line := _line(conn):
                verb = line.strip().upper()
                if verb.startswith(b"EHLO"):
                    conn.sendall(b"250-mail.facts.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
                elif verb == b"STARTTLS":
                    conn.sendall(b"220 2.0.0 Ready to start TLS\r\n")
                    tls = ctx.wrap_socket(conn, server_side=True)
                    if _line(tls).strip().upper() == b"QUIT":
                        tls.sendall(b"221 2.0.0 Bye\r\n")
                    break
                elif verb == b"QUIT":
                    conn.sendall(b"221 2.0.0 Bye\r\n")
                    break
                else:
                    conn.sendall(b"502 5.5.2 Error: command not recognized\r\n")
    except (OSError, ssl.SSLError):
        pass
    finally:
        conn.close()


def serve(entry: dict[str, Any]) -> None:
    ctx = None
    if "cert" in entry:
        ctx = _context(entry["cert"], entry["key"], entry.get("sni"))
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", entry["port"]))
    s.listen(128)

    def loop() -> None:
        while True:
            conn, _ = s.accept()
            threading.Thread(target=handle, args=(conn, entry, ctx), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        for entry in json.load(f):
            serve(entry)
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
