"""End to end: a real sshd in a server namespace, attackers in others, real nftables bans.

An attacker namespace fails to log in ``maxretry`` times against sshd; stockade, running in
the server namespace and reading sshd's log, bans it in nftables, so its next TCP connection
fails. A namespace on the allowlist does the same and keeps its access. The ban survives a
stockade restart and a ``kill -9``, disappears after its bantime, and lasts longer the second
time (bantime.increment).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w

from tests.daemonproc import Daemon
from tests.netns import Namespace, Namespaces, unavailable

pytestmark = [pytest.mark.slow]

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"

_LOGIN = r"""
import sys, paramiko
host, user, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    try:
        c.connect(host, port=22, username=user, password="wrong-%d" % i, allow_agent=False,
                  look_for_keys=False, timeout=5, banner_timeout=5, auth_timeout=5)
    except Exception:
        pass
    finally:
        c.close()
"""


def fail_logins(ns: Namespace, host: str, user: str, n: int) -> None:
    ns.run(sys.executable, "-c", _LOGIN, host, user, str(n), timeout=120)


def start_syslog(tmp: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """rsyslog, as on a Debian server: sshd logs through /dev/log into auth.log."""
    log = tmp / "auth.log"
    log.touch()
    conf = tmp / "rsyslog.conf"
    conf.write_text(
        'module(load="imuxsock" SysSock.Name="/dev/log")\n'
        f"$WorkDirectory {tmp}\nauth,authpriv.* {log}\n"
    )
    proc = subprocess.Popen(["rsyslogd", "-n", "-f", str(conf), "-i", str(tmp / "rsyslog.pid")])
    assert wait(lambda: Path("/dev/log").exists(), 20), "rsyslogd did not start"
    return proc, log


def start_sshd(server: Namespace, tmp: Path) -> None:
    key = tmp / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    conf = tmp / "sshd_config"
    conf.write_text(
        f"Port 22\nHostKey {key}\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n"
        f"UsePAM no\nPermitRootLogin no\nPidFile {tmp}/sshd.pid\nLogLevel INFO\nMaxAuthTries 10\n"
        "MaxStartups 100\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    server.popen(SSHD, "-D", "-f", str(conf))


def start_stockade(server: Namespace, config: Path, state: Path) -> Daemon:
    proc = server.popen(
        sys.executable,
        "-m",
        "stockade",
        "--config",
        str(config),
        "--state-dir",
        str(state),
        "run",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    d = Daemon.__new__(Daemon)
    d.attach(proc)
    d.wait_for("starting part logs")
    return d


def wait(pred, timeout: float = 60, step: float = 0.2) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return False


def test_sshd_attacker_banned_friend_kept(netns: Namespaces, tmp_path: Path) -> None:
    why = unavailable()
    if why or not Path(SSHD).exists():
        pytest.skip(why or "sshd is not installed (scripts/test installs openssh-server)")
    pytest.importorskip("paramiko")
    if not shutil.which("rsyslogd"):
        pytest.skip("rsyslog is not installed (scripts/test installs it)")
    if Path("/dev/log").exists():
        pytest.skip("a syslog daemon already owns /dev/log on this machine")
    syslog, log = start_syslog(tmp_path)
    try:
        run_scenario(netns, tmp_path, log)
    finally:
        syslog.terminate()
        syslog.wait(10)


def run_scenario(netns: Namespaces, tmp_path: Path, log: Path) -> None:
    server, attacker, friend = netns.create("srv"), netns.create("att"), netns.create("fri")
    netns.link(server, attacker, ["10.77.1.1/24"], ["10.77.1.2/24"])
    netns.link(server, friend, ["10.77.2.1/24"], ["10.77.2.2/24"])
    start_sshd(server, tmp_path)
    assert wait(lambda: attacker.can_connect("10.77.1.1", 22), 20), "sshd did not start"

    config = tmp_path / "stockade.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "files": {"enabled": False},
                "logs": {
                    "responder": "nftables",
                    "allowlist": ["10.77.2.2"],
                    "jails": [
                        {
                            "name": "sshd",
                            "filter": "sshd",
                            "logpath": [str(log)],
                            "maxretry": 3,
                            "findtime": "10m",
                            "bantime": "20s",
                            "bantime_increment": {"enabled": True, "factor": 1},
                        }
                    ],
                },
            }
        )
    )
    state = tmp_path / "state"
    d = start_stockade(server, config, state)

    # the attacker fails three times: banned, its next connection fails
    fail_logins(attacker, "10.77.1.1", "root", 3)
    d.wait_for(r"jail sshd: banned 10\.77\.1\.2 for 20s", timeout=30)
    assert not attacker.can_connect("10.77.1.1", 22, timeout=2)
    # the allowlisted friend does the same and keeps its access
    fail_logins(friend, "10.77.2.1", "nosuchuser", 4)
    time.sleep(1)
    assert friend.can_connect("10.77.2.1", 22)
    assert "10.77.2.2" not in server.run("nft", "list", "ruleset").stdout

    # the ban survives a clean restart...
    assert d.stop(30) == 0
    assert not attacker.can_connect("10.77.1.1", 22, timeout=2)
    d = start_stockade(server, config, state)
    d.wait_for("restored 1 active ban")
    assert not attacker.can_connect("10.77.1.1", 22, timeout=2)
    # ...and a crash
    d.proc.kill()
    d.proc.wait(30)
    assert not attacker.can_connect("10.77.1.1", 22, timeout=2)
    d = start_stockade(server, config, state)
    d.wait_for("restored 1 active ban")

    # it ends after its bantime (the kernel removes it)
    assert wait(lambda: attacker.can_connect("10.77.1.1", 22, timeout=1), 60), "the ban never ended"

    # a repeat offender is banned for longer
    fail_logins(attacker, "10.77.1.1", "admin", 3)
    d.wait_for(r"jail sshd: banned 10\.77\.1\.2 for 40s", timeout=30)
    assert not attacker.can_connect("10.77.1.1", 22, timeout=2)
    bans = [
        json.loads(x)
        for x in subprocess.run(
            [
                sys.executable,
                "-m",
                "stockade",
                "--config",
                str(config),
                "--state-dir",
                str(state),
                "bans",
                "list",
                "--all",
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    ]
    assert [b["address"] for b in bans] == ["10.77.1.2", "10.77.1.2"]
    assert [b["failures"] for b in bans] == [3, 3]
    assert d.stop(30) == 0
