"""Apply a fail2ban filter to log lines: dates, prefregex, failregex, ignoreregex, multi-line.

The semantics follow fail2ban's (so that its filters and their annotated samples behave the
same), with the code written anew:

1. the date is found in the line (or given, for journal entries) and cut out of it; the regexes
   see the rest (text before the date + text after it);
2. with ``maxlines`` > 1 the last lines are kept in a buffer and the regexes see them joined by
   newlines;
3. ``prefregex``, when set, must match first; its ``content`` group (``<F-CONTENT>``) is what the
   failregexes then see;
4. each failregex is searched in turn (the first match wins, or all of them in ``check_all``
   mode, which fail2ban's sample tests use); an ``ignoreregex`` match discards the failure;
5. a failure's id is the ``<F-ID>`` capture or the address (``ip4``/``ip6``) or host name
   (``dns``), normalised; ``<F-MLFID>`` ties lines of one connection together, with
   ``<F-NOFAIL>``, ``<F-MLFFORGET>`` and ``<F-MLFGAINED>`` marking lines that are not failures,
   end a connection, or mean it succeeded.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from stockade.detectors.logs import prefilter
from stockade.detectors.logs.dates import DateDetector
from stockade.detectors.logs.regex import CompiledRegex, compile_regex, require_id

Tuple3 = tuple[str, str, str]  # text before the date, the date, text after it
Resolver = Callable[[str], list[str]]

MLFID_CACHE_SIZE = 100
MLFID_CACHE_AGE = 300.0


@dataclass
class Failure:
    """A failure found in the log."""

    regex: int  # index of the failregex that matched
    fid: str | None  # what is counted: an address, or another id; None = pending (multi-line)
    time: float | None
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def nofail(self) -> bool:
        return bool(self.fields.get("nofail"))

    @property
    def address(self) -> str | None:
        """The address to ban: the failure id, or the ``ip`` of a failure with another id."""
        ip = self.fields.get("ip")
        return str(ip) if ip is not None else self.fid


@dataclass(frozen=True)
class FilterSpec:
    """What a filter consists of (from a fail2ban filter file or stockade's own configuration)."""

    name: str
    failregex: Sequence[str]
    ignoreregex: Sequence[str] = ()
    prefregex: str | None = None
    datepattern: str | None = None
    maxlines: int = 1


@functools.lru_cache(maxsize=65536)
def normalise_address(text: str, family: int | None = None, cidr: str | None = None) -> str | None:
    """``192.0.2.1`` → itself, ``2001:DB8::1`` → ``2001:db8::1``, with a prefix → the network;
    None when it is not an address of the expected family."""
    try:
        if cidr:
            net = ipaddress.ip_network(f"{text}/{int(cidr)}", strict=False)
            if family is not None and net.version != family:
                return None
            if net.prefixlen == net.max_prefixlen:
                return str(net.network_address)
            return str(net)
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if family is not None and addr.version != family:
        return None
    return str(addr)


class _MlfidCache:
    """Multi-line failure ids (connection ids) seen recently: at most 100, for 5 minutes.

    Age is measured in the log's own time, not the reader's: fail2ban measures it by the clock,
    so when it reads a day of logs in seconds, an sshd process id reused hours later still
    finds the old connection's entry, and a later successful login can be counted as a failure.
    """

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self.at: float | None = None  # the time of the line being processed
        self._items: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    def _clock(self) -> float:
        return self.at if self.at is not None else self._now()

    def get(self, key: str) -> dict[str, Any] | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] < self._clock():
            del self._items[key]
            return None
        return item[1]

    def set(self, key: str, value: dict[str, Any]) -> None:
        self._items[key] = (self._clock() + MLFID_CACHE_AGE, value)
        self._items.move_to_end(key)
        while len(self._items) > MLFID_CACHE_SIZE:
            self._items.popitem(last=False)

    def unset(self, key: str) -> None:
        self._items.pop(key, None)


def _buf(lines: Sequence[Tuple3]) -> str:
    return "\n".join(t[0] + t[2] for t in lines) + "\n"


class _Match:
    """A regex match over the line buffer, with the buffer lines it covered and skipped."""

    def __init__(self, rx: CompiledRegex, m: Any, org: list[Tuple3], multi: bool) -> None:
        self.rx = rx
        self.m = m
        if not multi or len(org) <= 1:
            self.matched, self.unmatched = org, []
            return
        s: str = m.string
        start = s.rfind("\n", 0, m.start() + 1) + 1
        end_nl = s.find("\n", max(m.end() - 1, 0))
        end = end_nl + 1 if end_nl >= 0 else len(s)
        first, last = s.count("\n", 0, start), s.count("\n", 0, end)
        matched = org[first:last]
        unmatched = org[:first]
        skipped = self.skipped_lines()
        n = 0
        for line in skipped:
            for k, cand in enumerate(matched[n:]):
                if cand[0] + cand[2] == line:
                    unmatched.append(matched.pop(n + k))
                    n += k
                    break
        unmatched.extend(org[last:])
        self.matched, self.unmatched = matched, unmatched

    def skipped_lines(self) -> list[str]:
        text = ""
        n = 0
        while f"skiplines{n}" in self.rx.pattern.groupindex:
            part = self.m.group(f"skiplines{n}")
            if part is not None:
                text += part
            n += 1
        return text.splitlines()


class LineFilter:
    """One filter at work on one stream of lines (it keeps the multi-line state)."""

    def __init__(
        self,
        spec: FilterSpec,
        *,
        usedns: str = "warn",
        check_all: bool = False,
        raw_hosts: bool = False,
        now: Callable[[], float] = time.time,
        default_tz: str | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.spec = spec
        self.usedns = usedns
        self.check_all = check_all
        self.raw_hosts = raw_hosts or usedns == "raw"
        self.now = now
        self.resolver = resolver
        self.maxlines = max(1, int(spec.maxlines))
        multi = self.maxlines > 1
        self.multi = multi
        self.dates = DateDetector(spec.datepattern, default_tz=default_tz, now=now)
        self.pref = compile_regex(spec.prefregex, usedns=usedns) if spec.prefregex else None
        self.fail = [compile_regex(r, usedns=usedns, multiline=multi) for r in spec.failregex]
        for fr in self.fail:
            require_id(fr, self.pref)
        self.ignore = [compile_regex(r, usedns=usedns, multiline=multi) for r in spec.ignoreregex]
        # the literals each failregex needs: a regex whose literals are absent is not tried
        lines = (spec.datepattern or "").split("\n")
        at_start = all("{^LN-BEG}" in p for p in lines if p.strip()) and bool(spec.datepattern)
        self.prefilter = prefilter.build([fr.pattern for fr in self.fail], date_at_start=at_start)
        self._fail_search = [(i, rx, rx.pattern.search) for i, rx in enumerate(self.fail)]
        self._lean = not multi and not check_all
        self._ignore_first = bool(self.ignore) and len(self.ignore) < len(self.fail) - 2
        self._buffer: list[Tuple3] = []
        self._last_time: float | None = None
        self._last_text = ""
        self._mlfid = _MlfidCache(now)

    # -- dates ---------------------------------------------------------------------------

    def split(
        self, line: str, when: float | None = None, when_text: str = ""
    ) -> tuple[Tuple3, float | None, bool]:
        """Cut the date out of ``line``: (parts, time, no_date)."""
        if when is not None:
            self._last_time, self._last_text = when, when_text
            return ("", when_text, line), when, False
        dm = self.dates.match(line)
        if dm is not None and math.isnan(dm.time):
            # date text that is no valid date (0000-12-30): cut it out, use the last date
            parts = (line[: dm.start], line[dm.start : dm.end], line[dm.end :])
            if self._last_time is not None and self._last_time > self.now() - 60:
                return parts, self._last_time, True
            return parts, None, True
        if dm is not None:
            when = float(math.floor(dm.time))  # whole seconds, as fail2ban counts them
            self._last_time, self._last_text = when, line[dm.start : dm.end]
            return (line[: dm.start], line[dm.start : dm.end], line[dm.end :]), when, False
        if self._last_time is not None and self._last_time > self.now() - 60:
            return ("", self._last_text, line), self._last_time, True
        return ("", "", line), None, True

    # -- matching ------------------------------------------------------------------------

    def process(self, line: str, when: float | None = None, when_text: str = "") -> list[Failure]:
        """Failures found once ``line`` is added (usually none or one)."""
        mask = -1
        if self.prefilter is not None and not self.multi:
            mask = self.prefilter.mask_of(line)
            if not mask:
                return []
        parts, date, _no_date = self.split(line, when, when_text)
        if self._lean:
            return self._find1(parts, date, mask)
        return self.find(parts, date, mask)

    def _find1(self, parts: Tuple3, date: float | None, mask: int) -> list[Failure]:
        """:meth:`find` for the common case, made lean: one line at a time, first match wins."""
        self._mlfid.at = date
        buf = parts[0] + parts[2] + "\n"
        if self._ignore_first and self._ignored1(buf):
            return []
        pre: dict[str, Any] | None = None
        pref = self.pref
        if pref is not None:
            m = pref.pattern.search(buf)
            if m is None:
                return []
            pre = pref.groups(m) if pref.alt or pref.tuples else m.groupdict()
            content = pre.pop("content", None)
            if content:
                buf = content + "\n"
        for index, rx, search in self._fail_search:
            if not mask >> index & 1:
                continue
            m = search(buf)
            if m is None:
                continue
            if self.ignore and self._ignored1(buf):
                return []
            fail = rx.groups(m) if rx.alt or rx.tuples else m.groupdict()
            if pre:
                pre.update(fail)
                fail = pre
            mlfid = fail.get("mlfid")
            if mlfid is not None:
                fail = self._merge(mlfid, fail, [parts])
                if fail.get("nofail"):
                    return []
            else:
                fail["matches"] = [parts]
            ids = self._ids(fail, rx, mlfid)
            if ids == [None]:
                return []
            return [Failure(index, fid, date, fail) for fid in ids]
        return []

    def _ignored1(self, buf: str) -> bool:
        return any(rx.pattern.search(buf) is not None for rx in self.ignore)

    def find(self, parts: Tuple3, date: float | None, mask: int = -1) -> list[Failure]:
        """Failures once ``parts`` (a line split around its date) is added; ``mask`` limits the
        failregexes tried to those whose literals the line holds (bit i: failregex i)."""
        found: list[Failure] = []
        self._mlfid.at = date
        if self.multi:
            self._buffer.append(parts)
            self._buffer = self._buffer[-self.maxlines :]
        else:
            self._buffer = [parts]
        org = self._buffer
        whole = _buf(org)
        buf: str | None = whole
        if (
            self.ignore
            and len(self.ignore) < len(self.fail) - 2
            and self._ignored(whole, org, None) is not None
        ):
            return found
        pre: dict[str, Any] = {}
        if self.pref is not None:
            assert buf is not None
            m = self.pref.pattern.search(buf)
            if m is None:
                return found
            pre = self.pref.groups(m)
            content = pre.pop("content", None)
            if content:
                self._buffer, buf = [("", "", content)], None
        for index, rx in enumerate(self.fail):
            if not mask >> index & 1:
                continue
            if buf is None:
                buf = _buf(self._buffer)
            m = rx.pattern.search(buf)
            if m is None:
                continue
            match = _Match(rx, m, org, self.multi)
            fail = rx.groups(m)
            if self.ignore and self._ignored(buf, org, match) is not None:
                buf = None
                if not self.check_all:
                    break
                continue
            if not self.check_all or self.multi:
                self._buffer, buf = match.unmatched, None
            if pre:
                fail = {**pre, **fail}
            mlfid = fail.get("mlfid")
            if mlfid is not None:
                fail = self._merge(mlfid, fail, match.matched)
                if fail.get("nofail") and not self.check_all:
                    return found
            else:
                fail["matches"] = fail.get("matches", []) + match.matched
            ids = self._ids(fail, rx, mlfid)
            if ids == [None] and not self.check_all:
                return found  # waiting for the connection's address (multi-line)
            for fid in ids:
                found.append(Failure(index, fid, date, fail.copy() if self.check_all else fail))
            if not self.check_all:
                break
        return found

    def scan_block(
        self, data: bytes, first_line: int = 1
    ) -> Iterator[tuple[int, str, list[Failure]]]:
        """Process a block of whole lines; yield (line number, line, failures) for the lines
        that can matter. With a prefilter, lines holding none of the failregexes' literals
        are skipped without being decoded."""
        if self.prefilter is None or self.multi:
            lines = data.split(b"\n")
            if data.endswith(b"\n"):
                lines.pop()
            for n, raw in enumerate(lines, first_line):
                line = raw.decode("utf-8", "replace").rstrip("\r")
                yield n, line, self.process(line)
            return
        count = data.count
        pos = 0
        n = first_line
        multi = self.multi
        for start, end, mask in self.prefilter.candidate_lines(data):
            n += count(b"\n", pos, start)
            pos = start
            line = data[start:end].decode("utf-8", "replace").rstrip("\r")
            parts, date, _ = self.split(line)
            if self._lean:
                yield n, line, self._find1(parts, date, mask)
            else:
                yield n, line, self.find(parts, date, -1 if multi else mask)

    def _ids(self, fail: dict[str, Any], rx: CompiledRegex, mlfid: Any) -> list[str | None]:
        fid = fail.get("fid")
        raw = self.raw_hosts
        ip: str | None = None
        family: int | None = None
        for group, fam in (("ip4", 4), ("ip6", 6)):
            if fail.get(group) is not None:
                ip, family, raw = fail[group], fam, True
                break
        if ip is None:
            ip = fail.get("dns")
            if ip is None:
                if fid is None and mlfid is None:
                    raise ValueError(f"no failure id in the match of {rx.source!r}")
                ip = fid
                raw = True
        if ip is None:
            fail["mlfpending"] = 1
            return [None]
        if raw:
            norm = normalise_address(ip, family, fail.get("cidr")) if family else None
            host = norm if norm is not None else (normalise_address(ip) or ip)
            if fid is None or fid == ip:
                return [host]
            fail["ip"] = host
            return [str(fid)]
        # a host name: resolve it (usedns yes/warn), or keep only what is already an address
        addr = normalise_address(ip)
        if addr is not None:
            return [addr]
        if self.usedns == "no" or self.resolver is None:
            return []
        return list(self.resolver(ip))

    def _ignored(self, buf: str, org: list[Tuple3], match: _Match | None) -> int | None:
        if match is not None and self.multi:
            org = match.matched
            buf = _buf(org)
        found = None
        for index, rx in enumerate(self.ignore):
            if rx.pattern.search(buf) is None:
                continue
            found = index
            if (not self.check_all or self.multi) and match is not None:
                self._buffer = match.unmatched
            if not self.check_all:
                break
        return found

    def _merge(self, mlfid: str, fail: dict[str, Any], matched: list[Tuple3]) -> dict[str, Any]:
        """Fold a line into what is known of its connection (fail2ban's multi-line id logic).

        One difference: an entry whose address differs from this line's is another connection
        that happened to get the same id (sshd process ids are reused), not this one. fail2ban
        merges them, and can then count a successful login from an innocent address as a failure.
        """
        cached = self._mlfid.get(mlfid)
        if cached is not None:
            here = _address_of(fail)
            if here is not None:
                before = _address_of(cached)
                if before is not None and before != here:
                    self._mlfid.unset(mlfid)
                    cached = None
        users: set[Any] | None = None
        flags = 0
        if fail.get("mlfgained"):
            flags |= 8 | 1
            if not fail.get("nofail"):
                fail["nofail"] = fail["mlfgained"]
        elif fail.get("nofail"):
            flags |= 1
        if fail.pop("mlfforget", None):
            flags |= 2
        if cached is not None:
            users = _add_user(cached, fail.get("user"))
            if cached.pop("nofail", None):
                flags |= 4
            if cached.pop("mlfgained", None):
                flags |= 4
            if flags & 8:
                cached.pop("mlfpending", None)
            if not flags & 4 and not cached.get("mlfpending", 0):
                cached.pop("matches", None)
            cached.update((k, v) for k, v in fail.items() if v is not None)
            fail = cached
            if flags & 2:
                self._mlfid.unset(mlfid)
        elif not flags & 2:
            users = _add_user(fail, fail.get("user"))
            self._mlfid.set(mlfid, fail)
        if fail.pop("mlfpending", 0) or (users and len(users) > 1):
            fail.pop("nofail", None)
            fail.pop("mlfgained", None)
            flags &= ~(8 | 1)
        if not flags & 1:
            lines = fail.pop("nofail-matches", []) + fail.get("matches", [])
            if not flags & 8:
                lines = lines + matched
            fail["matches"] = lines
        elif flags & 3 == 1:
            fail["nofail-matches"] = fail.get("nofail-matches", []) + matched
        return fail


def _address_of(fail: dict[str, Any]) -> str | None:
    for group in ("ip4", "ip6", "dns"):
        value = fail.get(group)
        if value is not None:
            return str(value)
    return None


def _add_user(fail: dict[str, Any], user: Any) -> set[Any] | None:
    users: set[Any] | None = fail.get("users")
    if user:
        if not users:
            users = set()
            fail["users"] = users
        users.add(user)
    return users
