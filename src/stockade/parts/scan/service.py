"""Scan groups against their baselines: run a round, confirm what changed, store the scan,
accept, diff two stored scans, and turn deltas into alerts.

Used by ``stockade scan check|list|diff|accept`` and by the scan part of ``stockade run``.
Each group has a versioned store baseline named ``scan:<group>`` whose entries are host
snapshots keyed by address, matched by MAC on the local link when a host moved (see
:mod:`stockade.detectors.scan.deltas`); every round is
stored as a scan record, so any two can be compared later.

A delta is reported only when a second look confirms it: the hosts and ports involved are
scanned again with more retries, and only the deltas found both times count, so one lost
packet never raises an alert.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from stockade.baseline.keys import KeyRing
from stockade.baseline.signed import replace_baseline, tampered_alert, verified_entries
from stockade.config.schema import ScanGroup
from stockade.context import Context
from stockade.detectors.scan import deltas as d
from stockade.errors import IntegrityError, StockadeError
from stockade.model import Alert, ScanRecord, Severity
from stockade.sensors.scan.pipeline import ScanOptions
from stockade.sensors.scan.pool import default_workers, run_units
from stockade.sensors.scan.ports import parse_ports
from stockade.sensors.scan.report import UP, HostReport
from stockade.sensors.scan.targets import (
    Spec,
    Target,
    expand,
    parse_spec,
    parse_target_file,
    resolve_name,
)
from stockade.sensors.scan.units import WorkUnit, merge, split
from stockade.store.base import Store

PART = "scan"
KEEP_SCANS = 100
#: severity relative to the group's: a new door is worse than a closed one
_RAISE = {
    d.HOST_NEW: 0,
    d.HOST_DOWN: -1,
    d.HOST_UP: -2,
    d.PORT_OPENED: 0,
    d.PORT_CLOSED: -1,
    d.BANNER_CHANGED: -1,
    d.VERSION_CHANGED: -1,
    d.CERT_CHANGED: 0,
    d.CERT_EXPIRING: 0,
    d.PATH_CHANGED: -1,
}


def baseline_part(group: str) -> str:
    return f"{PART}:{group}"


@dataclass
class CheckOutcome:
    group: str
    scan_id: int
    reports: list[HostReport]
    version: int | None  # the baseline compared with (None: there was none)
    deltas: list[d.Delta] = field(default_factory=list)  # confirmed
    unconfirmed: int = 0  # deltas a second look did not see again
    elapsed: float = 0.0


class ScanService:
    def __init__(self, ctx: Context, store: Store) -> None:
        self.ctx = ctx
        self.store = store
        self.cfg = ctx.config.scan
        self.keys = KeyRing(ctx)

    # -- configuration -------------------------------------------------------------------

    def group(self, name: str | None) -> ScanGroup:
        groups = self.cfg.groups
        if not groups:
            raise StockadeError(
                "scan: no scan group in the configuration; "
                "add [[scan.groups]] with a name and targets"
            )
        if name is None:
            if len(groups) > 1:
                names = ", ".join(g.name for g in groups)
                raise StockadeError(f"scan: several groups ({names}); choose one with --group")
            return groups[0]
        for g in groups:
            if g.name == name:
                return g
        names = ", ".join(g.name for g in groups)
        raise StockadeError(f"scan: no group {name!r} in the configuration (groups: {names})")

    def groups(self, name: str | None) -> list[ScanGroup]:
        if name is None and len(self.cfg.groups) > 1:
            return list(self.cfg.groups)
        return [self.group(name)]

    def targets(self, g: ScanGroup) -> list[Target]:
        specs = self._specs(g.targets, g.name)
        exclude = self._specs(g.exclude, g.name)
        return expand(specs, exclude, resolve=resolve_name)

    def _specs(self, texts: Sequence[str], group: str) -> list[Spec]:
        out: list[Spec] = []
        for t in texts:
            if not t.startswith("@"):
                out.append(parse_spec(t))
                continue
            path = Path(t[1:])
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError as e:
                raise StockadeError(
                    f"scan group {group!r}: cannot read target file {path}: {e.strerror}"
                ) from None
            out += parse_target_file(text, str(path))
        return out

    def options(self, g: ScanGroup) -> ScanOptions:
        ports = parse_ports(g.ports) if g.ports.strip() else None
        udp = parse_ports(g.udp_ports) if g.udp_ports.strip() else None
        extra_udp = (udp.udp + udp.tcp) if udp else ()
        return ScanOptions(
            tcp=list(ports.tcp) if ports else [],
            udp=sorted(set((ports.udp if ports else ()) + extra_udp)),
            method=g.scan,
            discovery=g.discovery,
            retries=g.retries,
            rate=g.rate,
            banners=g.banners,
            tls_ports=list(g.tls_ports),
            starttls_ports={k: list(v) for k, v in g.starttls_ports.items()},
            traceroute=g.traceroute,
            version_intensity=g.version_intensity,
        )

    # -- scanning ------------------------------------------------------------------------

    def round(
        self, g: ScanGroup, progress: Callable[[int, int], None] | None = None
    ) -> list[HostReport]:
        units = split(self.targets(g), self.options(g), self.cfg.workers or default_workers())
        return merge(run_units(units, self.cfg.workers, progress))

    def _confirm(
        self,
        g: ScanGroup,
        base: dict[str, HostReport],
        reports: list[HostReport],
        found: list[d.Delta],
    ) -> list[HostReport]:
        """Scan the hosts and ports of ``found`` again, with more retries; ``reports`` with
        what the second look saw in their place."""
        opts = self.options(g)
        by_address = {r.address: r for r in reports}
        wanted: dict[str, tuple[set[int], set[int], bool]] = {}
        for delta in found:
            tcp, udp, trace = wanted.setdefault(delta.address, (set(), set(), False))
            if delta.port is not None:
                (udp if delta.proto == "udp" else tcp).add(delta.port)
            else:
                for r in (base.get(delta.key), by_address.get(delta.address)):
                    for p in r.open_ports() if r is not None else []:
                        (udp if p.proto == "udp" else tcp).add(p.port)
                if not tcp and not udp:
                    # a host without open ports shows its state only on the group's ports
                    tcp.update(opts.tcp)
                    udp.update(opts.udp)
            if delta.kind == d.PATH_CHANGED:
                wanted[delta.address] = (tcp, udp, True)
        host_level = {x.address for x in found if x.port is None and x.kind != d.PATH_CHANGED}
        units: list[WorkUnit] = []
        for address, (tcp, udp, trace) in wanted.items():
            r = by_address.get(address)
            o = dataclasses.replace(
                opts,
                tcp=sorted(tcp),
                udp=sorted(udp),
                retries=max(opts.retries, 2) + 3,
                traceroute=trace,
            )
            units.append(WorkUnit(len(units), [Target(address, r.name or "" if r else "")], o))
        again = {r.address: r for r in merge(run_units(units, self.cfg.workers))}
        out = []
        for r in reports:
            second = again.get(r.address)
            if second is None:
                out.append(r)
                continue
            redone = {(p.proto, p.port): p for p in second.ports}
            ports = [redone.pop((p.proto, p.port), p) for p in r.ports] + list(redone.values())
            # the host's state is looked at again only when it was the change itself; a second
            # look at a few ports says nothing about a host that answered on others
            again_state = r.address in host_level
            out.append(
                dataclasses.replace(
                    r,
                    ports=ports,
                    state=second.state if again_state else r.state,
                    reason=second.reason if again_state else r.reason,
                    path=second.path if second.path is not None else r.path,
                )
            )
        return out

    def check(
        self, g: ScanGroup, progress: Callable[[int, int], None] | None = None
    ) -> CheckOutcome:
        """One round of ``g``: scan, confirm the deltas against the baseline, store the scan."""
        start = time.time()
        reports = self.round(g, progress)
        version = self.store.baseline_version(baseline_part(g.name))
        confirmed: list[d.Delta] = []
        unconfirmed = 0
        if version is not None:
            base = self.baseline(g.name)
            first = d.compare(base, d.snapshots(reports), g.key_by_mac)
            if first:
                reports = self._confirm(g, base, reports, first)
                seen = {x.identity for x in first}
                again = d.compare(base, d.snapshots(reports), g.key_by_mac)
                confirmed = [x for x in again if x.identity in seen]
                unconfirmed = len(first) - len(confirmed)
        scan_id = self._store_scan(g, reports, start)
        return CheckOutcome(
            g.name,
            scan_id,
            reports,
            version.version if version else None,
            confirmed,
            unconfirmed,
            time.time() - start,
        )

    def expiring(self, g: ScanGroup, reports: list[HostReport]) -> list[d.Delta]:
        now = datetime.now(UTC)
        return d.expiring(d.snapshots(reports), now, g.cert_expiry_days)

    def _store_scan(self, g: ScanGroup, reports: list[HostReport], start: float) -> int:
        snaps = [d.snapshot(r) for r in reports]
        record = ScanRecord(
            group=g.name,
            started=start,
            finished=time.time(),
            hosts=json.dumps([s.to_json() for s in snaps], separators=(",", ":")),
            hosts_up=sum(s.state == UP for s in snaps),
            hosts_total=len(snaps),
            open_ports=sum(len(s.open_ports()) for s in snaps if s.state == UP),
            meta=json.dumps({"key_by_mac": g.key_by_mac}),
        )
        scan_id = self.store.add_scan(record)
        self.store.prune_scans(g.name, KEEP_SCANS)
        return scan_id

    # -- baselines and stored scans ------------------------------------------------------

    def baseline(self, group: str, version: int | None = None) -> dict[str, HostReport]:
        """The group's baseline (current, or ``version``; empty when there is none)."""
        entries = self._verified(group, version)
        return {k.decode(): HostReport.from_json(json.loads(t)) for k, t in entries.items()}

    def _verified(self, group: str, version: int | None = None) -> dict[bytes, str]:
        """The baseline's stored entries, checked against its signature (a failed check is
        stored as a critical alert and raised)."""
        what = f"the baseline of scan group {group!r}"
        try:
            got = verified_entries(self.store, baseline_part(group), self.keys, version, what=what)
        except IntegrityError as e:
            self.store.add_alerts([tampered_alert(PART, f"{group}/baseline", e, self.ctx.host)])
            raise
        return got[1] if got else {}

    def scan(self, scan_id: int) -> ScanRecord:
        rec = self.store.get_scan(scan_id)
        if rec is None:
            raise StockadeError(
                f"scan {scan_id}: no such stored scan; `stockade scan list` shows them"
            )
        return rec

    def latest(self, group: str) -> ScanRecord | None:
        scans = self.store.list_scans(group=group, limit=1)
        return scans[0] if scans else None

    @staticmethod
    def hosts(record: ScanRecord) -> dict[str, HostReport]:
        return d.snapshots(HostReport.from_json(h) for h in json.loads(record.hosts))

    def accept(
        self,
        group: str,
        scan_id: int | None = None,
        note: str = "accept",
        hosts: Sequence[str] = (),
    ) -> tuple[int, int]:
        """Make a stored scan of ``group`` (the latest by default) the baseline — or, with
        ``hosts`` (addresses), only those hosts' part of it: a host the scan has is taken as it
        was seen, one it lacks leaves the baseline; the others keep their baseline entries.
        Returns (version, number of host entries changed)."""
        self.group(group)  # it must be configured
        rec = self.scan(scan_id) if scan_id is not None else self.latest(group)
        if rec is None:
            raise StockadeError(
                f"scan group {group!r}: nothing scanned yet; "
                f"run `stockade scan check --group {group}`"
            )
        if rec.group != group:
            raise StockadeError(f"scan {rec.id} belongs to group {rec.group!r}, not {group!r}")
        seen = {
            k.encode(): json.dumps(h.to_json(), sort_keys=True) for k, h in self.hosts(rec).items()
        }
        entries = seen
        if hosts:
            entries = self._verified(group)
            for address in hosts:
                key = _host_key(address)
                if key in seen:
                    entries[key] = seen[key]
                elif key in entries:
                    del entries[key]
                else:
                    raise StockadeError(
                        f"scan accept --host {address}: neither scan {rec.id} nor the baseline "
                        f"of {group!r} has this host; nothing changed"
                    )
            note = f"{note} of {', '.join(hosts)}"
        signer, _ = self.keys.signer(create=True)
        return replace_baseline(
            self.store,
            baseline_part(group),
            entries,
            signer,
            note=f"{note} (scan {rec.id})",
            meta=json.dumps({"scan": rec.id}),
        )

    def alerts(self, g: ScanGroup, deltas: Sequence[d.Delta]) -> list[Alert]:
        base = Severity.parse(g.severity)
        out = []
        for x in deltas:
            sev = Severity(min(max(int(base) + _RAISE[x.kind], 0), int(Severity.CRITICAL)))
            detail = {"message": x.describe(), "group": g.name, **x.to_json()}
            out.append(
                Alert(PART, x.kind, f"{g.name}/{x.subject}", sev, detail, host=self.ctx.host)
            )
        return out


def _host_key(address: str) -> bytes:
    """The baseline key of the host at ``address`` (as the deltas key them)."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        raise StockadeError(
            f"scan accept --host {address!r}: not an IP address (give the address the scan shows)"
        ) from None
    return d.host_key(HostReport(address=str(ip))).encode()
