"""Decode the kernel's POSIX ACL extended attribute into getfacl's short text form.

``system.posix_acl_access`` and ``system.posix_acl_default`` hold a little-endian header
(version 2) followed by (tag u16, perm u16, id u32) records; see acl(5).
"""

from __future__ import annotations

import struct

_TAGS = {0x01: "u", 0x02: "u", 0x04: "g", 0x08: "g", 0x10: "m", 0x20: "o"}
_WITH_ID = {0x02, 0x08}
_ENTRY = struct.Struct("<HHI")


def acl_text(raw: bytes) -> str:
    """``u::rwx,u:1000:r-x,g::r-x,m::r-x,o::r--``; malformed input gives ``invalid:<hex>``."""
    if len(raw) < 4 or (len(raw) - 4) % _ENTRY.size or struct.unpack_from("<I", raw)[0] != 2:
        return "invalid:" + raw.hex()
    parts = []
    for off in range(4, len(raw), _ENTRY.size):
        tag, perm, ident = _ENTRY.unpack_from(raw, off)
        name = _TAGS.get(tag)
        if name is None:
            return "invalid:" + raw.hex()
        who = str(ident) if tag in _WITH_ID else ""
        bits = ("r" if perm & 4 else "-") + ("w" if perm & 2 else "-") + ("x" if perm & 1 else "-")
        parts.append(f"{name}:{who}:{bits}")
    return ",".join(parts)
