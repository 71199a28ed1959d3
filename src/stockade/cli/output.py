"""Output helpers: plain tables, JSON lines, and a progress bar on a terminal."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from stockade.sensors.files.scan import ProgressFn


def table(rows: Sequence[Sequence[str]], headers: Sequence[str], out: TextIO | None = None) -> None:
    """Print left-aligned columns; the last column is not padded."""
    out = out or sys.stdout
    widths = [len(h) for h in headers]
    for r in rows:
        for i, cell in enumerate(r[:-1]):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(widths[i]) if i < len(cells) - 1 else c for i, c in enumerate(cells)
        )

    print(line(headers).rstrip(), file=out)
    for r in rows:
        print(line(r).rstrip(), file=out)


def json_line(obj: Any, out: TextIO | None = None) -> None:
    print(json.dumps(obj, sort_keys=True), file=out or sys.stdout)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@contextmanager
def progress(label: str, enabled: bool) -> Iterator[ProgressFn | None]:
    """A progress bar on stderr while the block runs, when ``enabled`` and stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[hashed]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task(label, total=None, hashed="")

    def update(found: int, done: int, hashed: int) -> None:
        bar.update(task, total=found, completed=done, hashed=f"{human_bytes(hashed)} hashed")

    with bar:
        yield update
