"""A private systemd-journald for the journal tests: the real daemon, its real journal files.

journald runs unchanged, but in namespaces of its own (``unshare``): a mount namespace whose
/run is a fresh tmpfs, where its socket folder (/run/systemd/journal) and its volatile journal
(/run/log/journal) are bind mounts of the test's temporary folders; a UTS namespace with a
fixed hostname; a cgroup namespace rooted at the test's cgroup, so that journald sees the test's
processes in the root cgroup and takes the unit name a stdout stream announces as
``_SYSTEMD_UNIT`` (what it does for processes it cannot place in a unit). The host's journal
and sockets are not touched. Entries are written through journald's own protocols — native
datagrams (any field, binary values) and stdout streams — by child processes whose name
(``_COMM``) is chosen, and read back with ``journalctl --directory``.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

JOURNALD = "/lib/systemd/systemd-journald"
HOSTNAME = "stockade-test"

CONFIG = """[Journal]
Storage=volatile
ReadKMsg=no
Audit=no
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
RateLimitIntervalSec=0
RateLimitBurst=0
"""

# journald must see the test's files at its own /run; everything else is the host's
SETUP = """set -e
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/journal /run/log/journal /run/systemd/journald.conf.d
mount --bind "$1" /run/systemd/journal
mount --bind "$2" /run/log/journal
cp "$3" /run/systemd/journald.conf.d/stockade-test.conf
echo "$4" > /proc/sys/kernel/hostname
exec "$5"
"""

# a client process: takes the name it is given (_COMM), sends, and stays until told to go,
# since journald reads the sender's /proc entries when it handles a datagram
CLIENT = r"""
import ctypes, json, socket, sys
job = json.loads(sys.stdin.readline())
if job["comm"]:
    ctypes.CDLL(None).prctl(15, job["comm"].encode(), 0, 0, 0)
if job["stream"] is not None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(job["socket"])
    s.sendall(bytes.fromhex(job["stream"]))
    s.shutdown(socket.SHUT_WR)
    s.recv(1)  # journald closes the stream once it has handled all of it
else:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    for d in job["datagrams"]:
        s.sendto(bytes.fromhex(d), job["socket"])
print("sent", flush=True)
sys.stdin.readline()
"""

Value = str | bytes | Sequence[str | bytes]


def native(fields: Mapping[str, Value]) -> bytes:
    """One entry in journald's native protocol (a field given a list is given several times)."""
    out = b""
    for name, value in fields.items():
        values = [value] if isinstance(value, str | bytes) else list(value)
        for v in values:
            data = v.encode() if isinstance(v, str) else v
            if b"\n" in data or isinstance(v, bytes):
                out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
            else:
                out += name.encode() + b"=" + data + b"\n"
    return out


class Journald:
    """A journald of our own; ``directory`` is its journal, for ``journalctl --directory``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.sockets = base / "sockets"
        self.directory = base / "journal"
        self.log = base / "journald.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def unavailable() -> str | None:
        """Why a private journald cannot run here, or None."""
        if os.geteuid() != 0:
            return "needs root (mount namespaces)"
        if not Path(JOURNALD).exists():
            return f"{JOURNALD} is missing: apt install systemd"
        if shutil.which("unshare") is None:
            return "unshare is missing: apt install util-linux"
        if shutil.which("journalctl") is None:
            return "journalctl is missing: apt install systemd"
        return None

    def start(self) -> None:
        for d in (self.sockets, self.directory):
            d.mkdir(parents=True, exist_ok=True)
        config = self.base / "journald.conf"
        config.write_text(CONFIG)
        with self.log.open("wb") as log:
            namespaces = ["--mount", "--propagation", "private", "--uts", "--cgroup"]
            setup = [str(self.sockets), str(self.directory), str(config), HOSTNAME, JOURNALD]
            self._proc = subprocess.Popen(
                ["unshare", *namespaces, "sh", "-c", SETUP, "sh", *setup],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"journald did not start: {self.log.read_text()}")
            ready = (self.sockets / "socket").exists() and (self.sockets / "stdout").exists()
            if ready and list(self.directory.glob("*/*.journal")):
                return
            time.sleep(0.05)
        raise RuntimeError(f"journald did not get ready: {self.log.read_text()}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def _client(self, job: dict[str, Any], count: int) -> None:
        """Run a client; wait until journald has stored its ``count`` entries, then end it."""
        child = subprocess.Popen(
            [sys.executable, "-c", CLIENT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        try:
            child.stdin.write(json.dumps(job) + "\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "sent"
            deadline = time.monotonic() + 10
            while len(self.entries(f"_PID={child.pid}")) < count:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"journald stored fewer than {count} entries")
                time.sleep(0.02)
            child.stdin.write("done\n")
            child.stdin.flush()
        finally:
            child.stdin.close()
            child.wait(timeout=10)

    def send(self, *entries: Mapping[str, Value], comm: str | None = None) -> None:
        """Entries through the native protocol, from a process named ``comm``."""
        job: dict[str, Any] = {
            "comm": comm,
            "socket": str(self.sockets / "socket"),
            "stream": None,
            "datagrams": [native(e).hex() for e in entries],
        }
        self._client(job, len(entries))

    def stream(
        self,
        lines: Sequence[str],
        *,
        identifier: str,
        unit: str = "",
        priority: int = 6,
        comm: str | None = None,
    ) -> None:
        """Lines through a stdout stream, as a service's standard output reaches journald."""
        header = f"{identifier}\n{unit}\n{priority}\n0\n0\n0\n0\n"
        body = "".join(f"{line}\n" for line in lines)
        job: dict[str, Any] = {
            "comm": comm,
            "socket": str(self.sockets / "stdout"),
            "stream": (header + body).encode().hex(),
            "datagrams": [],
        }
        self._client(job, len(lines))

    def entries(self, *matches: str) -> list[dict[str, Any]]:
        """The stored entries (matching ``matches``), as journalctl's JSON."""
        source = [f"--directory={self.directory}", "--merge"]
        out = subprocess.run(
            [
                "journalctl",
                *source,
                "--output=json",
                "--all",
                "--no-pager",
                "--quiet",
                "--",
                *matches,
            ],
            capture_output=True,
            check=False,
        ).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]
