"""`refusal-tokens sft` (and `recipes/sft.py`): the SFT recipe from `--config` YAML plus flags."""

from __future__ import annotations

from collections.abc import Sequence

from ..recipes.sft import parse_sft_args, run_sft
from .recipe_command import run_recipe_command

HELP = "Train with refusal tokens (the SFT recipe): --config FILE.yaml plus any recipe field as a flag."


def main(argv: Sequence[str] | None = None) -> int:
    return run_recipe_command(parse_sft_args, run_sft, argv)
