"""Leaving the CLI process without racing the Temporal SDK's threads.

The Temporal client runs its calls on a Rust (tokio) thread pool that takes the GIL to
hand each answer back to asyncio. The pool cannot be stopped from Python (the SDK has no
close for its runtime or clients), and a thread still finishing the last answer when
CPython starts finalizing is killed mid-call: on Python 3.11 the process then aborts with
`Fatal Python error: PyGILState_Release: thread state ... must be current when releasing`
(rc 134) or segfaults, after the command has done its work (temporalio/sdk-python#300).

So the CLI does the interpreter's own shutdown steps itself, in order, and then ends the
process without finalizing: Python threads are joined, `atexit` handlers run (logging and
tracing flush there), the standard streams are flushed, and `os._exit` ends every thread
at once. The commands close what they opened (stores, runtimes, HTTP clients, servers)
before they return, so nothing is left for finalization to do.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import NoReturn

__all__ = ["exit_code", "leave"]


def exit_code(code: object) -> int:
    """The process exit status `sys.exit(code)` would give (None is 0, a message is 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # what the interpreter does with sys.exit("message")
    return 1


def leave(code: int) -> NoReturn:
    """End the process with `code` after the interpreter's own shutdown steps.

    Never returns, and never finalizes the interpreter under the Temporal SDK's threads.
    """
    me = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not me and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
