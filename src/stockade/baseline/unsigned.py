"""Replace a part's whole baseline with new entries, as one new unsigned version.

For the parts whose baseline is a small set of records taken in one piece (the listeners, the
hosts of a scan group): only the entries that differ are written, the rest carry over, and the
newest ``keep`` versions are kept.
"""

from __future__ import annotations

from collections.abc import Mapping

from stockade.baseline.signing import digest_entries
from stockade.store.base import Store


def replace_baseline(
    store: Store,
    part: str,
    entries: Mapping[bytes, str],
    *,
    note: str,
    meta: str = "{}",
    keep: int = 20,
) -> tuple[int, int]:
    """Make ``entries`` the next version of ``part``; return (version, entries changed)."""
    current = store.baseline_version(part)
    previous = current.version if current else 0
    base = dict(store.baseline_entries(part)) if current else {}
    changes: dict[bytes, str | None] = {k: t for k, t in entries.items() if base.get(k) != t}
    changes.update({k: None for k in base.keys() - entries.keys()})
    digest, count = digest_entries(sorted(entries.items()))
    store.commit_baseline(
        part,
        previous + 1,
        changes,
        replaced=[k for k in changes if k in base],
        note=note,
        meta=meta,
        entries=count,
        digest=digest,
        signature=b"",
        key_id="",
    )
    store.prune_baseline(part, keep)
    return previous + 1, len(changes)
