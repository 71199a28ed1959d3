"""Listener baseline entries and the deltas between a baseline and the current listeners.

A listener is keyed on (protocol, address, port, program) — never on PID or queue sizes, which
change at every restart. Deltas, each reported once:

- ``listener-new``: nothing listened there before;
- ``listener-gone``: a baselined listener is no longer there;
- ``listener-owner-changed``: the same protocol, address and port, now held by another program;
- ``listener-exposed``: a program that listened only on loopback now listens on another address.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from stockade.errors import StockadeError


@dataclass(frozen=True, slots=True, order=True)
class Listener:
    proto: str
    address: str
    port: int
    program: str

    def key(self) -> bytes:
        return f"{self.proto}|{self.address}|{self.port}|{self.program}".encode()

    def text(self) -> str:
        return json.dumps(
            {
                "proto": self.proto,
                "address": self.address,
                "port": self.port,
                "program": self.program,
            },
            sort_keys=True,
        )

    @classmethod
    def from_text(cls, text: str) -> Listener:
        d = json.loads(text)
        return cls(str(d["proto"]), str(d["address"]), int(d["port"]), str(d["program"]))

    def endpoint(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.proto}/{host}:{self.port}"

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.address).is_loopback


@dataclass(frozen=True, slots=True)
class Delta:
    kind: str
    old: Listener | None
    new: Listener | None

    @property
    def subject(self) -> str:
        ref = self.new or self.old
        assert ref is not None
        return ref.endpoint()

    def describe(self) -> str:
        if self.kind == "listener-new":
            assert self.new
            return f"new listener {self.new.endpoint()} ({self.new.program or '?'})"
        if self.kind == "listener-gone":
            assert self.old
            return f"listener gone {self.old.endpoint()} ({self.old.program or '?'})"
        assert self.old and self.new
        if self.kind == "listener-owner-changed":
            return (
                f"{self.new.endpoint()} now owned by {self.new.program or '?'} "
                f"(was {self.old.program or '?'})"
            )
        return (
            f"{self.new.program or '?'} moved from loopback {self.old.endpoint()} "
            f"to {self.new.endpoint()}"
        )


@dataclass(frozen=True, slots=True)
class IgnoreRule:
    """'tcp:22', 'udp:*:68', 'tcp:127.0.0.1:8080', 'program:chronyd'."""

    proto: str | None = None
    address: str | None = None
    port: int | None = None
    program: str | None = None

    @classmethod
    def parse(cls, text: str, where: str = "sockets.ignore") -> IgnoreRule:
        head, sep, rest = text.partition(":")
        if not sep or not rest:
            raise StockadeError(
                f"{where}: {text!r}: write 'tcp:PORT', 'udp:ADDR:PORT' or 'program:NAME'"
            )
        if head == "program":
            return cls(program=rest)
        if head not in ("tcp", "udp", "*"):
            raise StockadeError(f"{where}: {text!r}: protocol must be tcp, udp or *")
        addr, _, port_text = rest.rpartition(":")
        addr = addr.strip("[]")
        port: int | None = None
        if port_text != "*":
            if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
                raise StockadeError(f"{where}: {text!r}: port must be 0-65535 or *")
            port = int(port_text)
        if addr and addr != "*":
            try:
                addr = str(ipaddress.ip_address(addr))
            except ValueError:
                raise StockadeError(f"{where}: {text!r}: {addr!r} is not an address") from None
        return cls(
            proto=None if head == "*" else head,
            address=addr if addr and addr != "*" else None,
            port=port,
        )

    def matches(self, lst: Listener) -> bool:
        return (
            (self.proto is None or self.proto == lst.proto)
            and (self.address is None or self.address == lst.address)
            and (self.port is None or self.port == lst.port)
            and (self.program is None or self.program == lst.program)
        )


def parse_ignores(texts: Sequence[str]) -> list[IgnoreRule]:
    return [IgnoreRule.parse(t, f"sockets.ignore[{i}]") for i, t in enumerate(texts)]


def compare(
    baseline: Mapping[bytes, Listener],
    current: Mapping[bytes, Listener],
    ignores: Iterable[IgnoreRule] = (),
) -> list[Delta]:
    """What changed from ``baseline`` to ``current`` (both keyed by Listener.key())."""
    rules = list(ignores)

    def kept(lst: Listener) -> bool:
        return not any(r.matches(lst) for r in rules)

    added = sorted(v for k, v in current.items() if k not in baseline and kept(v))
    removed = sorted(v for k, v in baseline.items() if k not in current and kept(v))
    deltas: list[Delta] = []
    # the same endpoint, another program
    gone_at = {(r.proto, r.address, r.port): r for r in removed}
    rest: list[Listener] = []
    for a in added:
        old = gone_at.pop((a.proto, a.address, a.port), None)
        if old is not None:
            deltas.append(Delta("listener-owner-changed", old, a))
        else:
            rest.append(a)
    removed = [r for r in removed if (r.proto, r.address, r.port) in gone_at]
    # a program that was on loopback only, now also elsewhere
    loop_only: dict[tuple[str, int, str], Listener] = {}
    public: set[tuple[str, int, str]] = set()
    for b in baseline.values():
        ident = (b.proto, b.port, b.program)
        if b.loopback:
            loop_only.setdefault(ident, b)
        else:
            public.add(ident)
    for a in rest:
        ident = (a.proto, a.port, a.program)
        if not a.loopback and ident in loop_only and ident not in public:
            deltas.append(Delta("listener-exposed", loop_only[ident], a))
        else:
            deltas.append(Delta("listener-new", None, a))
    deltas.extend(Delta("listener-gone", r, None) for r in removed)
    return deltas
