"""Argument templates: a command as an argument list whose ``<name>`` placeholders are filled in
*inside* each argument, in one pass, never split and never read by a shell — and the checks
that keep a value from turning into an option. Used by the command responder and the command
notification channel; pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from stockade.errors import ConfigError

_PLACEHOLDER = re.compile(r"<([A-Za-z_]+)>")


def substitute(template: Sequence[str], found: dict[str, str]) -> list[str]:
    """``template`` with each placeholder replaced inside its argument, in one pass."""
    return [_PLACEHOLDER.sub(lambda m: found.get(m[1], m[0]), arg) for arg in template]


def check_options(template: Sequence[str], argv: Sequence[str]) -> str | None:
    """Which placeholder made an argument look like an option, or None when none did."""
    for written, arg in zip(template[1:], argv[1:], strict=True):
        if written == "--":
            return None
        if arg.startswith("-") and not written.startswith("-"):
            return written
    return None


def validate(template: Sequence[str], what: str, allowed: Sequence[str]) -> None:
    """Refuse an empty command, a placeholder in the program, or an unknown placeholder."""
    if not template or not template[0]:
        raise ConfigError(f"{what}: the command is empty; give the program and its arguments")
    if _PLACEHOLDER.search(template[0]):
        raise ConfigError(f"{what}: the program {template[0]!r} may not hold a placeholder")
    for arg in template:
        for name in _PLACEHOLDER.findall(arg):
            if name not in allowed:
                known = ", ".join(f"<{n}>" for n in allowed) or "none"
                raise ConfigError(
                    f"{what}: unknown placeholder <{name}> in {arg!r}; known: {known}"
                )
