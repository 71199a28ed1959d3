"""Read the TOML configuration, validate it, and turn every problem into one clear line.

A message names the file, the line where the key sits (found by a light scan of the text, as
tomllib keeps no positions), the dotted key, and what is wrong, for example::

    /etc/stockade/stockade.toml:14: files.rules[2].severity: unknown severity 'hgih'; use one
    of info, low, medium, high, critical
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ValidationError

from stockade.config.schema import Config
from stockade.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/stockade/stockade.toml")


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration and where it came from (``path`` None = the bundled one)."""

    config: Config
    path: Path | None
    text: str

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "bundled quick-start configuration"


def quickstart_text() -> str:
    """The bundled quick-start configuration, used when no configuration file exists."""
    return resources.files("stockade.data").joinpath("quickstart.toml").read_text("utf-8")


def load_config(path: Path | None, *, explicit: bool) -> LoadedConfig:
    """Load ``path``; with ``explicit`` False a missing default file means the bundled one."""
    if path is None or (not explicit and not path.exists()):
        text = quickstart_text()
        return LoadedConfig(parse_config(text, "<bundled quickstart.toml>"), None, text)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such configuration file; create it (stockade config show > {path})"
            " or pass another with --config"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a configuration file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the configuration: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not valid UTF-8; save the file as UTF-8") from None
    return LoadedConfig(parse_config(text, str(path)), path, text)


def parse_config(text: str, name: str) -> Config:
    """Parse and validate TOML ``text``; ``name`` is used in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        where = f"{name}:{m.group(1)}" if m else name
        raise ConfigError(f"{where}: TOML syntax error: {e}") from None
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_describe(e, text, name, data)) from None


def _without_tags(loc: list[str | int], data: object) -> list[str | int]:
    """``loc`` without the tags pydantic adds for a tagged union (``channels[0].webhook.url``
    is ``channels[0].url`` in the file)."""
    out: list[str | int] = []
    for i, p in enumerate(loc):
        after_index = i > 0 and isinstance(loc[i - 1], int)
        if after_index and isinstance(data, dict) and data.get("type") == p:
            continue
        out.append(p)
        if isinstance(data, dict):
            data = data.get(p)
        elif isinstance(data, list) and isinstance(p, int) and p < len(data):
            data = data[p]
        else:
            data = None
    return out


def _describe(err: ValidationError, text: str, name: str, data: object = None) -> str:
    errors = err.errors()
    first = errors[0]
    loc: list[str | int] = _without_tags(list(first["loc"]), data)
    msg = str(first["msg"]).removeprefix("Value error, ")
    ctx = first.get("ctx") or {}
    if first["type"] == "union_tag_invalid":
        msg = f"unknown type {ctx.get('tag')!r}; use one of {ctx.get('expected_tags')}"
        loc.append("type")
    elif first["type"] == "union_tag_not_found":
        msg = f"required key {ctx.get('discriminator')} is missing"
    m = re.match(r"@([\w\[\]\.]+): (.*)", msg, re.S)
    if m:
        loc += _split_loc(m.group(1))
        msg = m.group(2)
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        msg = "unknown key; check its spelling" + (f" (allowed: {allowed})" if allowed else "")
    elif first["type"] == "missing":
        msg = "required key is missing"
    key = _dotted(loc)
    line = find_line(text, loc)
    where = f"{name}:{line}" if line else name
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{where}: {key}: {msg}{more}"


def _split_loc(text: str) -> list[str | int]:
    out: list[str | int] = []
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", text):
        out.append(int(part[1:-1]) if part.startswith("[") else part)
    return out


def _dotted(loc: list[str | int]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out or "(top level)"


def _allowed_keys(loc: list[str | int]) -> str:
    """The keys allowed in the section at ``loc``, for the hint after an unknown key."""
    model: type[BaseModel] | None = Config
    for p in loc:
        if isinstance(p, int):
            continue
        field = model.model_fields.get(p) if model is not None else None
        if field is None:
            return ""
        ann = field.annotation
        candidates = (ann, *getattr(ann, "__args__", ()))
        model = next(
            (a for a in candidates if isinstance(a, type) and issubclass(a, BaseModel)), None
        )
    return ", ".join(model.model_fields) if model is not None else ""


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.\s]+?)\s*=")


def _keyparts(text: str) -> list[str]:
    return [p.strip().strip("\"'") for p in text.split(".")]


def find_line(text: str, loc: list[str | int]) -> int | None:
    """Return the 1-based line holding the key at ``loc``, or the nearest enclosing one."""
    current: list[str | int] = []
    counters: dict[str, int] = {}
    best: tuple[int, int] | None = None  # (matched length, line)
    for n, line in enumerate(text.splitlines(), 1):
        h = _HEADER.match(line)
        if h:
            parts: list[str | int] = list(_keyparts(h.group(2)))
            if h.group(1) == "[[":
                key = ".".join(map(str, parts))
                counters[key] = counters.get(key, -1) + 1
                parts.append(counters[key])
            current = parts
            full = current
        else:
            k = _KEY.match(line)
            if not k:
                continue
            full = current + list(_keyparts(k.group(1)))
        depth = 0
        for a, b in zip(full, loc, strict=False):
            if a != b:
                break
            depth += 1
        if depth == len(full) and depth > 0 and (best is None or depth > best[0]):
            best = (depth, n)
    return best[1] if best else None
