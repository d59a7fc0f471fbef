"""Recipes: the SFT and DPO runs as users launch them (`accelerate launch recipes/sft.py --config ...`), built on
one skeleton (`base.RefusalRecipe`), and their strict YAML + flags configuration (`arguments`)."""

from .arguments import RefusalDataArguments, RefusalEvalArguments, RefusalModelArguments, parse_recipe_args
from .base import RefusalRecipe, add_tokens_and_peft, build_sft_splits
from .dpo import DPORecipe, parse_dpo_args, run_dpo
from .sft import SFTRecipe, parse_sft_args, run_sft

__all__ = [
    "DPORecipe",
    "RefusalDataArguments",
    "RefusalEvalArguments",
    "RefusalModelArguments",
    "RefusalRecipe",
    "SFTRecipe",
    "add_tokens_and_peft",
    "build_sft_splits",
    "parse_dpo_args",
    "parse_recipe_args",
    "parse_sft_args",
    "run_dpo",
    "run_sft",
]
