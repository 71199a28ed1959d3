"""Work units: every (target, port) in exactly one unit, JSON round trips, malformed units and
results refused with one clear error, merged results, and units run by worker processes."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockade.sensors.scan.pipeline import ScanOptions
from stockade.sensors.scan.report import Hop, HostReport, PortReport
from stockade.sensors.scan.targets import Target
from stockade.sensors.scan.units import (
    UnitError,
    WorkUnit,
    merge,
    port_ranges,
    ports_from_ranges,
    result_hosts,
    split,
)
from tests.netns import Namespaces, unavailable


def targets(n: int) -> list[Target]:
    return [Target(f"10.0.{i // 250}.{i % 250 + 1}") for i in range(n)]


@pytest.mark.parametrize(
    ("hosts", "ports", "workers"), [(1, 65535, 2), (3, 1000, 4), (300, 100, 2), (5, 10, 8)]
)
def test_split_covers_every_target_and_port_once(hosts: int, ports: int, workers: int) -> None:
    opts = ScanOptions(tcp=list(range(1, ports + 1)), udp=[53, 161], traceroute=True)
    units = split(targets(hosts), opts, workers)
    pairs = Counter((t.address, p) for u in units for t in u.targets for p in u.options.tcp)
    assert len(pairs) == hosts * ports and set(pairs.values()) == {1}
    udp = Counter((t.address, p) for u in units for t in u.targets for p in u.options.udp)
    assert len(udp) == hosts * 2 and set(udp.values()) == {1}
    traced = Counter(t.address for u in units for t in u.targets if u.options.traceroute)
    assert len(traced) == hosts and set(traced.values()) == {1}
    assert len(units) >= min(workers, hosts * max(1, ports // 256))
    assert all(len(u.targets) <= 64 for u in units)


def test_unit_json_round_trip_is_small() -> None:
    opts = ScanOptions(tcp=list(range(1, 65536)), banners=True, tls_ports=[443])
    opts.starttls_ports = {"postgres": [5433]}
    u = split(targets(1), opts, 1)[0]
    text = json.dumps(u.to_json())
    assert len(text) < 400
    back = WorkUnit.from_json(json.loads(text))
    assert back == u


@pytest.mark.parametrize(
    ("unit", "message"),
    [
        ([], "a work unit is a JSON object"),
        ({"id": "1", "targets": []}, "'id' must be an integer"),
        ({"id": 1, "targets": [{"name": "x"}]}, "'targets' must be a list"),
        ({"id": 1, "targets": [], "options": []}, "'options' must be an object"),
        ({"id": 1, "targets": [], "options": {"tcp": [[5, 1]]}}, "bad port range [5, 1]"),
        ({"id": 1, "targets": [], "options": {"tcp": [[1, 70000]]}}, "bad port range"),
        ({"id": 1, "targets": [], "options": {"retries": "2"}}, "option 'retries' must be a int"),
        ({"id": 1, "targets": [], "options": {"banners": 1}}, "option 'banners' must be a bool"),
        ({"id": 1, "targets": [], "options": {"bogus": 1}}, "unknown option 'bogus'"),
        (
            {"id": 1, "targets": [], "options": {"starttls_ports": {"gopher": [70]}}},
            "option 'starttls_ports' must be a dict",
        ),
    ],
)
def test_malformed_units(unit: object, message: str) -> None:
    with pytest.raises(UnitError, match=None) as e:
        WorkUnit.from_json(unit)
    assert message in str(e.value)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda c: (
            st.lists(c, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "id",
                        "targets",
                        "options",
                        "tcp",
                        "address",
                        "retries",
                        "hosts",
                        "error",
                        "ports",
                        "state",
                    ]
                ),
                c,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
def test_units_and_results_fuzzed(value: object) -> None:
    for fn in (WorkUnit.from_json, lambda v: result_hosts(json.dumps(v))):
        with contextlib.suppress(UnitError):
            fn(value)


def test_port_ranges() -> None:
    assert port_ranges([7, 1, 2, 3, 3]) == [[1, 3], [7, 7]]
    assert ports_from_ranges([[1, 3], [7, 7]], "x") == [1, 2, 3, 7]


def test_merge_joins_the_units_of_a_host() -> None:
    a = HostReport("10.0.0.2", state="down", ports=[PortReport(2, "tcp", "filtered")])
    b = HostReport(
        "10.0.0.2",
        state="up",
        reason="syn-ack",
        ports=[PortReport(1, "tcp", "open")],
        path=[Hop(1, "10.0.0.2")],
    )
    c = HostReport("10.0.0.3", state="up")
    out = merge([a, c, b])
    assert [(h.address, h.state) for h in out] == [("10.0.0.2", "up"), ("10.0.0.3", "up")]
    assert [p.port for p in out[0].ports] == [1, 2] and out[0].path == b.path
    assert a.ports == [PortReport(2, "tcp", "filtered")]  # inputs untouched


def test_worker_process_answers_each_unit() -> None:
    units = [
        {
            "id": 7,
            "targets": [{"address": "127.0.0.1", "name": ""}],
            "options": {"tcp": [[1, 1]], "method": "connect", "retries": 0},
        },
        {"id": 8, "targets": "nope"},
        "garbage",
    ]
    text = "\n".join(json.dumps(u) if not isinstance(u, str) else u for u in units) + "\n"
    r = subprocess.run(
        [sys.executable, "-m", "stockade.sensors.scan.worker"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = r.stdout.splitlines()
    assert len(lines) == 3
    uid, hosts = result_hosts(lines[0])
    assert uid == 7 and hosts[0].port(1) is not None
    assert hosts[0].port(1).state == "closed"  # type: ignore[union-attr]
    for line in lines[1:]:
        with pytest.raises(UnitError):
            result_hosts(line)


def test_workers_share_a_round_and_agree_with_one_process(netns: Namespaces) -> None:
    why = unavailable()
    if why:
        pytest.skip(why)
    scanner, target = netns.create("wus"), netns.create("wut")
    addrs = [f"10.79.0.{i}" for i in range(2, 6)]
    netns.link(scanner, target, ["10.79.0.1/24"], [f"{a}/24" for a in addrs])
    target.serve_tcp([22, 8080, 40000])
    code = (
        "import json, sys\n"
        "from stockade.sensors.scan.pipeline import ScanOptions\n"
        "from stockade.sensors.scan.pool import run_units\n"
        "from stockade.sensors.scan.targets import Target\n"
        "from stockade.sensors.scan.units import merge, split\n"
        "workers = int(sys.argv[1])\n"
        "opts = ScanOptions(tcp=list(range(1, 65536)), method='connect')\n"
        f"units = split([Target(a) for a in {addrs!r}], opts, workers)\n"
        "hosts = merge(run_units(units, workers))\n"
        "print(json.dumps({'units': len(units), 'hosts': [[h.address, h.state, len(h.ports), "
        "[p.port for p in h.open_ports()]] for h in hosts]}))\n"
    )
    one = json.loads(scanner.run(sys.executable, "-c", code, "1", timeout=600).stdout)
    two = json.loads(scanner.run(sys.executable, "-c", code, "2", timeout=600).stdout)
    assert one["units"] == two["units"] == 4  # one unit a target, shared by the workers
    expected = [[a, "up", 65535, [22, 8080, 40000]] for a in addrs]
    assert one["hosts"] == expected and two["hosts"] == expected
