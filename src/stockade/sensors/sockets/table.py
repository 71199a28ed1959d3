"""The host's socket table, as ``ss -tuapn`` / ``netstat -anptu`` show it.

Asks the kernel over netlink (sock_diag, as ss does: :mod:`.inetdiag`) for the TCP and UDP
sockets of the current network namespace — or, where the kernel has no sock_diag for a protocol
(udp_diag not loaded, say), reads /proc/net/{tcp,tcp6,udp,udp6} — and joins every socket's inode
to the processes that hold it (scanning /proc/PID/fd, as ss -p does). ``enter_netns`` switches
the calling process into a named namespace (/run/netns/NAME) first.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pwd
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stockade.errors import StockadeError
from stockade.sensors.sockets.inetdiag import DiagError, Dump, dump_request, parse_dump
from stockade.sensors.sockets.nlevents import NETLINK_SOCK_DIAG
from stockade.sensors.sockets.procnet import RawSocket, parse_table

TABLES = (("tcp", 4, "tcp"), ("tcp", 6, "tcp6"), ("udp", 4, "udp"), ("udp", 6, "udp6"))
CLONE_NEWNET = 0x40000000


@dataclass(frozen=True, slots=True)
class Owner:
    pid: int
    program: str
    fd: int


@dataclass(frozen=True, slots=True)
class Socket:
    raw: RawSocket
    user: str
    owners: tuple[Owner, ...] = field(default=())

    @property
    def pid(self) -> int | None:
        return self.owners[0].pid if self.owners else None

    @property
    def program(self) -> str:
        return self.owners[0].program if self.owners else ""

    def as_json(self) -> dict[str, Any]:
        r = self.raw
        return {
            "proto": r.proto,
            "family": r.family,
            "local_address": r.local_address,
            "local_port": r.local_port,
            "remote_address": r.remote_address,
            "remote_port": r.remote_port,
            "state": r.state,
            "recv_q": r.recv_q,
            "send_q": r.send_q,
            "pid": self.pid,
            "program": self.program,
            "user": self.user,
            "processes": [{"pid": o.pid, "program": o.program, "fd": o.fd} for o in self.owners],
        }


def socket_owners(proc: Path = Path("/proc")) -> dict[int, list[Owner]]:
    """Map socket inode -> the processes holding it, lowest PID first."""
    owners: dict[int, list[Owner]] = {}
    try:
        entries = sorted(int(e) for e in os.listdir(proc) if e.isdigit())
    except OSError as e:
        raise StockadeError(f"{proc}: cannot list processes: {e.strerror}") from None
    root = str(proc)
    for pid in entries:
        try:
            dfd = os.open(f"{root}/{pid}/fd", os.O_RDONLY | os.O_DIRECTORY)
        except OSError:  # gone, or a kernel thread, or not ours to read
            continue
        try:
            fds = os.listdir(dfd)
            comm = ""
            for fd in fds:
                try:
                    target = os.readlink(fd, dir_fd=dfd)
                except OSError:
                    continue
                if not target.startswith("socket:["):
                    continue
                if not comm:
                    try:
                        with open(f"{root}/{pid}/comm") as f:
                            comm = f.read().rstrip("\n")
                    except OSError:
                        comm = "?"
                owners.setdefault(int(target[8:-1]), []).append(Owner(pid, comm, int(fd)))
        except OSError:
            continue
        finally:
            os.close(dfd)
    for lst in owners.values():
        lst.sort(key=lambda o: (o.pid, o.fd))
    return owners


def _user(uid: int, cache: dict[int, str]) -> str:
    name = cache.get(uid)
    if name is None:
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        cache[uid] = name
    return name


def diag_sockets(proto: str, family: int) -> list[RawSocket] | None:
    """The sockets of ``proto`` and ``family`` from sock_diag; None where the kernel cannot say
    (no such diag module, or IPv6 off)."""
    try:
        nl = socket.socket(
            socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG
        )
    except OSError:
        return None
    try:
        nl.bind((0, 0))
        nl.sendall(dump_request(proto, family))
        dump = Dump([])
        while not dump.done:
            data = nl.recv(1 << 20)
            if not data:
                return None
            parse_dump(data, proto, dump)
        return dump.sockets
    except (DiagError, ValueError):  # not offered, or not understood: /proc/net says it too
        return None
    except OSError as e:
        raise StockadeError(f"sock_diag ({proto}, IPv{family}): {e.strerror or e}") from None
    finally:
        nl.close()


def read_sockets(
    net: Path = Path("/proc/net"), proc: Path = Path("/proc"), *, processes: bool = True
) -> list[Socket]:
    """Every TCP and UDP socket of the namespace this process is in (``net``: the /proc
    tables read where sock_diag cannot answer)."""
    raws: list[RawSocket] = []
    for proto, family, name in TABLES:
        got = diag_sockets(proto, family)
        if got is not None:
            raws.extend(got)
            continue
        path = net / name
        try:
            text = path.read_text(encoding="ascii", errors="replace")
        except FileNotFoundError:  # IPv6 disabled
            continue
        except OSError as e:
            raise StockadeError(f"{path}: cannot read: {e.strerror}") from None
        raws.extend(parse_table(text, proto, family, source=str(path)))
    owners = socket_owners(proc) if processes else {}
    users: dict[int, str] = {}
    return [
        Socket(r, _user(r.uid, users), tuple(owners.get(r.inode, ()) if r.inode else ()))
        for r in raws
    ]


def enter_netns(name: str, run_dir: Path = Path("/run/netns")) -> None:
    """Move this process into the named network namespace (as ``ip netns exec`` does)."""
    if "/" in name or name in ("", ".", ".."):
        raise StockadeError(f"--netns {name!r}: not a namespace name (see `ip netns list`)")
    path = run_dir / name
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise StockadeError(
            f"--netns {name}: no such network namespace ({path}); see `ip netns list`"
        ) from None
    except OSError as e:
        raise StockadeError(f"--netns {name}: cannot open {path}: {e.strerror}") from None
    try:
        setns = getattr(os, "setns", None)
        if setns is not None:
            setns(fd, CLONE_NEWNET)
            return
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise StockadeError(
                f"--netns {name}: cannot enter the namespace: {os.strerror(err)} (run as root)"
            )
    finally:
        os.close(fd)


def select(
    sockets: Iterable[Socket],
    *,
    listening: bool = False,
    proto: str | None = None,
    port: int | None = None,
    program: str | None = None,
    state: str | None = None,
) -> list[Socket]:
    """Filter as the ``stockade sockets`` options ask; ``port`` matches either end."""
    out = []
    for s in sockets:
        r = s.raw
        if listening and not r.listening:
            continue
        if proto and r.proto != proto:
            continue
        if port is not None and port not in (r.local_port, r.remote_port):
            continue
        if program and not any(o.program == program for o in s.owners):
            continue
        if state and r.state.lower() != state.lower().replace("_", "-"):
            continue
        out.append(s)
    return out
