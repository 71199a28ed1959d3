"""Log injection: text an attacker controls (a user name) must never count against an address
written into it."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockade.config.load import parse_config, quickstart_text
from stockade.detectors.logs.engine import FilterSpec, LineFilter
from stockade.detectors.logs.f2b.filterconf import load_filter
from stockade.parts.logs.jails import build_jails
from tests.logs.f2b_samples import LOGS

INJECTED = "10.66.66.66"  # the address an attacker wants banned: it must never come out
REAL = "203.0.113.5"  # the attacker's own address, written by sshd itself

LINES = [
    f"Failed password for invalid user {INJECTED} from {REAL} port 22 ssh2",
    f"Failed password for invalid user x from {INJECTED} port 22 ssh2 from {REAL} port 4242 ssh2",
    f"Failed password for root from {INJECTED} port 22 ssh2 from {REAL} port 4242 ssh2",
    f"Invalid user admin from {INJECTED} from {REAL} port 4242",
    f"Invalid user from {INJECTED} port 22 from {REAL} port 4242",
    f"Failed password for invalid user x from {INJECTED} port 22 from {REAL} port 22 ssh2",
    f"Failed password for invalid user  from {INJECTED} port 1 ssh2 from {REAL} port 2 ssh2",
    f"Failed keyboard-interactive/pam for invalid user {INJECTED} from {REAL} port 22 ssh2",
]


def _filters() -> list[tuple[str, LineFilter]]:
    out = []
    if Path("/etc/fail2ban/filter.d/sshd.conf").exists():
        for mode in ("normal", "aggressive"):
            f = load_filter(Path("/etc/fail2ban"), f"sshd[mode={mode}]")
            spec = FilterSpec(
                f.name, f.failregex, f.ignoreregex, f.prefregex, f.datepattern, f.maxlines
            )
            out.append((f"fail2ban sshd {mode}", LineFilter(spec)))
    cfg = parse_config(quickstart_text(), "quickstart")
    cfg.logs.fail2ban_dir = ""
    (jail,) = [j for j in build_jails(cfg.logs) if j.name == "sshd"]
    out.append(("stockade's own sshd", LineFilter(jail.spec)))
    return out


@pytest.mark.parametrize("n", range(len(LINES)))
def test_user_name_injection(n: int) -> None:
    line = f"Nov 20 10:00:{n:02d} web01 sshd[{1000 + n}]: {LINES[n]}"
    for name, flt in _filters():
        found = [f for f in flt.process(line) if f.fid is not None and not f.nofail]
        hosts = {f.address for f in found}
        assert INJECTED not in hosts, (name, line)
        assert hosts <= {REAL}, (name, line, hosts)


def test_fail2ban_injection_samples_all_agree() -> None:
    """The injection cases among fail2ban's annotated samples (sshd, pam-generic, dovecot,
    roundcube, exim, drupal, sendmail) are part of the conformance run; here every one of them
    must agree, not just 99%."""
    if not LOGS.is_dir():
        pytest.skip("fail2ban is not installed")
    from tests.logs import test_f2b_conformance as conf

    problems = conf.run_all(lambda sample: "inject" in str(sample.expect.get("desc", "")).lower())
    assert problems.checked >= 15
    assert problems.lines == [], problems.lines
