"""Network namespaces for tests: private hosts joined by veth wires, gone when the test ends.

Use the ``netns`` fixture (``from tests.netns import netns``) or the :func:`namespaces` context
manager. Both give a :class:`Namespaces` that creates namespaces with unique names
(``stk-<pid>-<random>-<label>``, loopback up) and veth links between them with IPv4 and IPv6
addresses (IPv6 without duplicate address detection, so they work at once), and on exit, even
after a failure, stops the processes it started in them and deletes every namespace it made
(which takes their veth ends and nftables rulesets with them). Nothing here touches the host's
own network namespace::

    def test_server(netns: Namespaces) -> None:
        server, attacker = netns.create("server"), netns.create("attacker")
        link = netns.link(server, attacker, ["10.9.0.1/24", "fd09::1/64"],
                          ["10.9.0.2/24", "fd09::2/64"])
        server.serve_tcp([22, 80])
        assert attacker.can_connect("10.9.0.1", 22)
        server.run("nft", "list", "ruleset")

Traffic stays between the namespaces of the test; tests must send none anywhere else.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

_counter = itertools.count()

_SERVER = r"""
import selectors, socket, sys
sel = selectors.DefaultSelector()
for port in map(int, sys.argv[1:]):
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((host, port))
        s.listen(128)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        try:
            conn, _ = key.fileobj.accept()
            conn.close()
        except OSError:
            pass
"""

_CONNECT = r"""
import socket, sys
host, port, timeout, source = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
try:
    socket.create_connection(
        (host, port), timeout=timeout, source_address=(source, 0) if source else None
    ).close()
except OSError:
    sys.exit(1)
"""


def unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "network namespaces need iproute2 (`ip`)"
    return None


@dataclass
class Namespace:
    """One network namespace: run commands in it, serve and connect from it."""

    name: str
    _procs: list[subprocess.Popen[str]] = field(default_factory=list, repr=False)

    def argv(self, *command: str) -> list[str]:
        """``command`` as run inside this namespace."""
        return ["ip", "netns", "exec", self.name, *command]

    @property
    def nft(self) -> list[str]:
        """The nft command of this namespace, as an argument-list prefix."""
        return self.argv("nft")

    def run(
        self, *command: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` inside the namespace and wait for it; output is captured."""
        return subprocess.run(
            self.argv(*command),
            input=input,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def popen(self, *command: str, **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``command`` inside the namespace; it is stopped when the namespaces go."""
        proc: subprocess.Popen[str] = subprocess.Popen(self.argv(*command), text=True, **kwargs)
        self._procs.append(proc)
        return proc

    def serve_tcp(self, ports: Sequence[int], *, timeout: float = 20) -> subprocess.Popen[str]:
        """Listen on ``ports`` (IPv4 and IPv6, every address); accept and close at once."""
        ports_text = [str(p) for p in ports]
        proc = self.popen(sys.executable, "-c", _SERVER, *ports_text, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            raise RuntimeError(f"the TCP server in {self.name} did not start (ports {ports})")
        return proc

    def can_connect(
        self, host: str, port: int, *, source: str | None = None, timeout: float = 1.0
    ) -> bool:
        """Whether a TCP handshake from this namespace to ``host``:``port`` completes."""
        args = [host, str(port), str(timeout), source or ""]
        result = self.run(sys.executable, "-c", _CONNECT, *args, check=False)
        return result.returncode == 0

    def stop_processes(self) -> None:
        """Stop what :meth:`popen` started (terminate, then kill)."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=3)
            for stream in (proc.stdout, proc.stderr, proc.stdin):
                if stream is not None:
                    stream.close()
        self._procs.clear()


@dataclass(frozen=True)
class Link:
    """A veth wire between two namespaces, with the addresses given to each end."""

    left: Namespace
    right: Namespace
    left_if: str
    right_if: str
    left_addresses: tuple[str, ...]
    right_addresses: tuple[str, ...]

    def address(self, side: str, version: int = 4) -> str:
        """The first address (without its prefix) of ``side`` ("left" or "right")."""
        addresses = self.left_addresses if side == "left" else self.right_addresses
        for cidr in addresses:
            addr = cidr.split("/", 1)[0]
            if (":" in addr) == (version == 6):
                return addr
        raise LookupError(f"no IPv{version} address on the {side} end")


class Namespaces:
    """Creates namespaces and links, and removes all of them on :meth:`close`."""

    def __init__(self, prefix: str = "stk") -> None:
        self.prefix = prefix
        self.created: list[Namespace] = []

    def create(self, label: str = "ns") -> Namespace:
        """A new namespace with a unique name and its loopback up."""
        name = f"{self.prefix}-{os.getpid()}-{secrets.token_hex(3)}-{label}"
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        namespace = Namespace(name)
        self.created.append(namespace)
        _ip(name, "link", "set", "lo", "up")
        return namespace

    def link(
        self,
        left: Namespace,
        right: Namespace,
        left_addresses: Sequence[str],
        right_addresses: Sequence[str],
    ) -> Link:
        """Join two namespaces with a veth pair; give each end its addresses (CIDR form)."""
        tag = f"{next(_counter) % 1000:03d}{secrets.token_hex(2)}"
        left_if, right_if = f"vs{tag}a", f"vs{tag}b"  # at most 15 characters
        veth = ["type", "veth", "peer", "name", right_if, "netns", right.name]
        subprocess.run(
            ["ip", "link", "add", left_if, "netns", left.name, *veth],
            check=True,
            capture_output=True,
        )
        for namespace, ifname, addresses in (
            (left, left_if, left_addresses),
            (right, right_if, right_addresses),
        ):
            for cidr in addresses:
                extra = ["nodad"] if ":" in cidr else []
                _ip(namespace.name, "addr", "add", cidr, "dev", ifname, *extra)
            _ip(namespace.name, "link", "set", ifname, "up")
        return Link(left, right, left_if, right_if, tuple(left_addresses), tuple(right_addresses))

    def close(self) -> None:
        """Stop the processes started in the namespaces, then delete the namespaces."""
        problems = []
        for namespace in reversed(self.created):
            namespace.stop_processes()
            _kill_leftovers(namespace.name)
            done = subprocess.run(
                ["ip", "netns", "del", namespace.name], capture_output=True, text=True
            )
            if done.returncode != 0:
                problems.append(f"{namespace.name}: {done.stderr.strip()}")
        self.created.clear()
        if problems:
            warnings.warn(f"namespaces not removed: {problems}", stacklevel=2)


def _ip(namespace: str, *args: str) -> None:
    subprocess.run(["ip", "-n", namespace, *args], check=True, capture_output=True)


def _kill_leftovers(namespace: str) -> None:
    """Kill what still runs in a namespace this test made (only the test started anything
    there: children of the processes it started)."""
    listed = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False
    )
    for pid in listed.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


@contextlib.contextmanager
def namespaces(prefix: str = "stk") -> Iterator[Namespaces]:
    """A :class:`Namespaces` whose namespaces are deleted on exit, also after a failure."""
    made = Namespaces(prefix)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def netns() -> Iterator[Namespaces]:
    """Namespaces for one test (skips where there is no root or no ``ip``)."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    with namespaces() as made:
        yield made
