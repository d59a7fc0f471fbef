"""`refusal-tokens COMMAND ...`: dispatch to the command's module; user errors become one line and exit code 2."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

COMMANDS = {
    "sft": "sft",
    "dpo": "dpo",
    "generate": "generate",
    "calibrate": "calibrate",
    "audit": "audit",
    "mix": "mix",
    "train-classifier": "train_classifier",
    "export": "export",
}
"""Command name -> its module in this package. Modules are imported when their command runs (as TRL's CLI does), so
`refusal-tokens generate` never imports trl and `--help` is instant."""
USER_ERRORS = (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, KeyError)
"""Errors of input, configuration or files (`ConfigError`, `TaggingError` and every `ValueError` the library raises
for a bad value): one line naming what to fix. Anything else is a bug and keeps its traceback."""


def command_module(name: str) -> ModuleType:
    """The module of command `name`."""
    return importlib.import_module(f"{__package__}.{COMMANDS[name]}")


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: refusal-tokens COMMAND [--config FILE.yaml] [--FIELD VALUE ...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {command_module(name).HELP}" for name in COMMANDS]
    lines += ["", "refusal-tokens COMMAND --help shows a command's main fields; --help_all shows every field."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `refusal-tokens` with `argv` (defaults to `sys.argv[1:]`); returns the exit code.

    Set `REFUSAL_TOKENS_TRACEBACK=1` to see the traceback behind a one-line error.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"refusal-tokens: unknown command {name!r}.\n\n{usage()}", file=sys.stderr)
        return 2
    try:
        return command_module(name).main(rest)
    except USER_ERRORS as e:
        if os.environ.get("REFUSAL_TOKENS_TRACEBACK"):
            traceback.print_exc()
        message = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        print(f"refusal-tokens {name}: error: {' '.join(message.split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
