"""`refusal-tokens dpo` (and `recipes/dpo.py`): the DPO recipe from `--config` YAML plus flags."""

from __future__ import annotations

from collections.abc import Sequence

from ..recipes.dpo import parse_dpo_args, run_dpo
from .recipe_command import run_recipe_command

HELP = "DPO with refusal tokens (the DPO recipe): --config FILE.yaml plus any recipe field as a flag."


def main(argv: Sequence[str] | None = None) -> int:
    return run_recipe_command(parse_dpo_args, run_dpo, argv)
