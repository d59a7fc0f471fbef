"""The DPO recipe: preference data with chosen and rejected each tagged by its own class, LoRA plus token rows.

Run it as `accelerate launch recipes/dpo.py --config configs/...` or `refusal-tokens dpo --config ...`. The model
may be a base model (tokens are added) or the output of the SFT recipe (its adapter is merged first, and a new one is
trained on top; the merged SFT model is the DPO reference). A `RefusalRateCallback` on the validation probes logs
per-category refusal rates and, with `min_refusal_rate`, guards against refusal drift.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Sequence
from typing import Any

from .config import RefusalDataArguments, RefusalEvalArguments, RefusalModelArguments, parse_recipe_args
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

    from .callbacks import RefusalRateCallback
    from .evaluation import evaluate_refusal_tokens, format_report
    from .models import load_refusal_model
    from .peft_utils import count_parameters, get_refusal_lora_config, get_refusal_peft_model
    from .settings import RefusalSettings
    from .sft import _log, _report_scalars, build_sft_splits, save_adapter, token_rows_optimizer
    from .tagging import tag_dataset
    from .taxonomy import get_taxonomy
    from .tokens import TAXONOMY_KEY, add_refusal_tokens, load_taxonomy
    from .wandb_utils import finish_wandb, prepare_wandb

    t0 = time.perf_counter()
    state = PartialState()
    main = state.is_main_process
    prepare_wandb(training_args.report_to, announce=main)
    classifier = None
    if data_args.classifier:
        from .data import import_callable

        classifier = import_callable(data_args.classifier)

    _log(f"loading {model_args.model_name_or_path}", main)
    with state.main_process_first():
        model, tokenizer = load_refusal_model(model_args.model_name_or_path, dtype=model_args.torch_dtype())
    if hasattr(model, "merge_and_unload"):  # an SFT adapter: merge it; the merged model is the DPO reference
        model = model.merge_and_unload()
    if TAXONOMY_KEY in tokenizer.init_kwargs:
        taxonomy = load_taxonomy(tokenizer)
        if data_args.taxonomy not in (taxonomy.name, None) and get_taxonomy(data_args.taxonomy) != taxonomy:
            raise ValueError(
                f"{model_args.model_name_or_path} was trained with taxonomy {taxonomy.name!r}, but the config asks "
                f"for taxonomy={data_args.taxonomy!r}; set taxonomy: {taxonomy.name}."
            )
    else:
        taxonomy = get_taxonomy(data_args.taxonomy)
    model.train()

    t = time.perf_counter()
    if data_args.dataset_name:
        from .data import load_dataset_splits

        splits = load_dataset_splits(
            data_args.dataset_name,
            config=data_args.dataset_config,
            train_split=data_args.dataset_train_split,
            test_split=data_args.dataset_test_split,
            test_size=data_args.test_size,
            seed=training_args.seed,
        )
        pref = splits
        probes = None
    else:
        evaluating = str(getattr(training_args.eval_strategy, "value", training_args.eval_strategy)) != "no"
        with state.main_process_first():
            corpus = build_sft_splits(
                data_args,
                taxonomy,
                model,
                tokenizer,
                seed=training_args.seed,
                distill_splits=("train", "validation") if evaluating else ("train",),
                validation=evaluating or eval_args.probe_every_n_steps is not None,
            )
        pref = {
            name: Dataset.from_list(build_synthetic_preferences(ds.to_list(), taxonomy, seed=training_args.seed))
            for name, ds in corpus.items()
        }
        probes = corpus.get("validation")
        splits = corpus
    timings = {"load_model_s": t - t0, "data_s": time.perf_counter() - t}

    ids = add_refusal_tokens(
        model,
        tokenizer,
        taxonomy,
        pad_to_multiple_of=model_args.embedding_pad_to_multiple_of,
        init=model_args.token_init,
    )
    tagged = {
        name: tag_dataset(
            ds,
            taxonomy,
            chosen_label_column=data_args.chosen_label_column,
            rejected_label_column=data_args.rejected_label_column,
            classifier=classifier,
        )
        for name, ds in pref.items()
    }
    _log(", ".join(f"{name}: {len(ds)} pairs" for name, ds in tagged.items()), main)
    lora = get_refusal_lora_config(
        model,
        ids,
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=model_args.target_modules(),
        embeddings=model_args.embeddings,
    )
    peft_model = get_refusal_peft_model(model, lora)
    trainable, total = count_parameters(peft_model)
    _log(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)", main)

    trainer = DPOTrainer(
        model=peft_model,
        args=training_args,
        train_dataset=tagged["train"],
        eval_dataset=tagged.get("validation"),
        processing_class=tokenizer,
        optimizers=(token_rows_optimizer(peft_model, model_args, training_args), None),
    )
    settings = RefusalSettings(default=eval_args.default_threshold)
    if probes is not None and len(probes):
        trainer.add_callback(
            RefusalRateCallback(
                trainer,
                probes.select(range(min(eval_args.probe_max_rows, len(probes)))),
                settings,
                label_column=data_args.label_column,
                every_n_steps=eval_args.probe_every_n_steps,
                batch_size=training_args.per_device_eval_batch_size,
                min_refusal_rate=eval_args.min_refusal_rate,
                stop_on_drift=eval_args.stop_on_drift,
            )
        )
    t = time.perf_counter()
    trainer.train()
    timings["train_s"] = time.perf_counter() - t

    out_dir = training_args.output_dir
    save_adapter(trainer, out_dir)
    report: dict[str, Any] = {}
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(out_dir)
        taxonomy.save_pretrained(out_dir)
        settings.save(os.path.join(out_dir, "thresholds.yaml"))
        test = splits["test"]
        if eval_args.eval_max_rows is not None:
            test = test.select(range(min(eval_args.eval_max_rows, len(test))))
        rows = test.to_list()
        label_column = data_args.label_column if data_args.label_column in test.column_names else None
        if label_column is None:  # preference test rows: the chosen side's label is the right first token
            label_column = data_args.chosen_label_column
            rows = tag_dataset(
                test,
                taxonomy,
                chosen_label_column=data_args.chosen_label_column,
                rejected_label_column=data_args.rejected_label_column,
                classifier=classifier,
            ).to_list()
        report = evaluate_refusal_tokens(
            trainer.model.eval(),
            tokenizer,
            rows,
            settings,
            label_column=label_column,
            batch_size=training_args.per_device_eval_batch_size,
        )
        timings["total_s"] = time.perf_counter() - t0
        report["timings"] = timings
        report["output_dir"] = out_dir
        with open(os.path.join(out_dir, eval_args.results_file), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
        trainer.log(_report_scalars(report))
        print(f"\nHeld-out test split ({len(rows)} rows), thresholds {settings.to_dict()}:")
        print(format_report(report))
        print(f"\nSaved adapter, tokenizer, taxonomy and thresholds.yaml to {out_dir}.")
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
