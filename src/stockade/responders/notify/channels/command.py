"""A command of yours, run once a message with its arguments filled in and no shell.

Placeholders (``<severity>``, ``<part>``, ``<kind>``, ``<subject>``, ``<message>``, ``<count>``,
``<host>``) are replaced inside each argument once, by the rules of argument templates
(:mod:`stockade.responders.argv`, shared with the command responder), including the refusal of
values that would turn into options. The message as JSON comes on standard input. A non-zero
exit or a run longer than ``timeout`` (then the process group is killed) is a failed delivery,
retried later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal

from stockade.config.schema import CommandChannel
from stockade.responders.argv import check_options, substitute
from stockade.responders.notify.channels.base import DeliveryError
from stockade.responders.notify.message import Message


class CommandSender:
    def __init__(self, cfg: CommandChannel) -> None:
        self.cfg = cfg
        self.name = cfg.name

    def argv(self, message: Message) -> list[str]:
        argv = substitute(self.cfg.command, message.placeholders())
        culprit = check_options(self.cfg.command, argv)
        if culprit is not None:
            raise DeliveryError(
                f"command {argv[0]}: the value of {culprit!r} starts with '-' and would be read "
                f"as an option; put '--' before it or write it as --option={culprit}"
            )
        return argv

    async def send(self, message: Message) -> None:
        argv = self.argv(message)
        stdin = json.dumps(message.to_json(), sort_keys=True, default=str).encode()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except (OSError, ValueError) as e:
            raise DeliveryError(f"command {argv[0]}: cannot run it: {e}") from None
        try:
            async with asyncio.timeout(self.cfg.timeout):
                _, err = await proc.communicate(stdin)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise DeliveryError(
                f"command {argv[0]}: did not finish within {self.cfg.timeout:g} s; killed"
            ) from None
        if proc.returncode != 0:
            said = next((ln.strip() for ln in err.decode(errors="replace").splitlines()), "")
            raise DeliveryError(
                f"command {argv[0]}: exit status {proc.returncode}" + (f": {said}" if said else "")
            )
