"""The SFT recipe: model + refusal tokens + tagged data + LoRA and token rows, trained with TRL's `SFTTrainer`.

Run it as `accelerate launch recipes/sft.py --config configs/quickstart.yaml` or `refusal-tokens sft --config ...`.
It writes to `output_dir`: the adapter (with the token rows), the tokenizer and the taxonomy, a default thresholds
file `thresholds.yaml`, and the held-out evaluation (`refusal_eval.json`), and prints the per-category table.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any

from .config import RefusalDataArguments, RefusalEvalArguments, RefusalModelArguments, parse_recipe_args

THRESHOLDS_FILE = "thresholds.yaml"


def _log(message: str, is_main: bool = True) -> None:
    if is_main:
        print(f"[refusal-tokens] {message}", flush=True)


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


def token_rows_optimizer(peft_model: Any, model_args: RefusalModelArguments, training_args: Any) -> Any:
    """AdamW with the token rows at `token_learning_rate`, or `None` (the Trainer's own optimizer) when unset."""
    if model_args.token_learning_rate is None:
        return None
    import torch

    from .peft_utils import refusal_optimizer_groups

    groups = refusal_optimizer_groups(
        peft_model, training_args.learning_rate, model_args.token_learning_rate, training_args.weight_decay
    )
    return torch.optim.AdamW(
        groups, betas=(training_args.adam_beta1, training_args.adam_beta2), eps=training_args.adam_epsilon
    )


def save_adapter(trainer: Any, out_dir: str) -> None:
    """Save the adapter (LoRA and token rows) without PEFT's copy of the resized embedding matrices.

    PEFT sees a resized vocabulary and would also save both full embedding matrices (about 250 MB for SmolLM2); the
    trained token rows are already in the adapter and every other row is rebuilt by `add_refusal_tokens` on load.
    Sharded runs (FSDP, DeepSpeed) go through `trainer.save_model`, which gathers the weights first.
    """
    if getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False):
        trainer.save_model(out_dir)
    elif trainer.is_world_process_zero():
        trainer.model.save_pretrained(out_dir, save_embedding_layers=False)


def _report_scalars(report: dict[str, Any]) -> dict[str, float]:
    """Flat `refusal/...` scalars for the Trainer's loggers."""
    out = {f"refusal/{k}": v for k, v in report["overall"].items() if isinstance(v, (int, float))}
    for group, metrics in report["groups"].items():
        for k, v in metrics.items():
            out[f"refusal/{group}/{k}"] = v
    if "agreement" in report:
        out["refusal/answer_exact_match"] = report["agreement"]["exact_match"]
        out["refusal/answer_token_agreement"] = report["agreement"]["token_agreement"]
    return out


def _calibrate(
    report: dict[str, Any], rows: list[dict], eval_args: Any, label_column: str, taxonomy: Any, out_dir: str
) -> dict[str, Any]:
    """Calibrate thresholds on half of the evaluated test rows and measure them on the other half."""
    import torch

    from .calibration import CalibrationTargets, calibration_report, save_calibration_plots
    from .settings import RefusalSettings

    targets = CalibrationTargets.from_file(eval_args.calibration_targets)
    labels = report["labels"]
    probs = torch.tensor(report["probabilities"])
    truth = torch.tensor([labels.index(taxonomy.normalize_label(r[label_column])) for r in rows])
    cal = calibration_report(probs, truth, taxonomy, targets)
    folder = os.path.join(out_dir, "calibration")
    settings = RefusalSettings.from_dict(cal["settings"])
    cal["thresholds_file"] = settings.save(os.path.join(folder, "thresholds.yaml"))
    try:
        cal["plots"] = save_calibration_plots(probs, truth, taxonomy, settings, folder)
    except ImportError:
        _log("matplotlib is not installed: calibration plots skipped (pip install refusal-tokens[plots]).")
    return cal


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

    from .evaluation import answer_agreement, evaluate_refusal_tokens, format_report
    from .models import load_model_and_tokenizer
    from .peft_utils import count_parameters, get_refusal_lora_config, get_refusal_peft_model
    from .settings import RefusalSettings
    from .tagging import tag_dataset
    from .taxonomy import get_taxonomy
    from .tokens import add_refusal_tokens
    from .wandb_utils import finish_wandb, prepare_wandb

    t0 = time.perf_counter()
    state = PartialState()
    main = state.is_main_process
    prepare_wandb(training_args.report_to, announce=main)
    taxonomy = get_taxonomy(data_args.taxonomy)
    classifier = None
    if data_args.classifier:
        from .data import import_callable

        classifier = import_callable(data_args.classifier)

    _log(f"loading {model_args.model_name_or_path}", main)
    with state.main_process_first():  # a builtin: model is converted once, by the main process
        model, tokenizer = load_model_and_tokenizer(model_args.model_name_or_path, dtype=model_args.torch_dtype())
    timings = {"load_model_s": time.perf_counter() - t0}

    t = time.perf_counter()
    # A validation split (and its answers) only matters when the Trainer evaluates or the probes run every N steps.
    evaluating = str(getattr(training_args.eval_strategy, "value", training_args.eval_strategy)) != "no"
    splits = build_sft_splits(
        data_args,
        taxonomy,
        model,
        tokenizer,
        seed=training_args.seed,
        distill_splits=("train", "validation") if evaluating else ("train",),
        validation=evaluating or eval_args.probe_every_n_steps is not None,
    )
    timings["data_s"] = time.perf_counter() - t

    ids = add_refusal_tokens(
        model,
        tokenizer,
        taxonomy,
        pad_to_multiple_of=model_args.embedding_pad_to_multiple_of,
        init=model_args.token_init,
    )
    tagged = {
        name: tag_dataset(split, taxonomy, label_column=data_args.label_column, classifier=classifier)
        for name, split in splits.items()
    }
    _log(", ".join(f"{name}: {len(ds)} rows" for name, ds in tagged.items()), main)

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
    # Record the name the user gave (e.g. builtin:...), not the resolved cache path, so the adapter loads anywhere.
    peft_model.peft_config[peft_model.active_adapter].base_model_name_or_path = model_args.model_name_or_path
    trainable, total = count_parameters(peft_model)
    _log(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)", main)

    trainer = SFTTrainer(
        model=peft_model,
        args=training_args,
        train_dataset=tagged["train"],
        eval_dataset=tagged.get("validation"),
        processing_class=tokenizer,
        optimizers=(token_rows_optimizer(peft_model, model_args, training_args), None),
    )
    if "validation" in tagged and len(tagged["validation"]):
        from .callbacks import RefusalRateCallback

        probes = tagged["validation"].select(range(min(eval_args.probe_max_rows, len(tagged["validation"]))))
        trainer.add_callback(
            RefusalRateCallback(
                trainer,
                probes,
                RefusalSettings(default=eval_args.default_threshold),
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
    settings = RefusalSettings(default=eval_args.default_threshold)
    report: dict[str, Any] = {}
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(out_dir)
        taxonomy.save_pretrained(out_dir)
        settings.save(os.path.join(out_dir, THRESHOLDS_FILE))

        t = time.perf_counter()
        model = trainer.model.eval()
        test = tagged["test"]
        if eval_args.eval_max_rows is not None:
            test = test.select(range(min(eval_args.eval_max_rows, len(test))))
        rows = test.to_list()
        report = evaluate_refusal_tokens(
            model,
            tokenizer,
            rows,
            settings,
            label_column=data_args.label_column,
            batch_size=training_args.per_device_eval_batch_size,
        )
        benign = [
            r["prompt"][-1]["content"] if isinstance(r.get("prompt"), list) else r.get("prompt")
            for r in rows
            if r.get("kind") == "benign"
        ][: eval_args.agreement_prompts]
        if benign and all(isinstance(p, str) for p in benign):
            report["agreement"] = answer_agreement(
                model, tokenizer, benign, max_new_tokens=eval_args.agreement_max_new_tokens
            )
        timings["eval_s"] = time.perf_counter() - t
        timings["total_s"] = time.perf_counter() - t0
        report["timings"] = timings
        report["output_dir"] = out_dir
        report["test_rows"] = [
            {k: r[k] for k in ("refusal_label", "kind", "source", "template") if k in r} for r in rows
        ]
        if eval_args.calibration_targets:
            report["calibration"] = _calibrate(report, rows, eval_args, data_args.label_column, taxonomy, out_dir)
        with open(os.path.join(out_dir, eval_args.results_file), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
        trainer.log(_report_scalars(report))
        print(f"\nHeld-out test split ({len(rows)} rows), thresholds {settings.to_dict()}:")
        print(format_report(report))
        if "calibration" in report:
            from .calibration import format_calibration_report

            print(
                f"\nCalibration to {eval_args.calibration_targets} (solved on one half of the test split, measured "
                "on the other):"
            )
            print(format_calibration_report(report["calibration"]))
            print(f"Calibrated thresholds: {report['calibration']['thresholds_file']}")
        print(
            f"\nSaved adapter, tokenizer, taxonomy and {THRESHOLDS_FILE} to {out_dir} "
            f"(total {timings['total_s']:.0f} s: load {timings['load_model_s']:.0f}, data {timings['data_s']:.0f}, "
            f"train {timings['train_s']:.0f}, eval {timings['eval_s']:.0f})."
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
