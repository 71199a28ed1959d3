"""A process that runs filters for the daemon, with a time budget for every line.

Python's regular expressions backtrack: a careless failregex can spend minutes on one line, and
while it does it holds the interpreter lock, so a thread cannot be stopped and the whole
daemon would stall. The daemon therefore runs its filters here, in a child process, where
each line is matched under a SIGALRM timer (the regex engine checks for signals while it
works): a line that takes longer than the budget is abandoned and reported, naming the filter.

Protocol (JSON, one object per line on stdin and stdout):

    {"op": "filters", "filters": [{"name", "failregex", "ignoreregex", "prefregex",
                                   "datepattern", "maxlines", "usedns"}, ...]}
      -> {"ok": true} or {"error": "..."}
    {"op": "lines", "filter": <index>, "lines": [[text, time or null], ...]}
      -> {"results": [[line index, [failure, ...]], ...], "slow": [[line index, ms], ...]}

A failure is {"regex", "fid", "address", "time", "nofail", "user"}.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import Any

from stockade.detectors.logs.engine import Failure, FilterSpec, LineFilter


class Budget(Exception):
    """The line's time budget ran out."""


def _alarm(_sig: int, _frame: object) -> None:
    raise Budget


def failure_json(f: Failure) -> dict[str, Any]:
    user = f.fields.get("user")
    return {
        "regex": f.regex,
        "fid": f.fid,
        "address": f.address,
        "time": f.time,
        "nofail": f.nofail,
        "user": user if isinstance(user, str) else None,
    }


def make_filter(d: dict[str, Any]) -> LineFilter:
    spec = FilterSpec(
        d["name"],
        tuple(d["failregex"]),
        tuple(d.get("ignoreregex", ())),
        d.get("prefregex") or None,
        d.get("datepattern") or None,
        int(d.get("maxlines", 1)),
    )
    return LineFilter(spec, usedns=d.get("usedns", "no"))


def serve(budget: float) -> int:
    signal.signal(signal.SIGALRM, _alarm)
    filters: list[LineFilter] = []
    out = sys.stdout
    for raw in sys.stdin:
        try:
            req = json.loads(raw)
        except ValueError:
            out.write(json.dumps({"error": "malformed request"}) + "\n")
            out.flush()
            continue
        if req.get("op") == "filters":
            try:
                filters = [make_filter(d) for d in req["filters"]]
                reply: dict[str, Any] = {"ok": True}
            except Exception as e:
                reply = {"error": f"{type(e).__name__}: {e}"}
        elif req.get("op") == "lines":
            flt = filters[int(req["filter"])]
            results: list[Any] = []
            slow: list[Any] = []
            for i, (text, when) in enumerate(req["lines"]):
                start = time.perf_counter()
                signal.setitimer(signal.ITIMER_REAL, budget)
                try:
                    if when is not None:
                        found = flt.process(text, when=when, when_text=str(when))
                    else:
                        found = flt.process(text)
                except Budget:
                    slow.append([i, round((time.perf_counter() - start) * 1000)])
                    continue
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                if found:
                    results.append([i, [failure_json(f) for f in found]])
            reply = {"results": results, "slow": slow}
        else:
            reply = {"error": "unknown op"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(serve(float(sys.argv[1]) if len(sys.argv) > 1 else 0.05))
