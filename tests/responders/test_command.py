"""The command responder: every value arrives intact as one argument; no shell; clear errors."""

from __future__ import annotations

import ipaddress
import json
import math
import os
import sys
import time
from pathlib import Path

import pytest

from stockade.errors import ConfigError
from stockade.responders.base import Ban, ResponderError
from stockade.responders.command import CommandResponder

NOW = 1_900_000_000.0

RECORDER = """#!{python}
import json, os, sys
out, args = sys.argv[1], sys.argv[2:]
with open(out, "a") as f:
    f.write(json.dumps({{"pid": os.getpid(), "argv": args}}) + "\\n")
if "fail-me" in args:
    sys.stderr.write("boom: refused\\nsecond line\\n")
    sys.exit(3)
"""

NASTY = [
    "two words",
    'it\'s "quoted"',
    "a; touch {canary}",
    "$(touch {canary})",
    "`touch {canary}`",
    "x | touch {canary} && y",
    "-rf --no-preserve-root",
    "*",
    "line\nbreak",
    "<ip> <jail> stays literal",
    "ünïcödé ✓",
    "",
]


@pytest.fixture
def recorder(tmp_path: Path) -> tuple[Path, Path]:
    script = tmp_path / "record"
    script.write_text(RECORDER.format(python=sys.executable))
    script.chmod(0o755)
    return script, tmp_path / "calls.jsonl"


def calls(out: Path) -> list[dict[str, object]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines()]


def ban(net: str = "203.0.113.7", jail: str = "sshd", **kwargs: object) -> Ban:
    until = kwargs.pop("until", NOW + 600)
    return Ban(ipaddress.ip_network(net), jail, until=until, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("nasty", NASTY)
def test_a_value_arrives_intact_as_one_argument(
    recorder: tuple[Path, Path], tmp_path: Path, nasty: str
) -> None:
    script, out = recorder
    canary = tmp_path / "canary"
    reason = nasty.format(canary=canary)
    responder = CommandResponder(
        [str(script), str(out), "--reason=<reason>", "[<reason>]", "--", "<reason>"]
    )
    responder.apply([ban(reason=reason)], now=NOW)
    [call] = calls(out)
    assert call["argv"] == [f"--reason={reason}", f"[{reason}]", "--", reason]
    assert not canary.exists()  # no shell ever saw the value


def test_every_placeholder_is_replaced_inside_its_argument(recorder: tuple[Path, Path]) -> None:
    script, out = recorder
    template = [
        str(script),
        str(out),
        "ip=<ip>;jail=<jail>",
        "<until>",
        "<bantime>",
        "<ports>",
        "<protocol>",
        "<family>",
        "--why=<reason>",
    ]
    responder = CommandResponder(template)
    responder.apply(
        [
            ban("203.0.113.7", "sshd", until=NOW + 599.2, ports=("http,https",), reason="r"),
            ban("2001:db8::/64", "web", until=None, protocol="udp"),
        ],
        now=NOW,
    )
    first, second = calls(out)
    assert first["argv"] == [
        "ip=203.0.113.7;jail=sshd",
        str(math.ceil(NOW + 599.2)),
        "600",
        "http,https",
        "tcp",
        "inet",
        "--why=r",
    ]
    assert second["argv"] == [
        "ip=2001:db8::/64;jail=web",
        "never",
        "never",
        "0:65535",
        "udp",
        "inet6",
        "--why=",
    ]


def test_one_process_per_ban(recorder: tuple[Path, Path]) -> None:
    script, out = recorder
    responder = CommandResponder([str(script), str(out), "<ip>"])
    responder.apply([ban("203.0.113.1"), ban("203.0.113.2"), ban("2001:db8::3")], now=NOW)
    recorded = calls(out)
    assert [c["argv"] for c in recorded] == [["203.0.113.1"], ["203.0.113.2"], ["2001:db8::3"]]
    assert len({c["pid"] for c in recorded}) == 3


def test_expired_bans_are_skipped(recorder: tuple[Path, Path]) -> None:
    script, out = recorder
    responder = CommandResponder([str(script), str(out), "<ip>"])
    responder.apply([ban("203.0.113.1", until=NOW), ban("203.0.113.2", until=NOW - 5)], now=NOW)
    assert calls(out) == []


def test_a_value_that_would_read_as_an_option_is_refused(recorder: tuple[Path, Path]) -> None:
    script, out = recorder
    responder = CommandResponder([str(script), str(out), "<reason>"])
    with pytest.raises(ResponderError) as err:
        responder.apply([ban(reason="--delete-everything")], now=NOW)
    message = str(err.value)
    assert "'<reason>'" in message and "option" in message and "--" in message
    assert "\n" not in message
    assert calls(out) == []


def test_a_failure_is_one_line_and_the_other_bans_still_run(
    recorder: tuple[Path, Path],
) -> None:
    script, out = recorder
    responder = CommandResponder([str(script), str(out), "<ip>", "<reason>"])
    bans = [ban("203.0.113.1", reason="ok"), ban("203.0.113.2", reason="fail-me")]
    with pytest.raises(ResponderError) as err:
        responder.apply([*bans, ban("203.0.113.3", reason="ok")], now=NOW)
    message = str(err.value)
    assert "\n" not in message
    assert "failed to ban 203.0.113.2: exit status 3: boom: refused" in message
    assert len(calls(out)) == 3


def test_several_failures_are_counted(recorder: tuple[Path, Path]) -> None:
    script, out = recorder
    responder = CommandResponder([str(script), str(out), "<reason>"])
    bans = [ban(f"203.0.113.{n}", reason="fail-me") for n in (1, 2)] + [ban(reason="fine")]
    with pytest.raises(ResponderError, match=r"2 of 3 bans failed; the first: .*203\.0\.113\.1"):
        responder.apply(bans, now=NOW)


def test_a_hanging_command_is_killed_after_the_timeout() -> None:
    responder = CommandResponder(
        [sys.executable, "-c", "import time; time.sleep(60)", "<ip>"], timeout=0.5
    )
    started = time.monotonic()
    with pytest.raises(ResponderError, match=r"did not finish within 0.5 s .*killed"):
        responder.apply([ban()], now=NOW)
    assert time.monotonic() - started < 30


def test_a_missing_program_is_a_clear_error(tmp_path: Path) -> None:
    responder = CommandResponder([str(tmp_path / "nope"), "<ip>"])
    with pytest.raises(ResponderError, match=r"cannot run .*nope to ban 203.0.113.7"):
        responder.apply([ban()], now=NOW)


@pytest.mark.parametrize(
    ("template", "match"),
    [
        ([], "empty"),
        (["<ip>"], "may not hold a placeholder"),
        (["/bin/true", "<IP>"], "unknown placeholder <IP>"),
        (["/bin/true", "--host=<address>"], "unknown placeholder <address>"),
    ],
)
def test_bad_templates_are_config_errors(template: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        CommandResponder(template)


def test_the_flush_command_takes_no_placeholders() -> None:
    with pytest.raises(ConfigError, match="unknown placeholder <ip>"):
        CommandResponder(["/bin/true"], flush=["/bin/true", "<ip>"])


def test_unban_runs_the_unban_command(recorder: tuple[Path, Path]) -> None:
    script, out = recorder
    responder = CommandResponder(
        [str(script), str(out), "ban", "<ip>"], [str(script), str(out), "unban", "<ip>", "<jail>"]
    )
    responder.remove([ban("2001:db8::/64", "web")])
    assert [c["argv"] for c in calls(out)] == [["unban", "2001:db8::/64", "web"]]


def test_without_an_unban_command_remove_does_nothing(recorder: tuple[Path, Path]) -> None:
    script, out = recorder
    responder = CommandResponder([str(script), str(out), "ban", "<ip>"])
    responder.remove([ban()])
    assert calls(out) == []


def test_flush_runs_the_flush_command(recorder: tuple[Path, Path]) -> None:
    script, out = recorder
    responder = CommandResponder(
        [str(script), str(out), "ban", "<ip>"], flush=[str(script), str(out), "flush"]
    )
    responder.apply([ban()], now=NOW)
    responder.flush()
    assert [c["argv"] for c in calls(out)] == [["ban", "203.0.113.7"], ["flush"]]


def test_flush_without_a_flush_command_unbans_what_was_applied(
    recorder: tuple[Path, Path],
) -> None:
    script, out = recorder
    responder = CommandResponder(
        [str(script), str(out), "ban", "<ip>"], [str(script), str(out), "unban", "<ip>"]
    )
    responder.apply([ban("203.0.113.1"), ban("203.0.113.2")], now=NOW)
    responder.remove([ban("203.0.113.1")])
    responder.flush()
    assert [c["argv"] for c in calls(out)] == [
        ["ban", "203.0.113.1"],
        ["ban", "203.0.113.2"],
        ["unban", "203.0.113.1"],
        ["unban", "203.0.113.2"],
    ]


def test_no_shell_is_started(recorder: tuple[Path, Path]) -> None:
    """The recorder's parent is this test process itself, not /bin/sh."""
    script, out = recorder
    probe = script.parent / "probe"
    probe.write_text(
        f"#!{sys.executable}\nimport os, sys\nopen(sys.argv[1], 'w').write(str(os.getppid()))\n"
    )
    probe.chmod(0o755)
    CommandResponder([str(probe), str(out)]).apply([ban()], now=NOW)
    assert int(out.read_text()) == os.getpid()


def test_an_ipv4_mapped_address_is_given_as_ipv4(recorder: tuple[Path, Path]) -> None:
    script, out = recorder
    responder = CommandResponder([str(script), str(out), "<ip>", "<family>"])
    responder.apply([ban("::ffff:203.0.113.7")], now=NOW)
    assert [c["argv"] for c in calls(out)] == [["203.0.113.7", "inet"]]
