"""The ``notify`` section: bad channels are one-line errors naming the file, line and key."""

from __future__ import annotations

from typing import Any

import pytest
import tomli_w

from tests.conftest import Instance

HOOK = {"type": "webhook", "name": "w", "url": "http://127.0.0.1:8080/hook"}

BAD: list[tuple[list[dict[str, Any]], str]] = [
    ([{"type": "pager", "name": "p"}], "notify.channels[0].type: unknown type 'pager'; use one of 'syslog', 'email', 'webhook', 'command'"),
    ([{"name": "p"}], "notify.channels[0]: required key 'type' is missing"),
    ([{**HOOK, "url": "ftp://x/"}], "notify.channels[0].url: bad URL 'ftp://x/'"),
    ([{**HOOK, "url": "http://"}], "notify.channels[0].url: bad URL 'http://'"),
    ([{"type": "syslog", "name": "s", "address": "a b:514"}], "notify.channels[0].address: 'a b:514' is not HOST:PORT"),
    ([{"type": "syslog", "name": "s", "address": "x:70000"}], "port 70000 is not in 1-65535"),
    ([{"type": "syslog", "name": "s", "address": "x:514", "transport": "sctp"}], "notify.channels[0].transport: Input should be 'udp', 'tcp' or 'tls'"),
    ([HOOK, HOOK], "notify.channels[1].name: channel 'w' is defined twice"),
    ([{**HOOK, "parts": ["filez"]}], "notify.channels[0].parts: unknown part 'filez'"),
    ([{**HOOK, "min_severity": "hgih"}], "notify.channels[0].min_severity: unknown severity 'hgih'"),
    ([{**HOOK, "colour": "red"}], "notify.channels[0].colour: unknown key"),
    ([{**HOOK, "group_window": "soon"}], "notify.channels[0].group_window: 'soon' is not a duration"),
    ([{"type": "email", "name": "m", "host": "x", "sender": "nobody", "recipients": ["a@b.c"]}], "notify.channels[0].sender: 'nobody' is not a mail address"),
    ([{"type": "email", "name": "m", "host": "x", "sender": "a@b.c", "recipients": []}], "notify.channels[0].recipients: give at least one recipient"),
    ([{"type": "command", "name": "c", "command": ["/bin/echo", "<ip>"]}], "notify.channels[0].command: command: unknown placeholder <ip>"),
    ([{"type": "command", "name": "c", "command": []}], "notify.channels[0].command: command: the command is empty"),
]  # fmt: skip


@pytest.mark.parametrize(("channels", "expected"), BAD, ids=[e for _, e in BAD])
def test_bad_channels_are_one_line_errors(
    instance: Instance, channels: list[dict[str, Any]], expected: str
) -> None:
    instance.config.write_text(tomli_w.dumps({"notify": {"channels": channels}}))
    r = instance.run("config", "check")
    assert r.rc == 2
    assert r.one_line_error, r.err
    assert f"{instance.config}:" in r.err
    assert expected in r.err


def test_a_good_section_passes_and_shows_its_defaults(instance: Instance) -> None:
    channels = [
        HOOK,
        {"type": "syslog", "name": "siem", "address": "[2001:db8::7]:6514", "transport": "tls",
         "format": "cef", "min_severity": "high", "parts": ["files", "logs"]},
        {"type": "email", "name": "mail", "host": "smtp.example.org", "sender": "s@example.org",
         "recipients": ["a@example.org"]},
        {"type": "command", "name": "run", "command": ["/usr/local/bin/page", "--", "<subject>"]},
    ]  # fmt: skip
    instance.config.write_text(tomli_w.dumps({"notify": {"channels": channels}}))
    assert instance.run("config", "check").rc == 0
    shown = instance.run("config", "show")
    assert shown.rc == 0
    assert 'group_window = "1m"' in shown.out
    assert "[[notify.channels]]" in shown.out
