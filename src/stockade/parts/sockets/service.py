"""The listener baseline: read the current listeners, compare with the stored baseline, accept.

Used by ``stockade sockets`` and by the sockets part of ``stockade run``. The baseline is a
versioned store baseline named ``sockets`` whose entries are :class:`Listener` records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stockade.baseline.keys import KeyRing
from stockade.baseline.signed import replace_baseline, tampered_alert, verified_entries
from stockade.context import Context
from stockade.detectors.sockets.listeners import (
    Delta,
    IgnoreRule,
    Listener,
    compare,
    parse_ignores,
)
from stockade.errors import IntegrityError, StockadeError
from stockade.model import Alert, Severity
from stockade.sensors.sockets.table import Socket, read_sockets
from stockade.store.base import Store

PART = "sockets"
#: Exposure of a loopback-only service is worse than a new listener.
_RAISE = {
    "listener-exposed": 1,
    "listener-owner-changed": 0,
    "listener-new": 0,
    "listener-gone": -1,
}


def listeners(sockets: Sequence[Socket]) -> dict[bytes, Listener]:
    out: dict[bytes, Listener] = {}
    for s in sockets:
        if not s.raw.listening:
            continue
        lst = Listener(s.raw.proto, s.raw.local_address, s.raw.local_port, s.program)
        out[lst.key()] = lst
    return out


@dataclass
class CheckResult:
    version: int | None
    deltas: list[Delta]


class SocketsService:
    def __init__(self, ctx: Context, store: Store) -> None:
        self.ctx = ctx
        self.store = store
        self.cfg = ctx.config.sockets
        self.ignores: list[IgnoreRule] = parse_ignores(self.cfg.ignore)
        self.keys = KeyRing(ctx)

    def current(self) -> dict[bytes, Listener]:
        return listeners(read_sockets())

    def _load(self) -> tuple[int, dict[bytes, Listener]]:
        """The current baseline version (0: none) and its listeners, checked against its
        signature (a failed check is stored as a critical alert and raised)."""
        try:
            got = verified_entries(self.store, PART, self.keys, what="the listener baseline")
        except IntegrityError as e:
            self.store.add_alerts([tampered_alert(PART, "listener baseline", e, self.ctx.host)])
            raise
        if got is None:
            return 0, {}
        v, entries = got
        return v.version, {k: Listener.from_text(t) for k, t in entries.items()}

    def baseline(self) -> dict[bytes, Listener] | None:
        version, base = self._load()
        return base if version else None

    def check(self, current: dict[bytes, Listener] | None = None) -> CheckResult:
        cur = self.current() if current is None else current
        version, base = self._load()
        if not version:
            return CheckResult(None, [])
        return CheckResult(version, compare(base, cur, self.ignores))

    def accept(
        self,
        current: dict[bytes, Listener] | None = None,
        note: str = "accept",
        endpoints: Sequence[str] = (),
    ) -> tuple[int, int]:
        """Make ``current`` the new baseline version — or, with ``endpoints`` (as the deltas
        name them: ``tcp/0.0.0.0:4444``), only what listens there now (nothing: the endpoint
        leaves the baseline), the rest of the baseline as it was. Returns (version, changes)."""
        cur = self.current() if current is None else current
        if endpoints:
            version, base = self._load()
            if not version:
                raise StockadeError(
                    "sockets accept ENDPOINT: there is no listener baseline yet to add to; "
                    "`stockade sockets accept` takes every current listener"
                )
            known = {x.endpoint() for x in (*base.values(), *cur.values())}
            for ep in endpoints:
                if ep not in known:
                    raise StockadeError(
                        f"sockets accept {ep}: nothing listens there and the baseline does not "
                        "have it (name endpoints as `stockade sockets check` shows them, "
                        "e.g. tcp/0.0.0.0:4444); nothing changed"
                    )
            wanted = set(endpoints)
            kept = {k: x for k, x in base.items() if x.endpoint() not in wanted}
            cur = kept | {k: x for k, x in cur.items() if x.endpoint() in wanted}
            note = f"{note} of {', '.join(endpoints)}"
        entries = {k: x.text() for k, x in cur.items()}
        signer, _ = self.keys.signer(create=True)
        return replace_baseline(self.store, PART, entries, signer, note=note)

    def alerts(self, deltas: Sequence[Delta]) -> list[Alert]:
        base = Severity.parse(self.cfg.severity)
        out = []
        for d in deltas:
            sev = Severity(min(max(int(base) + _RAISE[d.kind], 0), int(Severity.CRITICAL)))
            detail = {
                "message": d.describe(),
                "old": d.old.text() if d.old else None,
                "new": d.new.text() if d.new else None,
            }
            out.append(Alert(PART, d.kind, d.subject, sev, detail, host=self.ctx.host))
        return out
