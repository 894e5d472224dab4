"""A worker process that has stopped serving leaves at once, without tearing down its interpreter.

Tearing down an interpreter that holds torch and ModelScope costs about a second of a whole
core. When several workers stop together (a scale-in), that CPU is taken from the workers that
stay, which then shed requests with 429. Nothing in a worker needs the teardown: its metrics
live in shared files and its logs are flushed here.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any


def exit_code(error: SystemExit) -> int:
    """The status the interpreter would have exited with for this SystemExit."""
    if error.code is None:
        return 0
    return error.code if isinstance(error.code, int) else 1


def leave_now(server: Any, worker: Any) -> None:
    """gunicorn's worker_exit hook: flush the logs, then exit with the status gunicorn chose."""
    error = sys.exc_info()[1]
    if not isinstance(error, SystemExit):  # anything else: let the interpreter report it
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(exit_code(error))
