"""The daemon's side of the filter process (see :mod:`stockade.detectors.logs.host`)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stockade.detectors.logs.engine import FilterSpec
from stockade.errors import StockadeError

log = logging.getLogger("stockade.logs")


@dataclass(frozen=True)
class Found:
    """A failure as the filter process reports it."""

    regex: int
    fid: str | None
    address: str | None
    time: float | None
    nofail: bool
    user: str | None


class FilterHost:
    """A child process running the filters; restarted if it dies."""

    def __init__(self, specs: Sequence[tuple[FilterSpec, str]], budget: float) -> None:
        self.specs = list(specs)
        self.budget = budget
        self.slow_lines = 0
        self._proc: subprocess.Popen[str] | None = None
        self._start()

    def _start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "stockade.detectors.logs.host", str(self.budget)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        payload = [
            {
                "name": s.name,
                "failregex": list(s.failregex),
                "ignoreregex": list(s.ignoreregex),
                "prefregex": s.prefregex,
                "datepattern": s.datepattern,
                "maxlines": s.maxlines,
                "usedns": usedns,
            }
            for s, usedns in self.specs
        ]
        reply = self._ask({"op": "filters", "filters": payload})
        if "error" in reply:
            raise StockadeError(f"the filter process refused the filters: {reply['error']}")

    def _ask(self, req: dict[str, Any]) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(req) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise BrokenPipeError("the filter process ended")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def process(
        self, index: int, lines: Sequence[tuple[str, float | None]], name: str
    ) -> list[tuple[int, list[Found]]]:
        """Run filter ``index`` over ``lines``; (line index, failures) for lines with some."""
        try:
            reply = self._ask({"op": "lines", "filter": index, "lines": list(lines)})
        except (BrokenPipeError, OSError, ValueError) as e:
            log.error("the filter process failed (%s); starting it again", e)
            self.close()
            self._start()
            return []
        for i, ms in reply.get("slow", []):
            self.slow_lines += 1
            log.warning(
                "filter %s spent more than %d ms on a line, which was skipped (a regex that "
                "backtracks too much?): %.200s",
                name,
                ms,
                lines[i][0],
            )
        return [(i, [Found(**f) for f in fs]) for i, fs in reply.get("results", [])]

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None
