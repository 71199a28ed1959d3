"""E-mail over SMTP (smtplib in a thread), encrypted before anything is said: upgraded with
STARTTLS (``tls = "starttls"``, the default, port 587) or TLS from the first byte
(``tls = "implicit"``, port 465, RFC 8314). ``tls = "none"`` is for a server on this host.

A server that does not offer STARTTLS, or whose certificate does not verify, gets nothing: the
message stays in the outbox and the error is logged.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from stockade.config.schema import EmailChannel
from stockade.responders.notify.channels.base import DeliveryError
from stockade.responders.notify.channels.tls import tls_context
from stockade.responders.notify.message import Message


class EmailSender:
    def __init__(self, cfg: EmailChannel) -> None:
        self.cfg = cfg
        self.name = cfg.name

    def compose(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.cfg.sender
        mail["To"] = ", ".join(self.cfg.recipients)
        mail["Subject"] = message.title
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        mail["Message-ID"] = make_msgid(domain=self.cfg.sender.rpartition("@")[2])
        mail["X-Stockade-Count"] = str(message.count)
        mail["X-Stockade-Severity"] = str(message.severity)
        mail.set_content(message.text())
        return mail

    async def send(self, message: Message) -> None:
        mail = self.compose(message)
        await asyncio.to_thread(self._deliver, mail)

    def _password(self) -> str | None:
        if not self.cfg.password_file:
            return None
        try:
            return Path(self.cfg.password_file).read_text().strip()
        except OSError as e:
            raise DeliveryError(f"cannot read {self.cfg.password_file}: {e.strerror}") from None

    def _connect(self) -> smtplib.SMTP:
        """A session that is encrypted (unless ``tls = "none"``) and has said EHLO."""
        cfg = self.cfg
        if cfg.tls == "implicit":
            ctx = tls_context(cfg.ca_file)
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                cfg.host, cfg.port, timeout=cfg.timeout, context=ctx
            )
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        try:
            smtp.ehlo()
            if cfg.tls == "starttls":
                if not smtp.has_extn("starttls"):
                    raise DeliveryError(
                        f"smtp://{cfg.host}:{cfg.port}: the server does not offer STARTTLS; "
                        'nothing was sent (tls = "implicit" for port 465; "none" only for a '
                        "server on this host)"
                    )
                smtp.starttls(context=tls_context(cfg.ca_file))
                smtp.ehlo()
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _deliver(self, mail: EmailMessage) -> None:
        scheme = "smtps" if self.cfg.tls == "implicit" else "smtp"
        where = f"{scheme}://{self.cfg.host}:{self.cfg.port}"
        try:
            with self._connect() as smtp:
                password = self._password()
                if self.cfg.username:
                    smtp.login(self.cfg.username, password or "")
                smtp.send_message(mail)
        except (smtplib.SMTPException, ssl.SSLError, OSError) as e:
            raise DeliveryError(f"{where}: {type(e).__name__}: {e}") from None
