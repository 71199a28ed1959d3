"""Which file a log position belongs to, and the position itself, as JSON for the store.

A path is not an identity: rotation gives the name to a new file, and a deleted file's inode
number can be reused. A file is known by its device and inode numbers and by the SHA-256 of its
first bytes (up to :data:`HEAD_SIZE`; fewer while the file is shorter, recomputed as it grows),
which tells a reused inode or a truncated-and-rewritten file from the one that was read.
Nothing here does any I/O: callers read the first bytes and pass them in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

HEAD_SIZE = 256
FORMAT = 1


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Identity:
    """A file as it was seen: device, inode, and a hash of its first ``head_len`` bytes."""

    dev: int
    ino: int
    head: str
    head_len: int

    @classmethod
    def of(cls, dev: int, ino: int, first: bytes) -> Identity:
        """The identity of a file whose first bytes (at most HEAD_SIZE are used) are ``first``."""
        first = first[:HEAD_SIZE]
        return cls(dev, ino, digest(first), len(first))

    def same_inode(self, dev: int, ino: int) -> bool:
        return self.dev == dev and self.ino == ino

    def head_matches(self, first: bytes) -> bool:
        """``first`` (a file's first bytes) starts with the bytes this identity was made from."""
        return len(first) >= self.head_len and digest(first[: self.head_len]) == self.head

    def matches(self, dev: int, ino: int, first: bytes) -> bool:
        return self.same_inode(dev, ino) and self.head_matches(first)

    def grown(self, first: bytes) -> Identity:
        """The same file with a longer head, once more of it exists (no-op when complete)."""
        if self.head_len >= HEAD_SIZE or len(first) <= self.head_len:
            return self
        return Identity.of(self.dev, self.ino, first)


@dataclass(frozen=True, slots=True)
class Position:
    """How far a file was read: the offset just after the last line handed on.

    For a compressed file the offset counts decompressed bytes, and ``complete`` says that it
    was read to its end.
    """

    identity: Identity
    offset: int
    complete: bool = False

    def at(self, offset: int) -> Position:
        return replace(self, offset=offset)

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "v": FORMAT,
            "dev": self.identity.dev,
            "ino": self.identity.ino,
            "head": self.identity.head,
            "head_len": self.identity.head_len,
            "offset": self.offset,
        }
        if self.complete:
            data["complete"] = True
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Position:
        """Parse :meth:`to_json`'s output; ValueError if ``text`` is not such a record."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not JSON: {e}") from None
        if not isinstance(data, dict) or data.get("v") != FORMAT:
            raise ValueError("not a log position record")
        ints = ("dev", "ino", "head_len", "offset")
        if any(type(data.get(k)) is not int or data[k] < 0 for k in ints):
            raise ValueError("dev, ino, head_len and offset must be non-negative integers")
        head = data.get("head")
        if not isinstance(head, str) or len(head) != 64 or data["head_len"] > HEAD_SIZE:
            raise ValueError("bad head hash")
        complete = data.get("complete", False)
        if not isinstance(complete, bool):
            raise ValueError("complete must be a boolean")
        identity = Identity(data["dev"], data["ino"], head, data["head_len"])
        return cls(identity, data["offset"], complete)
