"""Following the systemd journal: a real journald (see conftest_journal), real journalctl.

Proves that match expressions select the right entries, that the cursor is stored and a restart
continues after the last committed entry (entries written while stopped included, uncommitted
ones read again after a crash), that non-UTF-8 messages survive, and that the text is the one
fail2ban makes of the same entries (checked against fail2ban itself when it is installed).
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from stockade.sensors.logs.journal import JournalFollower, format_entry, journal_args
from stockade.sensors.logs.lines import LogLine
from stockade.store import SqliteStore
from tests.logs.conftest_journal import HOSTNAME, Journald

PREFIX = "logs.journal-test:"
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "state" / "stockade.db")
    yield s
    s.close()


@pytest.fixture
def journald(tmp_path: Path) -> Iterator[Journald]:
    reason = Journald.unavailable()
    if reason is not None:
        pytest.skip(reason)
    j = Journald(tmp_path / "journald")
    j.start()
    yield j
    j.stop()


Make = Callable[..., JournalFollower]


@pytest.fixture
def make(store: SqliteStore, journald: Journald) -> Iterator[Make]:
    made: list[JournalFollower] = []

    def make(matches: Sequence[Sequence[str]] = (), **kw: Any) -> JournalFollower:
        kw.setdefault("directory", str(journald.directory))
        kw.setdefault("key_prefix", PREFIX)
        f = JournalFollower(matches, store, **kw)
        assert f.missing() == []
        assert f.start()
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


def collect(f: JournalFollower, n: int, timeout: float = 10.0) -> list[LogLine]:
    """Read until ``n`` entries came, sleeping on journalctl's output in between."""
    got = f.read_available()
    deadline = time.monotonic() + timeout
    while len(got) < n and (remaining := deadline - time.monotonic()) > 0:
        select.select([f.fileno()], [], [], remaining)
        got += f.read_available()
    return got


def quiet(f: JournalFollower, wait: float = 0.7) -> list[LogLine]:
    got = f.read_available()
    deadline = time.monotonic() + wait
    while (remaining := deadline - time.monotonic()) > 0:
        if select.select([f.fileno()], [], [], remaining)[0]:
            got += f.read_available()
            if not f.running:
                break
    return got


def messages(lines: list[LogLine]) -> list[str]:
    """The MESSAGE part of each text (after the first ": ")."""
    return [line.text.split(": ", 1)[1] for line in lines]


def numbered(j: Journald, *numbers: int, ident: str = "numbered") -> None:
    j.send(*({"MESSAGE": f"entry {n}", "SYSLOG_IDENTIFIER": ident} for n in numbers))


# -- the text, as fail2ban makes it ---------------------------------------------------------

CASES: list[tuple[dict[str, Any], str]] = [
    (
        {"_HOSTNAME": "web1", "SYSLOG_IDENTIFIER": "sshd", "_PID": "812", "MESSAGE": "Accepted"},
        "web1 sshd[812]: Accepted",
    ),
    (
        {
            "_HOSTNAME": "h",
            "SYSLOG_IDENTIFIER": "s",
            "SYSLOG_PID": "7",
            "_PID": "9",
            "MESSAGE": "m",
        },
        "h s[7]: m",
    ),
    ({"_HOSTNAME": "h", "SYSLOG_IDENTIFIER": "s", "SYSLOG_PID": "0", "_PID": "9"}, "h s[9]: "),
    (
        {"_HOSTNAME": "h", "_COMM": "sshd", "_PID": "5", "MESSAGE": "no identifier"},
        "h sshd[5]: no identifier",
    ),
    ({"_HOSTNAME": "h", "SYSLOG_IDENTIFIER": "", "_COMM": "cron", "MESSAGE": "x"}, "h cron: x"),
    ({"_HOSTNAME": "h", "MESSAGE": "no one"}, "h no one"),
    ({"SYSLOG_IDENTIFIER": "sshd", "_PID": "1", "MESSAGE": "no host"}, "sshd[1]: no host"),
    ({"MESSAGE": "only"}, "only"),
    ({}, ""),
    (
        {"_HOSTNAME": "h", "SYSLOG_IDENTIFIER": "s", "SYSLOG_PID": "0x1f", "MESSAGE": "m"},
        "h s[31]: m",
    ),
    (
        {"_HOSTNAME": "h", "SYSLOG_IDENTIFIER": "s", "SYSLOG_PID": "abc", "MESSAGE": "m"},
        "h s[b'abc']: m",
    ),
    (
        {"_HOSTNAME": "h", "SYSLOG_IDENTIFIER": "s", "SYSLOG_PID": " 42 ", "MESSAGE": "m"},
        "h s[42]: m",
    ),
    (
        {
            "_HOSTNAME": "h",
            "SYSLOG_IDENTIFIER": "kernel",
            "_SOURCE_MONOTONIC_TIMESTAMP": "12345678",
            "__MONOTONIC_TIMESTAMP": "99999999",
            "MESSAGE": "usb 1-1: new device",
        },
        "h kernel: [   12.345678] usb 1-1: new device",
    ),
    (
        {
            "_HOSTNAME": "h",
            "SYSLOG_IDENTIFIER": "kernel",
            "__MONOTONIC_TIMESTAMP": "4000001",
            "MESSAGE": "k",
        },
        "h kernel: [    4.000001] k",
    ),
    (
        {
            "_HOSTNAME": "h",
            "SYSLOG_IDENTIFIER": "app",
            "_PID": "3",
            "MESSAGE": [98, 97, 100, 255, 0, 33],
        },
        "h app[3]: bad\ufffd\x00!",
    ),
    (
        {
            "_HOSTNAME": "h",
            "SYSLOG_IDENTIFIER": "app",
            "_PID": "3",
            "MESSAGE": ["one", "two", [255, 65]],
        },
        "h app[3]: one two \ufffdA",
    ),
    (
        {"_HOSTNAME": "h", "SYSLOG_IDENTIFIER": "app", "_PID": "3", "MESSAGE": "two\nlines\r\n"},
        "h app[3]: two\\nlines\r\\n",
    ),
    (
        {"_HOSTNAME": [104, 255], "SYSLOG_IDENTIFIER": [97, 255], "_PID": "3", "MESSAGE": "é"},
        "h\ufffd a\ufffd[3]: é",
    ),
]


@pytest.mark.parametrize(("entry", "text"), CASES)
def test_format_entry(entry: dict[str, Any], text: str) -> None:
    assert format_entry(entry) == text


def fail2ban_unavailable() -> str | None:
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} is missing"
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import fail2ban.server.filtersystemd, systemd.journal"],
        capture_output=True,
        check=False,
    )
    if probe.returncode:
        return "fail2ban's journal filter is not installed: apt install fail2ban python3-systemd"
    return None


# fail2ban's own formatting, run by the system Python where fail2ban is installed. Entries are
# given in journalctl's JSON form and turned into what python-systemd hands fail2ban.
FAIL2BAN = r"""
import json, sys, tempfile
from fail2ban.server.filtersystemd import FilterSystemd
from systemd import journal

def raw(value):
    if isinstance(value, str):
        return value.encode()
    if all(isinstance(b, int) for b in value):
        return bytes(value)
    return [raw(v) for v in value]

f = FilterSystemd(None)
out = []
if sys.argv[1] == "entries":
    reader = journal.Reader(path=tempfile.mkdtemp())
    for entry in json.load(sys.stdin):
        data = {k: raw(v) for k, v in entry.items() if k != "__MONOTONIC_TIMESTAMP"}
        entry2 = reader._convert_entry(data)
        if "__MONOTONIC_TIMESTAMP" in entry:
            m = int(entry["__MONOTONIC_TIMESTAMP"])
            entry2["__MONOTONIC_TIMESTAMP"] = journal._convert_monotonic((m, bytes(16)))
        entry2.setdefault("__REALTIME_TIMESTAMP", journal._convert_realtime(1700000000000000))
        out.append(f.formatJournalEntry(entry2)[0][2])
else:
    for entry in journal.Reader(path=sys.argv[2]):
        out.append(f.formatJournalEntry(entry)[0][2])
print(json.dumps(out))
"""


def fail2ban_format(*args: str, entries: list[dict[str, Any]] | None = None) -> list[str]:
    reason = fail2ban_unavailable()
    if reason is not None:
        pytest.skip(reason)
    done = subprocess.run(
        [SYSTEM_PYTHON, "-c", FAIL2BAN, *args],
        input=json.dumps(entries or []),
        capture_output=True,
        text=True,
        check=True,
    )
    result: list[str] = json.loads(done.stdout)
    return result


def test_format_entry_is_fail2bans() -> None:
    entries = [e for e, _ in CASES if "_HOSTNAME" in e and isinstance(e["_HOSTNAME"], str)]
    assert fail2ban_format("entries", entries=entries) == [format_entry(e) for e in entries]


def test_same_text_as_fail2ban_on_a_real_journal(journald: Journald, make: Make) -> None:
    journald.stream(
        ["Failed password for root from 192.0.2.7 port 22 ssh2"],
        identifier="sshd",
        unit="ssh.service",
    )
    journald.send(
        {"MESSAGE": b"invalid \xff\xfe utf-8 and \x00 NUL", "SYSLOG_IDENTIFIER": "binary"},
        {"MESSAGE": ["given", "twice"], "SYSLOG_IDENTIFIER": "multi"},
        {"MESSAGE": "two\nlines", "SYSLOG_IDENTIFIER": "nl", "SYSLOG_PID": "0x10"},
        {"MESSAGE": "odd pid", "SYSLOG_IDENTIFIER": "odd", "SYSLOG_PID": "abc"},
        {"MESSAGE": "no identifier"},
        {"MESSAGE": "é ü 漢字", "SYSLOG_IDENTIFIER": "unicode", "SYSLOG_PID": "0"},
        comm="sshd",
    )
    expected = fail2ban_format("journal", str(journald.directory))
    assert len(expected) >= 8
    f = make(from_start=True)
    got = collect(f, len(expected))
    assert [line.text for line in got] == expected
    assert all(line.source == "journal" for line in got)


# -- selection --------------------------------------------------------------------------------


def test_match_expressions_select_entries(journald: Journald, make: Make) -> None:
    journald.stream(
        ["stream from the ssh unit"], identifier="sshd", unit="ssh.service", comm="sshd-session"
    )
    journald.send(
        {"MESSAGE": "datagram from sshd", "SYSLOG_IDENTIFIER": "sshd", "PRIORITY": "3"}, comm="sshd"
    )
    journald.send(
        {"MESSAGE": "sshd, other priority", "SYSLOG_IDENTIFIER": "sshd", "PRIORITY": "6"},
        comm="sshd",
    )
    journald.send({"MESSAGE": "cron job", "SYSLOG_IDENTIFIER": "CRON"}, comm="cron")
    journald.stream(["another unit"], identifier="nginx", unit="nginx.service", comm="nginx")
    stored = journald.entries("_SYSTEMD_UNIT=ssh.service")
    assert [e["MESSAGE"] for e in stored] == ["stream from the ssh unit"], (
        "journald must take the stream's unit"
    )

    either = make([["_SYSTEMD_UNIT=ssh.service"], ["_COMM=sshd"]], from_start=True)
    assert messages(collect(either, 3)) == [
        "stream from the ssh unit",
        "datagram from sshd",
        "sshd, other priority",
    ]
    assert quiet(either) == []

    both = make([["_COMM=sshd", "PRIORITY=3"]], from_start=True)
    assert messages(collect(both, 1)) == ["datagram from sshd"]
    assert quiet(both) == []

    one_field = make(
        [["SYSLOG_IDENTIFIER=CRON", "SYSLOG_IDENTIFIER=nginx"]],
        from_start=True,
        key_prefix="other:",
    )
    assert messages(collect(one_field, 2)) == ["cron job", "another unit"]
    assert quiet(one_field) == []

    # the text and time of a selected entry
    line = collect(make([["SYSLOG_IDENTIFIER=CRON"]], from_start=True, key_prefix="third:"), 1)[0]
    entry = journald.entries("SYSLOG_IDENTIFIER=CRON")[0]
    assert line.text == f"{HOSTNAME} CRON[{entry['_PID']}]: cron job"
    assert line.time == int(entry["__REALTIME_TIMESTAMP"]) / 1e6
    assert abs(line.time - time.time()) < 60


def test_matches_are_validated(store: SqliteStore) -> None:
    for bad in (["-n"], ["--since=yesterday"], ["lowercase=x"], ["NOEQUALS"], []):
        with pytest.raises(ValueError):
            JournalFollower([bad], store, key_prefix=PREFIX)
    with pytest.raises(ValueError):
        JournalFollower(["_COMM=sshd"], store, key_prefix=PREFIX)


def test_journal_args() -> None:
    options, terms = journal_args(
        [["_SYSTEMD_UNIT=ssh.service"], ["_COMM=sshd", "PRIORITY=3"]], directory="/j"
    )
    assert options == ["--merge", "--directory=/j"]
    assert terms == ["_SYSTEMD_UNIT=ssh.service", "+", "_COMM=sshd", "PRIORITY=3"]
    options, terms = journal_args([["_COMM=sshd"]])
    assert options == ["--merge"]
    machine = (
        Path("/etc/machine-id").read_text().strip() if Path("/etc/machine-id").exists() else None
    )
    if machine:  # the system journal: this machine's entries only
        assert terms == ["_COMM=sshd", f"_MACHINE_ID={machine}"]


# -- positions ------------------------------------------------------------------------------


def test_starts_at_the_end_and_stores_the_cursor(
    journald: Journald, make: Make, store: SqliteStore
) -> None:
    numbered(journald, 1, 2)
    f = make([["SYSLOG_IDENTIFIER=numbered"]])
    assert store.get_state(PREFIX + "cursor") == journald.entries()[-1]["__CURSOR"]
    assert quiet(f) == []
    numbered(journald, 3)
    assert messages(collect(f, 1)) == ["entry 3"]
    f.commit()
    assert (
        store.get_state(PREFIX + "cursor")
        == journald.entries("SYSLOG_IDENTIFIER=numbered")[-1]["__CURSOR"]
    )


def test_restart_continues_after_the_last_commit(journald: Journald, make: Make) -> None:
    match = [["SYSLOG_IDENTIFIER=numbered"]]
    f = make(match, from_start=True)
    numbered(journald, 1, 2, 3)
    assert messages(collect(f, 3)) == ["entry 1", "entry 2", "entry 3"]
    f.commit()
    f.close()
    numbered(journald, 4, 5)  # written while stopped
    f = make(match, from_start=True)
    assert messages(collect(f, 2)) == ["entry 4", "entry 5"]
    assert quiet(f) == []
    f.commit()
    numbered(journald, 6, 7)
    assert messages(collect(f, 2)) == ["entry 6", "entry 7"]
    f.close()  # a crash: 6 and 7 were not committed
    numbered(journald, 8)
    f = make(match, from_start=True)
    assert messages(collect(f, 3)) == ["entry 6", "entry 7", "entry 8"]
    assert quiet(f) == []


def test_entries_written_before_the_first_entry_came(journald: Journald, make: Make) -> None:
    numbered(journald, 1)
    f = make([["SYSLOG_IDENTIFIER=numbered"]])  # from the end; nothing read, nothing committed
    f.close()
    numbered(journald, 2, 3)
    f = make([["SYSLOG_IDENTIFIER=numbered"]])
    assert messages(collect(f, 2)) == ["entry 2", "entry 3"]


def test_non_utf8_messages(journald: Journald, make: Make) -> None:
    f = make([["SYSLOG_IDENTIFIER=bin"]])
    journald.send(
        {"MESSAGE": b"Failed password for \xff\xfeuser from 192.0.2.9", "SYSLOG_IDENTIFIER": "bin"},
        {"MESSAGE": b"nul\x00and esc\x1b[0m", "SYSLOG_IDENTIFIER": "bin"},
        {"MESSAGE": [b"part \xc3", "part two"], "SYSLOG_IDENTIFIER": "bin"},
    )
    assert messages(collect(f, 3)) == [
        "Failed password for \ufffd\ufffduser from 192.0.2.9",
        "nul\x00and esc\x1b[0m",
        "part \ufffd part two",
    ]


# -- robustness -------------------------------------------------------------------------------


def test_no_journalctl_or_no_journal(store: SqliteStore, tmp_path: Path) -> None:
    f = JournalFollower(
        [["_COMM=sshd"]], store, key_prefix=PREFIX, journalctl=str(tmp_path / "nope")
    )
    assert f.missing() == [f"{tmp_path / 'nope'} is not installed (it comes with systemd)"]
    assert f.start() is False
    assert f.read_available() == []
    with pytest.raises(RuntimeError):
        f.fileno()
    f.commit()
    f.close()

    async def follow_nothing() -> list[list[LogLine]]:
        return [b async for b in f.follow(asyncio.Event())]

    assert asyncio.run(follow_nothing()) == []

    empty = tmp_path / "empty"
    empty.mkdir()
    g = JournalFollower([["_COMM=sshd"]], store, key_prefix=PREFIX, directory=str(empty))
    assert g.missing() == [f"no journal files in {empty}"]
    if Journald.unavailable() is None:
        assert g.start()
        assert quiet(g, 0.3) == []
    g.close()


def test_journal_appearing_later(tmp_path: Path, store: SqliteStore) -> None:
    reason = Journald.unavailable()
    if reason is not None:
        pytest.skip(reason)
    j = Journald(tmp_path / "journald")
    j.directory.mkdir(parents=True)
    f = JournalFollower(
        [["SYSLOG_IDENTIFIER=numbered"]], store, key_prefix=PREFIX, directory=str(j.directory)
    )
    assert f.missing() != []
    assert f.start()
    try:
        assert quiet(f, 0.3) == []
        j.start()
        numbered(j, 1, 2)
        assert messages(collect(f, 2)) == ["entry 1", "entry 2"]
    finally:
        f.close()
        j.stop()


def test_async_follow_restarts_journalctl(journald: Journald, make: Make) -> None:
    f = make([["SYSLOG_IDENTIFIER=numbered"]])
    f.close()  # follow() starts it itself

    async def main() -> list[str]:
        stop = asyncio.Event()
        got: list[str] = []
        two = asyncio.Event()
        loop = asyncio.get_running_loop()

        async def write() -> None:
            await loop.run_in_executor(None, numbered, journald, 1, 2)
            await two.wait()
            assert f.pid is not None
            os.kill(f.pid, signal.SIGKILL)  # journalctl dies: follow() starts it again
            await loop.run_in_executor(None, numbered, journald, 3, 4)

        w = loop.create_task(write())
        async with asyncio.timeout(15):
            async for batch in f.follow(stop):
                got.extend(messages(batch))
                f.commit()
                if len(got) >= 2:
                    two.set()
                if len(got) >= 4:
                    stop.set()
        await w
        return got

    assert asyncio.run(main()) == [f"entry {n}" for n in range(1, 5)]
    assert not f.running


def test_journald_helper_leaves_the_host_alone() -> None:
    """The private journald's mounts live in its own namespace."""
    reason = Journald.unavailable()
    if reason is not None:
        pytest.skip(reason)
    with tempfile.TemporaryDirectory() as d:
        j = Journald(Path(d))
        j.start()
        try:
            mounts = Path("/proc/self/mounts").read_text()
            assert str(j.sockets) not in mounts and str(j.directory) not in mounts
        finally:
            j.stop()
