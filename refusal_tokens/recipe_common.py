"""Steps shared by the SFT and DPO recipes: tokens and PEFT, the probe callback, saving, held-out evaluation."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

from .config import RefusalDataArguments, RefusalEvalArguments, RefusalModelArguments

THRESHOLDS_FILE = "thresholds.yaml"


def log(message: str, is_main: bool = True) -> None:
    """One `[refusal-tokens]` line, from the main process only."""
    if is_main:
        print(f"[refusal-tokens] {message}", flush=True)


def load_classifier(data_args: RefusalDataArguments) -> Any:
    """The `classifier` of the data arguments as a callable, or `None`."""
    if not data_args.classifier:
        return None
    from .classifiers import get_classifier

    return get_classifier(data_args.classifier, data_args.taxonomy)


def self_distills(data_args: RefusalDataArguments) -> bool:
    """Whether the recipe generates the base model's answers before training (built-in corpus, `responses=self`)."""
    return not data_args.dataset_name and data_args.responses == "self"


def shards_the_model(training_args: Any) -> bool:
    """Whether DeepSpeed or FSDP will shard the model: they expect to receive it on the CPU."""
    env = any(
        os.environ.get(k, "").lower() in ("1", "true") for k in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP")
    )
    return env or bool(getattr(training_args, "deepspeed", None)) or bool(getattr(training_args, "fsdp", None))


@contextlib.contextmanager
def on_training_device(model: Any, training_args: Any, enabled: bool = True) -> Iterator[None]:
    """Run a block (self-distillation, before the Trainer exists) with the model on the training device.

    Generation on the GPU instead of the CPU; the Trainer would move the model there anyway, except under DeepSpeed
    or FSDP, which shard a model they receive on the CPU: there it goes back to the CPU after the block.
    """
    if not enabled:
        yield
        return
    model.to(training_args.device)
    try:
        yield
    finally:
        if shards_the_model(training_args):
            model.to("cpu")


def is_evaluating(training_args: Any) -> bool:
    return str(getattr(training_args.eval_strategy, "value", training_args.eval_strategy)) != "no"


def add_tokens_and_peft(
    model: Any,
    tokenizer: Any,
    taxonomy: Any,
    model_args: RefusalModelArguments,
    is_main: bool = True,
    seed: int | None = None,
) -> tuple[Any, Any]:
    """Add the refusal tokens and wrap the model with LoRA plus trainable token rows; returns `(ids, peft_model)`.

    With `seed`, the random state is reset first, so LoRA starts from the same weights whatever ran before (a first
    run converts the built-in GGUF model, which initialises a model and draws random numbers; a cached run does not).
    """
    from transformers import set_seed

    from .peft_utils import count_parameters, get_refusal_lora_config, get_refusal_peft_model
    from .tokens import add_refusal_tokens

    if seed is not None:
        set_seed(seed)

    ids = add_refusal_tokens(
        model,
        tokenizer,
        taxonomy,
        pad_to_multiple_of=model_args.embedding_pad_to_multiple_of,
        init=model_args.token_init,
    )
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
    log(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)", is_main)
    return ids, peft_model


def add_probe_callback(
    trainer: Any, probes: Any, eval_args: RefusalEvalArguments, label_column: str, training_args: Any
) -> None:
    """Attach a `RefusalRateCallback` on (at most `probe_max_rows` of) the labelled probe rows, if there are any."""
    if probes is None or not len(probes):
        return
    from .callbacks import RefusalRateCallback
    from .settings import RefusalSettings

    trainer.add_callback(
        RefusalRateCallback(
            trainer,
            probes.select(range(min(eval_args.probe_max_rows, len(probes)))),
            RefusalSettings(default=eval_args.default_threshold),
            label_column=label_column,
            every_n_steps=eval_args.probe_every_n_steps,
            batch_size=training_args.per_device_eval_batch_size,
            min_refusal_rate=eval_args.min_refusal_rate,
            stop_on_drift=eval_args.stop_on_drift,
        )
    )


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


def report_scalars(report: dict[str, Any]) -> dict[str, float]:
    """`refusal_scalars` of the held-out report, plus the answer-agreement figures."""
    from .evaluation import refusal_scalars

    out = refusal_scalars(report)
    if "agreement" in report:
        out["refusal/answer_exact_match"] = report["agreement"]["exact_match"]
        out["refusal/answer_token_agreement"] = report["agreement"]["token_agreement"]
        out["refusal/answer_next_token_agreement"] = report["agreement"]["next_token_agreement"]
    return out


def calibrate_on_test(
    report: dict[str, Any], rows: list[dict], eval_args: Any, label_column: str, taxonomy: Any, out_dir: str
) -> dict[str, Any]:
    """Calibrate thresholds on half of the evaluated test rows and measure them on the other half."""
    import torch

    from .calibration import CalibrationTargets, calibration_report, save_calibration_plots
    from .evaluation import labels_of
    from .settings import RefusalSettings

    targets = CalibrationTargets.from_file(eval_args.calibration_targets)
    probs = torch.tensor(report["probabilities"])
    truth = torch.tensor(labels_of(rows, taxonomy, label_column))
    cal = calibration_report(probs, truth, taxonomy, targets)
    folder = os.path.join(out_dir, "calibration")
    settings = RefusalSettings.from_dict(cal["settings"])
    cal["thresholds_file"] = settings.save(os.path.join(folder, "thresholds.yaml"))
    try:
        cal["plots"] = save_calibration_plots(probs, truth, taxonomy, settings, folder)
    except ImportError:
        log("matplotlib is not installed: calibration plots skipped (pip install refusal-tokens[plots]).")
    return cal


def finish_recipe(
    trainer: Any,
    tokenizer: Any,
    taxonomy: Any,
    test: Any,
    eval_args: RefusalEvalArguments,
    label_column: str,
    training_args: Any,
    timings: dict[str, float],
    t0: float,
) -> dict[str, Any]:
    """Save adapter, tokenizer, taxonomy and default thresholds; evaluate on `test`; print and log the table.

    Returns the report on the main process, `{}` on the others.
    """
    from .evaluation import answer_agreement, evaluate_refusal_tokens, format_report
    from .settings import RefusalSettings

    out_dir = training_args.output_dir
    save_adapter(trainer, out_dir)
    if not trainer.is_world_process_zero():
        return {}
    settings = RefusalSettings(default=eval_args.default_threshold)
    tokenizer.save_pretrained(out_dir)
    taxonomy.save_pretrained(out_dir)
    settings.save(os.path.join(out_dir, THRESHOLDS_FILE))

    t = time.perf_counter()
    model = trainer.model.eval()
    if eval_args.eval_max_rows is not None:
        test = test.select(range(min(eval_args.eval_max_rows, len(test))))
    rows = test.to_list()
    report = evaluate_refusal_tokens(
        model,
        tokenizer,
        rows,
        settings,
        label_column=label_column,
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
    report["test_rows"] = [{k: r[k] for k in (label_column, "kind", "source", "template") if k in r} for r in rows]
    if eval_args.calibration_targets:
        report["calibration"] = calibrate_on_test(report, rows, eval_args, label_column, taxonomy, out_dir)
    with open(os.path.join(out_dir, eval_args.results_file), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    trainer.log(report_scalars(report))
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
    parts = ", ".join(f"{k[:-2].replace('_', ' ')} {v:.0f}" for k, v in timings.items() if k != "total_s")
    print(
        f"\nSaved adapter, tokenizer, taxonomy and {THRESHOLDS_FILE} to {out_dir} "
        f"(total {timings['total_s']:.0f} s: {parts})."
    )
    return report
