"""``stockade scan`` on namespace hosts: nmap's flags, JSON per host, exclusions, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import Instance
from tests.netns import Link, Namespaces, unavailable

OPEN = [22, 80, 443]


@pytest.fixture
def hosts(netns: Namespaces) -> Link:
    why = unavailable()
    if why:
        pytest.skip(why)
    scanner, target = netns.create("scli"), netns.create("tcli")
    link = netns.link(scanner, target, ["10.76.0.1/24"], ["10.76.0.2/24", "10.76.0.3/24"])
    target.serve_tcp(OPEN)
    return link


def scan(instance: Instance, link: Link, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "stockade", *instance.args("scan", *args)]
    return link.left.run(*argv, check=False, timeout=300)


def test_json_per_host_with_exclusions_and_target_file(instance: Instance, hosts: Link) -> None:
    lst = instance.base / "targets.txt"
    lst.write_text("# lab\n10.76.0.2\n10.76.0.3 10.76.0.4  # .4 is nobody\n")
    r = scan(
        instance, hosts, "-iL", str(lst), "--exclude", "10.76.0.3", "-p", "1-1000", "-Pn", "--json"
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [(h["address"], h["state"]) for h in rows] == [
        ("10.76.0.2", "up"),
        ("10.76.0.4", "down"),
    ]
    up = rows[0]
    assert [p["port"] for p in up["ports"] if p["state"] == "open"] == OPEN
    assert len(up["ports"]) == 1000
    assert {p["state"] for p in rows[1]["ports"]} == {"filtered"}


@pytest.mark.parametrize("kind", ["-sT", "-sS"])
def test_table_output_with_nmap_flags(instance: Instance, hosts: Link, kind: str) -> None:
    r = scan(instance, hosts, kind, "-Pn", "-p", "22,80,81", "10.76.0.3")
    assert r.returncode == 0, r.stderr
    assert "10.76.0.3: up, 3 ports" in r.stdout
    assert "22/tcp  open" in r.stdout and "81/tcp  closed" in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-p", "99999", "127.0.0.1"), "-p: '99999': ports are 0-65535"),
        (("127.0.0.0/33",), "target '127.0.0.0/33'"),
        ((), "no target"),
        (("-iL", "/nonexistent/list"), "-iL /nonexistent/list: cannot read"),
        (("--exclude", "x..y", "127.0.0.1"), "--exclude 'x..y'"),
        (("-sS", "-sT", "127.0.0.1"), "not allowed with argument"),
    ],
)
def test_bad_input_is_one_line(instance: Instance, args: tuple[str, ...], message: str) -> None:
    r = instance.run("scan", *args)
    assert r.rc == 2
    assert message in r.err and r.err.strip().count("\n") == 0
