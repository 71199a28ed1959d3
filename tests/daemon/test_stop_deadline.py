"""A stop that hangs: the stacks are written and the process ends anyway."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, logging, threading, sys
    from types import SimpleNamespace
    from stockade.daemon import runner

    class Stuck:
        name = "stuck"

        async def run(self):
            try:
                await asyncio.Event().wait()
            finally:
                # a close that never ends, on a thread the interpreter joins at exit
                threading.Thread(target=threading.Event().wait, name="never").start()

    runner.STOP_GRACE = 2.0
    runner.build_parts = lambda ctx: [Stuck()]
    logging.basicConfig(level=logging.INFO)
    sys.exit(asyncio.run(runner.Daemon(SimpleNamespace(), lambda: None).main()))
    """
)


def test_a_stop_that_hangs_dumps_the_stacks_and_ends_the_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # the signal handlers are in place once it says it runs
        if "is running" in line:
            break
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the process did not end after its stop deadline") from None
    assert proc.returncode == 1
    assert "Timeout (0:00:02)!" in err
    assert "Thread" in err and "wait" in err
