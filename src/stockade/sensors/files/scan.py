"""Scan the watched trees: walk in this process, hash regular files in worker processes.

Hashing is CPU-bound and Python threads share one interpreter lock, so regular files are
handed to a pool of processes in batches (a batch is a few hundred small files or a few large
ones). The walk goes on while the workers hash, and results are yielded as batches finish, so
memory stays flat however large the tree. Small scans never start the pool.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator

from stockade.sensors.files.collect import (
    SETUID_MASK,
    Collected,
    collect_other,
    collect_regular,
)
from stockade.sensors.files.policy import Policy, Rule
from stockade.sensors.files.pool import WorkerPool
from stockade.sensors.files.walk import Note, walk

_SUID = stat.S_ISUID | stat.S_ISGID

BATCH_FILES = 128
POOL_THRESHOLD_FILES = 1500

#: ``progress(entries_found, entries_done, bytes_hashed)``
ProgressFn = Callable[[int, int, int], None]


def effective_mask(rule: Rule, st: os.stat_result) -> int:
    """The rule's attributes, plus those every setuid or setgid file gets."""
    if stat.S_ISREG(st.st_mode) and st.st_mode & _SUID:
        return rule.mask | SETUID_MASK
    return rule.mask


class _Counter:
    def __init__(self, progress: ProgressFn | None) -> None:
        self.fn = progress
        self.found = self.done = self.done_bytes = 0

    def tick(self) -> None:
        if self.fn is not None:
            self.fn(self.found, self.done, self.done_bytes)


def scan(
    policy: Policy,
    rules: Iterable[Rule],
    *,
    workers: int = 0,
    progress: ProgressFn | None = None,
) -> Iterator[Collected | Note]:
    """Yield every entry (as :class:`Collected`) and note found under ``rules``' trees."""
    nworkers = workers or os.cpu_count() or 1
    count = _Counter(progress)
    pending: list[tuple[bytes, int]] = []  # regular files not yet handed out
    pool: WorkerPool | None = None
    try:
        for item in walk(policy, rules):
            if isinstance(item, Note):
                yield item
                continue
            path, st, rule = item
            count.found += 1
            if st is not None and not stat.S_ISREG(st.st_mode):
                count.done += 1
                yield collect_other(path, st, effective_mask(rule, st))
                continue
            pending.append((path, rule.mask))  # the collector adds the setuid attributes
            if pool is None:
                if len(pending) < POOL_THRESHOLD_FILES:
                    continue
                if nworkers < 2:
                    yield from _inline(pending, count)
                    pending = []
                    continue
                pool = WorkerPool(nworkers)
            if len(pending) >= BATCH_FILES:
                pool.submit(pending)
                pending = []
                yield from _counted(pool.ready(), count)
            count.tick()
        if pool is None:
            yield from _inline(pending, count)
        else:
            if pending:
                pool.submit(pending)
            yield from _counted(pool.drain(), count)
            pool.close()
            pool = None
    finally:
        if pool is not None:
            pool.terminate()
        count.tick()


def _inline(pending: list[tuple[bytes, int]], count: _Counter) -> Iterator[Collected]:
    return _counted((collect_regular(p, m) for p, m in pending), count)


def _counted(results: Iterator[Collected], count: _Counter) -> Iterator[Collected]:
    for c in results:
        count.done += 1
        count.done_bytes += c.hashed
        yield c
        if count.done % 256 == 0:
            count.tick()
