"""Syslog messages as RFC 5424 writes them, with a plain, JSON or CEF body (pure, no I/O).

``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [stockade@32473 ...] BODY``. The structured
data element uses 32473, the enterprise number RFC 5612 sets aside for examples, since stockade
has none of its own. Header fields are cut to their RFC lengths and to printable ASCII; values in
structured data escape ``"``, ``\\`` and ``]`` (control characters become U+FFFD). The body is
UTF-8 after a byte-order mark, as RFC 5424 section 6.4 asks. :func:`frame` adds RFC 6587 octet
counting for TCP and TLS (RFC 5425). CEF follows ArcSight's "Common Event Format" rules for
escaping ``|``, ``\\``, ``=`` and line breaks.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Literal

from stockade import __version__
from stockade.model import Severity
from stockade.responders.notify.message import Message, describe

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "authpriv": 10,
    **{f"local{i}": 16 + i for i in range(8)},
}  # fmt: skip
#: stockade severity → syslog severity (2 crit, 3 err, 4 warning, 5 notice, 6 info)
SYSLOG_SEVERITY = {
    Severity.CRITICAL: 2,
    Severity.HIGH: 3,
    Severity.MEDIUM: 4,
    Severity.LOW: 5,
    Severity.INFO: 6,
}
#: stockade severity → CEF severity 0-10
CEF_SEVERITY = {
    Severity.CRITICAL: 10,
    Severity.HIGH: 8,
    Severity.MEDIUM: 5,
    Severity.LOW: 3,
    Severity.INFO: 1,
}
SD_ID = "stockade@32473"
BOM = "\ufeff"
Body = Literal["plain", "json", "cef"]


def header_field(text: str, limit: int) -> str:
    """A header field: printable ASCII without spaces, at most ``limit`` long, or ``-``."""
    clean = "".join(c for c in text if "!" <= c <= "~")[:limit]
    return clean or "-"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def sd_value(text: str) -> str:
    """A structured-data parameter value with ``"``, ``\\`` and ``]`` escaped, and control
    characters (a line break in a file name, say) shown as U+FFFD: a message stays one line."""
    text = _CONTROL.sub("\ufffd", text)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def timestamp(when: float) -> str:
    return (
        dt.datetime.fromtimestamp(when, dt.UTC)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z")
    )


def body(message: Message, kind: Body) -> str:
    if kind == "json":
        return json.dumps(message.to_json(), sort_keys=True, default=str, ensure_ascii=False)
    if kind == "cef":
        return cef(message)
    one = message.single
    return describe(one) if one is not None else message.title


def rfc5424(
    message: Message,
    *,
    body_format: Body = "plain",
    facility: str = "authpriv",
    app_name: str = "stockade",
    procid: int | None = None,
    now: float,
) -> str:
    """One syslog message (without framing)."""
    pri = FACILITIES[facility] * 8 + SYSLOG_SEVERITY[message.severity]
    one = message.single
    msgid = one.kind if one is not None else "summary"
    params = {"count": str(message.count), "severity": str(message.severity)}
    if one is not None:
        params.update(part=one.part, kind=one.kind, subject=one.subject, id=str(one.id))
    else:
        params["parts"] = message.parts
    sd = " ".join(f'{k}="{sd_value(v)}"' for k, v in params.items())
    head = " ".join(
        [
            f"<{pri}>1",
            timestamp(now),
            header_field(message.host, 255),
            header_field(app_name, 48),
            "-" if procid is None else str(procid),
            header_field(msgid, 32),
            f"[{SD_ID} {sd}]",
        ]
    )
    text = body(message, body_format)
    return f"{head} {BOM}{text}"


def frame(payload: bytes) -> bytes:
    """RFC 6587 octet counting: ``LEN SP MSG``."""
    return str(len(payload)).encode() + b" " + payload


def truncate(payload: bytes, limit: int) -> bytes:
    """At most ``limit`` bytes, cut on a UTF-8 character boundary."""
    if len(payload) <= limit:
        return payload
    return payload[:limit].decode("utf-8", "ignore").encode()


def cef_header(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def cef_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("=", "\\=").replace("\n", "\\n").replace("\r", "\\r")


def cef(message: Message) -> str:
    """The message as one CEF:0 record."""
    one = message.single
    signature = f"{one.part}/{one.kind}" if one is not None else "summary"
    name = describe(one) if one is not None else message.title
    ext = {
        "rt": str(round((one.time if one else message.last) * 1000)),
        "dvchost": message.host,
        "cnt": str(message.count),
        "cat": one.part if one else message.parts,
        "msg": name,
    }
    if one is not None:
        ext.update(cs1Label="subject", cs1=one.subject, cn1Label="alertId", cn1=str(one.id or 0))
    header = "|".join(
        [
            "CEF:0",
            "stockade",
            "stockade",
            cef_header(__version__),
            cef_header(signature),
            cef_header(name),
            str(CEF_SEVERITY[message.severity]),
        ]
    )
    return header + "|" + " ".join(f"{k}={cef_value(v)}" for k, v in ext.items())
