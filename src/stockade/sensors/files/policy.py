"""The file integrity policy compiled from the configuration: rules, exclusions, severities.

A rule covers a tree: a root path, the attributes recorded for entries under it, the severity
of a change, how deep to go and what to leave out. The rule for a path is the rule with the
longest root that contains it. Paths named on the command line and covered by no rule get the
``binaries`` set at high severity.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from stockade.config.schema import FilesSection
from stockade.errors import ConfigError, UsageError
from stockade.model import Severity
from stockade.sensors.files.attributes import BUILTIN_SETS, mask_of, parse_attribute_expression

CLI_RULE_ATTRIBUTES = "binaries"


class Excluder:
    """Decides whether a path is excluded, from glob patterns and regular expressions.

    A glob with a ``/`` matches the whole path (``*`` crosses ``/``), one without matches the
    last component (``*.swp``); a regular expression is searched in the whole path.
    """

    def __init__(self, globs: Sequence[str], regexes: Sequence[str]) -> None:
        full = [g for g in globs if "/" in g]
        base = [g for g in globs if "/" not in g]
        self._full = self._compile([fnmatch.translate(g) for g in full])
        self._base = self._compile([fnmatch.translate(g) for g in base])
        self._regex = self._compile(list(regexes))
        self.empty = not (full or base or regexes)

    @staticmethod
    def _compile(patterns: list[str]) -> re.Pattern[bytes] | None:
        if not patterns:
            return None
        return re.compile(os.fsencode("|".join(f"(?:{p})" for p in patterns)))

    def __call__(self, path: bytes) -> bool:
        if self.empty:
            return False
        if self._full is not None and self._full.match(path):
            return True
        if self._base is not None and self._base.match(path.rpartition(b"/")[2]):
            return True
        return self._regex is not None and self._regex.search(path) is not None


@dataclass(frozen=True)
class Rule:
    """How one tree is watched."""

    root: bytes
    expression: str
    attrs: frozenset[str]
    mask: int
    severity: Severity
    depth: int | None  # None = unlimited
    exclude: Excluder
    from_config: bool = True

    @property
    def display(self) -> str:
        return os.fsdecode(self.root)


def normalise(path: str | bytes) -> bytes:
    """Absolute, normalised path as bytes (never resolves symbolic links)."""
    p = os.fsencode(path)
    return os.path.normpath(os.path.abspath(p))


def contains(root: bytes, path: bytes) -> bool:
    """Whether ``path`` is ``root`` or lies below it."""
    return root in (path, b"/") or path.startswith(root + b"/")


def depth_below(root: bytes, path: bytes) -> int:
    """How many levels ``path`` lies below ``root`` (0 for the root itself)."""
    return path.rstrip(b"/").count(b"/") - root.rstrip(b"/").count(b"/")


def best_rule(rules: Iterable[Rule], path: bytes) -> Rule | None:
    """Of ``rules``, the one with the longest root containing ``path``."""
    best = None
    for r in rules:
        if contains(r.root, path) and (best is None or len(r.root) > len(best.root)):
            best = r
    return best


@dataclass(frozen=True)
class Policy:
    """The compiled policy."""

    rules: tuple[Rule, ...]
    exclude: Excluder
    one_filesystem: bool
    setuid_severity: Severity
    sets: dict[str, frozenset[str]]

    @classmethod
    def from_config(cls, files: FilesSection) -> Policy:
        sets = dict(BUILTIN_SETS)
        for name, expr in files.attribute_sets.items():
            sets[name] = parse_attribute_expression(expr, sets)
        rules = []
        for r in files.rules:
            root = normalise(r.path)
            attrs = parse_attribute_expression(r.attributes, sets)
            _check_available(attrs)
            depth = None if r.recurse is True else (0 if r.recurse is False else int(r.recurse))
            rules.append(
                Rule(
                    root=root,
                    expression=r.attributes,
                    attrs=attrs,
                    mask=mask_of(attrs),
                    severity=Severity.parse(r.severity),
                    depth=depth,
                    exclude=Excluder(r.exclude, r.exclude_regex),
                )
            )
        rules.sort(key=lambda r: len(r.root), reverse=True)
        return cls(
            rules=tuple(rules),
            exclude=Excluder(files.exclude, files.exclude_regex),
            one_filesystem=files.one_filesystem,
            setuid_severity=Severity.parse(files.setuid_severity),
            sets=sets,
        )

    def rule_for(self, path: bytes) -> Rule | None:
        """The rule with the longest root containing ``path``."""
        return best_rule(self.rules, path)

    def cli_rule(self, path: bytes) -> Rule:
        """The rule for a path named on the command line."""
        rule = self.rule_for(path)
        if rule is not None and rule.root == path:
            return rule
        if rule is not None:
            # a sub-tree of a configured rule keeps that rule's attributes and severity
            return Rule(
                path,
                rule.expression,
                rule.attrs,
                rule.mask,
                rule.severity,
                None,
                rule.exclude,
                from_config=False,
            )
        attrs = BUILTIN_SETS[CLI_RULE_ATTRIBUTES]
        return Rule(
            path,
            CLI_RULE_ATTRIBUTES,
            attrs,
            mask_of(attrs),
            Severity.HIGH,
            None,
            Excluder([], []),
            from_config=False,
        )

    def excluded(self, path: bytes, rule: Rule) -> bool:
        return self.exclude(path) or rule.exclude(path)


def _check_available(attrs: frozenset[str]) -> None:
    if "blake3" in attrs:
        try:
            import blake3  # noqa: F401
        except ImportError:
            raise ConfigError(
                "files: the blake3 attribute needs the blake3 package; "
                "install it (pip install 'stockade[blake3]') or use sha256/sha512"
            ) from None


def parse_cli_paths(paths: Sequence[str]) -> list[bytes]:
    """Paths from the command line, normalised; reject empty ones."""
    out = []
    for p in paths:
        if not p:
            raise UsageError("an empty path was given; name a file or folder")
        out.append(normalise(p))
    return out
