"""The command responder: runs a program of yours for each ban and each unban, never a shell.

The ban, unban and (optional) flush commands are argument lists. Placeholders are replaced
*inside* each argument, once, so a value is never split into several arguments, never read by a
shell (there is none: ``subprocess`` gets the list) and never re-scanned for placeholders:

==============  ===================================================================
``<ip>``        the address, or the network in CIDR form (``2001:db8::/64``); an
                IPv4-mapped IPv6 address (``::ffff:192.0.2.1``) is given as IPv4
``<jail>``      the jail's name
``<until>``     when the ban ends, in epoch seconds; ``never`` for a permanent ban
``<bantime>``   seconds from now until then, rounded up; ``never`` for a permanent ban
``<ports>``     the jail's ports as configured (``ssh``, ``http,https``); ``0:65535`` = all
``<protocol>``  ``tcp``, ``udp`` or ``all``
``<family>``    ``inet`` (IPv4) or ``inet6`` (IPv6)
``<reason>``    why
==============  ===================================================================

Options cannot be smuggled in: an argument that a value turned into something starting with
``-`` (when the argument as written did not start with ``-`` and comes before a ``--``) is
refused with an error rather than run. Write ``--reason=<reason>``, or put ``--`` before
positional placeholders, and any value goes through.

**One process per ban.** Each ban (and each unban) runs the command once, with that ban's
values, so a batch of 100 bans starts 100 processes, one after another. A failing or hanging
run (killed after ``timeout`` seconds, with its process group) does not stop the others; when
any failed, one :class:`ResponderError` afterwards says how many and why the first did. Without
a flush command, :meth:`CommandResponder.flush` runs the unban command for each ban this
process applied (after a restart only a flush command can reach older ones).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from collections.abc import Sequence

from stockade.responders.allowlist import normalise, show
from stockade.responders.argv import check_options, substitute, validate
from stockade.responders.base import Ban, Network, ResponderError

PLACEHOLDERS = ("ip", "jail", "until", "bantime", "ports", "protocol", "family", "reason")


def values(ban: Ban, *, now: float) -> dict[str, str]:
    """The value of every placeholder for ``ban``."""
    until = bantime = "never"
    if ban.until is not None:
        until = str(math.ceil(ban.until))
        bantime = str(max(0, math.ceil(ban.until - now)))
    network = normalise(ban.network)  # ::ffff:192.0.2.1 is 192.0.2.1
    return {
        "ip": show(network),
        "jail": ban.jail,
        "until": until,
        "bantime": bantime,
        "ports": "0:65535" if ban.ports is None else ",".join(ban.ports),
        "protocol": ban.protocol,
        "family": "inet" if network.version == 4 else "inet6",
        "reason": ban.reason,
    }


class CommandResponder:
    """Runs the ban command once per ban, and the unban command once per lifted ban."""

    def __init__(
        self,
        ban: Sequence[str],
        unban: Sequence[str] | None = None,
        *,
        flush: Sequence[str] | None = None,
        timeout: float = 30.0,
        name: str = "command",
    ) -> None:
        validate(ban, f"{name} responder, ban command", PLACEHOLDERS)
        if unban is not None:
            validate(unban, f"{name} responder, unban command", PLACEHOLDERS)
        if flush is not None:
            validate(flush, f"{name} responder, flush command", allowed=())
        self.ban_command = list(ban)
        self.unban_command = None if unban is None else list(unban)
        self.flush_command = None if flush is None else list(flush)
        self.timeout = timeout
        self.name = name
        self._applied: dict[tuple[Network, str], Ban] = {}

    def apply(self, bans: Sequence[Ban], *, now: float) -> None:
        """Run the ban command for each ban whose ``until`` is after ``now``."""
        live = [ban for ban in bans if ban.until is None or ban.until > now]
        failures = self._each(self.ban_command, live, "ban", now)
        failed = {id(ban) for ban, _ in failures}
        for ban in live:
            if id(ban) not in failed:
                self._applied[(ban.network, ban.jail)] = ban
        self._report(failures, len(live), "ban")

    def remove(self, bans: Sequence[Ban]) -> None:
        """Run the unban command for each ban (nothing when there is no unban command)."""
        for ban in bans:
            self._applied.pop((ban.network, ban.jail), None)
        if self.unban_command is None:
            return
        failures = self._each(self.unban_command, bans, "unban", time.time())
        self._report(failures, len(bans), "unban")

    def flush(self) -> None:
        """Run the flush command; without one, unban every ban this process applied."""
        if self.flush_command is None:
            self.remove(list(self._applied.values()))
            return
        self._applied.clear()
        self._run(self.flush_command, "flush")

    def _each(
        self, template: Sequence[str], bans: Sequence[Ban], verb: str, now: float
    ) -> list[tuple[Ban, str]]:
        failures = []
        for ban in bans:
            try:
                self._run(self._argv(template, ban, now), f"{verb} {show(ban.network)}")
            except ResponderError as exc:
                failures.append((ban, str(exc)))
        return failures

    def _argv(self, template: Sequence[str], ban: Ban, now: float) -> list[str]:
        argv = substitute(template, values(ban, now=now))
        culprit = check_options(template, argv)
        if culprit is not None:
            raise ResponderError(
                f"{self.name}: not running {template[0]} for {show(ban.network)}: the value of "
                f"{culprit!r} starts with '-' and would be read as an option; put '--' before "
                f"it in the command or write it as --option={culprit}"
            )
        return argv

    def _run(self, argv: Sequence[str], what: str) -> None:
        program = argv[0]
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,  # its own process group, so a timeout kills it all
            )
        except (OSError, ValueError) as exc:  # not found, not executable, NUL in an argument
            raise ResponderError(f"{self.name}: cannot run {program} to {what}: {exc}") from None
        with proc:
            try:
                _, err = proc.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                raise ResponderError(
                    f"{self.name}: {program} did not finish within {self.timeout:g} s "
                    f"(to {what}); it was killed"
                ) from None
        if proc.returncode != 0:
            said = next((ln.strip() for ln in err.splitlines() if ln.strip()), "")
            detail = f": {said}" if said else ""
            raise ResponderError(
                f"{self.name}: {program} failed to {what}: exit status {proc.returncode}{detail}"
            )

    def _report(self, failures: list[tuple[Ban, str]], total: int, verb: str) -> None:
        if not failures:
            return
        if len(failures) == 1:
            raise ResponderError(failures[0][1])
        raise ResponderError(
            f"{self.name}: {len(failures)} of {total} {verb}s failed; the first: {failures[0][1]}"
        )
