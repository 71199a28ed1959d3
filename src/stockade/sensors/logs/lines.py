"""Lines out of a byte stream: the partial last line, decoding, and a cap on line length.

A log writer may stop in the middle of a line; the bytes after the last newline are kept until
the rest arrives. A line longer than the cap keeps its first ``max_line`` bytes and the rest is
skipped as it arrives, so that a 10 MB line costs at most ``max_line`` bytes of memory. Text is
UTF-8; invalid bytes become U+FFFD and every other byte (NUL, escape, …) is kept as it is.
Nothing here does any I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_LINE = 65536


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of a log, as sensors hand it to detectors."""

    source: str  # the followed path the line came from, or "journal"
    text: str  # without the line ending
    time: float | None  # journal: the entry's realtime timestamp; files: None


def decode(raw: bytes) -> str:
    """The text of one line: UTF-8, invalid bytes replaced, one trailing CR dropped (CRLF)."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw.decode("utf-8", "replace")


class LineSplitter:
    """Cut a stream of bytes into lines, remembering how far complete lines go.

    ``offset`` counts every byte fed (plus the starting offset); ``line_end`` is the offset just
    after the last complete line returned: the position to persist, since a restart from there
    reads the partial line again in full.
    """

    __slots__ = ("_buf", "_skipping", "line_end", "max_line", "offset")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE, offset: int = 0) -> None:
        if max_line < 1:
            raise ValueError("max_line must be at least 1")
        self.max_line = max_line
        self.offset = offset
        self.line_end = offset
        self._buf = bytearray()
        self._skipping = False

    @property
    def partial(self) -> bool:
        """Bytes of an unfinished line are held."""
        return self.offset > self.line_end

    def feed(self, data: bytes) -> list[bytes]:
        """The lines that ``data`` completes, without their newline, each cut to ``max_line``."""
        if not data:
            return []
        self.offset += len(data)
        parts = data.split(b"\n")
        tail = parts.pop()
        out: list[bytes] = []
        if parts:
            cap = self.max_line
            first = parts[0]
            if self._buf or self._skipping:
                self._append(first)
                out.append(bytes(self._buf))
                self._buf.clear()
                self._skipping = False
            else:
                out.append(first[:cap])
            out.extend(p[:cap] for p in parts[1:])
            self.line_end = self.offset - len(tail)
        self._append(tail)
        return out

    def flush(self) -> bytes | None:
        """End the stream: the unfinished line, if any, as a line of its own."""
        if not self.partial:
            return None
        line = bytes(self._buf)
        self._buf.clear()
        self._skipping = False
        self.line_end = self.offset
        return line

    def reset(self, offset: int = 0) -> None:
        """Start again at ``offset`` (a truncated file), forgetting any unfinished line."""
        self.offset = self.line_end = offset
        self._buf.clear()
        self._skipping = False

    def _append(self, chunk: bytes) -> None:
        if self._skipping or not chunk:
            return
        room = self.max_line - len(self._buf)
        if len(chunk) > room:
            self._buf += chunk[:room]
            self._skipping = True
        else:
            self._buf += chunk
