"""Local scanner workers: run work units in worker processes (or in this process when one
worker is enough) and gather their host reports.

Each worker gets one unit at a time, so a slow target does not hold back units queued behind
it. A worker that dies loses nothing: its unit is handed to another worker (once more at most).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Sequence
from typing import IO

from stockade.errors import StockadeError
from stockade.sensors.scan.report import HostReport
from stockade.sensors.scan.units import UnitError, WorkUnit, result_hosts, run_unit

Progress = Callable[[int, int], None]


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def run_units(
    units: Sequence[WorkUnit], workers: int = 0, progress: Progress | None = None
) -> list[HostReport]:
    """Run ``units`` on ``workers`` processes (0: one per CPU); the reports of every unit,
    in unit order."""
    workers = min(workers or default_workers(), len(units))
    if workers <= 1:
        out: list[HostReport] = []
        for n, u in enumerate(units, 1):
            _, hosts = result_hosts(json.dumps(run_unit(u)))
            out += hosts
            if progress:
                progress(n, len(units))
        return out
    return _Pool(units, workers, progress).run()


class _Pool:
    def __init__(self, units: Sequence[WorkUnit], workers: int, progress: Progress | None):
        self.units = {u.id: u for u in units}
        self.todo: deque[int] = deque(self.units)
        self.tries: dict[int, int] = dict.fromkeys(self.units, 0)
        self.results: dict[int, list[HostReport]] = {}
        self.count = workers
        self.progress = progress
        self.sel = selectors.DefaultSelector()
        self.busy: dict[subprocess.Popen[str], int | None] = {}

    def _start(self) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stockade.sensors.scan.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert proc.stdout is not None
        self.sel.register(proc.stdout, selectors.EVENT_READ, proc)
        self.busy[proc] = None
        self._feed(proc)

    def _feed(self, proc: subprocess.Popen[str]) -> None:
        if not self.todo:
            self.busy[proc] = None
            return
        uid = self.todo.popleft()
        self.tries[uid] += 1
        self.busy[proc] = uid
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(self.units[uid].to_json()) + "\n")
            proc.stdin.flush()
        except OSError:
            pass  # the worker died: its end of file comes next and re-queues the unit

    def _lost(self, proc: subprocess.Popen[str], stdout: IO[str]) -> None:
        self.sel.unregister(stdout)
        uid = self.busy.pop(proc)
        proc.wait()
        if uid is None:
            return
        if self.tries[uid] >= 2:
            raise StockadeError(
                f"scan: a worker died twice on unit {uid} (exit status {proc.returncode})"
            )
        self.todo.appendleft(uid)
        self._start()

    def run(self) -> list[HostReport]:
        try:
            for _ in range(self.count):
                self._start()
            while len(self.results) < len(self.units):
                for key, _ in self.sel.select(timeout=1.0):
                    proc: subprocess.Popen[str] = key.data
                    stdout = proc.stdout
                    assert stdout is not None
                    line = stdout.readline()
                    if not line:
                        self._lost(proc, stdout)
                        continue
                    try:
                        uid, hosts = result_hosts(line)
                    except UnitError as e:
                        raise StockadeError(f"scan: {e}") from None
                    self.results[uid] = hosts
                    if self.progress:
                        self.progress(len(self.results), len(self.units))
                    self._feed(proc)
        finally:
            self._close()
        return [h for uid in sorted(self.results) for h in self.results[uid]]

    def _close(self) -> None:
        for proc in list(self.busy):
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        for proc in list(self.busy):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self.sel.close()
