"""The SFT recipe: model + refusal tokens + tagged data + LoRA and token rows, trained with TRL's `SFTTrainer`.

Run it as `accelerate launch recipes/sft.py --config configs/quickstart.yaml` or `refusal-tokens sft --config ...`.
It writes to `output_dir`: the adapter (with the token rows), the tokenizer and the taxonomy, a default thresholds
file `thresholds.yaml`, and the held-out evaluation (`refusal_eval.json`), and logs the per-category table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trl import SFTConfig, SFTTrainer

from ..inference.models import load_model_and_tokenizer
from .arguments import RefusalDataArguments, RefusalEvalArguments, RefusalModelArguments, parse_recipe_args
from .base import RefusalRecipe


class SFTRecipe(RefusalRecipe):
    """SFT with refusal tokens: the built-in synthetic corpus (answers self-distilled) or a labelled dataset."""

    name = "sft"
    trainer_class = SFTTrainer

    def load(self) -> None:
        with self.state.main_process_first():  # a builtin: model is converted once, by the main process
            self.model, self.tokenizer = load_model_and_tokenizer(
                self.model_args.model_name_or_path, **self.model_args.from_pretrained_kwargs()
            )

    def load_data(self) -> None:
        self.splits = self.sft_splits()

    def tag_data(self) -> None:
        super().tag_data()
        self.probes = self.splits.get("validation")
        self.test = self.splits["test"]


def run_sft(
    model_args: RefusalModelArguments,
    data_args: RefusalDataArguments,
    eval_args: RefusalEvalArguments,
    training_args: Any,
) -> dict[str, Any]:
    """Run the SFT recipe; returns the held-out evaluation report (also written to `output_dir`).

    Args:
        model_args (`RefusalModelArguments`): Model, token and LoRA settings.
        data_args (`RefusalDataArguments`): Taxonomy and data.
        eval_args (`RefusalEvalArguments`): Held-out evaluation settings.
        training_args (`trl.SFTConfig`): Training settings (`output_dir`, steps, learning rate, `report_to`, ...).

    Returns:
        `dict`: the report of `evaluate_refusal_tokens` plus `agreement`, `timings` and `output_dir` (main process;
        other processes return an empty dict).
    """
    return SFTRecipe(model_args, data_args, eval_args, training_args).run()


def parse_sft_args(argv: Sequence[str] | None = None, prog: str = "refusal-tokens sft") -> tuple[Any, ...]:
    """The SFT recipe's four argument dataclasses from `--config` YAML plus flags (strict)."""
    return parse_recipe_args(
        [RefusalModelArguments, RefusalDataArguments, RefusalEvalArguments, SFTConfig], argv, prog=prog
    )
