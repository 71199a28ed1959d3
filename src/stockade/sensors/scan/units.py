"""Work units: one scan split into independent pieces (targets × port range) that any scanner
worker can run — a local process now, a remote agent in a fleet — and the merge of their
results into one report per host.

A unit is plain JSON: ``{"id", "targets": [{"address", "name"}], "options": {…}}`` with port
lists written as ranges, so a unit for all 65,535 ports is a few bytes. Its result is
``{"id", "hosts": [HostReport JSON…]}`` (or ``{"id", "error"}``). Each (target, port) pair is in
exactly one unit, so every target is scanned once per round; the path is traced by one unit of
each target only. Pure functions, no I/O; :func:`run_unit` does the scanning.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from stockade.sensors.scan.pipeline import ScanOptions, scan_hosts
from stockade.sensors.scan.report import DOWN, UP, HostReport
from stockade.sensors.scan.starttls_protocols import PROTOCOLS
from stockade.sensors.scan.targets import Target

#: a unit carries at most this many targets, so work spreads over the workers
MAX_TARGETS = 64
_PORT_FIELDS = ("tcp", "udp")


class UnitError(ValueError):
    """A unit or a unit result that is not well formed."""


@dataclass
class WorkUnit:
    id: int
    targets: list[Target]
    options: ScanOptions

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "targets": [{"address": t.address, "name": t.name} for t in self.targets],
            "options": options_to_json(self.options),
        }

    @classmethod
    def from_json(cls, d: Any) -> WorkUnit:
        if not isinstance(d, dict):
            raise UnitError("a work unit is a JSON object")
        uid, targets = d.get("id"), d.get("targets")
        if not isinstance(uid, int) or isinstance(uid, bool):
            raise UnitError("work unit: 'id' must be an integer")
        if not isinstance(targets, list) or not all(
            isinstance(t, dict) and isinstance(t.get("address"), str) for t in targets
        ):
            raise UnitError(f"work unit {uid}: 'targets' must be a list of {{address, name}}")
        return cls(
            uid,
            [Target(t["address"], str(t.get("name") or "")) for t in targets],
            options_from_json(d.get("options"), f"work unit {uid}"),
        )


def port_ranges(ports: Iterable[int]) -> list[list[int]]:
    """``[1, 2, 3, 7]`` → ``[[1, 3], [7, 7]]`` (sorted, without repeats)."""
    out: list[list[int]] = []
    for p in sorted(set(ports)):
        if out and out[-1][1] == p - 1:
            out[-1][1] = p
        else:
            out.append([p, p])
    return out


def ports_from_ranges(ranges: Any, where: str) -> list[int]:
    if not isinstance(ranges, list):
        raise UnitError(f"{where}: port ranges must be a list of [first, last]")
    out: list[int] = []
    for r in ranges:
        ok = isinstance(r, list) and len(r) == 2
        ok = ok and all(isinstance(x, int) and not isinstance(x, bool) for x in r)
        if not ok or not 0 <= r[0] <= r[1] <= 65535:
            raise UnitError(f"{where}: bad port range {r!r}; write [first, last] within 0-65535")
        out.extend(range(r[0], r[1] + 1))
    return out


def options_to_json(opts: ScanOptions) -> dict[str, Any]:
    d = dataclasses.asdict(opts)
    for f in _PORT_FIELDS:
        d[f] = port_ranges(d[f])
    return d


def options_from_json(d: Any, where: str) -> ScanOptions:
    if not isinstance(d, dict):
        raise UnitError(f"{where}: 'options' must be an object")
    fields = {f.name: f for f in dataclasses.fields(ScanOptions)}
    unknown = set(d) - set(fields)
    if unknown:
        raise UnitError(f"{where}: unknown option {sorted(unknown)[0]!r}; is the worker older?")
    kwargs: dict[str, Any] = {}
    defaults = ScanOptions()
    for name, value in d.items():
        if name in _PORT_FIELDS:
            kwargs[name] = ports_from_ranges(value, f"{where}: {name}")
            continue
        want = type(getattr(defaults, name))
        if want is list:
            ok = _int_list(value)
        elif want is dict:  # starttls_ports: protocol → ports
            ok = isinstance(value, dict) and all(
                k in PROTOCOLS and _int_list(v) for k, v in value.items()
            )
        else:
            ok = isinstance(value, want) and (want is bool or not isinstance(value, bool))
        if not ok:
            raise UnitError(f"{where}: option {name!r} must be a {want.__name__}")
        kwargs[name] = value
    return ScanOptions(**kwargs)


def _int_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(x, int) and not isinstance(x, bool) for x in value
    )


def _chunks(seq: Sequence[Any], n: int) -> list[list[Any]]:
    """``seq`` in ``n`` runs of near-equal length (fewer when it is shorter)."""
    n = max(1, min(n, len(seq)))
    size, extra = divmod(len(seq), n)
    out, i = [], 0
    for k in range(n):
        j = i + size + (1 if k < extra else 0)
        out.append(list(seq[i:j]))
        i = j
    return out


def split(targets: Sequence[Target], opts: ScanOptions, workers: int) -> list[WorkUnit]:
    """Units covering every (target, port) of the scan once. With many targets a unit holds a
    run of targets and every port; with fewer targets than workers each target's ports are cut
    into ranges too, so every worker has work."""
    if not targets:
        return []
    workers = max(1, workers)
    groups = _chunks(targets, max(workers * 4, -(-len(targets) // MAX_TARGETS)))
    port_cuts = 1
    if len(targets) < workers * 2:
        port_cuts = max(1, min(workers * 2 // len(targets), len(opts.tcp) // 256))
    units: list[WorkUnit] = []
    for group in groups:
        for k, tcp in enumerate(_chunks(opts.tcp, port_cuts) if opts.tcp else [[]]):
            first = k == 0
            # UDP ports and the path go with a target's first port range only
            o = dataclasses.replace(
                opts,
                tcp=tcp,
                udp=opts.udp if first else [],
                traceroute=opts.traceroute and first,
            )
            units.append(WorkUnit(len(units), group, o))
    return units


def run_unit(unit: WorkUnit) -> dict[str, Any]:
    hosts = [r.to_json() for r in scan_hosts(unit.targets, unit.options)]
    return {"id": unit.id, "hosts": hosts}


def merge(reports: Iterable[HostReport]) -> list[HostReport]:
    """One report per address from the reports of several units, in first-seen order: ports
    joined, up when any unit saw it up, the path from whichever unit traced it."""
    out: dict[str, HostReport] = {}
    for r in reports:
        have = out.get(r.address)
        if have is None:
            out[r.address] = dataclasses.replace(r, ports=list(r.ports))
            continue
        known = {(p.proto, p.port) for p in have.ports}
        have.ports += [p for p in r.ports if (p.proto, p.port) not in known]
        if r.state == UP and have.state != UP:
            have.state, have.reason, have.rtt = UP, r.reason, r.rtt
        have.mac = have.mac or r.mac
        have.name = have.name or r.name
        if have.path is None:
            have.path = r.path
        have.elapsed = max(have.elapsed, r.elapsed)
    for r in out.values():
        r.ports.sort(key=lambda p: (p.proto, p.port))
        if r.state != UP:
            r.state = DOWN
    return list(out.values())


def result_hosts(line: str) -> tuple[int, list[HostReport]]:
    """Read one result line of a worker: its unit id and host reports (UnitError if the
    worker reported an error or wrote something else)."""
    try:
        d = json.loads(line)
    except ValueError as e:
        raise UnitError(f"worker result is not JSON: {e}") from None
    if not isinstance(d, dict) or not isinstance(d.get("id"), int):
        raise UnitError("worker result: expected an object with an integer 'id'")
    if "error" in d:
        raise UnitError(f"unit {d['id']}: {d['error']}")
    hosts = d.get("hosts")
    if not isinstance(hosts, list):
        raise UnitError(f"unit {d['id']}: 'hosts' must be a list")
    try:
        return d["id"], [HostReport.from_json(h) for h in hosts]
    except ValueError as e:
        raise UnitError(f"unit {d['id']}: {e}") from None
