"""SMTP with implicit TLS (SMTPS, port 465) and client certificates (mutual TLS) for syslog
over TLS and webhooks over https: real receivers on loopback that demand them, and the
one-line configuration errors for certificate files that cannot be used."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from cryptography.hazmat.primitives import serialization

from stockade.responders.notify.channels.base import DeliveryError
from stockade.responders.notify.message import build
from tests.conftest import Instance
from tests.notify.receivers import HttpReceiver, Pki, SmtpReceiver, SyslogReceiver, make_pki
from tests.notify.test_channels import alert, channel, send
from tests.notify.test_daemon import add_alerts, ban, configure, outbox, started

# the SMTPS receiver takes AUTH without STARTTLS: its whole connection is TLS
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Another CA: its server and client certificates are trusted by nobody here."""
    return make_pki(tmp_path_factory.mktemp("stranger"))


def mail(pki: Pki, port: int, **cfg: Any) -> dict[str, Any]:
    return {
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "tls": "implicit",
        "ca_file": str(pki.ca_file),
        "sender": "stockade@example.org",
        "recipients": ["admin@example.org"],
        **cfg,
    }


# -- SMTP with implicit TLS -----------------------------------------------------------------


def test_email_over_implicit_tls_logs_in_and_delivers(pki: Pki, tmp_path: Path) -> None:
    rx = SmtpReceiver(pki, login=("stockade", "s3cret"), implicit=True)
    secret = tmp_path / "smtp.pass"
    secret.write_text("s3cret\n")
    try:
        ch = channel(**mail(pki, rx.port, username="stockade", password_file=str(secret)))
        send(ch, build([alert(4)], "web1"))
        (got,) = rx.inbox.wait(1)
    finally:
        rx.close()
    assert got["tls"] is True
    assert got["to"] == ["admin@example.org"]
    assert "/usr/bin/ls4 changed" in got["data"]


def test_implicit_tls_refuses_a_server_it_does_not_trust(pki: Pki, stranger: Pki) -> None:
    rx = SmtpReceiver(pki, implicit=True)
    try:
        with pytest.raises(DeliveryError, match=r"smtps://127\.0\.0\.1:\d+: .*CERTIFICATE_VERIFY"):
            send(channel(**mail(stranger, rx.port)), build([alert()], "web1"))
    finally:
        rx.close()
    assert rx.inbox.items == []


def test_implicit_tls_to_a_plaintext_greeting_sends_nothing(pki: Pki) -> None:
    rx = SmtpReceiver(pki)  # STARTTLS: the server speaks in clear first
    try:
        with pytest.raises(DeliveryError, match=r"smtps://127\.0\.0\.1:\d+: SSLError"):
            send(channel(**mail(pki, rx.port)), build([alert()], "web1"))
    finally:
        rx.close()
    assert rx.inbox.items == []


# -- mutual TLS -----------------------------------------------------------------------------


class MutualReceiver:
    """A syslog TLS collector or an https webhook receiver that requires a client
    certificate from the test's CA."""

    def __init__(self, kind: str, pki: Pki, max_tls: ssl.TLSVersion | None) -> None:
        self.kind = kind
        if kind == "syslog":
            self.syslog = SyslogReceiver("tls", pki, require_client_cert=True, max_tls=max_tls)
            self.inbox = self.syslog.inbox
        else:
            self.http = HttpReceiver(pki=pki, require_client_cert=True)
            self.inbox = self.http.inbox

    def config(self, pki: Pki, **cfg: Any) -> dict[str, Any]:
        if self.kind == "syslog":
            where = {"address": self.syslog.address, "transport": "tls"}
        else:
            where = {"url": self.http.url}
        return {"type": self.kind, "ca_file": str(pki.ca_file), **where, **cfg}

    def close(self) -> None:
        (self.syslog if self.kind == "syslog" else self.http).close()


MUTUAL = [
    ("syslog", ssl.TLSVersion.TLSv1_3),
    ("syslog", ssl.TLSVersion.TLSv1_2),  # the refusal fails the handshake itself
    ("webhook", None),
]


@pytest.fixture(params=MUTUAL, ids=["syslog-tls1.3", "syslog-tls1.2", "webhook"])
def mutual(request: pytest.FixtureRequest, pki: Pki) -> Iterator[MutualReceiver]:
    kind, max_tls = request.param
    rx = MutualReceiver(kind, pki, max_tls)
    yield rx
    rx.close()


def client(pki: Pki) -> dict[str, str]:
    return {"tls_cert": str(pki.client_cert), "tls_key": str(pki.client_key)}


def test_a_client_certificate_gets_through(mutual: MutualReceiver, pki: Pki) -> None:
    send(channel(**mutual.config(pki, **client(pki))), build([alert(6)], "web1"))
    (got,) = mutual.inbox.wait(1)
    if mutual.kind == "syslog":
        assert got["sd"]["stockade@32473"]["subject"] == "/usr/bin/ls6"
    else:
        assert got["alerts"][0]["subject"] == "/usr/bin/ls6"


@pytest.mark.parametrize("who", ["none", "stranger"])
def test_without_an_accepted_certificate_nothing_is_delivered(
    mutual: MutualReceiver, pki: Pki, stranger: Pki, who: str
) -> None:
    cert = client(stranger) if who == "stranger" else {}
    ch = channel(**mutual.config(pki, **cert))
    hint = "refused after the TLS handshake|closed without an answer|alert"
    with pytest.raises(DeliveryError, match=hint):
        send(ch, build([alert(6)], "web1"))
    # the channel is sound: with the right certificate the next message goes through
    send(channel(**mutual.config(pki, **client(pki))), build([alert(7)], "web1"))
    (got,) = mutual.inbox.wait(1)
    assert "ls7" in str(got)


# -- configuration --------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path, pki: Pki, stranger: Pki) -> dict[str, str]:
    key = serialization.load_pem_private_key(pki.client_key.read_bytes(), None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    return {
        "cert": str(pki.client_cert),
        "key": str(pki.client_key),
        "other_key": str(stranger.client_key),
        "encrypted": str(encrypted),
        "garbage": str(garbage),
        "missing": str(tmp_path / "missing.pem"),
    }


HOOK = {"type": "webhook", "name": "w", "url": "https://127.0.0.1:8443/hook"}
SYSLOG = {"type": "syslog", "name": "s", "address": "127.0.0.1:6514", "transport": "tls"}
MAIL = {"type": "email", "name": "m", "host": "x", "sender": "a@b.c", "recipients": ["a@b.c"]}

BAD: list[tuple[dict[str, Any], str]] = [
    ({**HOOK, "tls_cert": "{missing}", "tls_key": "{key}"}, "tls_cert: cannot read {missing}: No such file or directory"),
    ({**SYSLOG, "tls_cert": "{cert}", "tls_key": "{missing}"}, "tls_key: cannot read {missing}: No such file or directory"),
    ({**HOOK, "tls_cert": "{cert}", "tls_key": "{other_key}"}, "tls_key: {other_key} is not the private key of the certificate in {cert}"),
    ({**SYSLOG, "tls_cert": "{cert}", "tls_key": "{encrypted}"}, "tls_key: {encrypted} is encrypted; give an unencrypted key"),
    ({**HOOK, "tls_cert": "{garbage}", "tls_key": "{key}"}, "tls_cert: {garbage} with {key}: not a PEM certificate and key"),
    ({**HOOK, "tls_cert": "{cert}"}, "tls_cert: tls_cert and tls_key go together: set tls_key too"),
    ({**SYSLOG, "tls_key": "{key}"}, "tls_key: tls_cert and tls_key go together: set tls_cert too"),
    ({**SYSLOG, "transport": "tcp", "tls_cert": "{cert}", "tls_key": "{key}"}, 'tls_cert: a client certificate needs TLS; set transport = "tls"'),
    ({**HOOK, "url": "http://x/", "tls_cert": "{cert}", "tls_key": "{key}"}, "tls_cert: a client certificate needs TLS; use an https:// URL"),
    ({**MAIL, "starttls": True}, 'starttls: replaced by tls; write tls = "starttls" instead'),
    ({**MAIL, "starttls": False}, 'starttls: replaced by tls; write tls = "none" instead'),
    ({**MAIL, "tls": "ssl"}, "tls: Input should be 'starttls', 'implicit' or 'none'"),
]  # fmt: skip


@pytest.mark.parametrize(("entry", "expected"), BAD, ids=[e for _, e in BAD])
def test_bad_tls_settings_are_one_line_errors_with_the_line(
    instance: Instance, files: dict[str, str], entry: dict[str, Any], expected: str
) -> None:
    entry = {k: v.format(**files) if isinstance(v, str) else v for k, v in entry.items()}
    text = tomli_w.dumps({"notify": {"channels": [entry]}})
    instance.config.write_text(text)
    r = instance.run("config", "check")
    assert r.rc == 2 and r.one_line_error, r.err
    key = expected.partition(":")[0]
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith(f"{key} ="))
    assert f"{instance.config}:{line}: notify.channels[0].{expected.format(**files)}" in r.err


def test_notify_test_and_run_refuse_a_mismatched_key(
    instance: Instance, files: dict[str, str]
) -> None:
    entry = {**HOOK, "tls_cert": files["cert"], "tls_key": files["other_key"]}
    instance.config.write_text(tomli_w.dumps({"notify": {"channels": [entry]}}))
    for command in (("notify", "test", "w"), ("run",)):
        r = instance.run(*command)
        assert r.rc == 2 and r.one_line_error, (command, r.err)
        assert "is not the private key of the certificate" in r.err


def test_the_port_follows_the_tls_mode_unless_given(instance: Instance) -> None:
    channels = [
        {**MAIL, "name": "a"},
        {**MAIL, "name": "b", "tls": "implicit"},
        {**MAIL, "name": "c", "tls": "none"},
        {**MAIL, "name": "d", "tls": "implicit", "port": 2465},
    ]
    instance.config.write_text(tomli_w.dumps({"notify": {"channels": channels}}))
    r = instance.run("config", "show")
    assert r.rc == 0, r.err
    ports = [line for line in r.out.splitlines() if line.startswith("port = ")]
    assert ports == ["port = 587", "port = 465", "port = 25", "port = 2465"]


# -- inside a real `stockade run` -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["syslog", "webhook"])
def test_refused_without_a_client_certificate_kept_and_delivered_once_it_is_set(
    instance: Instance, daemon: Any, pki: Pki, kind: str
) -> None:
    rx = MutualReceiver(kind, pki, None)
    base = {"name": "siem", "retry_min": "100ms", "retry_max": "200ms", "group_window": "0s"}
    try:
        configure(instance, rx.config(pki, **base))
        d = daemon(instance)
        started(d, 1)
        (first,) = add_alerts(instance, [ban(1)])
        d.wait_for(r"notify siem: delivery failed \(attempt 2\)")
        assert d.stop() == 0
        (pending,) = outbox(instance)
        assert pending.alert.id == first and pending.attempts >= 2
        assert "certificate" in pending.last_error.lower()
        assert rx.inbox.items == []
        configure(instance, rx.config(pki, **base, **client(pki)))
        d2 = daemon(instance)
        started(d2, 1)
        d2.wait_for("notify siem: sent alert")
        (got,) = rx.inbox.wait(1)
        assert str(ban(1).subject) in str(got)
        time.sleep(0.5)
        assert len(rx.inbox.items) == 1  # once
        assert outbox(instance) == []
        assert d2.stop() == 0
    finally:
        rx.close()
