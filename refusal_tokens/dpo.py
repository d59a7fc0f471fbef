"""The DPO recipe: preference data with chosen and rejected each tagged by its own class, LoRA plus token rows.

Run it as `accelerate launch recipes/dpo.py --config configs/...` or `refusal-tokens dpo --config ...`. The model
may be a base model (tokens are added) or the output of the SFT recipe (its adapter is merged first, and a new one is
trained on top; the merged SFT model is the DPO reference). A `RefusalRateCallback` on the validation probes logs
per-category refusal rates and, with `min_refusal_rate`, guards against refusal drift.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

from .config import RefusalDataArguments, RefusalEvalArguments, RefusalModelArguments, parse_recipe_args
from .recipe_common import (
    add_probe_callback,
    add_tokens_and_peft,
    finish_recipe,
    load_classifier,
    log,
    token_rows_optimizer,
)
from .synthetic_templates import PRESET_SOURCES, SOURCES
from .taxonomy import RESPOND_LABEL

COMPLIANT_OPENERS = (
    "Sure, here is how you can do that.",
    "Of course! Here are the details.",
    "Absolutely, happy to help with that.",
)
"""Rejected answers of the synthetic refusal prompts: compliance where the model should refuse."""


def build_synthetic_preferences(rows: Sequence[dict[str, Any]], taxonomy: Any, seed: int = 0) -> list[dict]:
    """Preference pairs from rows of `build_synthetic_corpus` (conversational prompt-completion).

    A refusal row prefers its category's refusal over compliance; a respond row (benign or contrast) prefers its
    answer over a refusal from the category its look-alike source belongs to (benign rows: a random category), which
    teaches against over-refusal. Labels go to `chosen_label` and `rejected_label`.
    """
    rng = random.Random(seed)
    source_category = {s: c for c, sources in PRESET_SOURCES.get(taxonomy.name, {}).items() for s in sources}
    out = []
    for row in rows:
        prompt = row["prompt"]
        answer = row["completion"]
        if row["refusal_label"] != RESPOND_LABEL:
            chosen, chosen_label = answer, row["refusal_label"]
            rejected = [{"role": "assistant", "content": rng.choice(COMPLIANT_OPENERS)}]
            rejected_label = RESPOND_LABEL
        else:
            category = source_category.get(row["source"]) or rng.choice(taxonomy.names)
            if category not in taxonomy:
                category = rng.choice(taxonomy.names)
            source = row["source"] if row["source"] in SOURCES else rng.choice(sorted(SOURCES))
            chosen, chosen_label = answer, RESPOND_LABEL
            rejected = [{"role": "assistant", "content": rng.choice(SOURCES[source].refusals)}]
            rejected_label = category
        out.append(
            {
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "chosen_label": chosen_label,
                "rejected_label": rejected_label,
                "refusal_label": row["refusal_label"],
                "kind": row["kind"],
            }
        )
    return out


def run_dpo(
    model_args: RefusalModelArguments,
    data_args: RefusalDataArguments,
    eval_args: RefusalEvalArguments,
    training_args: Any,
) -> dict[str, Any]:
    """Run the DPO recipe; returns the held-out evaluation report (main process; others return `{}`).

    Args:
        model_args (`RefusalModelArguments`): Model (a base model or an SFT recipe output), tokens and LoRA.
        data_args (`RefusalDataArguments`): Taxonomy and preference data (`chosen_label_column`,
            `rejected_label_column`, or `classifier`), or the synthetic corpus turned into preference pairs.
        eval_args (`RefusalEvalArguments`): Held-out evaluation and drift guard (`min_refusal_rate`).
        training_args (`trl.DPOConfig`): Training settings.
    """
    from accelerate import PartialState
    from datasets import Dataset
    from trl import DPOTrainer

    from .models import load_refusal_model
    from .sft import build_recipe_splits
    from .tagging import tag_dataset
    from .taxonomy import get_taxonomy
    from .tokens import TAXONOMY_KEY, load_taxonomy
    from .wandb_utils import finish_wandb, prepare_wandb

    t0 = time.perf_counter()
    state = PartialState()
    main = state.is_main_process
    prepare_wandb(training_args.report_to, announce=main)
    classifier = load_classifier(data_args)

    log(f"loading {model_args.model_name_or_path}", main)
    with state.main_process_first():
        model, tokenizer = load_refusal_model(model_args.model_name_or_path, dtype=model_args.torch_dtype())
    if hasattr(model, "merge_and_unload"):  # an SFT adapter: merge it; the merged model is the DPO reference
        model = model.merge_and_unload()
    taxonomy = get_taxonomy(data_args.taxonomy)
    if TAXONOMY_KEY in tokenizer.init_kwargs and load_taxonomy(tokenizer).to_dict() != taxonomy.to_dict():
        raise ValueError(
            f"{model_args.model_name_or_path} was trained with taxonomy {load_taxonomy(tokenizer).name!r}, but the "
            f"config asks for taxonomy={data_args.taxonomy!r}; use the same taxonomy."
        )
    model.train()
    timings = {"load_model_s": time.perf_counter() - t0}

    t = time.perf_counter()
    chosen_col, rejected_col = data_args.chosen_label_column, data_args.rejected_label_column
    if data_args.dataset_name:
        from .data import load_dataset_splits

        pref = load_dataset_splits(
            data_args.dataset_name,
            config=data_args.dataset_config,
            train_split=data_args.dataset_train_split,
            test_split=data_args.dataset_test_split,
            test_size=data_args.test_size,
            seed=training_args.seed,
        )
        probes, test, label_column = None, None, chosen_col
    else:
        corpus = build_recipe_splits(data_args, eval_args, training_args, taxonomy, model, tokenizer)
        pref = {
            name: Dataset.from_list(build_synthetic_preferences(ds.to_list(), taxonomy, seed=training_args.seed))
            for name, ds in corpus.items()
        }
        probes, test, label_column = corpus.get("validation"), corpus["test"], data_args.label_column
    timings["data_s"] = time.perf_counter() - t

    _, peft_model = add_tokens_and_peft(model, tokenizer, taxonomy, model_args, main, seed=training_args.seed)
    tagged = {
        name: tag_dataset(
            ds, taxonomy, chosen_label_column=chosen_col, rejected_label_column=rejected_col, classifier=classifier
        )
        for name, ds in pref.items()
    }
    log(", ".join(f"{name}: {len(ds)} pairs" for name, ds in tagged.items()), main)
    if test is None:  # real preference data: the chosen side's label is the right first token
        test = tagged["test"]
    trainer = DPOTrainer(
        model=peft_model,
        args=training_args,
        train_dataset=tagged["train"],
        eval_dataset=tagged.get("validation"),
        processing_class=tokenizer,
        optimizers=(token_rows_optimizer(peft_model, model_args, training_args), None),
    )
    add_probe_callback(trainer, probes, eval_args, data_args.label_column, training_args)
    t = time.perf_counter()
    trainer.train()
    timings["train_s"] = time.perf_counter() - t

    report = finish_recipe(trainer, tokenizer, taxonomy, test, eval_args, label_column, training_args, timings, t0)
    state.wait_for_everyone()
    finish_wandb()
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse `--config` YAML plus command-line flags (strict) and run the DPO recipe."""
    from trl import DPOConfig

    model_args, data_args, eval_args, training_args = parse_recipe_args(
        [RefusalModelArguments, RefusalDataArguments, RefusalEvalArguments, DPOConfig], argv
    )
    return run_dpo(model_args, data_args, eval_args, training_args)
