"""Following log files: rotation in every style, globs, compressed files, restarts and crashes.

Real files, real inotify (the tests wait on the follower's descriptor with select, so a missed
event is a timeout), and the real SQLite store for positions. Lines are numbered so that a lost
or repeated line shows.
"""

from __future__ import annotations

import asyncio
import bz2
import gzip
import lzma
import os
import select
import shutil
import subprocess
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stockade.sensors.logs.follow import FileFollower, LogLine
from stockade.store import SqliteStore

PREFIX = "logs.test:"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "state" / "stockade.db")
    yield s
    s.close()


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    d = tmp_path / "log"
    d.mkdir()
    return d


@pytest.fixture
def make(store: SqliteStore) -> Iterator[Callable[..., FileFollower]]:
    made: list[FileFollower] = []

    def make(*patterns: Path | str, **kw: object) -> FileFollower:
        f = FileFollower([str(p) for p in patterns], store, key_prefix=PREFIX, **kw)  # type: ignore[arg-type]
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


def append(path: Path, *lines: str | int, end: str = "\n") -> None:
    with path.open("a") as fh:
        fh.write("".join(f"{x}{end}" for x in lines))


def nums(a: int, b: int) -> list[str]:
    return [str(i) for i in range(a, b + 1)]


def texts(lines: list[LogLine]) -> list[str]:
    return [line.text for line in lines]


def wait_lines(f: FileFollower, n: int, timeout: float = 5.0) -> list[str]:
    """Read until ``n`` lines came, sleeping on the inotify descriptor in between."""
    got = texts(f.read_available())
    deadline = time.monotonic() + timeout
    while len(got) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        select.select([f.fileno()], [], [], remaining)
        got += texts(f.read_available())
    return got


def quiet(f: FileFollower, wait: float = 0.3) -> list[str]:
    """Whatever arrives within ``wait`` seconds (to prove that nothing more comes)."""
    got = texts(f.read_available())
    deadline = time.monotonic() + wait
    while (remaining := deadline - time.monotonic()) > 0:
        if select.select([f.fileno()], [], [], remaining)[0]:
            got += texts(f.read_available())
    return got


# -- basics ---------------------------------------------------------------------------------


def test_new_file_starts_at_its_end(logs: Path, make: Callable[..., FileFollower]) -> None:
    log = logs / "auth.log"
    append(log, "old 1", "old 2")
    f = make(log)
    assert f.missing() == []
    assert f.read_available() == []
    append(log, "new 1")
    select.select([f.fileno()], [], [], 5)
    assert f.read_available() == [LogLine(str(log), "new 1", None)]


def test_from_start_reads_what_is_there(logs: Path, make: Callable[..., FileFollower]) -> None:
    log = logs / "auth.log"
    append(log, *nums(1, 3))
    f = make(log, from_start=True)
    assert texts(f.read_available()) == nums(1, 3)
    append(log, 4)
    assert wait_lines(f, 1) == ["4"]


def test_start_at_end_keeps_a_partial_last_line_whole(
    logs: Path, make: Callable[..., FileFollower]
) -> None:
    log = logs / "auth.log"
    log.write_text("complete\nhalf of a li")
    f = make(log)
    assert f.read_available() == []
    append(log, "ne")
    assert wait_lines(f, 1) == ["half of a line"]


def test_write_ending_mid_line(logs: Path, make: Callable[..., FileFollower]) -> None:
    log = logs / "app.log"
    log.touch()
    f = make(log)
    append(log, "one\ntw", end="")
    assert wait_lines(f, 1) == ["one"]
    assert quiet(f) == []
    append(log, "o\nthree", end="")
    assert wait_lines(f, 1) == ["two"]
    append(log, "", end="\n")
    assert wait_lines(f, 1) == ["three"]


def test_binary_garbage_and_invalid_utf8(logs: Path, make: Callable[..., FileFollower]) -> None:
    log = logs / "bin.log"
    log.touch()
    f = make(log)
    with log.open("ab") as fh:
        fh.write(b"\x00\x01\x02 nul and controls\n")
        fh.write(b"bad \xff\xfe utf8 \xc3\x28 here\n")
        fh.write(b"\xe2\x82\xac euro, caf\xc3\xa9\r\n")
        fh.write(bytes(range(256)).replace(b"\n", b"") + b"\n")
    got = wait_lines(f, 4)
    assert got[0] == "\x00\x01\x02 nul and controls"
    assert got[1] == "bad \ufffd\ufffd utf8 \ufffd( here"
    assert got[2] == "€ euro, café"
    assert got[3].startswith("\x00\x01\x02") and "\ufffd" in got[3]
    assert len(got) == 4


def test_ten_megabyte_line(logs: Path, make: Callable[..., FileFollower]) -> None:
    log = logs / "big.log"
    log.touch()
    f = make(log)
    with log.open("ab") as fh:
        fh.write(b"before\n")
        fh.write(b"A" * (10 * 1024 * 1024))
        fh.write(b"\nafter\n")
    tracemalloc.start()
    try:
        got = wait_lines(f, 3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got == ["before", "A" * 65536, "after"]
    assert peak < 3 * 1024 * 1024, peak


def test_max_line_is_configurable(logs: Path, make: Callable[..., FileFollower]) -> None:
    log = logs / "a.log"
    log.touch()
    f = make(log, max_line=8)
    append(log, "0123456789", "short")
    assert wait_lines(f, 2) == ["01234567", "short"]


# -- rotation while running -----------------------------------------------------------------


def test_rename_and_create(logs: Path, make: Callable[..., FileFollower]) -> None:
    log = logs / "auth.log"
    append(log, *nums(1, 5))
    f = make(log, from_start=True)
    assert texts(f.read_available()) == nums(1, 5)
    with log.open("a") as writer:  # the daemon keeps its descriptor across the rename
        writer.write("6\n7\n")
        writer.flush()
        log.rename(logs / "auth.log.1")
        writer.write("8\n")  # still written to the old file
        writer.flush()
        assert wait_lines(f, 3) == nums(6, 8)
        log.touch()  # logrotate's "create": empty at first
        writer.write("9\n")  # the daemon has not reopened its log yet
        writer.flush()
        assert wait_lines(f, 1) == ["9"]
    append(log, 10, 11)  # reopened: the new file gets lines
    assert wait_lines(f, 2) == ["10", "11"]
    append(log, 12)
    assert wait_lines(f, 1) == ["12"]
    assert quiet(f) == []


def test_rename_and_create_unread_rest_comes_first(
    logs: Path, make: Callable[..., FileFollower]
) -> None:
    log = logs / "auth.log"
    append(log, *nums(1, 3))
    f = make(log, from_start=True)
    assert texts(f.read_available()) == nums(1, 3)
    append(log, 4, 5)
    append(log, "6-partial", end="")
    log.rename(logs / "auth.log.1")
    append(log, 7, 8)  # before the follower looked: it must finish the old file first
    assert wait_lines(f, 5) == ["4", "5", "6-partial", "7", "8"]
    assert quiet(f) == []


def test_copytruncate(logs: Path, make: Callable[..., FileFollower]) -> None:
    log = logs / "app.log"
    append(log, *nums(1, 3))
    f = make(log, from_start=True)
    assert texts(f.read_available()) == nums(1, 3)
    with log.open("a") as writer:  # O_APPEND, as loggers that survive copytruncate use
        writer.write("4\n")
        writer.flush()
        assert wait_lines(f, 1) == ["4"]
        shutil.copy(log, logs / "app.log.1")
        os.truncate(log, 0)
        writer.write("5\n6\n")
        writer.flush()
        assert wait_lines(f, 2) == ["5", "6"]
    assert quiet(f) == []


def test_truncation_then_more_than_before_is_noticed(
    logs: Path, make: Callable[..., FileFollower]
) -> None:
    """Truncated and written past the old offset before the follower looks: the changed first
    bytes show that it is new content."""
    log = logs / "app.log"
    append(log, *nums(1, 3))
    f = make(log, from_start=True)
    assert texts(f.read_available()) == nums(1, 3)
    with log.open("w") as fh:  # truncation to a smaller size, then more lines
        fh.write("".join(f"line {i}\n" for i in range(4, 30)))
    assert wait_lines(f, 26) == [f"line {i}" for i in range(4, 30)]
    assert quiet(f) == []


def test_plain_truncation(logs: Path, make: Callable[..., FileFollower]) -> None:
    log = logs / "app.log"
    append(log, *nums(1, 10))
    f = make(log, from_start=True)
    assert texts(f.read_available()) == nums(1, 10)
    log.write_text("")
    append(log, "11")
    assert wait_lines(f, 1) == ["11"]
    assert quiet(f) == []


def test_delete_and_recreate(logs: Path, make: Callable[..., FileFollower]) -> None:
    log = logs / "app.log"
    append(log, *nums(1, 2))
    f = make(log, from_start=True)
    assert texts(f.read_available()) == nums(1, 2)
    append(log, 3)
    log.unlink()
    assert wait_lines(f, 1) == ["3"]  # the rest of the deleted file is still read
    append(log, 4, 5)
    assert wait_lines(f, 2) == ["4", "5"]
    append(log, 6)
    log.unlink()
    append(log, 7)  # deleted and re-created between two looks
    assert wait_lines(f, 2) == ["6", "7"]
    assert quiet(f) == []


def test_symlinked_log(logs: Path, tmp_path: Path, make: Callable[..., FileFollower]) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir()
    target = real / "real.log"
    target.touch()
    (logs / "app.log").symlink_to(target)
    f = make(logs / "app.log")
    append(target, "via the link")
    assert wait_lines(f, 1) == ["via the link"]


# -- globs and compressed files -------------------------------------------------------------


def test_glob_picks_up_new_files(logs: Path, make: Callable[..., FileFollower]) -> None:
    append(logs / "a-access.log", "old a")
    f = make(logs / "*access.log")
    assert f.missing() == []
    assert f.read_available() == []
    append(logs / "a-access.log", "new a")
    assert wait_lines(f, 1) == ["new a"]
    append(logs / "b-access.log", "b 1", "b 2")  # created while running: read from its start
    append(logs / "error.log", "not matched")
    got = wait_lines(f, 2)
    assert got == ["b 1", "b 2"]
    assert quiet(f) == []
    append(logs / "b-access.log", "b 3")
    assert wait_lines(f, 1) == ["b 3"]


def test_missing_patterns_and_folders_created_later(
    logs: Path, make: Callable[..., FileFollower]
) -> None:
    later = logs / "nginx"
    f = make(later / "*.log", logs / "auth.log", logs / "x*.log")
    assert f.missing() == [str(later / "*.log"), str(logs / "auth.log"), str(logs / "x*.log")]
    later.mkdir()
    append(later / "access.log", "first")
    assert wait_lines(f, 1) == ["first"]
    append(logs / "auth.log", "auth")
    assert wait_lines(f, 1) == ["auth"]
    assert f.missing() == [str(logs / "x*.log")]


def test_folder_glob(logs: Path, make: Callable[..., FileFollower]) -> None:
    (logs / "site1").mkdir()
    f = make(logs / "site*" / "access.log")
    (logs / "site2").mkdir()
    append(logs / "site2" / "access.log", "site2 line")
    assert wait_lines(f, 1) == ["site2 line"]
    append(logs / "site1" / "access.log", "site1 line")
    assert wait_lines(f, 1) == ["site1 line"]


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    ".gz": gzip.compress,
    ".bz2": bz2.compress,
    ".xz": lzma.compress,
    ".zst": lambda data: (
        subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True).stdout
    ),
}


def compress(path: Path, suffix: str) -> Path:
    """Compress ``path`` into ``path + suffix`` and remove it, as logrotate does."""
    out = Path(str(path) + suffix)
    out.write_bytes(COMPRESSORS[suffix](path.read_bytes()))
    path.unlink()
    return out


@pytest.mark.parametrize("suffix", list(COMPRESSORS))
def test_compressed_files_read_only_when_asked(
    logs: Path, make: Callable[..., FileFollower], suffix: str
) -> None:
    if suffix == ".zst" and shutil.which("zstd") is None:
        pytest.skip("zstd is not installed (scripts/test installs it)")
    append(logs / "app.log.2", *nums(1, 3))
    compress(logs / "app.log.2", suffix)
    append(logs / "app.log.1", *nums(4, 6))
    append(logs / "app.log", *nums(7, 8))
    ignoring = make(logs / "app.log*", from_start=True)
    assert sorted(texts(ignoring.read_available())) == nums(4, 8)
    ignoring.close()

    reading = make(logs / "other.log*", from_start=True, read_compressed=True)
    append(logs / "other.log.1", "x1", "x2")
    compress(logs / "other.log.1", suffix)
    assert wait_lines(reading, 2) == ["x1", "x2"]  # appeared while running: read once
    assert quiet(reading) == []
    reading.commit()
    reading.close()

    again = make(logs / "other.log*", read_compressed=True, from_start=True)
    assert quiet(again) == []  # already read: not again after a restart


def test_old_compressed_files_are_skipped_unless_from_start(
    logs: Path, make: Callable[..., FileFollower]
) -> None:
    append(logs / "app.log.1", "ancient")
    compress(logs / "app.log.1", ".gz")
    f = make(logs / "app.log*", read_compressed=True)
    assert quiet(f) == []
    f.close()
    f = make(logs / "app.log*", read_compressed=True, from_start=True)
    assert quiet(f) == []  # recorded as skipped by the first follower


def test_compressed_copy_of_a_read_file_is_not_read_again(
    logs: Path, make: Callable[..., FileFollower]
) -> None:
    log = logs / "app.log"
    append(log, *nums(1, 3))
    f = make(logs / "app.log*", read_compressed=True, from_start=True)
    assert texts(f.read_available()) == nums(1, 3)
    log.rename(logs / "app.log.1")
    append(log, 4)
    assert wait_lines(f, 1) == ["4"]
    compress(logs / "app.log.1", ".gz")
    append(log, 5)
    assert wait_lines(f, 1) == ["5"]
    assert quiet(f) == []


def test_compressed_file_written_slowly(logs: Path, make: Callable[..., FileFollower]) -> None:
    """A compressor still writing: the file is read once it can be, and only once."""
    f = make(logs / "*.gz", read_compressed=True)
    data = gzip.compress("".join(f"{i}\n" for i in range(1, 2001)).encode())
    out = logs / "slow.log.gz"
    with out.open("wb") as fh:
        for i in range(0, len(data), 512):
            fh.write(data[i : i + 512])
            fh.flush()
            time.sleep(0.002)
    assert wait_lines(f, 2000) == nums(1, 2000)
    assert quiet(f) == []


def logrotate(folder: Path, name: str, *, keep: int = 3, delaycompress: bool = True) -> None:
    """What logrotate does with ``create``, ``compress`` (and ``delaycompress``)."""
    base = folder / name

    def n(i: int, gz: bool) -> Path:
        return folder / f"{name}.{i}{'.gz' if gz else ''}"

    for i in range(keep, 0, -1):
        for gz in (True, False):
            if n(i, gz).exists():
                if i == keep:
                    n(i, gz).unlink()
                else:
                    n(i, gz).rename(n(i + 1, gz))
    if delaycompress and n(2, False).exists():
        compress(n(2, False), ".gz")
    base.rename(n(1, False))
    base.touch()
    if not delaycompress:
        compress(n(1, False), ".gz")


@pytest.mark.parametrize("crash", [False, True])
@pytest.mark.parametrize("delaycompress", [True, False])
@pytest.mark.parametrize("pattern", ["app.log", "app.log*"])
def test_many_rotations_with_restarts(
    logs: Path, make: Callable[..., FileFollower], pattern: str, delaycompress: bool, crash: bool
) -> None:
    """Numbered lines through logrotate rotations (some while stopped, with writes while
    stopped) and restarts. After clean stops each line is read exactly once, in order; after
    crashes the lines read since the last commit are read once more, and no other."""
    log = logs / "app.log"
    log.touch()
    f = make(logs / pattern, read_compressed=True)
    written = 0
    got: list[str] = []
    expected: list[str] = []

    def write_and_read(n: int) -> list[str]:
        nonlocal written
        new = nums(written + 1, written + n)
        append(log, *new)
        written += n
        expected.extend(new)
        return wait_lines(f, n)

    for round_ in range(8):
        for _ in range(3):
            got += write_and_read(10)
        f.commit()
        if round_ % 3 == 2:  # a stop, rotation and writes while stopped, a restart
            if crash:  # read more, then die without committing them
                uncommitted = write_and_read(10)
                got += uncommitted
                expected.extend(uncommitted)  # they come again after the restart
            f.close()
            logrotate(logs, "app.log", delaycompress=delaycompress)
            more = nums(written + 1, written + 5)
            append(log, *more)
            written += 5
            expected.extend(more)
            f = make(logs / pattern, read_compressed=True)
            got += wait_lines(f, len(expected) - len(got))
        else:
            logrotate(logs, "app.log", delaycompress=delaycompress)
    append(log, "end")
    got += wait_lines(f, 1)
    got += quiet(f)
    expected.append("end")
    if pattern == "app.log":
        assert got == expected
    else:  # rotated files are followed paths too: after a restart, files come in path order
        assert sorted(got, key=lambda x: (x == "end", x)) == sorted(
            expected, key=lambda x: (x == "end", x)
        )
    assert len(set(expected)) == written + 1


# -- restarts and crashes ---------------------------------------------------------------------


def test_resume_after_clean_stop(logs: Path, make: Callable[..., FileFollower]) -> None:
    log = logs / "auth.log"
    append(log, *nums(1, 5))
    f = make(log, from_start=True)
    assert texts(f.read_available()) == nums(1, 5)
    f.commit()
    f.close()
    append(log, *nums(6, 8))
    f = make(log, from_start=True)
    assert texts(f.read_available()) == nums(6, 8)


def test_resume_after_crash_reads_uncommitted_lines_again(
    logs: Path, make: Callable[..., FileFollower], store: SqliteStore
) -> None:
    log = logs / "auth.log"
    append(log, *nums(1, 5))
    f = make(log)  # never seen: from its end, and that position is stored at once
    assert f.read_available() == []
    assert store.get_state(PREFIX + str(log)) is not None
    append(log, *nums(6, 8))
    assert wait_lines(f, 3) == nums(6, 8)
    f.commit()
    append(log, *nums(9, 10))
    assert wait_lines(f, 2) == nums(9, 10)
    del f  # a crash: no commit (make's fixture closes the descriptors later)
    append(log, 11)
    f = make(log)
    assert texts(f.read_available()) == nums(9, 11)


def test_crash_before_the_first_commit_of_a_new_file(
    logs: Path, make: Callable[..., FileFollower]
) -> None:
    f = make(logs / "*.log")
    append(logs / "new.log", *nums(1, 3))  # created while running
    assert wait_lines(f, 3) == nums(1, 3)
    # crash: not committed; the file is known, so the restart reads it from its start
    append(logs / "new.log", 4)
    f2 = make(logs / "*.log")
    assert texts(f2.read_available()) == nums(1, 4)


def test_resume_mid_line(logs: Path, make: Callable[..., FileFollower]) -> None:
    log = logs / "auth.log"
    log.touch()
    f = make(log)
    append(log, "done\nhalf", end="")
    assert wait_lines(f, 1) == ["done"]
    f.commit()
    f.close()
    append(log, " and the rest")
    f = make(log)
    assert texts(f.read_available()) == ["half and the rest"]


def test_rotation_while_stopped(logs: Path, make: Callable[..., FileFollower]) -> None:
    log = logs / "auth.log"
    append(log, *nums(1, 10))
    f = make(log, from_start=True)
    assert texts(f.read_available()) == nums(1, 10)
    f.commit()
    f.close()
    append(log, *nums(11, 15))
    log.rename(logs / "auth.log.1")
    append(log, *nums(16, 20))
    f = make(log, from_start=True)
    assert texts(f.read_available()) == nums(11, 20)
    append(log, 21)
    assert wait_lines(f, 1) == ["21"]
    f.commit()
    f.close()
    f = make(log)
    assert quiet(f) == []


def test_rotation_while_stopped_after_a_crash(
    logs: Path, make: Callable[..., FileFollower]
) -> None:
    log = logs / "auth.log"
    append(log, *nums(1, 5))
    f = make(log, from_start=True)
    assert texts(f.read_available()) == nums(1, 5)
    f.commit()
    append(log, *nums(6, 10))
    assert wait_lines(f, 5) == nums(6, 10)
    f.close()  # crash after reading 6..10: not committed
    log.rename(logs / "auth.log.1")
    append(log, *nums(11, 12))
    f = make(log, from_start=True)
    assert texts(f.read_available()) == nums(6, 12)


def test_rotation_while_stopped_new_file_still_empty(
    logs: Path, make: Callable[..., FileFollower]
) -> None:
    log = logs / "auth.log"
    append(log, *nums(1, 2))
    f = make(log, from_start=True)
    assert texts(f.read_available()) == nums(1, 2)
    f.commit()
    f.close()
    append(log, 3)
    log.rename(logs / "auth.log.1")
    log.touch()
    f = make(log, from_start=True)
    assert texts(f.read_available()) == ["3"]
    append(logs / "auth.log.1", 4)  # the daemon has not reopened yet
    assert wait_lines(f, 1) == ["4"]
    append(log, 5)
    assert wait_lines(f, 1) == ["5"]
    f.commit()
    f.close()
    f = make(log)
    append(log, 6)
    assert wait_lines(f, 1) == ["6"]


def test_rotation_and_compression_while_stopped(
    logs: Path, make: Callable[..., FileFollower]
) -> None:
    log = logs / "auth.log"
    append(log, *nums(1, 4))
    f = make(log, from_start=True, read_compressed=True)
    assert texts(f.read_available()) == nums(1, 4)
    f.commit()
    f.close()
    append(log, *nums(5, 8))
    log.rename(logs / "auth.log.1")
    compress(logs / "auth.log.1", ".gz")
    append(log, *nums(9, 10))
    f = make(log, read_compressed=True)
    assert texts(f.read_available()) == nums(5, 10)
    f.commit()
    f.close()
    # without read_compressed the rest inside the .gz is out of reach: the new file is read
    append(log, 11)
    log.rename(logs / "auth.log.1")
    compress(logs / "auth.log.1", ".xz")
    append(log, 12)
    f = make(log)
    assert texts(f.read_available()) == ["12"]


def test_file_replaced_while_stopped(logs: Path, make: Callable[..., FileFollower]) -> None:
    log = logs / "auth.log"
    append(log, *nums(1, 3))
    f = make(log, from_start=True)
    assert texts(f.read_available()) == nums(1, 3)
    f.commit()
    f.close()
    append(log, 4)
    log.unlink()
    append(log, *nums(101, 102))
    f = make(log)
    assert texts(f.read_available()) == nums(101, 102)


def test_copytruncate_while_stopped(logs: Path, make: Callable[..., FileFollower]) -> None:
    log = logs / "app.log"
    append(log, *(f"first {i}" for i in range(1, 6)))
    f = make(log, from_start=True)
    assert len(f.read_available()) == 5
    f.commit()
    f.close()
    shutil.copy(log, logs / "app.log.1")
    with log.open("r+") as fh:
        fh.truncate(0)
    append(log, *(f"second {i}" for i in range(1, 20)))  # longer than before
    f = make(log)
    assert texts(f.read_available()) == [f"second {i}" for i in range(1, 20)]


def test_glob_rotation_while_stopped_reads_nothing_twice(
    logs: Path, make: Callable[..., FileFollower]
) -> None:
    """``auth.log*`` follows the rotated files too: a rotated file keeps its position."""
    log = logs / "auth.log"
    append(log, *nums(1, 3))
    f = make(logs / "auth.log*", from_start=True)
    assert texts(f.read_available()) == nums(1, 3)
    log.rename(logs / "auth.log.1")
    append(log, 4)
    assert wait_lines(f, 1) == ["4"]
    f.commit()
    f.close()
    append(log, 5)
    (logs / "auth.log.1").rename(logs / "auth.log.2")
    log.rename(logs / "auth.log.1")
    append(log, 6)
    f = make(logs / "auth.log*", from_start=True)
    assert sorted(texts(f.read_available())) == ["5", "6"]


def test_async_follow(logs: Path, make: Callable[..., FileFollower]) -> None:
    log = logs / "app.log"
    log.touch()
    f = make(log)

    async def main() -> list[str]:
        stop = asyncio.Event()
        got: list[str] = []

        async def writer() -> None:
            for i in range(1, 6):
                append(log, i)
                await asyncio.sleep(0.02)
            log.rename(logs / "app.log.1")
            append(log, 6)

        w = asyncio.get_running_loop().create_task(writer())
        async with asyncio.timeout(5):
            async for batch in f.follow(stop):
                got += texts(batch)
                f.commit()
                if len(got) >= 6:
                    stop.set()
        await w
        return got

    assert asyncio.run(main()) == nums(1, 6)


def test_rotated_away_and_not_created_again_while_stopped(
    logs: Path, make: Callable[..., FileFollower]
) -> None:
    log = logs / "auth.log"
    append(log, *nums(1, 2))
    f = make(log, from_start=True)
    assert texts(f.read_available()) == nums(1, 2)
    f.commit()
    f.close()
    append(log, 3)
    log.rename(logs / "auth.log.1")
    f = make(log, from_start=True)
    assert f.missing() == [str(log)]
    assert texts(f.read_available()) == ["3"]
    append(log, 4)  # the daemon creates its log again on its next write
    assert wait_lines(f, 1) == ["4"]
    assert quiet(f) == []


def test_copytruncate_with_a_writer_without_o_append(
    logs: Path, make: Callable[..., FileFollower]
) -> None:
    """The writer goes on at its old offset: the hole of NUL bytes before it is skipped."""
    log = logs / "app.log"
    with log.open("wb") as writer:  # no O_APPEND
        writer.write(b"".join(b"%d %s\n" % (i, b"x" * 100) for i in range(1, 1001)))
        writer.flush()
        f = make(log, from_start=True)
        assert len(f.read_available()) == 1000
        shutil.copy(log, logs / "app.log.1")
        os.truncate(log, 0)
        writer.write(b"after truncation\n")
        writer.flush()
        assert log.stat().st_size > 100_000  # sparse: a hole, then the new line
        assert wait_lines(f, 1) == ["after truncation"]
        assert quiet(f) == []
        writer.write(b"next\n")
        writer.flush()
        assert wait_lines(f, 1) == ["next"]


def test_folder_deleted_and_created_again(logs: Path, make: Callable[..., FileFollower]) -> None:
    folder = logs / "nginx"
    folder.mkdir()
    append(folder / "access.log", "old")
    f = make(folder / "*.log")
    append(folder / "access.log", "1")
    assert wait_lines(f, 1) == ["1"]
    shutil.rmtree(folder)
    assert quiet(f) == []
    assert f.missing() == [str(folder / "*.log")]
    folder.mkdir()
    append(folder / "access.log", "2")
    assert wait_lines(f, 1) == ["2"]


def test_reading_in_limited_batches(logs: Path, make: Callable[..., FileFollower]) -> None:
    lines = [f"{i} " + "y" * (i % 50) for i in range(1, 20001)]
    (logs / "app.log").write_text("".join(f"{x}\n" for x in lines[:10000]))
    gz = logs / "app.log.1.gz"
    gz.write_bytes(gzip.compress("".join(f"{x}\n" for x in lines[10000:]).encode()))
    f = make(logs / "app.log*", from_start=True, read_compressed=True)
    got: list[str] = []
    batches = 0
    while True:
        got += texts(f.read_available(max_bytes=4096))
        batches += 1
        if not f.more:
            break
    assert batches > 100
    assert sorted(got, key=lambda x: int(x.split()[0])) == lines
