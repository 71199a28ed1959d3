"""A worker of ``stockade logs test``: one part of the file (see :mod:`.test_filter`).

Reads a JSON job on stdin; writes the part's output lines (``<line>\\t<text>``, line numbers
relative to the part) and, last, a JSON summary.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from stockade.parts.logs.test_filter import scan_range, spec_from_json


def main() -> int:
    job = json.loads(sys.stdin.read())
    result = scan_range(
        Path(job["path"]),
        spec_from_json(job["spec"]),
        start=job["warm"],
        end=job["end"],
        report_from=job["start"],
        mode=job["mode"],
        usedns=job["usedns"],
    )
    out = sys.stdout
    for line in result.output:
        out.write(line + "\n")
    out.write(
        json.dumps(
            {
                "lines": result.lines,
                "matched": result.matched,
                "ignored": result.ignored,
                "per_regex": {str(k): v for k, v in result.per_regex.items()},
            }
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
