"""The file attributes stockade can record, the named sets of them, and set expressions.

An attribute set is written like AIDE's groups: names joined by ``+`` to add and ``-`` to take
away, where a name is an attribute or another set (``binaries+sha512``, ``config-mtime``).
"""

from __future__ import annotations

from collections.abc import Mapping

#: Every attribute, with what it means. ``growing`` is ``size`` that may only increase (logs).
ATTRIBUTES: dict[str, str] = {
    "type": "file type (file, dir, symlink, fifo, socket, chardev, blockdev)",
    "perms": "permission bits including setuid, setgid and sticky",
    "uid": "owner",
    "gid": "group",
    "size": "size in bytes",
    "growing": "size, where only a decrease is a change (log files)",
    "mtime": "modification time",
    "ctime": "inode change time",
    "inode": "inode number",
    "nlink": "hard link count",
    "link": "symbolic link target",
    "dev": "device numbers of a character or block device",
    "sha256": "SHA-256 of the content",
    "sha512": "SHA-512 of the content",
    "blake3": "BLAKE3 of the content (needs the blake3 package)",
    "xattrs": "extended attributes other than ACLs and SELinux labels",
    "acl": "POSIX access and default ACLs",
    "selinux": "SELinux security label",
}

HASHES = ("sha256", "sha512", "blake3")

_EVERYTHING = frozenset(a for a in ATTRIBUTES if a not in ("growing", "sha512", "blake3"))

BUILTIN_SETS: dict[str, frozenset[str]] = {
    "binaries": frozenset(
        [
            "type",
            "perms",
            "inode",
            "nlink",
            "uid",
            "gid",
            "size",
            "mtime",
            "ctime",
            "link",
            "dev",
            "sha256",
            "xattrs",
            "acl",
            "selinux",
        ]
    ),
    "config": _EVERYTHING,
    "everything": _EVERYTHING,
    "logs": frozenset(["type", "perms", "uid", "gid", "growing", "xattrs", "acl", "selinux"]),
    "permissions": frozenset(["type", "perms", "uid", "gid", "link", "acl", "selinux"]),
    "content": frozenset(["type", "size", "link", "sha256"]),
}


def parse_attribute_expression(
    expr: str, sets: Mapping[str, frozenset[str]] = BUILTIN_SETS
) -> frozenset[str]:
    """Evaluate ``binaries+sha512-inode`` into a set of attribute names.

    Raise ValueError naming the unknown word and listing what is allowed.
    """
    text = expr.replace(" ", "")
    if not text:
        raise ValueError("empty attribute expression; name a set such as binaries or config")
    result: set[str] = set()
    sign = "+"
    word = ""
    for ch in text + "+":
        if ch in "+-":
            if not word:
                raise ValueError(f"{expr!r}: an operator without a name")
            names = _resolve(word, sets, expr)
            if sign == "+":
                result |= names
            else:
                result -= names
            sign, word = ch, ""
        else:
            word += ch
    if "type" not in result:
        result.add("type")
    return frozenset(result)


def _resolve(word: str, sets: Mapping[str, frozenset[str]], expr: str) -> frozenset[str]:
    if word in sets:
        return sets[word]
    if word in ATTRIBUTES:
        return frozenset([word])
    known = ", ".join(sorted(sets)) + "; attributes: " + ", ".join(ATTRIBUTES)
    raise ValueError(f"{expr!r}: unknown attribute or set {word!r} (sets: {known})")


#: Bit of each attribute in the masks handed to hashing workers.
BITS: dict[str, int] = {name: 1 << i for i, name in enumerate(ATTRIBUTES)}


def mask_of(attrs: frozenset[str]) -> int:
    """Bit mask of an attribute set."""
    m = 0
    for a in attrs:
        m |= BITS[a]
    return m
