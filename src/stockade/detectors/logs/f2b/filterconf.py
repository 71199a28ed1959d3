"""fail2ban filters (``filter.d/NAME.conf`` and its ``.local``) read into :class:`FilterDef`.

What a filter becomes follows fail2ban's ``FilterReader`` (``client/configreader.py``,
``client/filterreader.py``, ``helpers.substituteRecursiveTags``):

1. ``[Definition]``'s ``usedns prefregex ignoreregex failregex maxlines datepattern
   journalmatch`` are interpolated (``%(name)s``) with the filter's arguments and the jail's
   options visible first; one the jail sets itself is not taken from the filter.
2. ``[Init]`` options and the arguments (``sshd[mode=aggressive]``) override those; each
   ``[Init]`` option is also available as ``known/NAME``. With a jail's backend given, the
   ``logtype`` argument defaults to ``journal`` for systemd and ``file`` otherwise.
3. ``<tag>`` references are replaced, recursively and until nothing changes (so
   ``<mdre-<mode>>`` works), by the option of that name: first as overridden above
   (exact name), then ``[Definition]``/``[DEFAULT]`` (any case), ``<section/key>`` and
   ``<known/key>``. Tags naming nothing (``<HOST>``, ``<F-USER>``, ``<ADDR>``...) stay.
4. ``failregex``/``ignoreregex`` are split into lines, empty lines dropped; ``journalmatch``
   lines are split like a shell would, ``+`` separating alternatives.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from stockade.detectors.logs.f2b.ini import (
    DEFAULT,
    KNOWN,
    Config,
    F2bConfigError,
    FileCache,
    Origin,
    Scope,
    config_error,
    config_files,
    get,
    get_known,
    read_config,
)

__all__ = [
    "F2bConfigError",
    "FilterDef",
    "build_filter",
    "filter_options",
    "load_filter",
    "parse_filter_spec",
    "parse_journalmatch",
]

DEFINITION = "Definition"
INIT = "Init"

#: The options a filter sends to fail2ban's server (FilterReader._configOpts).
FILTER_OPTIONS = (
    "usedns",
    "prefregex",
    "ignoreregex",
    "failregex",
    "maxlines",
    "datepattern",
    "journalmatch",
)
#: A jail's options that fail2ban hands to its filter (JailReader._configOpts).
JAIL_OPTIONS = frozenset(
    {
        "enabled",
        "backend",
        "maxretry",
        "maxmatches",
        "findtime",
        "bantime",
        "bantime.increment",
        "bantime.factor",
        "bantime.formula",
        "bantime.multipliers",
        "bantime.maxtime",
        "bantime.rndtime",
        "bantime.overalljails",
        "ignorecommand",
        "ignoreself",
        "ignoreip",
        "ignorecache",
        "filter",
        "logtimezone",
        "logencoding",
        "logpath",
        "action",
        *FILTER_OPTIONS,
    }
)

_TAG = re.compile(r"<(?P<name>[^ <>]+)>")
_TAG_SECTION_KEY = re.compile(r"(?P<section>[\w\-]+)/(?P<key>[^\s>]+)")
_CONDITIONAL = re.compile(r"(?P<name>\w+)\?.+")
MAX_TAG_REPLACEMENTS = 25

_ARG_NAME = re.compile(r"\s*(?P<name>[\w\-.]+)=")


@dataclass(frozen=True)
class FilterDef:
    """A fail2ban filter after interpolation and tag substitution."""

    name: str
    source: str
    prefregex: str | None
    failregex: tuple[str, ...]
    ignoreregex: tuple[str, ...]
    datepattern: str | None
    maxlines: int
    journalmatch: tuple[tuple[str, ...], ...]
    options: Mapping[str, str]


# --------------------------------------------------------------------------------------------
# "name[key=value, key2="value"][key3='value']"


def parse_filter_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``sshd[mode=aggressive]`` into ``("sshd", {"mode": "aggressive"})``.

    Values may be quoted with ``"`` or ``'`` (then they may hold ``,`` and ``]``); several
    ``[...]`` groups may follow each other. ValueError when the syntax is wrong.
    """
    text = spec.strip()
    bracket = text.find("[")
    if bracket == -1:
        if not text:
            raise ValueError("the name is empty")
        return text, {}
    name = text[:bracket].strip()
    if not name:
        raise ValueError(f"{spec!r} has no name before '['")
    if not text.endswith("]"):
        raise ValueError(f"{spec!r} has '[' without a closing ']'")
    return name, _parse_args(text[bracket + 1 : -1])


def _parse_args(body: str) -> dict[str, str]:
    args: dict[str, str] = {}
    pos = 0
    while body[pos:].strip(" \t\n,"):
        match = _ARG_NAME.match(body, pos)
        if match is None:
            raise ValueError(f"expected 'name=value' at {body[pos:][:25].strip()!r}")
        value, pos = _arg_value(body, match.end())
        args[match["name"]] = value.strip()
        pos = _after_value(body, pos)
    return args


def _arg_value(body: str, pos: int) -> tuple[str, int]:
    """A quoted or bare value starting at ``pos``, and where it ends.

    A quote that is not closed is part of a bare value, as in fail2ban.
    """
    quote = body[pos : pos + 1]
    end = body.find(quote, pos + 1) if quote in ('"', "'") else -1
    if end != -1:
        return body[pos + 1 : end], end + 1
    end = pos
    while end < len(body) and body[end] not in ",]":
        end += 1
    return body[pos:end], end


def _after_value(body: str, pos: int) -> int:
    """Skip the separator after a value: ``,``, ``][`` or the end."""
    rest = body[pos:]
    stripped = rest.lstrip()
    if not stripped:
        return len(body)
    if stripped.startswith(","):
        return len(body) - len(stripped) + 1
    if stripped.startswith("]") and stripped[1:].lstrip().startswith("["):
        return len(body) - len(stripped[1:].lstrip()) + 1
    raise ValueError(f"unexpected {stripped[:25]!r} after a value")


# --------------------------------------------------------------------------------------------
# locating and reading


def filter_base(confdir: Path, name: str) -> str:
    """The path without suffix of a filter: a name in ``filter.d`` or a path to a file."""
    if name.endswith((".conf", ".local")):
        return os.path.splitext(name)[0]
    return os.path.join(str(confdir), "filter.d", name)


def read_filter_config(
    confdir: Path, name: str, cache: FileCache | None = None
) -> tuple[Config, str]:
    """The merged files of a filter and its main file; F2bConfigError when there are none."""
    base = filter_base(confdir, name)
    files = config_files(base)
    if not files:
        raise config_error(
            base + ".conf", None, f"filter {name!r} not found (no {base}.conf nor {base}.local)"
        )
    return read_config(files, cache), files[0]


def load_filter(confdir: Path, spec: str, extra: Mapping[str, str] | None = None) -> FilterDef:
    """Read the filter ``spec`` (``name``, ``name[args]`` or a path to a .conf file).

    ``extra`` holds filter options given by a jail, as if written between the brackets
    (``{"mode": "aggressive", "logtype": "journal"}``); they win over the spec's. To read a
    jail's filter exactly as fail2ban runs it (its backend choosing the ``logtype``, its own
    ``failregex``/``datepattern``/... taking the filter's place), use
    :func:`~.jailconf.load_jail_filter`.
    """
    try:
        name, args = parse_filter_spec(spec)
    except ValueError as exc:
        raise config_error(str(confdir), None, f"filter {spec!r}: {exc}") from None
    config, source = read_filter_config(confdir, name)
    if name.endswith((".conf", ".local")):
        name = os.path.splitext(os.path.basename(name))[0]
    return build_filter(config, name, {**args, **(extra or {})}, source)


# --------------------------------------------------------------------------------------------
# building


def _jail_variables(extra: Mapping[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in extra.items() if key.lower() in JAIL_OPTIONS}


def _auto_logtype(config: Config, args: dict[str, str], jail: Mapping[str, str]) -> None:
    """fail2ban's applyAutoOptions: the jail's backend chooses the log type."""
    backend = jail.get("backend")
    if backend is None or args.get("logtype") or "logtype" in config.section(DEFINITION):
        return
    args["logtype"] = "journal" if backend.startswith("systemd") else "file"


def _init_options(config: Config, init: dict[str, str], source: str) -> None:
    """Add [Init]'s options (unless given as arguments) and their ``known/`` copies."""
    scope = Scope(config, INIT, source=source)
    for key in config.section(INIT):
        resolved = get(scope, key)
        assert resolved is not None
        if not key.startswith(KNOWN):
            init[KNOWN + key] = resolved.text
        init.setdefault(key, resolved.text)


class _Tags:
    """Looks up ``<name>`` the way fail2ban's getCombOption does, caching the answers."""

    def __init__(self, combined: Mapping[str, str], definition: Scope) -> None:
        self.combined = combined
        self.definition = definition
        self._cache: dict[str, str | None] = {}

    def __call__(self, name: str) -> str | None:
        if name in self.combined:
            return self.combined[name]
        if name not in self._cache:
            self._cache[name] = self._lookup(name)
        return self._cache[name]

    def _lookup(self, name: str) -> str | None:
        match = _TAG_SECTION_KEY.fullmatch(name)
        if match:
            found = self._section_key(match["section"], match["key"].lower())
            if found is not None:
                return found
        resolved = get(self.definition, name)
        return None if resolved is None else resolved.text

    def _section_key(self, section: str, key: str) -> str | None:
        config = self.definition.config
        kind = section.lower()
        if kind == "known":
            plain = Scope(config, DEFINITION, source=self.definition.source)
            if config.replaced.get(DEFINITION, {}).get(key):
                return get_known(plain, key)
            resolved = get(plain, key)
        elif kind == "default":
            resolved = get(Scope(config, DEFAULT, source=self.definition.source), key)
        elif section in config.sections:
            resolved = get(Scope(config, section, source=self.definition.source), key)
        else:
            return None
        return None if resolved is None else resolved.text


def substitute_tags(
    key: str, value: str, lookup: Callable[[str], str | None], ignore: frozenset[str]
) -> str:
    """Replace the ``<tag>``s of ``value`` until nothing changes; ValueError on a loop."""
    counts: dict[str, int] = {}
    while True:
        new = _substitution_pass(key, value, lookup, ignore, counts)
        if new == value or not _TAG.search(new):
            return new
        value = new


def _substitution_pass(
    key: str,
    value: str,
    lookup: Callable[[str], str | None],
    ignore: frozenset[str],
    counts: dict[str, int],
) -> str:
    pos = 0
    while match := _TAG.search(value, pos):
        tag = match["name"]
        if tag in ignore:
            pos = match.end()
            continue
        if tag == key or counts.get(tag, 1) > MAX_TAG_REPLACEMENTS:
            raise ValueError(f"<{tag}> refers to itself (directly or through other tags)")
        replacement = lookup(tag)
        if replacement is None:
            pos = match.end()
            continue
        value = value.replace(match[0], replacement)
        counts[tag] = counts.get(tag, 0) + 1
        pos = match.start()
    return value


def _lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line != ""]


def parse_journalmatch(text: str) -> tuple[tuple[str, ...], ...]:
    """``_SYSTEMD_UNIT=sshd.service + _COMM=sshd`` → OR of AND-groups, one line at a time."""
    groups: list[tuple[str, ...]] = []
    for line in _lines(text):
        current: list[str] = []
        for word in shlex.split(line):
            if word == "+":
                groups.append(tuple(current))
                current = []
            else:
                current.append(word)
        groups.append(tuple(current))
    return tuple(group for group in groups if group)


@dataclass
class _Parts:
    """What building a filter works with."""

    config: Config
    source: str
    combined: dict[str, str]
    others: dict[str, str]
    definition: Scope


def _collect(
    config: Config, args: Mapping[str, str], jail: Mapping[str, str], source: str
) -> _Parts:
    """Interpolated options: the filter's own (overridden by [Init] and the arguments)."""
    if DEFINITION not in config.sections:
        raise config_error(source, None, "the filter has no [Definition] section")
    init = dict(args)
    _auto_logtype(config, init, jail)
    variables = {**jail, **init}
    definition = Scope(config, DEFINITION, source=source).with_variables(variables)
    combined: dict[str, str] = {}
    for key in FILTER_OPTIONS:
        if key not in definition.variables:
            resolved = get(definition, key)
            if resolved is not None:
                combined[key] = resolved.text
    _init_options(config, init, source)
    combined.update(init)
    others: dict[str, str] = {}
    for key in definition.option_names():
        if key in combined or key in FILTER_OPTIONS:
            continue
        try:
            resolved = get(definition, key)
        except ValueError:
            continue  # fail2ban never reads an option nothing refers to
        if resolved is not None:
            others[key] = resolved.text
    return _Parts(config, source, combined, others, definition)


def _origin(parts: _Parts, key: str) -> Origin:
    if key in parts.config.section(INIT):
        return Scope(parts.config, INIT, source=parts.source).origin(key)
    return parts.definition.origin(key)


def _substitute_all(parts: _Parts) -> dict[str, str]:
    """Every option with its tags replaced (options nothing needs are left out on error)."""
    ignore = frozenset(
        m["name"] for key in parts.combined if (m := _CONDITIONAL.fullmatch(key)) is not None
    )
    lookup = _Tags(parts.combined, parts.definition)
    result: dict[str, str] = {}
    for key, value in {**parts.others, **parts.combined}.items():
        if key in ignore:
            result[key] = value
            continue
        try:
            result[key] = substitute_tags(key, value, lookup, ignore)
        except ValueError as exc:
            if key in parts.combined:
                raise _origin(parts, key).error(str(exc)) from None
    return result


def _public(options: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in options.items() if not key.startswith(KNOWN)}


def filter_options(
    config: Config, args: Mapping[str, str], jail: Mapping[str, str], source: str
) -> dict[str, str]:
    """Every option of the filter after interpolation and tag substitution (no ``known/``)."""
    return _public(_substitute_all(_collect(config, args, _jail_variables(jail), source)))


def build_filter(
    config: Config,
    name: str,
    args: Mapping[str, str],
    source: str,
    jail_options: Mapping[str, str] | None = None,
) -> FilterDef:
    """Assemble a :class:`FilterDef` from merged files and arguments.

    ``jail_options`` are the options of the jail that uses the filter; fail2ban hands it the
    ones in :data:`JAIL_OPTIONS`: they are visible to ``%(name)s``, ``backend`` chooses the
    ``logtype`` argument's default, and the filter options among them replace the filter's
    [Definition] ones. Arguments and ``[Init]`` still count, in the order fail2ban sends them to
    its server: their ``failregex``/``ignoreregex``/``journalmatch`` lines come first, their
    ``prefregex``/``maxlines`` win over the jail's, the jail's ``datepattern`` over theirs.
    """
    jail = _jail_variables(jail_options or {})
    parts = _collect(config, args, jail, source)
    options = _substitute_all(parts)
    final = {key: options[key] for key in parts.combined}

    def scalar(key: str) -> str | None:
        # fail2ban sends a jail's prefregex/maxlines before the filter's, its datepattern after
        first, last = (final, jail) if key == "datepattern" else (jail, final)
        return last[key] if key in last else first.get(key)

    def listed(key: str) -> str:
        return "\n".join(text for text in (final.get(key), jail.get(key)) if text is not None)

    prefregex = scalar("prefregex")
    datepattern = scalar("datepattern")
    return FilterDef(
        name=name,
        source=source,
        prefregex=prefregex or None,
        failregex=tuple(_lines(listed("failregex"))),
        ignoreregex=tuple(_lines(listed("ignoreregex"))),
        datepattern=datepattern if datepattern and datepattern.strip() else None,
        maxlines=_maxlines(scalar("maxlines"), _origin(parts, "maxlines")),
        journalmatch=_journalmatch(listed("journalmatch"), _origin(parts, "journalmatch")),
        options=MappingProxyType(_public(options)),
    )


def _maxlines(text: str | None, origin: Origin) -> int:
    if text is None:
        return 1
    try:
        value = int(text)
    except ValueError:
        raise origin.error(f"{text!r} is not a number") from None
    if value < 1:
        raise origin.error(f"{text!r} is not 1 or more")
    return value


def _journalmatch(text: str, origin: Origin) -> tuple[tuple[str, ...], ...]:
    try:
        return parse_journalmatch(text)
    except ValueError as exc:
        raise origin.error(f"{text!r}: {exc}") from None
