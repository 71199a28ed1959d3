"""Each channel delivers to a real receiver on loopback: syslog (UDP, TCP, TLS), SMTP with
STARTTLS, a webhook, a command."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from stockade.config.schema import ChannelConfig
from stockade.model import Alert, Severity
from stockade.responders.notify.channels import make_channel
from stockade.responders.notify.channels.base import DeliveryError
from stockade.responders.notify.message import Message, build
from tests.notify.receivers import (
    HttpReceiver,
    Pki,
    SmtpReceiver,
    SyslogReceiver,
    free_port,
    make_pki,
)

CHANNEL: TypeAdapter[Any] = TypeAdapter(ChannelConfig)


def channel(**cfg: Any) -> Any:
    return make_channel(CHANNEL.validate_python({"name": "t", "timeout": "5s", **cfg}), "web1")


def send(ch: Any, message: Message) -> None:
    asyncio.run(ch.send(message))


def alert(i: int = 1, **kw: Any) -> Alert:
    fields: dict[str, Any] = {
        "part": "files",
        "kind": "file-changed",
        "subject": f"/usr/bin/ls{i}",
        "severity": Severity.HIGH,
        "detail": {"message": f"/usr/bin/ls{i} changed: sha256 ab → cd"},
        "host": "web1",
        "time": 1_764_000_000.0 + i,
        "id": i,
    }
    fields.update(kw)
    return Alert(**fields)


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
@pytest.mark.parametrize("body", ["plain", "json", "cef"])
def test_syslog_delivers_rfc5424(pki: Pki, transport: str, body: str) -> None:
    rx = SyslogReceiver(transport, pki)
    try:
        ch = channel(
            type="syslog",
            address=rx.address,
            transport=transport,
            format=body,
            ca_file=str(pki.ca_file),
        )
        send(ch, build([alert(7)], "web1"))
        send(ch, build([alert(i) for i in range(20)], "web1"))
        got = rx.inbox.wait(2)
    finally:
        rx.close()
    # over TCP and TLS each delivery is a connection of its own: they may be read in any order
    summary = next(m for m in got if m["msgid"] == "summary")
    single = next(m for m in got if m["msgid"] != "summary")
    assert single["facility"] == 10  # authpriv
    assert single["severity"] == 3  # high → err
    assert single["host"] == "web1"
    assert single["app"] == "stockade"
    assert single["msgid"] == "file-changed"
    assert single["bom"]
    assert single["sd"]["stockade@32473"]["subject"] == "/usr/bin/ls7"
    assert single["sd"]["stockade@32473"]["id"] == "7"
    assert summary["msgid"] == "summary"
    assert summary["sd"]["stockade@32473"]["count"] == "20"
    if body == "plain":
        assert single["msg"] == "/usr/bin/ls7 changed: sha256 ab → cd"
    elif body == "json":
        assert json.loads(single["msg"])["alerts"][0]["subject"] == "/usr/bin/ls7"
        assert json.loads(summary["msg"])["count"] == 20
    else:
        assert single["msg"].startswith("CEF:0|stockade|stockade|")
        assert "|files/file-changed|" in single["msg"]
        assert "cs1=/usr/bin/ls7" in single["msg"]


def test_syslog_tls_refuses_a_certificate_it_does_not_trust(pki: Pki, tmp_path: Path) -> None:
    rx = SyslogReceiver("tls", pki)
    other = make_pki(tmp_path / "other")
    try:
        ch = channel(type="syslog", address=rx.address, transport="tls", ca_file=str(other.ca_file))
        with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            send(ch, build([alert()], "web1"))
    finally:
        rx.close()
    assert rx.inbox.items == []


def test_syslog_tcp_to_nobody_fails() -> None:
    ch = channel(type="syslog", address=f"127.0.0.1:{free_port()}", transport="tcp")
    with pytest.raises(DeliveryError, match=r"syslog tcp://127\.0\.0\.1"):
        send(ch, build([alert()], "web1"))


def test_email_goes_through_starttls(pki: Pki) -> None:
    rx = SmtpReceiver(pki)
    try:
        ch = channel(
            type="email",
            host="127.0.0.1",
            port=rx.port,
            ca_file=str(pki.ca_file),
            sender="stockade@example.org",
            recipients=["admin@example.org", "oncall@example.org"],
        )
        send(ch, build([alert(3)], "web1"))
        (mail,) = rx.inbox.wait(1)
    finally:
        rx.close()
    assert mail["tls"] is True
    assert mail["from"] == "stockade@example.org"
    assert mail["to"] == ["admin@example.org", "oncall@example.org"]
    parsed = email.message_from_string(mail["data"], policy=email.policy.default)
    assert parsed["Subject"] == "[stockade web1] high: /usr/bin/ls3 changed: sha256 ab → cd"
    assert parsed["X-Stockade-Severity"] == "high"
    body = parsed.get_content()
    assert "subject:  /usr/bin/ls3" in body


def test_email_without_starttls_on_offer_is_not_sent(pki: Pki) -> None:
    # a server without a TLS context offers no STARTTLS: nothing may go out in clear
    from aiosmtpd.controller import Controller

    from tests.notify.receivers import _MailHandler

    handler = _MailHandler()
    port = free_port()
    ctl = Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        ch = channel(
            type="email",
            host="127.0.0.1",
            port=port,
            sender="stockade@example.org",
            recipients=["admin@example.org"],
        )
        with pytest.raises(DeliveryError, match="does not offer STARTTLS"):
            send(ch, build([alert()], "web1"))
    finally:
        ctl.stop()
    assert handler.inbox.items == []


def test_webhook_posts_json(http: HttpReceiver) -> None:
    ch = channel(type="webhook", url=http.url, headers={"X-Token": "s3cret"})
    send(ch, build([alert(i) for i in range(1, 4)], "web1"))
    (body,) = http.inbox.wait(1)
    assert body["count"] == 3
    assert body["by_kind"] == [{"part": "files", "kind": "file-changed", "count": 3}]
    assert [a["subject"] for a in body["alerts"]] == [
        "/usr/bin/ls1",
        "/usr/bin/ls2",
        "/usr/bin/ls3",
    ]
    assert http.headers[0]["X-Token"] == "s3cret"


def test_webhook_slack_style(http: HttpReceiver) -> None:
    ch = channel(type="webhook", url=http.url, style="slack")
    send(ch, build([alert(5)], "web1"))
    (body,) = http.inbox.wait(1)
    assert set(body) == {"text", "username"}
    assert "/usr/bin/ls5 changed" in body["text"]


def test_webhook_error_status_is_a_failed_delivery(http: HttpReceiver) -> None:
    http.status = 503
    ch = channel(type="webhook", url=http.url)
    with pytest.raises(DeliveryError, match="answered 503"):
        send(ch, build([alert()], "web1"))


def test_command_gets_arguments_and_json_without_a_shell(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    script = (
        "import json, sys; "
        f"json.dump({{'argv': sys.argv[1:], 'stdin': json.load(sys.stdin)}}, open({str(out)!r}, 'w'))"
    )
    ch = channel(
        type="command",
        command=[sys.executable, "-c", script, "<severity>", "<subject>", "--count=<count>"],
    )
    evil = alert(1, subject="/tmp/x; rm -rf / $(reboot)")
    send(ch, build([evil], "web1"))
    got = json.loads(out.read_text())
    assert got["argv"] == ["high", "/tmp/x; rm -rf / $(reboot)", "--count=1"]
    assert got["stdin"]["alerts"][0]["subject"] == "/tmp/x; rm -rf / $(reboot)"


def test_command_failure_and_option_smuggling_are_failed_deliveries() -> None:
    ch = channel(type="command", command=[sys.executable, "-c", "import sys; sys.exit('no way')"])
    with pytest.raises(DeliveryError, match="exit status 1: no way"):
        send(ch, build([alert()], "web1"))
    ch = channel(type="command", command=["/bin/echo", "<subject>"])
    with pytest.raises(DeliveryError, match="would be read as an option"):
        send(ch, build([alert(subject="--help")], "web1"))


def test_email_logs_in_after_starttls(pki: Pki, tmp_path: Path) -> None:
    rx = SmtpReceiver(pki, login=("stockade", "s3cret"))
    secret = tmp_path / "smtp.pass"
    try:
        cfg = {
            "type": "email",
            "host": "127.0.0.1",
            "port": rx.port,
            "ca_file": str(pki.ca_file),
            "sender": "stockade@example.org",
            "recipients": ["admin@example.org"],
            "username": "stockade",
            "password_file": str(secret),
        }
        secret.write_text("wrong\n")
        with pytest.raises(DeliveryError, match="SMTPAuthenticationError"):
            send(channel(**cfg), build([alert(1)], "web1"))
        secret.write_text("s3cret\n")
        send(channel(**cfg), build([alert(2)], "web1"))
        (mail,) = rx.inbox.wait(1)
    finally:
        rx.close()
    assert mail["tls"] and "ls2" in mail["data"]


def test_webhook_over_https_with_the_test_ca(pki: Pki, tmp_path: Path) -> None:
    rx = HttpReceiver(pki=pki)
    try:
        send(
            channel(type="webhook", url=rx.url, ca_file=str(pki.ca_file)), build([alert(8)], "web1")
        )
        (body,) = rx.inbox.wait(1)
        assert body["alerts"][0]["id"] == 8
        other = make_pki(tmp_path / "other")
        with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            send(
                channel(type="webhook", url=rx.url, ca_file=str(other.ca_file)),
                build([alert(9)], "web1"),
            )
    finally:
        rx.close()
    assert len(rx.inbox.items) == 1
