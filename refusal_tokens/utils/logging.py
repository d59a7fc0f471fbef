"""The library's loggers: `logging.getLogger("refusal_tokens.<module>")`, one handler on the library root.

Library code logs through `get_logger(__name__)`. By default the library follows the verbosity of transformers
(`TRANSFORMERS_VERBOSITY`, `transformers.logging.set_verbosity_*`), so a user who silences transformers silences us
too. The command line (`refusal-tokens ...`, `recipes/*.py`) raises the main process to INFO so its progress lines
show, unless the user chose a verbosity (`TRANSFORMERS_VERBOSITY` or the Trainer's `log_level`).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

LIBRARY_LOGGER = "refusal_tokens"
_handler: logging.Handler | None = None


def _root() -> logging.Logger:
    global _handler
    root = logging.getLogger(LIBRARY_LOGGER)
    if _handler is None:
        _handler = logging.StreamHandler(sys.stderr)
        _handler.setFormatter(logging.Formatter("[refusal-tokens] %(message)s"))
        root.addHandler(_handler)
        root.propagate = False
        root.setLevel(_transformers_verbosity())
    return root


def _transformers_verbosity() -> int:
    from transformers.utils import logging as hf_logging

    return hf_logging.get_verbosity()


def get_logger(name: str) -> logging.Logger:
    """The logger of a library module (`name` is its `__name__`), under the library root with its handler."""
    _root()
    return logging.getLogger(name)


def set_verbosity(level: int) -> None:
    """Set the level of every `refusal_tokens` logger (e.g. `logging.INFO`)."""
    _root().setLevel(level)


def cli_verbosity(training_args: Any = None, is_main: bool = True) -> int:
    """The level a command-line run logs at: INFO on the main process unless the user chose one.

    `TRANSFORMERS_VERBOSITY` and the Trainer's `log_level` / `log_level_replica` (anything but `"passive"`) win.
    Other processes log warnings only, so a multi-process run prints its progress once.
    """
    if training_args is not None:
        chosen = training_args.log_level if is_main else training_args.log_level_replica
        if chosen != "passive":
            return training_args.get_process_log_level()
    if os.environ.get("TRANSFORMERS_VERBOSITY"):
        return _transformers_verbosity()
    return logging.INFO if is_main else logging.WARNING
