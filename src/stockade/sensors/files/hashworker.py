"""A hashing worker process: reads requests on stdin, writes results on stdout.

Started by :mod:`stockade.sensors.files.pool` as ``python -m stockade.sensors.files.hashworker``.
"""

from __future__ import annotations

import sys

from stockade.sensors.files.collect import collect_regular
from stockade.sensors.files.workerproto import END, decode_request, encode_result


def main() -> int:
    out = sys.stdout.buffer
    done: list[bytes] = []
    for line in sys.stdin.buffer:
        if line == END:
            done.append(END)
            out.write(b"".join(done))
            out.flush()
            done.clear()
            continue
        path, mask = decode_request(line)
        done.append(encode_result(collect_regular(path, mask)))
    out.write(b"".join(done))
    out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
