"""The SFT recipe: model + refusal tokens + tagged data + LoRA and token rows, trained with TRL's `SFTTrainer`.

Run it as `accelerate launch recipes/sft.py --config configs/quickstart.yaml` or `refusal-tokens sft --config ...`.
It writes to `output_dir`: the adapter (with the token rows), the tokenizer and the taxonomy, a default thresholds
file `thresholds.yaml`, and the held-out evaluation (`refusal_eval.json`), and prints the per-category table.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from .config import RefusalDataArguments, RefusalEvalArguments, RefusalModelArguments, parse_recipe_args
from .recipe_common import (
    THRESHOLDS_FILE,
    add_probe_callback,
    add_tokens_and_peft,
    finish_recipe,
    is_evaluating,
    load_classifier,
    log,
    on_training_device,
    self_distills,
    token_rows_optimizer,
)

__all__ = ["THRESHOLDS_FILE", "build_recipe_splits", "build_sft_splits", "main", "run_sft"]


def build_sft_splits(
    data_args: RefusalDataArguments,
    taxonomy: Any,
    model: Any,
    tokenizer: Any,
    seed: int = 0,
    distill_splits: Sequence[str] = ("train", "validation"),
    validation: bool = True,
) -> dict[str, Any]:
    """Untagged `datasets.Dataset` splits (`train`, `test`, and `validation` for the synthetic corpus).

    The synthetic corpus (no `dataset_name`) gets the base model's own answers for the respond rows of
    `distill_splits` when `responses="self"` (the test split is evaluated on prompts only, so its answers are never
    used); call this before adding the refusal tokens, so the answers are the untrained model's.
    """
    from accelerate import PartialState
    from datasets import Dataset

    from .data import load_dataset_splits
    from .distill import distill_cache_path, self_distill_responses
    from .models import cache_dir
    from .synthetic import SyntheticCorpusConfig, build_synthetic_corpus

    if data_args.dataset_name:
        return load_dataset_splits(
            data_args.dataset_name,
            config=data_args.dataset_config,
            train_split=data_args.dataset_train_split,
            test_split=data_args.dataset_test_split,
            test_size=data_args.test_size,
            seed=seed,
        )
    corpus = build_synthetic_corpus(
        taxonomy,
        SyntheticCorpusConfig(
            train_per_category=data_args.synthetic_train_per_category,
            train_benign=data_args.synthetic_train_benign,
            train_contrast=data_args.synthetic_train_contrast,
            eval_fraction=data_args.synthetic_eval_fraction,
            seed=data_args.synthetic_seed,
            validation=validation,
        ),
    )
    if data_args.responses == "self":
        state = PartialState()
        cache = distill_cache_path(model, data_args.distill_max_new_tokens, os.path.join(cache_dir(), "distill"))
        # The main process generates and caches; the others then read the cache instead of generating again.
        with state.main_process_first():
            for split in [s for s in distill_splits if s in corpus]:
                corpus[split] = self_distill_responses(
                    corpus[split],
                    model,
                    tokenizer,
                    max_new_tokens=data_args.distill_max_new_tokens,
                    batch_size=data_args.distill_batch_size,
                    cache_file=cache,
                    show_progress=state.is_main_process,
                )
    return {split: Dataset.from_list(rows) for split, rows in corpus.items()}


def build_recipe_splits(
    data_args: RefusalDataArguments,
    eval_args: RefusalEvalArguments,
    training_args: Any,
    taxonomy: Any,
    model: Any,
    tokenizer: Any,
) -> dict[str, Any]:
    """`build_sft_splits` as the recipes call it: self-distilling on the training device, and with a validation split
    (and its answers) only when the Trainer evaluates or the probes run every N steps."""
    evaluating = is_evaluating(training_args)
    with on_training_device(model, training_args, enabled=self_distills(data_args)):
        return build_sft_splits(
            data_args,
            taxonomy,
            model,
            tokenizer,
            seed=training_args.seed,
            distill_splits=("train", "validation") if evaluating else ("train",),
            validation=evaluating or eval_args.probe_every_n_steps is not None,
        )


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
    from accelerate import PartialState
    from trl import SFTTrainer

    from .models import load_model_and_tokenizer
    from .tagging import tag_dataset
    from .taxonomy import get_taxonomy
    from .wandb_utils import finish_wandb, prepare_wandb

    t0 = time.perf_counter()
    state = PartialState()
    main = state.is_main_process
    prepare_wandb(training_args.report_to, announce=main)
    taxonomy = get_taxonomy(data_args.taxonomy)
    classifier = load_classifier(data_args)

    log(f"loading {model_args.model_name_or_path}", main)
    with state.main_process_first():  # a builtin: model is converted once, by the main process
        model, tokenizer = load_model_and_tokenizer(model_args.model_name_or_path, dtype=model_args.torch_dtype())
    timings = {"load_model_s": time.perf_counter() - t0}

    t = time.perf_counter()
    splits = build_recipe_splits(data_args, eval_args, training_args, taxonomy, model, tokenizer)
    timings["data_s"] = time.perf_counter() - t

    _, peft_model = add_tokens_and_peft(model, tokenizer, taxonomy, model_args, main, seed=training_args.seed)
    tagged = {
        name: tag_dataset(split, taxonomy, label_column=data_args.label_column, classifier=classifier)
        for name, split in splits.items()
    }
    log(", ".join(f"{name}: {len(ds)} rows" for name, ds in tagged.items()), main)
    trainer = SFTTrainer(
        model=peft_model,
        args=training_args,
        train_dataset=tagged["train"],
        eval_dataset=tagged.get("validation"),
        processing_class=tokenizer,
        optimizers=(token_rows_optimizer(peft_model, model_args, training_args), None),
    )
    add_probe_callback(trainer, tagged.get("validation"), eval_args, data_args.label_column, training_args)
    t = time.perf_counter()
    trainer.train()
    timings["train_s"] = time.perf_counter() - t

    report = finish_recipe(
        trainer, tokenizer, taxonomy, tagged["test"], eval_args, data_args.label_column, training_args, timings, t0
    )
    state.wait_for_everyone()
    finish_wandb()
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse `--config` YAML plus command-line flags (strict) and run the recipe."""
    from trl import SFTConfig

    model_args, data_args, eval_args, training_args = parse_recipe_args(
        [RefusalModelArguments, RefusalDataArguments, RefusalEvalArguments, SFTConfig], argv
    )
    return run_sft(model_args, data_args, eval_args, training_args)
