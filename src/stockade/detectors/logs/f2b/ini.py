"""fail2ban-flavoured INI: file syntax, ``[INCLUDES]``, ``.local`` overrides, ``%(name)s``.

fail2ban reads its configuration with Python's ConfigParser plus additions of its own
(``client/configparserinc.py``, ``client/configreader.py``). This module behaves the same way
without using either:

* **syntax** — ``[section]`` headers; ``key = value`` or ``key: value``; keys are
  case-insensitive; a line indented deeper than its key continues the value; blank lines inside
  a value are kept (trailing ones dropped); a line whose first non-blank character is ``#`` or
  ``;`` is a comment, and so is the rest of a line from a ``;`` that follows a blank; a section
  or a key given twice in one file is an error.
* **files** — for a name X: ``X.conf``, ``X.d/*.conf``, ``X.local``, ``X.d/*.local``. Each file
  is preceded by the files its ``[INCLUDES] before =`` names and followed by those of
  ``after =`` (one per line, relative to the including file's folder), and every file read
  brings its own ``.local`` along.
* **merging** — later files override options one by one; ``[DEFAULT]`` holds for every section;
  a section ``[name?cond]`` adds options ``key?cond`` to ``[name]``.
* **interpolation** — ``%(key)s`` (given variables, then the section, then ``[DEFAULT]``),
  ``%(section/key)s``, ``%(default/key)s``, ``%(known/key)s`` (the value the key had before its
  last override, else ``[DEFAULT]``'s), ``%(__name__)s`` (the section's name) and ``%%``.
  Where fail2ban fails, two things work here: ``known/`` inside a ``known/`` value goes one
  override further back (``jail.d/x.local`` and ``jail.local`` may both extend ``ignoreip``),
  and a missing included file is an error unless it is a ``.local`` (fail2ban skips both
  silently; its own files include ``.local`` files that may not exist).

Only :class:`FileCache`, :func:`config_files` and the include expansion touch the
filesystem; parsing, merging and interpolation are pure.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from stockade.errors import ConfigError

DEFAULT = "DEFAULT"
INCLUDES = "INCLUDES"
KNOWN = "known/"
MAX_DEPTH = 10  # nesting of %(...)s references, as ConfigParser allows

_HEADER = re.compile(r"\[(?P<name>.+)\]")
_OPTION = re.compile(r"(?P<key>.*?)\s*[=:]\s*(?P<value>.*)")
_REFERENCE = re.compile(r"%\((?P<name>[^)]+)\)s")
_SECTION_KEY = re.compile(r"(?P<section>[\w\-]+)/(?P<key>.+)")
_CONDITIONAL = re.compile(r"(?P<name>\w+)(?P<cond>\?.+)")


class F2bConfigError(ConfigError, ValueError):
    """fail2ban configuration that cannot be read: one line naming the file, line, section, key."""


def config_error(
    source: str,
    line: int | None,
    what: str,
    *,
    section: str | None = None,
    key: str | None = None,
) -> F2bConfigError:
    """Build the one-line error ``file:line: [section] key: what``."""
    where = f"{source}:{line}" if line else source
    context = "".join((f" [{section}]" if section else "", f" {key}" if key else ""))
    message = f"{where}:{context}: {what}" if context else f"{where}: {what}"
    return F2bConfigError(message.replace("\r", "\\r").replace("\n", "\\n"))


@dataclass(frozen=True)
class Value:
    """A raw option value and where it was written."""

    text: str
    source: str
    line: int


Options = dict[str, Value]


@dataclass
class IniFile:
    """One file as written: its [DEFAULT] options and its sections, in order."""

    path: str
    defaults: Options = field(default_factory=dict)
    sections: dict[str, Options] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# syntax


def _strip_comment(line: str) -> tuple[str, bool]:
    """The line without its comment, and whether there was one."""
    if line.strip().startswith(("#", ";")):
        return "", True
    at = line.find(";")
    while at != -1:
        if at == 0 or line[at - 1].isspace():
            return line[:at], True
        at = line.find(";", at + 1)
    return line, False


class _Parser:
    """Line-by-line state of one file being parsed."""

    def __init__(self, path: str) -> None:
        self.ini = IniFile(path)
        self._section: Options | None = None
        self._section_name = ""
        self._seen: set[tuple[str, str] | str] = set()
        self._key: str | None = None
        self._key_line = 0
        self._lines: list[str] = []
        self._indent = 0

    def feed(self, lineno: int, line: str) -> None:
        body, commented = _strip_comment(line)
        text = body.strip()
        if not text:
            if not commented and self._key is not None:
                self._lines.append("")
            return
        indent = len(line) - len(line.lstrip())
        if self._key is not None and indent > self._indent:
            self._lines.append(text)
            return
        self._flush()
        self._indent = indent
        header = _HEADER.match(text)
        if header:
            self._start_section(header["name"], lineno)
        else:
            self._start_option(text, lineno, line)

    def finish(self) -> IniFile:
        self._flush()
        return self.ini

    def _error(self, lineno: int, what: str) -> F2bConfigError:
        return config_error(self.ini.path, lineno, what)

    def _start_section(self, name: str, lineno: int) -> None:
        if name == DEFAULT:
            self._section = self.ini.defaults
        elif name in self._seen:
            raise self._error(lineno, f"section [{name}] appears twice in this file")
        else:
            self._seen.add(name)
            self._section = self.ini.sections.setdefault(name, {})
        self._section_name = name

    def _start_option(self, text: str, lineno: int, line: str) -> None:
        if self._section is None:
            raise self._error(lineno, f"{line.strip()!r} comes before the first [section] header")
        match = _OPTION.fullmatch(text)
        if match is None or not match["key"]:
            raise config_error(
                self.ini.path,
                lineno,
                f"{text!r} is not an option (expected 'key = value')",
                section=self._section_name,
            )
        key = match["key"].rstrip().lower()
        if (self._section_name, key) in self._seen:
            raise config_error(
                self.ini.path,
                lineno,
                "option given twice in this section of this file",
                section=self._section_name,
                key=key,
            )
        self._seen.add((self._section_name, key))
        self._key, self._key_line, self._lines = key, lineno, [match["value"].strip()]

    def _flush(self) -> None:
        if self._key is not None and self._section is not None:
            text = "\n".join(self._lines).rstrip()
            self._section[self._key] = Value(text, self.ini.path, self._key_line)
        self._key = None
        self._lines = []


def parse_ini(text: str, path: str) -> IniFile:
    """Parse the text of one file; ``path`` is only used to say where things are."""
    parser = _Parser(path)
    for lineno, line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        parser.feed(lineno, line)
    return parser.finish()


# --------------------------------------------------------------------------------------------
# merged configuration


@dataclass
class Config:
    """Several files merged in order, remembering what each override replaced."""

    defaults: Options = field(default_factory=dict)
    sections: dict[str, Options] = field(default_factory=dict)
    replaced: dict[str, dict[str, list[Value]]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def merge(self, ini: IniFile) -> None:
        """Lay one file over what was read before."""
        self.files.append(ini.path)
        self.defaults.update(ini.defaults)
        for name, options in ini.sections.items():
            base, opts = _unconditional(name, options)
            target = self.sections.get(base)
            if target is None:
                self.sections[base] = dict(opts)
                continue
            history = self.replaced.setdefault(base, {})
            for key, value in opts.items():
                if key in target:
                    history.setdefault(key, []).append(target[key])
                target[key] = value

    def section(self, name: str) -> Options:
        """The options written in a section (empty when it does not exist)."""
        return self.sections.get(name, {})

    def known(self, section: str, key: str, level: int) -> str | None:
        """``%(known/key)s``: the value ``level`` overrides back, else the [DEFAULT] one."""
        history = self.replaced.get(section, {}).get(key, [])
        if len(history) >= level:
            return history[-level].text
        value = self.defaults.get(key)
        return value.text if value else None


def _unconditional(name: str, options: Options) -> tuple[str, Options]:
    """``[name?cond]`` holds options ``key?cond`` of ``[name]``."""
    match = _CONDITIONAL.fullmatch(name)
    if not match:
        return name, options
    return match["name"], {key + match["cond"]: value for key, value in options.items()}


def merge_files(files: Iterable[IniFile]) -> Config:
    """Merge parsed files in the order given."""
    config = Config()
    for ini in files:
        config.merge(ini)
    return config


# --------------------------------------------------------------------------------------------
# interpolation


@dataclass(frozen=True)
class Origin:
    """Where a value being interpolated comes from, for error messages."""

    source: str
    line: int | None
    section: str
    key: str

    def error(self, what: str) -> F2bConfigError:
        return config_error(self.source, self.line, what, section=self.section, key=self.key)


@dataclass(frozen=True)
class Resolved:
    """An option's value after interpolation, and where it was written."""

    text: str
    origin: Origin


@dataclass(frozen=True)
class Scope:
    """What ``%(name)s`` sees while reading one section.

    ``variables`` come first (fail2ban passes a jail's options and a filter's arguments this
    way), then ``extra`` options of the section (a jail's ``known/...`` options from its filter),
    then the section itself, then [DEFAULT]. ``source`` names the origin of values that were not
    read from a file.
    """

    config: Config
    section: str
    variables: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, str] = field(default_factory=dict)
    source: str = "<configuration>"

    def with_variables(self, variables: Mapping[str, str]) -> Scope:
        lowered = {key.lower(): value for key, value in variables.items()}
        return Scope(self.config, self.section, lowered, self.extra, self.source)

    def raw(self, key: str) -> str | None:
        """The uninterpolated value of ``key`` (already lower-case) in this scope."""
        for layer in (self.variables, self.extra):
            if key in layer:
                return layer[key]
        value = self.config.section(self.section).get(key) or self.config.defaults.get(key)
        return value.text if value else None

    def origin(self, key: str) -> Origin:
        value = self.config.section(self.section).get(key) or self.config.defaults.get(key)
        if value is None or key in self.variables or key in self.extra:
            return Origin(self.source, None, self.section, key)
        return Origin(value.source, value.line, self.section, key)

    def option_names(self) -> list[str]:
        """Every option of the section and of [DEFAULT], section first."""
        own = list(self.config.section(self.section))
        return own + [key for key in self.config.defaults if key not in own]


def get(scope: Scope, key: str) -> Resolved | None:
    """The interpolated value of ``key`` in ``scope``, or None when it is not set."""
    key = key.lower()
    raw = scope.raw(key)
    if raw is None:
        return None
    origin = scope.origin(key)
    return Resolved(interpolate(scope, raw, origin), origin)


def get_known(scope: Scope, key: str) -> str | None:
    """``%(known/key)s`` in ``scope``: the value before the last override, else [DEFAULT]'s."""
    key = key.lower()
    text = scope.config.known(scope.section, key, 1)
    if text is None:
        return None
    return _expand(scope, text, scope.origin(key), 1, {key: 1})


def interpolate(scope: Scope, text: str, origin: Origin) -> str:
    """Replace ``%(name)s`` references and ``%%`` in ``text`` as fail2ban does."""
    return _expand(scope, text, origin, 1, {})


def _expand(scope: Scope, text: str, origin: Origin, depth: int, levels: dict[str, int]) -> str:
    if depth > MAX_DEPTH:
        raise origin.error(f"references nest deeper than {MAX_DEPTH} levels (a loop?)")
    out: list[str] = []
    pos = 0
    while (at := text.find("%", pos)) != -1:
        out.append(text[pos:at])
        follower = text[at + 1 : at + 2]
        if follower == "%":
            out.append("%")
            pos = at + 2
            continue
        match = _REFERENCE.match(text, at) if follower == "(" else None
        if match is None:
            raise origin.error(
                f"'%' must be followed by '%' or '(name)s' (write '%%' for a literal '%'): "
                f"{text[at : at + 20]!r}"
            )
        value, inner = _reference(scope, match["name"], levels, origin)
        out.append(_expand(scope, value, origin, depth + 1, inner) if "%" in value else value)
        pos = match.end()
    out.append(text[pos:])
    return "".join(out)


def _reference(
    scope: Scope, name: str, levels: dict[str, int], origin: Origin
) -> tuple[str, dict[str, int]]:
    """The raw text a reference stands for, and the ``known/`` levels to expand it with."""
    key = name.lower()
    if key == "__name__":
        return scope.section, levels
    direct = scope.raw(key)
    if direct is not None:
        return direct, levels
    match = _SECTION_KEY.fullmatch(name)
    if match:
        found = _section_reference(scope, match["section"], match["key"].lower(), levels)
        if found is not None:
            return found
    raise origin.error(f"'%({name})s' refers to an option that is not set")


def _section_reference(
    scope: Scope, section: str, key: str, levels: dict[str, int]
) -> tuple[str, dict[str, int]] | None:
    config = scope.config
    kind = section.lower()
    if kind == "known":
        level = levels.get(key, 0) + 1
        text = config.known(scope.section, key, level)
        return None if text is None else (text, {**levels, key: level})
    if kind == "default":
        value = config.defaults.get(key)
    elif section in config.sections:
        value = config.sections[section].get(key) or config.defaults.get(key)
    else:
        return None
    return None if value is None else (value.text, levels)


# --------------------------------------------------------------------------------------------
# files


class FileCache:
    """Reads and parses files, each once."""

    def __init__(self) -> None:
        self._files: dict[str, IniFile] = {}

    def load(self, path: str) -> IniFile:
        ini = self._files.get(path)
        if ini is None:
            ini = parse_ini(_read_text(path), path)
            self._files[path] = ini
        return ini


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except UnicodeDecodeError as exc:
        raise config_error(path, None, f"is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise config_error(path, None, f"cannot be read: {exc.strerror}") from None


def config_files(base: str) -> list[str]:
    """The files that make up ``base`` (a path without suffix), in fail2ban's order."""
    candidates = [
        base + ".conf",
        *sorted(glob.glob(glob.escape(base + ".d") + "/*.conf")),
        base + ".local",
        *sorted(glob.glob(glob.escape(base + ".d") + "/*.local")),
    ]
    return [path for path in candidates if os.path.isfile(path)]


def _with_locals(paths: list[str]) -> list[str]:
    """Each file followed by its ``.local`` when that exists and is not listed already."""
    out: list[str] = []
    for path in paths:
        out.append(path)
        local = os.path.splitext(path)[0] + ".local"
        if local not in paths and os.path.isfile(local):
            out.append(local)
    return out


def _includes(ini: IniFile, option: str) -> list[tuple[str, Value]]:
    """The files ``[INCLUDES] option`` names, one per line, relative to the file's folder."""
    value = ini.sections.get(INCLUDES, {}).get(option)
    if value is None:
        return []
    config = merge_files([ini])
    scope = Scope(config, INCLUDES)
    text = interpolate(scope, value.text, scope.origin(option))
    folder = os.path.dirname(ini.path)
    return [(os.path.join(folder, name), value) for name in text.split("\n") if name.strip()]


def _expand_file(path: str, cache: FileCache, ancestors: tuple[str, ...]) -> list[str]:
    """``path`` with the files it includes before and after it, recursively."""
    ini = cache.load(path)
    chain = (*ancestors, path)
    out: list[str] = []
    for option in ("before", "after"):
        if option == "after":
            out.append(path)
        for included, value in _includes(ini, option):
            if included in chain:
                continue
            if not os.path.isfile(included):
                if included.endswith(".local"):
                    continue  # optional overrides, as everywhere in fail2ban
                raise config_error(
                    value.source,
                    value.line,
                    f"included file {included} does not exist",
                    section=INCLUDES,
                    key=option,
                )
            for each in _with_locals([included]):
                out.extend(_expand_file(each, cache, chain))
    return out


def read_config(paths: list[str], cache: FileCache | None = None) -> Config:
    """Read ``paths`` (see :func:`config_files`) with their includes, merged in fail2ban's order."""
    cache = cache or FileCache()
    ordered: list[str] = []
    for path in _with_locals(paths):
        ordered.extend(_expand_file(path, cache, ()))
    return merge_files(cache.load(path) for path in ordered)
