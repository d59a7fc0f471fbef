"""The DPO recipe: preference data with chosen and rejected each tagged by its own class, LoRA plus token rows.

Run it as `accelerate launch recipes/dpo.py --config configs/...` or `refusal-tokens dpo --config ...`. The model
may be a base model (tokens are added) or the output of the SFT recipe (its adapter is merged first, and a new one is
trained on top; the merged SFT model is the DPO reference). A `RefusalRateCallback` on the validation probes logs
per-category refusal rates and, with `min_refusal_rate`, guards against refusal drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datasets import Dataset
from trl import DPOConfig, DPOTrainer

from ..data.loading import load_dataset_splits
from ..data.synthetic import build_synthetic_preferences
from ..inference.models import load_refusal_model
from ..tokens import TAXONOMY_KEY, load_taxonomy
from .arguments import RefusalDataArguments, RefusalEvalArguments, RefusalModelArguments, parse_recipe_args
from .base import RefusalRecipe


class DPORecipe(RefusalRecipe):
    """DPO with refusal tokens: labelled preference data, or the synthetic corpus turned into preference pairs."""

    name = "dpo"
    trainer_class = DPOTrainer

    def load(self) -> None:
        with self.state.main_process_first():
            model, tokenizer = load_refusal_model(
                self.model_args.model_name_or_path, **self.model_args.from_pretrained_kwargs()
            )
        if hasattr(model, "merge_and_unload"):  # an SFT adapter: merge it; the merged model is the DPO reference
            model = model.merge_and_unload()
        if TAXONOMY_KEY in tokenizer.init_kwargs and load_taxonomy(tokenizer).to_dict() != self.taxonomy.to_dict():
            raise ValueError(
                f"{self.model_args.model_name_or_path} was trained with taxonomy {load_taxonomy(tokenizer).name!r}, "
                f"but the config asks for taxonomy={self.data_args.taxonomy!r}; use the same taxonomy."
            )
        self.model, self.tokenizer = model.train(), tokenizer

    def load_data(self) -> None:
        args = self.data_args
        if args.dataset_name:
            self.splits = load_dataset_splits(
                args.dataset_name,
                config=args.dataset_config,
                train_split=args.dataset_train_split,
                test_split=args.dataset_test_split,
                test_size=args.test_size,
                seed=self.training_args.seed,
            )
            # Real preference data: the chosen side's label is the right first token of each test prompt.
            self.eval_label_column = self.columns.chosen
            return
        corpus = self.sft_splits()
        self.splits = {
            name: Dataset.from_list(
                build_synthetic_preferences(ds.to_list(), self.taxonomy, seed=self.training_args.seed)
            )
            for name, ds in corpus.items()
        }
        self.probes, self.test = corpus.get("validation"), corpus["test"]

    def tag_data(self) -> None:
        super().tag_data()
        if self.test is None:
            self.test = self.splits["test"]


def run_dpo(
    model_args: RefusalModelArguments,
    data_args: RefusalDataArguments,
    eval_args: RefusalEvalArguments,
    training_args: Any,
) -> dict[str, Any]:
    """Run the DPO recipe; returns the held-out evaluation report (main process; others return `{}`).

    `model_args.model_name_or_path` may be a base model or the `output_dir` of the SFT recipe (merged first).

    Args:
        model_args (`RefusalModelArguments`): Model (a base model or an SFT recipe output), tokens and LoRA.
        data_args (`RefusalDataArguments`): Taxonomy and preference data (`chosen_label_column`,
            `rejected_label_column`, or `classifier`), or the synthetic corpus turned into preference pairs.
        eval_args (`RefusalEvalArguments`): Held-out evaluation and drift guard (`min_refusal_rate`).
        training_args (`trl.DPOConfig`): Training settings.
    """
    return DPORecipe(model_args, data_args, eval_args, training_args).run()


def parse_dpo_args(argv: Sequence[str] | None = None, prog: str = "refusal-tokens dpo") -> tuple[Any, ...]:
    """The DPO recipe's four argument dataclasses from `--config` YAML plus flags (strict)."""
    return parse_recipe_args(
        [RefusalModelArguments, RefusalDataArguments, RefusalEvalArguments, DPOConfig], argv, prog=prog
    )
