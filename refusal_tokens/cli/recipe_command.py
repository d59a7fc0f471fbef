"""What `refusal-tokens sft` and `refusal-tokens dpo` share: parse the recipe's arguments, set the log level, run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..utils.logging import cli_verbosity, set_verbosity


def run_recipe_command(
    parse: Callable[[Sequence[str] | None], tuple[Any, ...]],
    run: Callable[..., dict[str, Any]],
    argv: Sequence[str] | None,
) -> int:
    """Parse `argv` with `parse`, log at the command line's level (INFO on the main process) and `run` the recipe."""
    model_args, data_args, eval_args, training_args = parse(argv)
    set_verbosity(cli_verbosity(training_args, training_args.should_log))
    run(model_args, data_args, eval_args, training_args)
    return 0
