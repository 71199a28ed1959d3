"""The allowlist guard, in front of every responder (nftables, command, dry run).

Two ways of proving that no guarded responder bans loopback, the host's own addresses, an
ignoreip address, an address inside an ignoreip range, or a /64 overlapping any of them:

- in this process, with the host's addresses given to the allowlist (an injected source), for
  many cases quickly;
- inside a network namespace, in a subprocess, with the *real* source (psutil): there "this
  host" is the namespace, and its own veth addresses must be refused.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stockade.responders.allowlist import Allowlist, show
from stockade.responders.base import Ban, Responder
from stockade.responders.command import CommandResponder
from stockade.responders.dryrun import DryRunResponder
from stockade.responders.guard import Guarded, guard
from stockade.responders.nftables import NftablesResponder
from tests.netns import Namespaces

HOST = ["192.0.2.7", "2001:db8:bb::1"]
IGNOREIP = ["198.51.100.7", "203.0.113.0/24", "2001:db8:aa::5"]
FORBIDDEN = {
    "127.0.0.1": "127.0.0.1 is loopback",
    "127.0.0.53": "127.0.0.53 is loopback",
    "::1": "::1 is loopback",
    "::ffff:127.0.0.1": "127.0.0.1 is loopback",
    "192.0.2.7": "192.0.2.7 is an address of this host",
    "::ffff:192.0.2.7": "192.0.2.7 is an address of this host",
    "2001:db8:bb::1": "2001:db8:bb::1 is an address of this host",
    "198.51.100.7": "198.51.100.7 is in ignoreip 198.51.100.7",
    "203.0.113.9": "203.0.113.9 is in ignoreip 203.0.113.0/24",
    "2001:db8:aa::5": "2001:db8:aa::5 is in ignoreip 2001:db8:aa::5",
    "2001:db8:aa::/64": "2001:db8:aa::/64 contains ignoreip 2001:db8:aa::5",
    "2001:db8:bb::/64": "2001:db8:bb::/64 contains 2001:db8:bb::1, an address of this host",
    "203.0.0.0/16": "203.0.0.0/16 contains ignoreip 203.0.113.0/24",
}
ALLOWED = ["192.0.2.8", "198.51.100.8", "2001:db8:cc::/64", "2001:db8:aa:1::/64"]

RECORDER = """#!{python}
import sys
with open(sys.argv[1], "a") as f:
    f.write(sys.argv[2] + "\\n")
"""


def bans(targets: list[str], now: float) -> list[Ban]:
    return [Ban(ipaddress.ip_network(t), "sshd", until=now + 600) for t in targets]


def allowlist() -> Allowlist:
    return Allowlist.from_entries(IGNOREIP, host_addresses=lambda: HOST)


def write_recorder(tmp_path: Path) -> tuple[Path, Path]:
    script = tmp_path / "record"
    script.write_text(RECORDER.format(python=sys.executable))
    script.chmod(0o755)
    return script, tmp_path / "banned"


Kind = tuple[Responder, Callable[[], set[str]]]


@pytest.fixture(params=["nftables", "command", "dry-run"])
def kind(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kind]:
    """A real responder of each kind, and a way to read back what it placed."""
    if request.param == "dry-run":
        dry = DryRunResponder()
        yield dry, lambda: {show(b.network) for b in dry.banned.values()}
    elif request.param == "command":
        script, out = write_recorder(tmp_path)
        command = CommandResponder([str(script), str(out), "<ip>"])
        yield command, lambda: set(out.read_text().split()) if out.exists() else set()
    else:
        if shutil.which("nft") is None:
            pytest.skip("needs nftables (`nft`)")
        netns = request.getfixturevalue("netns")
        namespace = netns.create("guard")
        nft = NftablesResponder(namespace.nft)
        yield nft, lambda: {show(n) for n, _, _ in nft.list_active()}


def test_a_guarded_responder_bans_none_of_the_allowlist(
    kind: Kind, caplog: pytest.LogCaptureFixture
) -> None:
    responder, placed = kind
    guarded = Guarded(responder, allowlist())
    now = time.time()
    with caplog.at_level(logging.WARNING, logger="stockade.respond"):
        guarded.apply(bans([*FORBIDDEN, *ALLOWED], now), now=now)
    assert placed() == set(ALLOWED)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(FORBIDDEN)
    for (target, reason), line in zip(FORBIDDEN.items(), warnings, strict=True):
        shown = show(ipaddress.ip_network(target))
        assert line == f"{responder.name}: not banning {shown} for jail sshd: {reason}"


def test_nothing_reaches_the_responder_when_every_ban_is_refused() -> None:
    broken = NftablesResponder(["/nonexistent/nft"])  # would raise if it were called
    Guarded(broken, allowlist()).apply(bans(list(FORBIDDEN), time.time()), now=time.time())


def test_screen_splits_and_explains() -> None:
    guarded = Guarded(DryRunResponder(), allowlist())
    allowed, refused = guarded.screen(bans(["127.0.0.1", "192.0.2.8"], 0.0))
    assert [show(b.network) for b in allowed] == ["192.0.2.8"]
    assert [(show(b.network), why) for b, why in refused] == [
        ("127.0.0.1", "127.0.0.1 is loopback")
    ]


def test_remove_and_flush_pass_through() -> None:
    dry = DryRunResponder()
    guarded = Guarded(dry, allowlist())
    guarded.remove(bans(["127.0.0.1", "192.0.2.8"], 0.0))  # lifting is never refused
    guarded.flush()
    assert [(a.verb, a.ban and show(a.ban.network)) for a in dry.actions] == [
        ("unban", "127.0.0.1"),
        ("unban", "192.0.2.8"),
        ("flush", None),
    ]


def test_guard_wraps_once_and_keeps_the_name() -> None:
    dry = DryRunResponder()
    first = guard(dry, allowlist())
    again = guard(first, Allowlist.from_entries([], ignoreself=False))
    assert again.inner is dry
    assert again.name == "dry-run"
    assert again.allowlist is not first.allowlist


# --- inside a namespace, with the real host-address source ------------------------------------

_IN_NAMESPACE = r"""
import ipaddress, json, sys, time
from stockade.responders.allowlist import Allowlist, show
from stockade.responders.base import Ban
from stockade.responders.command import CommandResponder
from stockade.responders.dryrun import DryRunResponder
from stockade.responders.guard import Guarded
from stockade.responders.nftables import NftablesResponder

kind, recorder, out, targets = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
allowlist = Allowlist.from_entries(["198.51.100.7", "203.0.113.0/24"])  # + this host, via psutil
if kind == "nftables":
    inner = NftablesResponder()  # plain "nft": this namespace's ruleset
elif kind == "command":
    inner = CommandResponder([recorder, out, "<ip>"])
else:
    inner = DryRunResponder()
now = time.time()
Guarded(inner, allowlist).apply(
    [Ban(ipaddress.ip_network(t), "sshd", until=now + 600) for t in targets], now=now
)
if kind == "nftables":
    placed = [show(n) for n, _, _ in inner.list_active()]
elif kind == "command":
    placed = open(out).read().split()
else:
    placed = [show(b.network) for b in inner.banned.values()]
print(json.dumps(sorted(placed)))
"""

OWN = ["10.88.0.1", "fd88::1", "::ffff:10.88.0.1", "fd88::/64", "10.88.0.0/24"]
OTHERS = ["127.0.0.1", "::1", "198.51.100.7", "203.0.113.9"]
STRANGERS = ["10.88.0.2", "fd88:1::/64", "192.0.2.8"]


@pytest.mark.parametrize("which", ["nftables", "command", "dry-run"])
def test_in_a_namespace_its_own_addresses_are_never_banned(
    netns: Namespaces,
    tmp_path: Path,
    which: str,
) -> None:
    if which == "nftables" and shutil.which("nft") is None:
        pytest.skip("needs nftables (`nft`)")
    host, peer = netns.create("host"), netns.create("peer")
    netns.link(host, peer, ["10.88.0.1/24", "fd88::1/64"], ["10.88.0.2/24", "fd88::2/64"])
    script, out = write_recorder(tmp_path)
    targets = [*OWN, *OTHERS, *STRANGERS]
    result = host.run(sys.executable, "-c", _IN_NAMESPACE, which, str(script), str(out), *targets)
    assert json.loads(result.stdout) == sorted(STRANGERS)
    for target in OWN:
        assert f"not banning {show(ipaddress.ip_network(target))} for jail sshd" in result.stderr
    if which == "nftables":  # and from outside, what the namespace's kernel holds
        listing = host.run("nft", "list", "table", "inet", "stockade").stdout
        assert "10.88.0.2" in listing and "fd88:1::/64" in listing
        assert "10.88.0.1" not in listing and "fd88::/64" not in listing


def test_no_module_builds_a_responder_without_the_guard() -> None:
    """A tripwire: a module that imports a responder to build it also wraps it in the guard."""
    src = Path(__file__).resolve().parents[2] / "src" / "stockade"
    own = {"nftables.py", "command.py", "dryrun.py", "guard.py"}
    imports = re.compile(
        r"stockade\.responders\.(nftables|command|dryrun)\b"
        r"|from stockade\.responders import .*\b(nftables|command|dryrun)\b"
        r"|from \.(nftables|command|dryrun) import"
    )
    unguarded = []
    for path in src.rglob("*.py"):
        if path.parent.name == "responders" and path.name in own:
            continue
        text = path.read_text()
        if imports.search(text) and "guard(" not in text and "Guarded(" not in text:
            unguarded.append(str(path.relative_to(src)))
    assert unguarded == []
