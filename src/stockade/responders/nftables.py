"""The nftables responder: bans are elements of sets, and the kernel ends them on time.

stockade keeps to a table of its own (``inet stockade`` by default) and never touches another::

    table inet stockade {
        set ban4 { type ipv4_addr; flags interval,timeout; }     # every port, IPv4
        set ban6 { type ipv6_addr; flags interval,timeout; }     # every port, IPv6
        set sshd4 { ... }  set sshd6 { ... }                     # one pair per jail with ports
        chain input {
            type filter hook input priority filter - 10; policy accept;
            ip saddr @ban4 drop
            ip6 saddr @ban6 drop
        }
        chain jail-sshd {
            type filter hook input priority filter - 10; policy accept;
            ip saddr @sshd4 tcp dport { 22 } drop
            ip6 saddr @sshd6 tcp dport { 22 } drop
        }
    }

- Priority ``filter - 10`` runs the bans before the host's own filter chains; the policy accepts,
  so whatever stockade does not drop goes on to the host's rules unchanged.
- Each jail that bans on some ports only gets its own base chain, rewritten (``flush chain`` and
  its two rules) in every transaction that bans for it: its rules exist exactly once, follow the
  jail's current ports, and no ``nft list`` is needed to find out whether they are there.
- Elements carry a kernel timeout, so bans end on time even while stockade is stopped, and a
  ``comment`` with the jail's name, so :meth:`NftablesResponder.list_active` can tell whose they
  are. Permanent bans have no timeout.

Every change is ONE ``nft -f -`` transaction that first (re)declares the table, sets and chains
(``add`` is idempotent for them), so it works on an empty ruleset and either all of it applies or
none of it does. Re-banning an element must update its expiry, and ``add element`` keeps the old
timeout on kernels before 6.10; so each element is written as ``add`` (so that it exists),
``delete``, then ``add`` with the new timeout, all in the same transaction. An interval set may
not hold overlapping elements; when a batch collides with elements already there (a /64 over a
banned /128, say), nft refuses the transaction, and the responder reads the set, works out
elements that do not overlap, and tries once more. There, an exact re-ban takes the new expiry,
and where networks merely overlap every address keeps the longest of its bans: a narrower ban
inside a longer wider one is already in force; a wider, longer ban swallows narrower ones; and
otherwise the older element is split around the newer one (``address_exclude``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import re
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stockade.responders.allowlist import normalise, show
from stockade.responders.base import Ban, Network, ResponderError

BAN4, BAN6 = "ban4", "ban6"
GLOBAL_CHAIN = "input"
BASE_CHAIN = "type filter hook input priority filter - 10; policy accept;"
SET_FLAGS = "flags timeout, interval;"
MAX_TIMEOUT = 36500 * 86400  # 100 years; longer bans are cut to this (use until=None for ever)
ALL_PORTS = ((0, 65535),)
PROTOCOLS = ("tcp", "udp", "all")

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")
_RESERVED = {"ban", "ip"}  # ban4/ban6 are the global sets; "ip6" is an nft keyword
_RANGE = re.compile(r"(\d+)\s*[:-]\s*(\d+)")
_ERROR = re.compile(r"^(?:[^:\n]+:(\d+):(\d+)-(\d+): )?Error: (.*)$", re.MULTILINE)

State = dict[str, dict[Network, "Element"]]
"""What the kernel holds: set name → element → expiry and jail."""


@dataclass(frozen=True, slots=True)
class Element:
    """An element's expiry (epoch seconds; None = permanent) and the jail named in its comment."""

    expires: float | None
    jail: str = ""


# --- names, ports, values: pure ------------------------------------------------------------


def jail_names(jail: str) -> tuple[str, str, str]:
    """The IPv4 set, IPv6 set and chain of a jail: ``sshd4``, ``sshd6``, ``jail-sshd``.

    A name nft could misread (a keyword, another character set, ``ban``, too long) becomes
    ``j_<cleaned>_<hash>``, which keeps different jails apart.
    """
    base = jail
    if not _NAME.fullmatch(jail) or jail in _RESERVED:
        cleaned = re.sub(r"[^A-Za-z0-9_]", "_", jail)[:40]
        base = f"j_{cleaned}_{hashlib.sha256(jail.encode()).hexdigest()[:8]}"
    return f"{base}4", f"{base}6", f"jail-{base}"


def port_match(ports: Sequence[str] | None, protocol: str) -> str | None:
    """The nft match for a jail's ports (``tcp dport { 22, 8000-8100 }``); None = every port.

    Ports are written as fail2ban writes them: numbers, service names (``ssh``), ranges
    (``8000:8100`` or ``8000-8100``), several per string separated by commas (``http,https``).
    ``0:65535`` (or ``1:65535``) is every port.
    """
    if protocol not in PROTOCOLS:
        raise ResponderError(f"protocol {protocol!r} is not one of tcp, udp, all")
    if ports is None:
        return None
    spans = _merge_spans(_port_span(tok, protocol) for tok in _port_tokens(ports))
    if not spans:
        raise ResponderError(f"no ports in {list(ports)!r}; leave ports unset for every port")
    if spans in (ALL_PORTS, ((1, 65535),)):
        return None
    values = ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in spans)
    if protocol == "all":
        return f"meta l4proto {{ tcp, udp }} th dport {{ {values} }}"
    return f"{protocol} dport {{ {values} }}"


def _port_tokens(ports: Sequence[str]) -> list[str]:
    return [tok for item in ports for tok in re.split(r"[\s,]+", item.strip()) if tok]


def _port_span(token: str, protocol: str) -> tuple[int, int]:
    if token.isdigit():
        return _port_number(token), _port_number(token)
    found = _RANGE.fullmatch(token)
    if found:
        low, high = _port_number(found[1]), _port_number(found[2])
        if low > high:
            raise ResponderError(f"port range {token!r} runs backwards")
        return low, high
    for proto in ("tcp", "udp") if protocol == "all" else (protocol,):
        try:
            number = socket.getservbyname(token, proto)
        except OSError:
            continue
        return number, number
    raise ResponderError(f"unknown port {token!r} (not a number, range or name in /etc/services)")


def _port_number(text: str) -> int:
    number = int(text)
    if number > 65535:
        raise ResponderError(f"port {text} is out of range (0-65535)")
    return number


def _merge_spans(spans: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(spans):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return tuple(merged)


def timeout_text(expires: float, now: float) -> str:
    """``expires - now`` rounded up to whole seconds, at least 1 s, as nft reads it."""
    seconds = min(max(1, math.ceil(expires - now)), MAX_TIMEOUT)
    days, rest = divmod(seconds, 86400)
    return f"{days}d{rest}s" if days else f"{seconds}s"  # nft refuses 10**8 s and more


def comment_text(jail: str) -> str:
    """A jail's name as an element comment (nft's quoted strings cannot hold a quote)."""
    return re.sub(r"[^A-Za-z0-9_.:@+-]", "_", jail)[:64]


# --- overlap-free element sets: pure -------------------------------------------------------


def outlives(held: Element, new: Element) -> bool:
    """``held`` lasts at least as long as ``new``."""
    if held.expires is None:
        return True
    return new.expires is not None and held.expires >= new.expires


class Elements:
    """The elements of one interval set, kept free of overlaps as the kernel requires."""

    def __init__(self, items: Mapping[Network, Element] | None = None) -> None:
        self.items: dict[Network, Element] = dict(items or {})
        self._lengths = Counter(net.prefixlen for net in self.items)

    def insert(self, net: Network, new: Element) -> None:
        """Ban ``net``: an exact re-ban replaces; overlaps keep each address's longest ban."""
        if net in self.items:
            self.items[net] = new
            return
        wider = self._wider(net)
        if wider is not None:
            self._split(wider, net, new)
            return
        kept = []
        for inner in self._narrower(net):
            if outlives(self.items[inner], new):
                kept.append(inner)
            else:
                self._drop(inner)
        for piece in _exclude(net, kept):
            self._put(piece, new)

    def discard(self, net: Network) -> None:
        """Lift exactly ``net`` (a wider or narrower element is another ban and stays)."""
        if net in self.items:
            self._drop(net)

    def _split(self, wider: Network, net: Network, new: Element) -> None:
        held = self.items[wider]
        if outlives(held, new):
            return  # already banned at least as long
        self._drop(wider)
        for piece in minus(wider, net):
            self._put(piece, held)
        self._put(net, new)

    def _wider(self, net: Network) -> Network | None:
        for length in sorted(self._lengths):
            if length >= net.prefixlen:
                break
            candidate = net.supernet(new_prefix=length)
            if candidate in self.items:
                return candidate
        return None

    def _narrower(self, net: Network) -> list[Network]:
        if not any(length > net.prefixlen for length in self._lengths):
            return []
        return [n for n in self.items if inside(n, net)]

    def _put(self, net: Network, element: Element) -> None:
        self.items[net] = element
        self._lengths[net.prefixlen] += 1

    def _drop(self, net: Network) -> None:
        del self.items[net]
        self._lengths[net.prefixlen] -= 1
        if not self._lengths[net.prefixlen]:
            del self._lengths[net.prefixlen]


def _exclude(net: Network, holes: Sequence[Network]) -> list[Network]:
    """``net`` minus the (disjoint, contained) ``holes``, as CIDR blocks."""
    pieces = [net]
    for hole in holes:
        out: list[Network] = []
        for piece in pieces:
            if inside(hole, piece):
                out += minus(piece, hole)
            else:
                out.append(piece)
        pieces = out
    return pieces


def inside(inner: Network, outer: Network) -> bool:
    """``inner`` lies within ``outer`` (or is it); networks of different versions never do."""
    if isinstance(inner, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
        return inner.subnet_of(outer)
    if isinstance(inner, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
        return inner.subnet_of(outer)
    return False


def minus(net: Network, hole: Network) -> list[Network]:
    """``net`` without ``hole`` (which lies within it), as CIDR blocks; nothing when equal."""
    if net == hole:
        return []
    if isinstance(net, ipaddress.IPv4Network) and isinstance(hole, ipaddress.IPv4Network):
        return list(net.address_exclude(hole))
    if isinstance(net, ipaddress.IPv6Network) and isinstance(hole, ipaddress.IPv6Network):
        return list(net.address_exclude(hole))
    raise ValueError(f"{hole} is not within {net}")


# --- scripts: pure -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one ban goes: a set, a network and its element."""

    set: str
    network: Network
    element: Element


@dataclass(frozen=True, slots=True)
class Plan:
    """What one apply writes: elements per set, each port-limited jail's match, and the bans
    that cannot be written (bad ports or protocol), each with why."""

    placements: tuple[Placement, ...]
    jails: Mapping[str, str]  # jail → port match
    rejected: tuple[str, ...] = ()


def plan(bans: Sequence[Ban], *, now: float) -> Plan:
    """Where each ban goes (bans whose ``until`` is not after ``now`` are left out)."""
    placements: list[Placement] = []
    jails: dict[str, str] = {}
    rejected: list[str] = []
    for ban in bans:
        if ban.until is not None and ban.until <= now:
            continue
        try:
            match = port_match(ban.ports, ban.protocol)
        except ResponderError as exc:
            rejected.append(f"{show(ban.network)} for jail {ban.jail}: {exc}")
            continue
        if match is not None:
            jails[ban.jail] = match  # the last ban of a jail decides its ports
        net = normalise(ban.network)
        element = Element(ban.until, comment_text(ban.jail))
        placements.append(
            Placement(set_for(ban.jail, net, limited=match is not None), net, element)
        )
    return Plan(tuple(placements), jails, tuple(rejected))


def set_for(jail: str, net: Network, *, limited: bool) -> str:
    """The set a ban goes in: ``ban4``/``ban6`` for every port, else the jail's own."""
    set4, set6 = jail_names(jail)[:2] if limited else (BAN4, BAN6)
    return set4 if net.version == 4 else set6


def element_text(net: Network, element: Element | None = None, *, now: float = 0.0) -> str:
    """One element as nft writes it: ``10.0.0.1 timeout 600s comment "sshd"``."""
    text = show(net)
    if element is None:
        return text
    if element.expires is not None:
        text += f" timeout {timeout_text(element.expires, now)}"
    if element.jail:
        text += f' comment "{comment_text(element.jail)}"'
    return text


def _set_type(name: str) -> str:
    return "ipv6_addr" if name.endswith("6") else "ipv4_addr"


def declare(table: str, sets: Iterable[str]) -> list[str]:
    """Lines that create the table and ``sets`` when they are missing (idempotent)."""
    lines = [f"add table inet {table}"]
    for name in sorted(set(sets)):
        lines.append(f"add set inet {table} {name} {{ type {_set_type(name)}; {SET_FLAGS} }}")
    return lines


def chains(table: str, jails: Mapping[str, str]) -> list[str]:
    """Lines that (re)write the global chain and the chain of each jail in ``jails``."""
    lines = [f"add chain inet {table} {GLOBAL_CHAIN} {{ {BASE_CHAIN} }}"]
    lines += _rewrite(table, GLOBAL_CHAIN, [f"ip saddr @{BAN4} drop", f"ip6 saddr @{BAN6} drop"])
    for jail, match in sorted(jails.items()):
        set4, set6, chain = jail_names(jail)
        lines.append(f"add chain inet {table} {chain} {{ {BASE_CHAIN} }}")
        rules = [f"ip saddr @{set4} {match} drop", f"ip6 saddr @{set6} {match} drop"]
        lines += _rewrite(table, chain, rules)
    return lines


def _rewrite(table: str, chain: str, rules: Sequence[str]) -> list[str]:
    return [f"flush chain inet {table} {chain}"] + [
        f"add rule inet {table} {chain} {rule}" for rule in rules
    ]


def _element_lines(table: str, verb: str, name: str, items: Sequence[str]) -> list[str]:
    return [f"{verb} element inet {table} {name} {{ {', '.join(items)} }}"] if items else []


def apply_script(table: str, todo: Plan, state: State | None, *, now: float) -> str:
    """The transaction for ``todo``; ``state`` is what the kernel holds, None = not read.

    Without ``state`` each element is added, deleted and added again with its timeout (it may
    or may not be there); with it, only what changes is deleted and added.
    """
    sets = {p.set for p in todo.placements} | {BAN4, BAN6}
    for jail in todo.jails:
        sets.update(jail_names(jail)[:2])
    lines = declare(table, sets) + chains(table, todo.jails)
    for name in sorted({p.set for p in todo.placements}):
        before = (state or {}).get(name, {})
        after = Elements(before)
        for p in todo.placements:
            if p.set == name:
                after.insert(p.network, p.element)
        lines += _changes(table, name, before, after.items, known=state is not None, now=now)
    return "\n".join(lines) + "\n"


def _changes(
    table: str,
    name: str,
    before: Mapping[Network, Element],
    after: Mapping[Network, Element],
    *,
    known: bool,
    now: float,
) -> list[str]:
    changed = [net for net, el in after.items() if before.get(net) != el]
    gone = [net for net, el in before.items() if after.get(net) != el]
    if not known:  # unknown state: make each element exist, so that deleting it cannot fail
        gone = changed
        lines = _element_lines(table, "add", name, [show(net) for net in changed])
    else:
        lines = []
    lines += _element_lines(table, "delete", name, [show(net) for net in gone])
    items = [element_text(net, after[net], now=now) for net in changed]
    return lines + _element_lines(table, "add", name, items)


def remove_script(table: str, targets: Sequence[tuple[str, Network]], state: State | None) -> str:
    """The transaction that lifts exactly these elements (those missing are no error)."""
    lines = declare(table, {name for name, _ in targets})
    for name in sorted({name for name, _ in targets}):
        nets = list(dict.fromkeys(net for set_name, net in targets if set_name == name))
        if state is None:  # add first, so that deleting cannot fail
            lines += _element_lines(table, "add", name, [show(net) for net in nets])
        else:
            nets = [net for net in nets if net in state.get(name, {})]
        lines += _element_lines(table, "delete", name, [show(net) for net in nets])
    return "\n".join(lines) + "\n"


def remove_targets(bans: Sequence[Ban]) -> list[tuple[str, Network]]:
    """The set and network each ban was placed in (a ban with bad ports never was)."""
    targets = []
    for ban in bans:
        try:
            match = port_match(ban.ports, ban.protocol)
        except ResponderError:
            continue
        net = normalise(ban.network)
        targets.append((set_for(ban.jail, net, limited=match is not None), net))
    return targets


# --- reading `nft -j list table`: pure -----------------------------------------------------


def parse_state(listing: str, *, now: float) -> State:
    """Sets and elements from ``nft -j list table`` output; expiries become epoch seconds."""
    state: State = {}
    for item in json.loads(listing).get("nftables", []):
        found = item.get("set")
        if not isinstance(found, dict):
            continue
        elements = state.setdefault(str(found["name"]), {})
        for raw in found.get("elem", []):
            for net, element in _parse_element(raw, now):
                elements[net] = element
    return state


def _parse_element(raw: Any, now: float) -> list[tuple[Network, Element]]:
    details: dict[str, Any] = {}
    value = raw
    if isinstance(raw, dict) and "elem" in raw:
        details = raw["elem"]
        value = details.get("val")
    left = details.get("expires", details.get("timeout"))
    expires = None if left is None else now + float(left)
    element = Element(expires, str(details.get("comment", "")))
    return [(net, element) for net in _parse_value(value)]


def _parse_value(value: Any) -> list[Network]:
    if isinstance(value, str):
        return [ipaddress.ip_network(value)]
    if isinstance(value, dict) and "prefix" in value:
        prefix = value["prefix"]
        return [ipaddress.ip_network(f"{prefix['addr']}/{prefix['len']}")]
    if isinstance(value, dict) and "range" in value:
        low, high = (ipaddress.ip_address(v) for v in value["range"])
        return list(ipaddress.summarize_address_range(low, high))
    return []


def first_error(stderr: str, returncode: int) -> str:
    """nft's first error as one line, with the text it points at."""
    found = _ERROR.search(stderr)
    if found is None:
        lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
        return lines[0] if lines else f"nft exited with status {returncode}"
    message = found[4].strip()
    if found[1] is None:
        return message
    source = stderr[found.end() :].lstrip("\n").split("\n", 1)[0]
    start, end = int(found[2]), int(found[3])
    command = " ".join(source.split()[:5])
    pointed = source[start - 1 : end]
    if len(pointed) > 60:
        pointed = pointed[:60] + "…"
    return f"{message}: {pointed!r} in `{command} …`"


# --- the responder -------------------------------------------------------------------------


class NftablesResponder:
    """Bans in a table of stockade's own, in one ``nft -f -`` transaction per call.

    ``nft`` is the command to run as an argument list (tests run it in a namespace with
    ``["ip", "netns", "exec", NAME, "nft"]``).
    """

    def __init__(
        self,
        nft: Sequence[str] = ("nft",),
        *,
        table: str = "stockade",
        timeout: float = 30.0,
        name: str = "nftables",
    ) -> None:
        if not _NAME.fullmatch(table):
            raise ValueError(f"nftables table name {table!r}: use letters, digits, _ and -")
        self.nft = list(nft)
        self.table = table
        self.timeout = timeout
        self.name = name
        self._lock = threading.Lock()

    def apply(self, bans: Sequence[Ban], *, now: float) -> None:
        """Ban in one transaction; bans whose ``until`` is not after ``now`` are skipped."""
        todo = plan(bans, now=now)
        if todo.placements:
            what = f"apply {len(todo.placements)} ban(s)"
            self._transact(lambda state: apply_script(self.table, todo, state, now=now), what, now)
        if todo.rejected:
            raise ResponderError(
                f"nftables: {len(todo.rejected)} ban(s) not applied; the first: {todo.rejected[0]}"
            )

    def remove(self, bans: Sequence[Ban]) -> None:
        """Lift the bans in one transaction (a ban that is not in place is no error)."""
        targets = remove_targets(bans)
        if not targets:
            return
        what = f"remove {len(targets)} ban(s)"
        self._transact(lambda state: remove_script(self.table, targets, state), what, time.time())

    def flush(self) -> None:
        """Delete stockade's table (and nothing else); no error when it is not there."""
        script = f"add table inet {self.table}\ndelete table inet {self.table}\n"
        with self._lock:
            self._run(["-f", "-"], script, "delete the table")

    def list_active(self) -> list[tuple[Network, str | None, float | None]]:
        """What the kernel holds: (network, jail or None, seconds left or None = permanent)."""
        now = time.time()
        with self._lock:
            state = self._read_state(now)
        active = []
        for set_name, elements in sorted(state.items()):
            for net, element in elements.items():
                jail = element.jail or _jail_of_set(set_name)
                left = None if element.expires is None else max(0.0, element.expires - now)
                active.append((net, jail, left))
        return sorted(active, key=lambda item: (item[0].version, item[0], item[1] or ""))

    def script(self, bans: Sequence[Ban], *, now: float) -> str:
        """The transaction :meth:`apply` would try first (for dry runs and debugging)."""
        return apply_script(self.table, plan(bans, now=now), None, now=now)

    def _transact(self, build: Callable[[State | None], str], what: str, now: float) -> None:
        """Run ``build(None)``; if nft refuses it, read what is there and retry (twice)."""
        with self._lock:
            try:
                self._run(["-f", "-"], build(None), what)
                return
            except ResponderError as exc:
                error = exc
            for _ in range(2):  # the second retry covers an element expiring in between
                try:
                    state = self._read_state(now)
                except ResponderError:
                    raise error from None
                try:
                    self._run(["-f", "-"], build(state), what)
                    return
                except ResponderError as exc:
                    error = exc
            raise error

    def _read_state(self, now: float) -> State:
        try:
            listing = self._run(["-j", "list", "table", "inet", self.table], None, "read")
        except NftError as exc:
            if "No such file or directory" in exc.stderr:
                return {}
            raise
        return parse_state(listing, now=now)

    def _run(self, args: Sequence[str], script: str | None, what: str) -> str:
        argv = [*self.nft, *args]
        where = f"table inet {self.table}"
        try:
            proc = subprocess.run(
                argv,
                input=script,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError:
            raise ResponderError(
                f"nftables: cannot {what} ({where}): {argv[0]!r} not found (install nftables)"
            ) from None
        except subprocess.TimeoutExpired:
            raise ResponderError(
                f"nftables: cannot {what} ({where}): nft did not finish in {self.timeout:g} s"
            ) from None
        if proc.returncode != 0:
            reason = first_error(proc.stderr, proc.returncode)
            raise NftError(f"nftables: cannot {what} ({where}): {reason}", proc.stderr)
        return proc.stdout


class NftError(ResponderError):
    """nft refused a command; ``stderr`` holds all it said."""

    def __init__(self, message: str, stderr: str) -> None:
        super().__init__(message)
        self.stderr = stderr


def _jail_of_set(name: str) -> str | None:
    if name in (BAN4, BAN6) or not name.endswith(("4", "6")):
        return None
    return name[:-1]
