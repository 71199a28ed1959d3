"""What a UDP scan sends to each port: a well-formed request of the service usually found there.

An empty datagram gets no answer from most UDP services, so a port would only ever be
``open|filtered``; a request the service understands makes it answer and shows it ``open``.
The requests here are built in code from the protocols' specifications (DNS, NTP, SNMP v1 and
v2c, NetBIOS name service, SSDP, mDNS, ONC RPC, IKE, SIP, memcached, TFTP). When nmap is
installed its payload database (``/usr/share/nmap/nmap-payloads``) is read at run time as well
and its payloads follow ours for the same port. Ports with neither get an empty datagram.

Builders and the nmap-payloads parser are pure; :func:`load_payloads` reads the file.
"""

from __future__ import annotations

import functools
import logging
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

NMAP_PAYLOADS = Path("/usr/share/nmap/nmap-payloads")
MAX_PER_PORT = 255  # nmap's own limit of payloads for one port
log = logging.getLogger("stockade.scan")

# --- DNS and mDNS -------------------------------------------------------------------------

DNS_A, DNS_NS, DNS_PTR, DNS_TXT = 1, 2, 12, 16
DNS_IN, DNS_CH = 1, 3


def dns_name(name: str) -> bytes:
    """A domain name in DNS wire form (RFC 1035 3.1); ``""`` or ``"."`` is the root."""
    text = name[:-1] if name.endswith(".") else name
    out = bytearray()
    for label in text.split(".") if text else []:
        if not label:
            raise ValueError(f"DNS name {name!r}: empty label")
        try:
            raw = label.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(f"DNS name {name!r}: not ASCII (use its IDNA form)") from None
        if len(raw) > 63:
            raise ValueError(f"DNS name {name!r}: a label must have 1-63 octets")
        out += bytes([len(raw)]) + raw
    out += b"\0"
    if len(out) > 255:
        raise ValueError(f"DNS name {name!r}: longer than 255 octets")
    return bytes(out)


def dns_query(
    name: str, qtype: int = DNS_A, qclass: int = DNS_IN, *, txid: int = 0, rd: bool = True
) -> bytes:
    """A standard query (opcode 0) with one question."""
    if not 0 <= txid <= 0xFFFF or not 0 <= qtype <= 0xFFFF or not 0 <= qclass <= 0xFFFF:
        raise ValueError("DNS query: id, type and class are 16-bit numbers")
    flags = 0x0100 if rd else 0
    header = struct.pack("!HHHHHH", txid, flags, 1, 0, 0, 0)
    return header + dns_name(name) + struct.pack("!HH", qtype, qclass)


# --- NTP ----------------------------------------------------------------------------------


def ntp_request(transmit: int, *, version: int = 4) -> bytes:
    """An NTP client request (mode 3, RFC 5905): 48 octets, ``transmit`` as the transmit
    timestamp (NTP format, 64 bits), which the server copies back as the origin."""
    if not 1 <= version <= 4:
        raise ValueError(f"NTP version {version}: must be 1-4")
    if not 0 <= transmit < 1 << 64:
        raise ValueError("NTP transmit timestamp: 64 bits")
    first = (0 << 6) | (version << 3) | 3  # leap 0, version, mode 3 (client)
    words = [0] * 9 + [transmit >> 32, transmit & 0xFFFFFFFF]
    return struct.pack("!BBbb11I", first, 0, 10, -20, *words)


# --- SNMP (BER) ---------------------------------------------------------------------------


def ber_length(n: int) -> bytes:
    if n < 0:
        raise ValueError("BER length: negative")
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    if len(body) > 126:
        raise ValueError("BER length: too long")
    return bytes([0x80 | len(body)]) + body


def ber_tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + ber_length(len(value)) + value


def ber_int(n: int) -> bytes:
    size = max(1, (n + (n < 0)).bit_length() // 8 + 1)
    return ber_tlv(0x02, n.to_bytes(size, "big", signed=True))


def ber_oid(oid: str) -> bytes:
    """An OBJECT IDENTIFIER such as ``1.3.6.1.2.1.1.1.0``."""
    try:
        arcs = [int(a) for a in oid.split(".")]
    except ValueError:
        raise ValueError(f"OID {oid!r}: arcs are numbers separated by dots") from None
    if len(arcs) < 2 or any(a < 0 for a in arcs):
        raise ValueError(f"OID {oid!r}: at least two arcs, none negative")
    if arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39):
        raise ValueError(f"OID {oid!r}: the first arc is 0-2, the second 0-39 under 0 and 1")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        out += bytes(reversed(chunk))
    return ber_tlv(0x06, bytes(out))


SNMP_V1, SNMP_V2C = 0, 1
SYS_DESCR = "1.3.6.1.2.1.1.1.0"


def snmp_get(
    community: str = "public",
    oid: str = SYS_DESCR,
    *,
    version: int = SNMP_V2C,
    request_id: int = 1,
) -> bytes:
    """An SNMP v1 or v2c GetRequest of one object (RFC 1157, RFC 3416)."""
    if version not in (SNMP_V1, SNMP_V2C):
        raise ValueError(f"SNMP version {version}: only v1 (0) and v2c (1) are built here")
    if not -(1 << 31) <= request_id < 1 << 31:
        raise ValueError("SNMP request-id: a 32-bit signed number")
    varbind = ber_tlv(0x30, ber_oid(oid) + b"\x05\x00")  # the value: NULL
    pdu = ber_tlv(0xA0, ber_int(request_id) + ber_int(0) + ber_int(0) + ber_tlv(0x30, varbind))
    return ber_tlv(0x30, ber_int(version) + ber_tlv(0x04, community.encode()) + pdu)


# --- NetBIOS name service -----------------------------------------------------------------


def netbios_name(name: str, suffix: int = 0) -> bytes:
    """A NetBIOS name in first-level encoding (RFC 1001 14.1), as a one-label DNS name."""
    raw = name.encode("ascii", "replace")
    if not name.isascii() or len(raw) > 15 or not 0 <= suffix <= 0xFF:
        raise ValueError(f"NetBIOS name {name!r}: at most 15 characters and a one-octet suffix")
    pad = b"\0" if name == "*" else b" "  # the wildcard is padded with NULs
    padded = raw.ljust(15, pad) + bytes([suffix])
    encoded = bytes(c for b in padded for c in (0x41 + (b >> 4), 0x41 + (b & 0x0F)))
    return bytes([32]) + encoded + b"\0"


def netbios_status_query(*, txid: int = 0) -> bytes:
    """A node status request (NBSTAT) for ``*`` (RFC 1002 4.2.17): every name of the host."""
    if not 0 <= txid <= 0xFFFF:
        raise ValueError("NetBIOS transaction id: 16 bits")
    header = struct.pack("!HHHHHH", txid, 0, 1, 0, 0, 0)
    return header + netbios_name("*") + struct.pack("!HH", 0x21, 1)  # NBSTAT, IN


# --- text protocols -----------------------------------------------------------------------


def ssdp_msearch(target: str = "ssdp:all", *, mx: int = 1) -> bytes:
    """A UPnP discovery request (UPnP Device Architecture 1.1, 1.3.2)."""
    if "\r" in target or "\n" in target or not 1 <= mx <= 5:
        raise ValueError("SSDP M-SEARCH: one-line search target and MX 1-5")
    return (
        "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
        f'MAN: "ssdp:discover"\r\nMX: {mx}\r\nST: {target}\r\n\r\n'
    ).encode()


def sip_options(host: str = "stockade.invalid", *, tag: str = "stockade1") -> bytes:
    """A SIP OPTIONS request (RFC 3261 11), the usual way to ask a SIP server what it is."""
    for part in (host, tag):
        if not part or any(c in part for c in ' \r\n<>;"') or not part.isascii():
            raise ValueError(f"SIP OPTIONS: {part!r} is not a plain token")
    lines = [
        f"OPTIONS sip:{host} SIP/2.0",
        f"Via: SIP/2.0/UDP {host};branch=z9hG4bK{tag};rport",
        "Max-Forwards: 70",
        f"From: <sip:scan@{host}>;tag={tag}",
        f"To: <sip:{host}>",
        f"Call-ID: {tag}@{host}",
        "CSeq: 1 OPTIONS",
        f"Contact: <sip:scan@{host}>",
        "Accept: application/sdp",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def memcached_request(command: str = "stats", *, request_id: int = 1) -> bytes:
    """A memcached text command in its UDP frame (8-octet header: id, sequence 0, 1 datagram)."""
    if not command.isascii() or "\r" in command or "\n" in command or not command.strip():
        raise ValueError("memcached command: one ASCII line")
    if not 0 <= request_id <= 0xFFFF:
        raise ValueError("memcached request id: 16 bits")
    return struct.pack("!HHHH", request_id, 0, 1, 0) + command.encode() + b"\r\n"


def tftp_read(filename: str = "stockade-probe.txt", mode: str = "octet") -> bytes:
    """A TFTP read request (RFC 1350); a server answers with data or an error packet."""
    if not filename or "\0" in filename or mode not in ("octet", "netascii"):
        raise ValueError("TFTP read: a file name without NUL, mode octet or netascii")
    return b"\x00\x01" + filename.encode() + b"\0" + mode.encode() + b"\0"


# --- ONC RPC and IKE ----------------------------------------------------------------------

PORTMAP, NFS = 100000, 100003


def rpc_null_call(program: int = PORTMAP, version: int = 2, *, xid: int = 1) -> bytes:
    """An ONC RPC call of procedure 0 (NULL) with AUTH_NONE (RFC 5531)."""
    for what, n in (("program", program), ("version", version), ("xid", xid)):
        if not 0 <= n <= 0xFFFFFFFF:
            raise ValueError(f"RPC {what} {n}: 32 bits")
    # xid, CALL, RPC version 2, program, version, procedure 0, credentials and verifier none
    return struct.pack("!IIIIIIIIII", xid, 0, 2, program, version, 0, 0, 0, 0, 0)


def ike_main_mode(cookie: bytes = b"stockade") -> bytes:
    """An IKEv1 Main Mode first message (RFC 2408/2409): one ISAKMP proposal with one
    transform (AES-128-CBC, SHA-1, pre-shared key, MODP group 2, 8 hours)."""
    if len(cookie) != 8 or cookie == bytes(8):
        raise ValueError("IKE initiator cookie: 8 octets, not all zero")
    attributes = b"".join(
        struct.pack("!HH", 0x8000 | kind, value)
        for kind, value in ((1, 7), (14, 128), (2, 2), (3, 1), (4, 2), (11, 1), (12, 28800))
    )
    transform = struct.pack("!BBHBBH", 0, 0, 8 + len(attributes), 1, 1, 0) + attributes
    proposal = struct.pack("!BBHBBBB", 0, 0, 8 + len(transform), 1, 1, 0, 1) + transform
    sa = struct.pack("!BBHII", 0, 0, 12 + len(proposal), 1, 1) + proposal  # DOI IPsec
    header = struct.pack("!8s8sBBBBII", cookie, bytes(8), 1, 0x10, 2, 0, 0, 28 + len(sa))
    return header + sa


# --- the table ----------------------------------------------------------------------------

NTP_PROBE_TIME = 0xE9A7_4F00_0000_0000  # a fixed transmit time (2024): the probe is the same


@functools.cache
def builtin_payloads() -> dict[int, tuple[bytes, ...]]:
    """Our own requests, by port."""
    return {
        53: (dns_query(".", DNS_NS),),
        69: (tftp_read(),),
        111: (rpc_null_call(PORTMAP, 2),),
        123: (ntp_request(NTP_PROBE_TIME),),
        137: (netbios_status_query(),),
        161: (snmp_get(version=SNMP_V2C), snmp_get(version=SNMP_V1)),
        500: (ike_main_mode(),),
        1900: (ssdp_msearch(),),
        2049: (rpc_null_call(NFS, 3),),
        5060: (sip_options(),),
        5353: (dns_query("_services._dns-sd._udp.local", DNS_PTR, rd=False),),
        11211: (memcached_request(),),
    }


class PayloadFileError(ValueError):
    """The nmap-payloads text is malformed; the message names the line."""


@dataclass
class Payloads:
    """Payloads by port; :meth:`for_port` gives an empty datagram for ports without any."""

    by_port: dict[int, tuple[bytes, ...]] = field(default_factory=dict)

    def for_port(self, port: int) -> tuple[bytes, ...]:
        return self.by_port.get(port) or (b"",)

    @classmethod
    def merged(cls, *tables: Mapping[int, Iterable[bytes]]) -> Payloads:
        """The tables one after the other per port, duplicates dropped, at most 255 a port."""
        out: dict[int, list[bytes]] = {}
        for table in tables:
            for port, payloads in table.items():
                have = out.setdefault(port, [])
                have += [p for p in payloads if p not in have][: MAX_PER_PORT - len(have)]
        return cls({p: tuple(v) for p, v in out.items()})


_ESCAPES = {"0": 0, "a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}
_HEX = "0123456789abcdefABCDEF"


def _unquote(line: str, start: int, lineno: int) -> tuple[bytes, int]:
    """The C string starting at ``line[start] == '"'``; returns its bytes and the index after."""
    out = bytearray()
    i = start + 1
    while i < len(line):
        c = line[i]
        if c == '"':
            return bytes(out), i + 1
        if c != "\\":
            if not c.isascii():
                raise PayloadFileError(f"line {lineno}: a non-ASCII character in a string")
            out.append(ord(c))
            i += 1
            continue
        esc = line[i + 1 : i + 2]
        if esc == "x":
            digits = line[i + 2 : i + 4]
            if len(digits) != 2 or any(d not in _HEX for d in digits):
                raise PayloadFileError(f"line {lineno}: \\x needs two hex digits")
            out.append(int(digits, 16))
            i += 4
        elif esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i += 2
        else:
            raise PayloadFileError(f"line {lineno}: unknown escape \\{esc or '(end of line)'}")
    raise PayloadFileError(f"line {lineno}: a string is not closed on its line")


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _port_list(text: str, lineno: int) -> list[tuple[int, int]]:
    ranges = []
    for item in text.split(","):
        lo_text, sep, hi_text = item.partition("-")
        if not _digits(lo_text) or (sep and not _digits(hi_text)):
            raise PayloadFileError(f"line {lineno}: {text!r} is not a port list")
        lo = int(lo_text)
        hi = int(hi_text) if sep else lo
        if hi > 65535 or lo > hi:
            raise PayloadFileError(f"line {lineno}: {item!r}: ports are 0-65535, low to high")
        ranges.append((lo, hi))
    return ranges


class _Entries:
    """The parser's state: the entry being read and the payloads found so far."""

    def __init__(self) -> None:
        self.out: dict[int, list[bytes]] = {}
        self.ports: list[tuple[int, int]] | None = None  # [] right after "udp"
        self.payload: bytearray | None = None
        self.after_keyword = False

    def finish(self, lineno: int) -> None:
        if self.ports == []:
            raise PayloadFileError(f"line {lineno}: 'udp' without a port list")
        if self.ports is not None and self.payload is None:
            raise PayloadFileError(f"line {lineno}: an entry without a payload string")
        if self.ports and self.payload is not None:
            for lo, hi in self.ports:
                for port in range(lo, hi + 1):
                    have = self.out.setdefault(port, [])
                    if len(have) < MAX_PER_PORT:
                        have.append(bytes(self.payload))
        self.ports, self.payload, self.after_keyword = None, None, False

    def string(self, data: bytes, lineno: int) -> None:
        if not self.ports:
            what = "'udp' without a port list" if self.ports == [] else "a string outside an entry"
            raise PayloadFileError(f"line {lineno}: {what}")
        if self.after_keyword:
            raise PayloadFileError(f"line {lineno}: a payload string after a keyword")
        self.payload = (self.payload or bytearray()) + data

    def word(self, word: str, rest: str, lineno: int) -> bool:
        """Take a bare word; True when it is a keyword whose line is to be skipped."""
        if word == "udp":
            self.finish(lineno)
            self.ports = []
        elif self.ports is None:
            raise PayloadFileError(f"line {lineno}: expected 'udp', found {word[:40]!r}")
        elif self.ports == []:
            self.ports = _port_list(word, lineno)
        elif self.payload is None:
            raise PayloadFileError(f"line {lineno}: expected a quoted payload, found {word[:40]!r}")
        else:  # a keyword after the payload: "source PORT", or one a later nmap adds
            args = rest.split("#", 1)[0].split()
            if word == "source" and not (len(args) == 1 and _digits(args[0])):
                raise PayloadFileError(f"line {lineno}: 'source' takes one port number")
            self.after_keyword = True
            return True
        return False


def parse_nmap_payloads(text: str) -> dict[int, tuple[bytes, ...]]:
    """Parse nmap's payload database: entries ``udp PORTLIST "string" ["string"...]``, the
    strings (C escapes) joined into one payload, then optional keywords (``source PORT``)
    each with the rest of its line. Raises :class:`PayloadFileError` naming the line."""
    state = _Entries()
    lineno = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        i = 0
        while i < len(line):
            c = line[i]
            if c in " \t\f\v":
                i += 1
            elif c == "#":
                break
            elif c == '"':
                data, i = _unquote(line, i, lineno)
                state.string(data, lineno)
            else:
                j = i
                while j < len(line) and line[j] not in ' \t\f\v"#':
                    j += 1
                if state.word(line[i:j], line[j:], lineno):
                    break  # the keyword's line
                i = j
    state.finish(lineno)
    return {p: tuple(v) for p, v in state.out.items()}


@functools.cache
def nmap_payloads(path: Path = NMAP_PAYLOADS) -> dict[int, tuple[bytes, ...]]:
    """nmap's payloads when its database is installed and readable; a malformed one is
    reported once and left out (our own payloads still go)."""
    try:
        text = path.read_text(encoding="latin-1")
    except OSError:
        return {}
    try:
        return parse_nmap_payloads(text)
    except PayloadFileError as e:
        log.warning("%s: %s; UDP probes use stockade's own payloads (reinstall nmap)", path, e)
        return {}


def load_payloads(path: Path = NMAP_PAYLOADS) -> Payloads:
    """Our payloads, then nmap's, for every port."""
    return Payloads.merged(builtin_payloads(), nmap_payloads(path))
