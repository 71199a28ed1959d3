"""E-mail over SMTP, upgraded with STARTTLS before anything is said (smtplib in a thread).

With ``starttls`` on (the default) a server that does not offer STARTTLS, or whose certificate
does not verify, gets nothing: the message stays in the outbox and the error is logged.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from stockade.config.schema import EmailChannel
from stockade.responders.notify.channels.base import DeliveryError, tls_context
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

    def _deliver(self, mail: EmailMessage) -> None:
        where = f"smtp://{self.cfg.host}:{self.cfg.port}"
        try:
            with smtplib.SMTP(self.cfg.host, self.cfg.port, timeout=self.cfg.timeout) as smtp:
                smtp.ehlo()
                if self.cfg.starttls:
                    if not smtp.has_extn("starttls"):
                        raise DeliveryError(
                            f"{where}: the server does not offer STARTTLS; nothing was sent "
                            "(set starttls = false only for a server on this host)"
                        )
                    smtp.starttls(context=tls_context(self.cfg.ca_file))
                    smtp.ehlo()
                password = self._password()
                if self.cfg.username:
                    smtp.login(self.cfg.username, password or "")
                smtp.send_message(mail)
        except (smtplib.SMTPException, ssl.SSLError, OSError) as e:
            raise DeliveryError(f"{where}: {type(e).__name__}: {e}") from None
