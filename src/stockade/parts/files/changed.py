"""The paths the running files part knows to differ from the baseline, kept in the store's state
for the dashboard: its files page compares those paths instead of walking every tree.

The daemon writes the set after each full check and whenever a real-time look changes it; a path
accepted elsewhere stays in the set until the next full check, which is harmless — comparing it
shows it equal. Pure encoding and decoding; the store does the I/O.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass

CHANGED_STATE = "files.changed"
#: beyond this many paths only the fact is kept, and the page compares everything
MAX_PATHS = 50_000


@dataclass(frozen=True)
class Changed:
    updated: float  # when the daemon last wrote the set
    checked: float | None  # when its last full check ended (None: none since it started)
    paths: list[bytes] | None  # None: too many to keep


def changed_paths_json(paths: Iterable[bytes], when: float, checked: float | None) -> str:
    listed = sorted(paths)
    return json.dumps(
        {
            "updated": when,
            "checked": checked,
            "paths": [os.fsdecode(p) for p in listed] if len(listed) <= MAX_PATHS else None,
        }
    )


def read_changed(text: str | None) -> Changed | None:
    """The stored set, or None when there is none or it cannot be read (then the page compares
    everything, as without a daemon)."""
    if not text:
        return None
    try:
        d = json.loads(text)
        paths = d["paths"]
        checked = d.get("checked")
        return Changed(
            float(d["updated"]),
            None if checked is None else float(checked),
            None if paths is None else [os.fsencode(str(p)) for p in paths],
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
