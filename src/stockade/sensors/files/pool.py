"""A pool of hashing worker processes fed in batches.

Each worker is a child process speaking the line protocol of :mod:`workerproto` over its
stdin and stdout. Per worker, one thread writes batches and another reads results, so a full
pipe can never deadlock the pair. A worker holds at most two batches at a time; the others wait
in a shared queue, so a worker that got a large file does not hold up the rest. If a worker
dies, its unfinished batches are collected in this process instead: nothing is lost.
"""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator

from stockade.sensors.files.collect import Collected, collect_regular
from stockade.sensors.files.workerproto import END, decode_result, encode_request

Batch = list[tuple[bytes, int]]
_STOP = None
_POLL = 0.2  # seconds a writer waits before looking again whether its worker died


class _Worker:
    """One child process, a thread that writes batches to it and one that reads results.

    Every batch taken from the shared queue is accounted for exactly once: it is answered,
    or handed back to the queue before being sent, or reported as lost (by the reader when the
    process ends, or by the writer when sending fails), and then collected in this process.
    """

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stockade.sensors.files.hashworker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        self.inflight: deque[Batch] = deque()
        self.slots = threading.Semaphore(2)
        self.lock = threading.Lock()
        self.dead = threading.Event()
        self.writer = threading.Thread(target=self._write, daemon=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.writer.start()
        self.reader.start()

    def _next(self) -> Batch | None:
        """The next batch to send, or None when this worker should stop."""
        while True:
            if self.dead.is_set():
                return None
            if not self.slots.acquire(timeout=_POLL):
                continue
            try:
                batch = self.pool.tasks.get(timeout=_POLL)
            except queue.Empty:
                self.slots.release()
                continue
            if batch is _STOP:
                return None
            with self.lock:
                if self.dead.is_set():
                    self.pool.tasks.put(batch)  # not sent: somebody else takes it
                    return None
                self.inflight.append(batch)
            return batch

    def _write(self) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            while (batch := self._next()) is not None:
                try:
                    stdin.write(b"".join(encode_request(p, m) for p, m in batch) + END)
                    stdin.flush()
                except OSError:
                    with self.lock:
                        mine = any(b is batch for b in self.inflight)
                        if mine:
                            self.inflight = deque(b for b in self.inflight if b is not batch)
                    if mine:
                        self.pool.results.put(("lost", [batch]))
                    return
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def _read(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        batch: list[Collected] = []
        try:
            for line in stdout:
                if line == END:
                    with self.lock:
                        self.inflight.popleft()
                    self.pool.results.put(batch)
                    batch = []
                    self.slots.release()
                    continue
                batch.append(decode_result(line))
        except (OSError, ValueError):
            pass
        # the worker ended: what it answered of its current batch counts, the rest is redone
        with self.lock:
            self.dead.set()
            lost = list(self.inflight)
            self.inflight.clear()
        if batch:
            self.pool.results.put(batch)
        if lost:
            self.pool.results.put(("lost", [lost[0][len(batch) :], *lost[1:]]))
        self.pool.results.put(("exit", None))


class WorkerPool:
    """Hash batches of regular files in ``n`` child processes."""

    def __init__(self, n: int) -> None:
        self.tasks: queue.Queue[Batch | None] = queue.Queue()
        self.results: queue.Queue[list[Collected] | tuple[str, object]] = queue.Queue()
        self.outstanding = 0
        self._workers = [_Worker(self) for _ in range(n)]
        self._alive = n

    def submit(self, batch: Batch) -> None:
        self.outstanding += len(batch)
        self.tasks.put(batch)

    def ready(self) -> Iterator[Collected]:
        """Results available now, without waiting."""
        while True:
            try:
                item = self.results.get_nowait()
            except queue.Empty:
                return
            yield from self._handle(item)

    def drain(self) -> Iterator[Collected]:
        """Every remaining result, waiting for them."""
        while self.outstanding > 0:
            if self._alive == 0:
                # every worker is gone: wait for their writers, then do the rest here
                for w in self._workers:
                    w.writer.join()
                yield from self.ready()
                yield from self._redo_queued()
                break
            yield from self._handle(self.results.get())

    def _handle(self, item: list[Collected] | tuple[str, object]) -> Iterator[Collected]:
        if isinstance(item, list):
            self.outstanding -= len(item)
            yield from item
            return
        kind, payload = item
        if kind == "exit":
            self._alive -= 1
        elif kind == "lost":
            assert isinstance(payload, list)
            for batch in payload:
                yield from self._redo(batch)

    def _redo_queued(self) -> Iterator[Collected]:
        while True:
            try:
                batch = self.tasks.get_nowait()
            except queue.Empty:
                return
            yield from self._redo(batch or [])

    def _redo(self, batch: Batch) -> Iterator[Collected]:
        """Collect a batch in this process: its worker is gone."""
        for path, mask in batch:
            self.outstanding -= 1
            yield collect_regular(path, mask)

    def close(self) -> None:
        for _ in self._workers:
            self.tasks.put(_STOP)
        for w in self._workers:
            w.slots.release()
        for w in self._workers:
            try:
                w.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
            w.writer.join(timeout=5)
            w.reader.join(timeout=5)
            if w.proc.stdout is not None:
                w.proc.stdout.close()

    def terminate(self) -> None:
        for w in self._workers:
            w.proc.kill()
        self.close()
