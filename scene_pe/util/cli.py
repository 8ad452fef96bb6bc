"""What every command-line tool in tools/ shares: one-line errors, tracebacks only on request.

A tool builds its parser with ``ArgumentParser`` and ends with
``sys.exit(cli.run(main))``. Then a usage mistake, a wrong path, a missing split
list or checkpoint, or bad input reaches the user as one line on stderr
(``<tool>: error: ...``) and a non-zero exit: 2 for bad input or usage (OSError,
ValueError, which SceneError, ConfigError and CheckpointError are; RunError), 1 for
anything else (a bug: the line says so). The traceback is printed only with
``--debug`` (or SCENE_PE_DEBUG=1), and is written to the log files the tool set
up (train.log), never to the terminal otherwise.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
import zipfile
from pathlib import Path
from typing import Callable, Sequence

from scene_pe.util.errors import RunError

USER_ERRORS = (OSError, ValueError, zipfile.BadZipFile, RunError)
MAX_MESSAGE = 600  # characters of one error line


class ArgumentParser(argparse.ArgumentParser):
    """argparse with usage mistakes as one line (the usage is in --help) and a --debug flag."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        # "train", not "train.py" nor (in tests calling main()) "pytest": the calling tool's name
        kwargs.setdefault("prog", Path(sys._getframe(1).f_code.co_filename).stem)
        super().__init__(*args, **kwargs)
        # run() reads the flag itself (the error may come before or during parsing);
        # declared here so that every tool accepts it and --help lists it
        self.add_argument("--debug", action="store_true", help="on an error, show the Python traceback")

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def one_line(message: str) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 3] + "..."


def describe(error: BaseException) -> str:
    """The error as a user reads it: OSErrors as 'what: file', others as their message."""
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        text = f"{error.filename}: {error.strerror}"
        if error.filename2 is not None:
            text += f" ({error.filename2})"
        return one_line(text)
    return one_line(str(error) or type(error).__name__)


def _log_traceback(prog: str, error: BaseException) -> None:
    """The traceback into every log file the tool opened (not to the terminal)."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    record = logging.LogRecord("scene_pe", logging.ERROR, __file__, 0, "%s failed:\n%s", (prog, text), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def run(main: Callable[[list[str]], int | None], argv: Sequence[str] | None = None,
        prog: str | None = None) -> int:
    """Call ``main(argv)`` and turn any exception into one stderr line and an exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or Path(main.__code__.co_filename).stem
    debug = "--debug" in argv or os.environ.get("SCENE_PE_DEBUG", "") not in ("", "0")
    try:
        return int(main(argv) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the one place every tool's errors end
        if debug:
            raise
        _log_traceback(prog, e)
        if isinstance(e, USER_ERRORS):
            print(f"{prog}: error: {describe(e)}", file=sys.stderr)
            return 2
        print(f"{prog}: internal error: {type(e).__name__}: {describe(e)} "
              "(a bug: rerun with --debug for the traceback)", file=sys.stderr)
        return 1
