"""What every command line does with a bad input: one line, `error: ...`, exit code 2.

`user_errors` wraps a CLI's `main(argv) -> int`: a `ValueError` (a value a rule refused, named
with the rule) or a `FileNotFoundError` / `NotADirectoryError` (a path that is not there) ends
the command with its message on stderr instead of a traceback. `NSDE_TRACEBACK=1` in the
environment re-raises, for a developer who wants the stack.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

__all__ = ["user_errors", "TRACEBACK_ENV"]

TRACEBACK_ENV = "NSDE_TRACEBACK"


def user_errors(main: Callable[..., int]) -> Callable[..., int]:
    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        try:
            return main(argv)
        except (ValueError, FileNotFoundError, NotADirectoryError) as err:
            if os.environ.get(TRACEBACK_ENV):
                raise
            print(f"error: {_message(err)}", file=sys.stderr)
            return 2

    return wrapper


def _message(err: Exception) -> str:
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.strerror}: {err.filename}"
    return str(err)
