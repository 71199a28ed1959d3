"""``stockade logs test`` and ``stockade logs jails`` as an administrator uses them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Instance

SHARED_GEN = Path(__file__).resolve().parents[3] / "shared" / "bench" / "gen_authlog.py"


def write_log(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


SAMPLE = [
    "Nov 20 10:00:00 web01 sshd[100]: Failed password for root from 192.0.2.1 port 4000 ssh2",
    "Nov 20 10:00:01 web01 sshd[101]: Accepted publickey for alice from 10.0.0.2 port 5000 ssh2",
    "Nov 20 10:00:02 web01 CRON[102]: pam_unix(cron:session): session opened for user root",
    "Nov 20 10:00:03 web01 sshd[103]: Invalid user admin from 2001:db8::7 port 4001",
]


def test_logs_test_json_output(instance: Instance, tmp_path: Path) -> None:
    log = write_log(tmp_path / "auth.log", SAMPLE)
    r = instance.run("logs", "test", log, "sshd", "--json")
    assert r.rc == 0, r.err
    lines = r.json_lines()
    matches, summary = lines[:-1], lines[-1]["summary"]
    assert [(m["line"], m["host"]) for m in matches] == [(1, "192.0.2.1"), (4, "2001:db8::7")]
    assert matches[0]["user"] == "root" and matches[1]["user"] == "admin"
    assert matches[0]["time"].startswith(f"{_year()}-11-20T") or matches[0]["time"].endswith("Z")
    assert summary["lines"] == 4 and summary["matched"] == 2 and summary["missed"] == 2
    assert set(summary) >= {"regex_hits", "seconds", "lines_per_second"}


def _year() -> int:
    import time

    return time.localtime().tm_year


def test_logs_test_human_output_and_missed(instance: Instance, tmp_path: Path) -> None:
    log = write_log(tmp_path / "auth.log", SAMPLE)
    r = instance.run("logs", "test", log, "sshd", "--print-missed")
    assert r.rc == 0
    assert "Lines: 4 lines, 2 matched" in r.out
    assert "CRON[102]" in r.out.split("Missed lines")[1]


def test_logs_test_with_a_regex_and_a_file(instance: Instance, tmp_path: Path) -> None:
    log = write_log(
        tmp_path / "app.log", ["2026-11-20 10:00:00 login failed for bob from 192.0.2.9"]
    )
    r = instance.run("logs", "test", log, r"login failed for \S+ from <HOST>$", "--json")
    assert r.json_lines()[0]["host"] == "192.0.2.9"
    flt = tmp_path / "app.conf"
    flt.write_text(
        "[Definition]\nfailregex = ^\\s*login failed for <F-USER>\\S+</F-USER> from <HOST>$\n"
    )
    r = instance.run("logs", "test", log, flt, "--json")
    assert r.json_lines()[0]["user"] == "bob"


def test_logs_test_of_a_native_jail(instance: Instance, tmp_path: Path) -> None:
    log = write_log(tmp_path / "auth.log", SAMPLE)
    instance.config.write_text(
        '[[logs.jails]]\nname = "app"\nfailregex = ["Failed password for \\\\S+ from <ADDR> "]\n'
    )
    r = instance.run("logs", "test", log, "jail:app", "--json")
    assert [m["host"] for m in r.json_lines()[:-1]] == ["192.0.2.1"]
    r = instance.run("logs", "test", log, "jail:nope")
    assert r.rc == 2 and r.one_line_error and "no jail 'nope'" in r.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no/such.log", "sshd"], "no such log file"),
        (["{log}", "no-such-filter"], "no filter 'no-such-filter'"),
        (["{log}", "(unclosed <HOST>"], "cannot compile"),
        (["{log}", "no host group here"], "no failure-id group"),
        (["{log}", "sshd", "--maxlines", "0"], "--maxlines"),
        (["{log}", "sshd", "--datepattern", "%Y-%"], "datepattern"),
    ],
)
def test_logs_test_bad_input(
    instance: Instance, tmp_path: Path, args: list[str], message: str
) -> None:
    log = write_log(tmp_path / "auth.log", SAMPLE)
    r = instance.cli("logs", "test", *[a.format(log=log) for a in args])
    assert r.rc == 2 and r.one_line_error, r.err
    assert message in r.err


def test_binary_garbage_and_long_lines(instance: Instance, tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    with log.open("wb") as f:
        f.write(b"\x00\xff\xfe garbage \x80\x81\n")
        f.write(
            b"Nov 20 10:00:00 web01 sshd[1]: Failed password for root from 192.0.2.1 port 1 ssh2 "
            + b"x" * (10 << 20)
            + b"\n"
        )  # a 10 MB line
        f.write(
            "Nov 20 10:00:01 web01 sshd[2]: Failed password for \udcff from 192.0.2.2 port 2 ssh2\n".encode(
                "utf-8", "surrogateescape"
            )
        )
        f.write(
            b"Nov 20 10:00:02 web01 sshd[3]: Failed password for root from 192.0.2.3 port 3 ssh2"
        )
    r = instance.cli("logs", "test", log, "sshd", "--json", timeout=120)
    assert r.rc == 0, r.err
    hosts = [m["host"] for m in r.json_lines()[:-1]]
    # the 10 MB line still matches (sshd's filter allows text after "ssh2"), the invalid UTF-8
    # user name is replaced, the last line counts without its newline
    assert hosts == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]


def test_parallel_parts_give_the_same_result(instance: Instance, tmp_path: Path) -> None:
    if not SHARED_GEN.exists():
        pytest.skip("../shared/bench/gen_authlog.py is not there")
    log = tmp_path / "auth.log"
    subprocess.run(
        [sys.executable, str(SHARED_GEN), str(log), "120000", "7"], check=True, capture_output=True
    )
    one = instance.run("logs", "test", log, "sshd", "--json", "--workers", "1").out
    two = instance.run("logs", "test", log, "sshd", "--json", "--workers", "2").out
    strip = lambda out: [ln for ln in out.splitlines() if '"summary"' not in ln]  # noqa: E731
    assert strip(one) == strip(two) and len(strip(one)) > 10000
    assert json.loads(two.splitlines()[-1])["summary"]["workers"] == 2


def test_native_sshd_filter_counts_the_true_failures(instance: Instance, tmp_path: Path) -> None:
    """The bundled sshd jail's own filter finds exactly the generator's failed logins."""
    if not SHARED_GEN.exists():
        pytest.skip("../shared/bench/gen_authlog.py is not there")
    log = tmp_path / "auth.log"
    subprocess.run(
        [sys.executable, str(SHARED_GEN), str(log), "50000", "3"], check=True, capture_output=True
    )
    truth = json.loads((tmp_path / "auth.log.truth.json").read_text())["fail_by_kind"]
    expected = truth["failed_invalid"] + truth["failed_root"] + truth["invalid_user"]
    from stockade.config.load import quickstart_text

    instance.config.write_text(quickstart_text())
    r = instance.run("logs", "test", log, "jail:sshd", "--json")
    assert r.json_lines()[-1]["summary"]["matched"] == expected


def test_logs_jails_lists_sources(instance: Instance, tmp_path: Path) -> None:
    instance.config.write_text(
        '[logs]\nfail2ban_dir = ""\n[[logs.jails]]\nname = "web"\nfailregex = ["x from <HOST>"]\n'
        f'logpath = ["{tmp_path}/access.log"]\nport = "http,https"\nbantime = "permanent"\n'
    )
    r = instance.run("logs", "jails", "--json")
    (j,) = r.json_lines()
    assert j["name"] == "web" and j["ports"] == ["http", "https"] and j["bantime"] == -1
    assert "permanent" in instance.run("logs", "jails").out
