"""A scanner worker process: ``python -m stockade.sensors.scan.worker`` reads work units, one
JSON object a line, on stdin and writes each unit's result, one JSON line, on stdout.

A unit that fails (a bad unit, no permission for raw sockets, …) gives ``{"id", "error"}``;
the worker goes on with the next one.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterable
from typing import TextIO

from stockade.errors import StockadeError
from stockade.sensors.scan.units import UnitError, WorkUnit, run_unit


def serve(lines: Iterable[str], out: TextIO) -> None:
    for line in lines:
        if not line.strip():
            continue
        uid: object = None
        try:
            d = json.loads(line)
            uid = d.get("id") if isinstance(d, dict) else None
            result = run_unit(WorkUnit.from_json(d))
        except (ValueError, UnitError, StockadeError, OSError) as e:
            result = {"id": uid if isinstance(uid, int) else -1, "error": str(e)}
        out.write(json.dumps(result, separators=(",", ":")) + "\n")
        out.flush()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        serve(sys.stdin, sys.stdout)
