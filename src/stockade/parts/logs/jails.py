"""Jails as stockade runs them, assembled from its own configuration and from fail2ban's.

A jail read from ``/etc/fail2ban`` (``jail.conf``, ``jail.local``, ``jail.d``) keeps its
fail2ban meaning; a jail written in stockade's TOML with the same name replaces it. A jail's
filter is a fail2ban filter (by name, ``name[options]`` or path) or regexes of its own.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stockade.config.schema import JailSection, LogsSection
from stockade.detectors.logs.bantime import Increment
from stockade.detectors.logs.dates import DatePatternError
from stockade.detectors.logs.engine import FilterSpec, LineFilter
from stockade.detectors.logs.f2b.filterconf import FilterDef, load_filter
from stockade.detectors.logs.f2b.jailconf import JailDef, load_jail_filter, load_jails
from stockade.detectors.logs.regex import RegexError
from stockade.errors import ConfigError

ALL_PORTS = {"", "0:65535", "1:65535", "all", "any"}


@dataclass(frozen=True)
class Jail:
    """Everything one jail needs at run time."""

    name: str
    origin: str
    spec: FilterSpec  # for log files
    journal_spec: FilterSpec  # for journal entries (fail2ban's logtype=journal)
    usedns: str
    logpath: tuple[str, ...]
    journalmatch: tuple[tuple[str, ...], ...]
    backend: str  # "auto" (files if they exist, else the journal), "files", "journal"
    maxretry: int
    findtime: float
    bantime: float  # -1 = permanent
    ignoreip: tuple[str, ...]
    ports: tuple[str, ...] | None  # None = every port
    protocol: str
    maxmatches: int | None
    increment: Increment


def parse_journalmatch(lines: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """``_SYSTEMD_UNIT=ssh.service + _COMM=sshd`` → ``(("_SYSTEMD_UNIT=ssh.service",),
    ("_COMM=sshd",))``: groups ORed, words in a group ANDed."""
    groups: list[tuple[str, ...]] = []
    for line in lines:
        for group in line.split("+"):
            words = tuple(w for w in group.split() if w)
            if words:
                if not all(re.fullmatch(r"[A-Z0-9_]+=.*", w) for w in words):
                    raise ConfigError(f"journalmatch {line!r}: each match is FIELD=value")
                groups.append(words)
    return tuple(groups)


def parse_ports(text: str) -> tuple[str, ...] | None:
    """fail2ban's port value: ``ssh``, ``http,https``, ``8000:8100``; None for every port."""
    text = text.strip()
    if text.lower() in ALL_PORTS:
        return None
    ports = tuple(p.strip() for p in re.split(r"[,\s]+", text) if p.strip())
    for p in ports:
        if not re.fullmatch(r"[A-Za-z0-9_\-]+(?::[0-9]+)?", p):
            raise ConfigError(
                f"port {p!r}: write a number, a service name or a range such as 8000:8100"
            )
    return ports


def _filter_spec(fdef: FilterDef, datepattern: str | None = None) -> FilterSpec:
    return FilterSpec(
        fdef.name,
        fdef.failregex,
        fdef.ignoreregex,
        fdef.prefregex,
        datepattern or fdef.datepattern,
        fdef.maxlines,
    )


def _from_toml(j: JailSection, f2bdir: Path | None) -> Jail:
    journal: tuple[tuple[str, ...], ...] = parse_journalmatch(j.journalmatch)
    if j.failregex:
        spec = FilterSpec(
            j.name,
            tuple(j.failregex),
            tuple(j.ignoreregex),
            j.prefregex or None,
            j.datepattern or None,
            j.maxlines,
        )
    else:
        if f2bdir is None and not j.filter.endswith(".conf"):
            raise ConfigError(
                f"jail {j.name}: filter {j.filter!r} is a fail2ban filter, but "
                "logs.fail2ban_dir is empty; set it (/etc/fail2ban) or give the jail failregex"
            )
        fdef = load_filter(f2bdir or Path("/etc/fail2ban"), j.filter)
        spec = _filter_spec(fdef, j.datepattern or None)
        journal = journal or fdef.journalmatch
        jspec = _filter_spec(
            load_filter(f2bdir or Path("/etc/fail2ban"), j.filter, {"logtype": "journal"}),
            j.datepattern or None,
        )
    if j.failregex:
        jspec = spec
    inc = j.bantime_increment
    return Jail(
        name=j.name,
        origin="stockade configuration",
        spec=spec,
        journal_spec=jspec,
        usedns=j.usedns,
        logpath=tuple(j.logpath),
        journalmatch=journal,
        backend=j.backend,
        maxretry=j.maxretry,
        findtime=j.findtime,
        bantime=j.bantime,
        ignoreip=tuple(j.ignoreip),
        ports=parse_ports(j.port),
        protocol=j.protocol,
        maxmatches=j.maxmatches or None,
        increment=Increment(
            inc.enabled,
            inc.factor,
            inc.formula or None,
            tuple(inc.multipliers),
            inc.maxtime or None,
            inc.rndtime or None,
            inc.overalljails,
        ),
    )


def _from_fail2ban(d: JailDef, f2bdir: Path) -> Jail:
    journal = d.backend.startswith("systemd")
    fdef = load_jail_filter(f2bdir, d if not journal else dataclasses.replace(d, backend="auto"))
    jdef = load_jail_filter(f2bdir, dataclasses.replace(d, backend="systemd"))
    if fdef is None or jdef is None:
        raise ConfigError(f"{f2bdir}: jail {d.name} has no filter")
    return Jail(
        name=d.name,
        origin=str(f2bdir),
        spec=_filter_spec(fdef),
        journal_spec=_filter_spec(jdef),
        usedns=d.usedns,
        logpath=tuple(p for p in d.logpath if p),
        journalmatch=d.journalmatch if d.journalmatch is not None else fdef.journalmatch,
        backend="journal" if journal else "auto",
        maxretry=d.maxretry,
        findtime=d.findtime,
        bantime=d.bantime,
        ignoreip=tuple(d.ignoreip),
        ports=parse_ports(d.port),
        protocol=d.protocol if d.protocol in ("tcp", "udp") else "all",
        maxmatches=d.maxmatches,
        increment=Increment(
            d.bantime_increment,
            d.bantime_factor,
            d.bantime_formula,
            d.bantime_multipliers,
            d.bantime_maxtime,
            d.bantime_rndtime,
            d.bantime_overalljails,
        ),
    )


def check_jail(jail: Jail) -> None:
    """Compile a jail's filters once, so that a bad regex or date pattern is a configuration
    error naming the jail, not a failure at the first line."""
    for spec in {jail.spec, jail.journal_spec}:
        try:
            LineFilter(spec, usedns=jail.usedns)
        except (RegexError, DatePatternError) as e:
            raise ConfigError(
                f"jail {jail.name} ({jail.origin}): filter {spec.name}: {e}"
            ) from None


def build_jails(cfg: LogsSection) -> list[Jail]:
    """The enabled jails: fail2ban's (if its folder exists), then stockade's own over them."""
    f2bdir = Path(cfg.fail2ban_dir) if cfg.fail2ban_dir else None
    jails: dict[str, Jail] = {}
    if f2bdir is not None and (f2bdir / "jail.conf").exists():
        for d in load_jails(f2bdir, enabled_only=True):
            jails[d.name] = _from_fail2ban(d, f2bdir)
    for j in cfg.jails:
        if not j.enabled:
            jails.pop(j.name, None)
            continue
        jails[j.name] = _from_toml(j, f2bdir if f2bdir and f2bdir.exists() else None)
    for jail in jails.values():
        check_jail(jail)
    return list(jails.values())
