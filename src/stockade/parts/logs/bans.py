"""Bans: decide, record, apply, lift and restore them — the same for the daemon and the CLI.

A ban is written to the store first, then put in place by the responder (nftables by default,
always behind the allowlist guard). After a restart or a crash every ban still active in the
store is put back in ONE batch; expired and lifted ones are not. A manual unban is recorded,
so a restart does not bring the ban back.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stockade.config.schema import LogsSection
from stockade.errors import StockadeError, UsageError
from stockade.model import BanRecord
from stockade.responders.allowlist import Allowlist
from stockade.responders.base import Ban, Network, Responder, ResponderError
from stockade.responders.guard import Guarded, guard
from stockade.store import Store

log = logging.getLogger("stockade.logs")


def build_responder(cfg: LogsSection, allowlist: Allowlist) -> Guarded:
    """The configured responder, always wrapped by the allowlist guard."""
    inner: Responder
    if cfg.responder == "nftables":
        from stockade.responders.nftables import NftablesResponder

        inner = NftablesResponder(tuple(cfg.nft_command), table=cfg.nft_table)
    elif cfg.responder == "command":
        from stockade.responders.command import CommandResponder

        if not cfg.command.ban:
            raise StockadeError("logs.command.ban is empty: give the command to run for a ban")
        inner = CommandResponder(
            cfg.command.ban, cfg.command.unban or None, timeout=cfg.command.timeout
        )
    else:
        from stockade.responders.dryrun import DryRunResponder

        inner = DryRunResponder()
    return guard(inner, allowlist)


def build_allowlist(cfg: LogsSection, extra: Sequence[str] = ()) -> Allowlist:
    return Allowlist.from_entries([*cfg.allowlist, *extra], ignoreself=cfg.ignoreself)


def network_of(address: str, ipv6_prefix: int = 128) -> Network:
    """The network a ban covers: the address itself, or its /``ipv6_prefix`` for IPv6."""
    try:
        net = ipaddress.ip_network(address, strict=False)
    except ValueError:
        raise UsageError(f"{address!r} is not an IP address or network") from None
    if isinstance(net, ipaddress.IPv6Network):
        mapped = net.network_address.ipv4_mapped
        if mapped is not None and net.prefixlen == 128:
            return ipaddress.ip_network(mapped)
        if net.prefixlen > ipv6_prefix:
            return net.supernet(new_prefix=ipv6_prefix)
    return net


@dataclass
class BanOutcome:
    record: BanRecord | None
    refused: str | None = None  # why the allowlist refused it


class BanService:
    """Bans of one stockade instance: the store is the truth, the responder follows it."""

    def __init__(
        self,
        store: Store,
        responder: Guarded,
        *,
        ipv6_prefix: int = 128,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.responder = responder
        self.ipv6_prefix = ipv6_prefix
        self.now = now

    def _ban(self, rec: BanRecord, ports: tuple[str, ...] | None, protocol: str) -> Ban:
        return Ban(
            network=network_of(rec.address, 128),
            jail=rec.jail,
            until=rec.until,
            ports=ports,
            protocol=protocol,
            reason=rec.reason,
        )

    def ban(
        self,
        address: str,
        *,
        jail: str,
        seconds: float,
        reason: str,
        source: str = "auto",
        failures: int = 0,
        matches: Sequence[str] = (),
        ports: tuple[str, ...] | None = None,
        protocol: str = "tcp",
    ) -> BanOutcome:
        """Record and apply one ban; the allowlist may refuse it (nothing is recorded then)."""
        net = network_of(address, self.ipv6_prefix)
        why = self.responder.allowlist.covers(net)
        if why is not None:
            return BanOutcome(None, why)
        now = self.now()
        rec = BanRecord(
            address=str(net) if net.prefixlen < net.max_prefixlen else str(net.network_address),
            jail=jail,
            created=now,
            until=None if seconds < 0 else now + seconds,
            reason=reason,
            source=source,
            failures=failures,
            matches=tuple(matches),
        )
        rec_id = self.store.add_ban(rec)
        self.responder.apply([self._ban(rec, ports, protocol)], now=now)
        return BanOutcome(dataclasses.replace(rec, id=rec_id))

    def unban(self, address: str, *, jail: str | None = None, by: str = "manual") -> int:
        """Lift the active bans of an address (recorded: a restart does not bring them back)."""
        net = network_of(address, 128)
        key = str(net) if net.prefixlen < net.max_prefixlen else str(net.network_address)
        now = self.now()
        active = [
            b
            for b in self.store.list_bans(active_at=now, address=key)
            if jail is None or b.jail == jail
        ]
        n = self.store.lift_bans(key, jail=jail, when=now, by=by)
        bans = [self._ban(b, None, "tcp") for b in active] or [Ban(network=net, jail=jail or "")]
        try:
            self.responder.remove(bans)
        except ResponderError as e:
            log.warning("lifting %s: %s", key, e)
        return n

    def active(self) -> list[BanRecord]:
        return self.store.list_bans(active_at=self.now())

    def restore(self, ports_of: Callable[[str], tuple[tuple[str, ...] | None, str]]) -> int:
        """Put every active ban back in place in one batch; return how many."""
        now = self.now()
        active = self.active()
        if active:
            bans = []
            for rec in active:
                ports, proto = ports_of(rec.jail)
                bans.append(self._ban(rec, ports, proto))
            self.responder.apply(bans, now=now)
        return len(active)

    def flush(self) -> int:
        """Remove stockade's bans from the firewall and lift them all in the store."""
        now = self.now()
        lifted = 0
        for rec in self.active():
            lifted += self.store.lift_bans(rec.address, jail=rec.jail, when=now, by="flush")
        self.responder.flush()
        return lifted
