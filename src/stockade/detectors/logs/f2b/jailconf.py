"""fail2ban jails (``jail.conf``, ``jail.d/*.conf``, ``jail.local``, ``jail.d/*.local``) → JailDef.

The files are read in fail2ban's order (see :mod:`.ini`); every section but ``[INCLUDES]`` is a
jail, and ``[DEFAULT]`` supplies what a jail does not set. As in fail2ban's ``JailReader``:

* ``enabled``, ``backend`` and ``filter`` are read first; the filter is then read with its
  arguments and every option it ends up with is offered to the jail as ``known/NAME``, so a
  jail may write ``failregex = %(known/failregex)s ...``;
* ``%(fail2ban_version)s`` and ``%(fail2ban_confpath)s`` are always defined;
* a ``logpath`` line may end with `` tail`` or `` head`` (where to start reading), which is
  not part of the path;
* ``ignoreip`` is split on blanks and commas.

Values fail2ban would reject at start (a number that is not one, an unknown ``usedns`` or
``backend``, a bad time, an unknown encoding) raise :class:`~.ini.F2bConfigError`, one line
naming the file, line, jail and option. Settings nobody sets get the value fail2ban's server
uses (``maxretry`` 3, ``findtime`` and ``bantime`` 600 s, ``usedns`` warn ...) or, for
``port``/``protocol`` that only actions use, jail.conf's (``0:65535``, ``tcp``).
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from stockade.detectors.logs.f2b import timestr
from stockade.detectors.logs.f2b.filterconf import (
    JAIL_OPTIONS,
    FilterDef,
    build_filter,
    filter_options,
    parse_filter_spec,
    parse_journalmatch,
    read_filter_config,
)
from stockade.detectors.logs.f2b.ini import (
    INCLUDES,
    KNOWN,
    Config,
    F2bConfigError,
    FileCache,
    Resolved,
    Scope,
    Value,
    config_error,
    config_files,
    get,
    read_config,
)

#: The fail2ban version whose configuration format this reader follows.
FAIL2BAN_VERSION = "1.0.2"
BACKENDS = frozenset({"auto", "pyinotify", "gamin", "polling", "systemd"})
USEDNS = frozenset({"yes", "warn", "no", "raw"})
_TRUE = frozenset({"1", "yes", "true", "on"})
_FALSE = frozenset({"0", "no", "false", "off", ""})
_LOG_START = frozenset({"head", "tail"})
_WORDS = re.compile(r"[ ,\n]+")

#: Options a JailDef field is made of: an error in them is an error in the jail.
_FIELDS = JAIL_OPTIONS | {"port", "protocol"}


@dataclass(frozen=True)
class JailDef:
    """A fail2ban jail after interpolation, with fail2ban's defaults filled in."""

    name: str
    enabled: bool
    filter: str
    logpath: tuple[str, ...]
    logencoding: str
    backend: str
    maxretry: int
    findtime: float
    bantime: float
    ignoreip: tuple[str, ...]
    ignoreself: bool
    ignorecommand: str | None
    usedns: str
    port: str
    protocol: str
    maxmatches: int | None
    datepattern: str | None
    journalmatch: tuple[tuple[str, ...], ...] | None
    bantime_increment: bool
    bantime_factor: float
    bantime_formula: str | None
    bantime_multipliers: tuple[float, ...]
    bantime_maxtime: float | None
    bantime_rndtime: float | None
    bantime_overalljails: bool
    options: Mapping[str, str]


def load_jails(
    confdir: Path = Path("/etc/fail2ban"), *, enabled_only: bool = False
) -> list[JailDef]:
    """Every jail of ``confdir`` in the order of the files, or only the enabled ones."""
    base = os.path.join(str(confdir), "jail")
    files = config_files(base)
    if not files:
        raise config_error(base + ".conf", None, "not found (nor jail.local, nor jail.d/*)")
    cache = FileCache()
    config = read_config(files, cache)
    add_builtins(config, confdir)
    jails = []
    for name in jail_names(config):
        jail = read_jail(config, name, confdir, cache=cache, enabled_only=enabled_only)
        if jail is not None:
            jails.append(jail)
    return jails


def load_jail_filter(confdir: Path, jail: JailDef) -> FilterDef | None:
    """The filter of ``jail`` as fail2ban runs it; None when the jail has no filter.

    Its arguments come from the spec; the jail's ``backend`` sets ``logtype`` to ``journal``
    (systemd) or ``file`` unless given; the jail's own ``failregex``, ``ignoreregex``,
    ``prefregex``, ``datepattern``, ``maxlines``, ``journalmatch`` and ``usedns`` replace the
    filter's [Definition] ones (see :func:`~.filterconf.build_filter` for arguments and
    ``[Init]``).
    """
    if not jail.filter:
        return None
    try:
        name, args = parse_filter_spec(jail.filter)
    except ValueError as exc:
        raise config_error(str(confdir), None, f"[{jail.name}] filter: {exc}") from None
    config, source = read_filter_config(confdir, name)
    return build_filter(config, name, args, source, jail.options)


def add_builtins(config: Config, confdir: Path) -> None:
    """The options fail2ban always defines for jails."""
    for key, text in (
        ("fail2ban_version", FAIL2BAN_VERSION),
        ("fail2ban_confpath", str(confdir).rstrip("/") or "/"),
    ):
        config.defaults[key] = Value(text, "<fail2ban>", 0)


def jail_names(config: Config) -> list[str]:
    """The jails: every section but [INCLUDES], in order of first appearance."""
    return [name for name in config.sections if name != INCLUDES]


class _Jail:
    """Reads and converts the options of one jail, with errors naming where they were written."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def resolved(self, key: str) -> Resolved | None:
        return get(self.scope, key)

    def text(self, key: str, default: str | None = None) -> str | None:
        resolved = self.resolved(key)
        return default if resolved is None else resolved.text

    def _fail(self, resolved: Resolved, what: str) -> F2bConfigError:
        return resolved.origin.error(what)

    def error(self, key: str, what: str) -> F2bConfigError:
        return self.scope.origin(key).error(what)

    def boolean(self, key: str, default: bool) -> bool:
        resolved = self.resolved(key)
        if resolved is None:
            return default
        word = resolved.text.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise self._fail(resolved, f"{resolved.text!r} is not a boolean (use true or false)")

    def integer(self, key: str) -> int | None:
        resolved = self.resolved(key)
        if resolved is None:
            return None
        try:
            return int(resolved.text)
        except ValueError:
            raise self._fail(resolved, f"{resolved.text!r} is not a number") from None

    def seconds(self, key: str) -> float | None:
        resolved = self.resolved(key)
        if resolved is None or not resolved.text.strip():
            return None
        try:
            return timestr.to_seconds(resolved.text)
        except ValueError as exc:
            raise self._fail(resolved, str(exc)) from None

    def number(self, key: str, default: float) -> float:
        resolved = self.resolved(key)
        if resolved is None or not resolved.text.strip():
            return default
        try:
            return timestr.evaluate(resolved.text)
        except ValueError:
            raise self._fail(resolved, f"{resolved.text!r} is not a number") from None

    def numbers(self, key: str) -> tuple[float, ...]:
        resolved = self.resolved(key)
        if resolved is None:
            return ()
        try:
            return tuple(float(word) for word in resolved.text.split())
        except ValueError:
            raise self._fail(resolved, f"{resolved.text!r} is not a list of numbers") from None

    def choice(self, key: str, default: str, allowed: frozenset[str]) -> str:
        resolved = self.resolved(key)
        if resolved is None:
            return default
        word = resolved.text.strip().lower()
        if word not in allowed:
            raise self._fail(
                resolved, f"{resolved.text!r} is not one of {', '.join(sorted(allowed))}"
            )
        return word


def _filter_known(
    config: Config,
    confdir: Path,
    spec: str,
    first: Mapping[str, str],
    cache: FileCache,
) -> dict[str, str]:
    """The filter's options as the jail's ``known/...`` options."""
    name, args = parse_filter_spec(spec)
    filter_config, source = read_filter_config(confdir, name, cache)
    options = filter_options(filter_config, args, first, source)
    return {KNOWN + key.lower(): value for key, value in options.items()}


def read_jail(
    config: Config,
    name: str,
    confdir: Path,
    *,
    cache: FileCache | None = None,
    enabled_only: bool = False,
) -> JailDef | None:
    """One jail of merged jail files; None when it is disabled and ``enabled_only``."""
    cache = cache or FileCache()
    first = _Jail(Scope(config, name))
    enabled = first.boolean("enabled", False)
    if enabled_only and not enabled:
        return None
    backend = (first.text("backend") or "auto").strip()
    spec = (first.text("filter") or "").strip()
    extra: dict[str, str] = {}
    if spec:
        try:
            extra = _filter_known(
                config,
                confdir,
                spec,
                {"enabled": str(enabled), "backend": backend, "filter": spec},
                cache,
            )
        except (F2bConfigError, ValueError) as exc:
            if enabled:
                raise _filter_error(first, spec, exc) from None
            # fail2ban never reads the filter of a disabled jail
    return _build(_Jail(Scope(config, name, extra=extra)), name, enabled, spec)


def _filter_error(jail: _Jail, spec: str, exc: ValueError) -> F2bConfigError:
    if isinstance(exc, F2bConfigError):
        return exc
    resolved = jail.resolved("filter")
    assert resolved is not None
    return resolved.origin.error(f"{spec!r}: {exc}")


def _build(jail: _Jail, name: str, enabled: bool, spec: str) -> JailDef:
    maxlines = jail.integer("maxlines")  # for the filter (load_jail_filter); checked here
    if maxlines is not None and maxlines < 1:
        raise jail.error("maxlines", f"'{maxlines}' is not 1 or more")
    maxretry = jail.integer("maxretry")
    findtime = jail.seconds("findtime")
    bantime = jail.seconds("bantime")
    ignorecommand = jail.text("ignorecommand")
    formula = jail.text("bantime.formula")
    journalmatch = jail.resolved("journalmatch")
    return JailDef(
        name=name,
        enabled=enabled,
        filter=spec,
        logpath=_logpaths(jail.text("logpath", "") or ""),
        logencoding=_encoding(jail),
        backend=_backend(jail),
        maxretry=3 if maxretry is None else maxretry,
        findtime=600.0 if findtime is None else findtime,
        bantime=600.0 if bantime is None else bantime,
        ignoreip=tuple(word for word in _WORDS.split(jail.text("ignoreip") or "") if word),
        ignoreself=jail.boolean("ignoreself", True),
        ignorecommand=_optional(ignorecommand),
        usedns=jail.choice("usedns", "warn", USEDNS),
        port=(jail.text("port") or "0:65535").strip(),
        protocol=(jail.text("protocol") or "tcp").strip(),
        maxmatches=jail.integer("maxmatches"),
        datepattern=jail.text("datepattern"),
        journalmatch=None if journalmatch is None else _journalmatch(jail, journalmatch),
        bantime_increment=jail.boolean("bantime.increment", False),
        bantime_factor=jail.number("bantime.factor", 1.0),
        bantime_formula=_optional(formula),
        bantime_multipliers=jail.numbers("bantime.multipliers"),
        bantime_maxtime=jail.seconds("bantime.maxtime"),
        bantime_rndtime=jail.seconds("bantime.rndtime"),
        bantime_overalljails=jail.boolean("bantime.overalljails", False),
        options=MappingProxyType(_all_options(jail)),
    )


def _optional(text: str | None) -> str | None:
    """None for a value that is not set or empty."""
    return text.strip() or None if text is not None else None


def _logpaths(text: str) -> tuple[str, ...]:
    """One path (or glob) per line, without a trailing ``tail``/``head``."""
    paths = []
    for line in text.split("\n"):
        path, _, last = line.strip().rpartition(" ")
        entry = path if path and last.lower() in _LOG_START else line
        if entry.strip():
            paths.append(entry.strip())
    return tuple(paths)


def _encoding(jail: _Jail) -> str:
    resolved = jail.resolved("logencoding")
    if resolved is None:
        return "auto"
    name = resolved.text.strip()
    if name.lower() != "auto":
        try:
            codecs.lookup(name)
        except LookupError:
            raise resolved.origin.error(f"{name!r} is not a known encoding") from None
    return name


def _backend(jail: _Jail) -> str:
    resolved = jail.resolved("backend")
    if resolved is None:
        return "auto"
    text = resolved.text.strip()
    try:
        kind, _ = parse_filter_spec(text)
    except ValueError as exc:
        raise resolved.origin.error(f"{text!r}: {exc}") from None
    if kind.lower() not in BACKENDS:
        raise resolved.origin.error(
            f"{kind!r} is not a backend (use one of {', '.join(sorted(BACKENDS))})"
        )
    return text


def _journalmatch(jail: _Jail, resolved: Resolved) -> tuple[tuple[str, ...], ...]:
    try:
        return parse_journalmatch(resolved.text)
    except ValueError as exc:
        raise resolved.origin.error(f"{resolved.text!r}: {exc}") from None


def _all_options(jail: _Jail) -> dict[str, str]:
    """Every option of the jail and of [DEFAULT] after interpolation.

    An option nothing of fail2ban reads (``action_mwl`` in a jail without ``logpath``...) is
    left out when it cannot be interpolated; the others raise.
    """
    options: dict[str, str] = {}
    for key in jail.scope.option_names():
        if key.startswith(KNOWN):
            continue
        try:
            resolved = jail.resolved(key)
        except F2bConfigError:
            if key in _FIELDS:
                raise
            continue
        if resolved is not None:
            options[key] = resolved.text
    return options
