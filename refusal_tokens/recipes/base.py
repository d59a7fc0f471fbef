"""The recipe skeleton shared by SFT and DPO, one method per step, in the order the alignment-handbook scripts run:

    load -> load_data -> add_tokens_and_peft -> tag_data -> build_trainer -> train -> save -> evaluate -> calibrate
    -> report

`SFTRecipe` and `DPORecipe` (in `sft.py` and `dpo.py`) override the steps that differ (which model is loaded, which
data, which trainer); saving, the held-out evaluation, the calibration step (the same one `refusal-tokens calibrate`
runs) and the report are shared.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from accelerate import PartialState
from datasets import Dataset
from transformers import set_seed

from ..classifiers import get_classifier
from ..data.formats import LabelColumns, prompt_messages, request_text
from ..data.loading import load_dataset_splits
from ..data.mixture import load_refusal_datasets, reweight_rows
from ..data.synthetic import SyntheticCorpusConfig, build_synthetic_corpus
from ..data.tagging import tag_dataset
from ..evaluation.agreement import answer_agreement
from ..evaluation.calibration import CalibrationTargets, format_calibration_report, run_calibration
from ..evaluation.metrics import (
    corpus_summaries,
    evaluate_refusal_tokens,
    format_report,
    labels_of,
    refusal_scalars,
)
from ..inference.builtin import cache_dir
from ..peft import count_parameters, get_refusal_lora_config, get_refusal_peft_model
from ..settings import THRESHOLDS_FILE, RefusalSettings
from ..taxonomy import RESPOND_LABEL, RefusalTaxonomy, get_taxonomy
from ..tokens import RefusalTokenIds, add_refusal_tokens
from ..training.callbacks import RefusalRateCallback
from ..training.distillation import distill_cache_path, self_distill_responses
from ..training.optimizer import build_refusal_optimizer
from ..training.wandb_utils import finish_wandb, prepare_wandb
from ..utils.io import RUN_FILE, atomic_write_json, prepare_output_dir
from ..utils.logging import get_logger
from .arguments import RefusalDataArguments, RefusalEvalArguments, RefusalModelArguments

logger = get_logger(__name__)

CALIBRATION_DIR = "calibration"


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
    """Whether the Trainer runs evaluations (`eval_strategy` other than `"no"`)."""
    return str(getattr(training_args.eval_strategy, "value", training_args.eval_strategy)) != "no"


def build_sft_splits(
    data_args: RefusalDataArguments,
    taxonomy: RefusalTaxonomy,
    model: Any,
    tokenizer: Any,
    seed: int = 0,
    distill_splits: Sequence[str] = ("train", "validation"),
    validation: bool = True,
) -> dict[str, Any]:
    """Untagged `datasets.Dataset` splits (`train`, `test`, and `validation` where the data has one).

    The data is one labelled dataset (`dataset_name`), or the rows of `datasets` entries (see
    `refusal_tokens.data.mixture`) and/or the built-in synthetic corpus, each row naming its `corpus`. Respond rows
    that came without an answer get the base model's own answer for the splits in `distill_splits` when
    `responses="self"` (the test split is evaluated on prompts only, so its answers are never used); call this
    before adding the refusal tokens, so the answers are the untrained model's.
    """
    if data_args.dataset_name:
        splits = load_dataset_splits(
            data_args.dataset_name,
            config=data_args.dataset_config,
            train_split=data_args.dataset_train_split,
            test_split=data_args.dataset_test_split,
            test_size=data_args.test_size,
            seed=seed,
        )
        warn_on_overlap(splits["train"].to_list(), splits["test"].to_list(), data_args.dataset_name)
        return splits
    label = data_args.label_column
    parts: dict[str, list[dict[str, Any]]] = {}
    if data_args.datasets:
        parts = load_refusal_datasets(data_args.datasets, taxonomy, label_column=label, seed=seed)
        if data_args.mix_targets is not None:
            parts["train"], composition = reweight_rows(
                parts["train"], data_args.mix_targets, taxonomy, label_column=label, size=data_args.mix_size, seed=seed
            )
            logger.info("training rows of `datasets` after mix_targets:\n%s", composition.format())
    if data_args.use_synthetic():
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
        for split, rows in corpus.items():
            parts.setdefault(split, []).extend(_synthetic_row(r, label) for r in rows)
    if data_args.datasets and data_args.use_synthetic():
        random.Random(seed).shuffle(parts["train"])  # interleave the corpora rather than train on one, then the other
    if not validation:
        parts.pop("validation", None)
    if "test" in parts:
        warn_on_overlap(parts["train"], parts["test"], "datasets")
    if data_args.responses == "self":
        state = PartialState()
        cache = distill_cache_path(model, data_args.distill_max_new_tokens, os.path.join(cache_dir(), "distill"))
        # The main process generates and caches; the others then read the cache instead of generating again.
        with state.main_process_first():
            for split in [s for s in distill_splits if s in parts]:
                parts[split] = self_distill_responses(
                    parts[split],
                    model,
                    tokenizer,
                    label_column=label,
                    max_new_tokens=data_args.distill_max_new_tokens,
                    batch_size=data_args.distill_batch_size,
                    cache_file=cache,
                    show_progress=state.is_main_process,
                )
    return {split: Dataset.from_list(rows) for split, rows in parts.items()}


def warn_on_overlap(train: Sequence[dict[str, Any]], test: Sequence[dict[str, Any]], name: str) -> int:
    """Warn when test prompts also occur in the training rows (duplicated rows, or one source listed twice): the
    held-out table would then measure memory. Returns the number of such test rows."""

    def key(row: dict[str, Any], i: int) -> str | None:
        try:
            return " ".join(request_text(prompt_messages(row, i)).split()).lower()
        except (ValueError, KeyError, TypeError):
            return None

    seen = {key(r, i) for i, r in enumerate(train)}
    shared = [i for i, r in enumerate(test) if key(r, i) in seen and key(r, i) is not None]
    if shared:
        logger.warning(
            "%s: %d of %d test prompts also occur in the training rows (e.g. %r); the held-out table counts them, "
            "so it is not fully held out: deduplicate the data before splitting.",
            name,
            len(shared),
            len(test),
            request_text(prompt_messages(test[shared[0]], shared[0]))[:80],
        )
    return len(shared)


def _synthetic_row(row: dict[str, Any], label_column: str) -> dict[str, Any]:
    """A synthetic corpus row with the columns of `datasets` rows (`corpus`, `answer`) and the recipe label column."""
    out = {k: v for k, v in row.items() if k != "refusal_label"}
    out[label_column] = row["refusal_label"]
    out["corpus"] = "synthetic"
    out["answer"] = "template" if row["refusal_label"] == RESPOND_LABEL else "wording"
    return out


def add_tokens_and_peft(
    model: Any,
    tokenizer: Any,
    taxonomy: RefusalTaxonomy | str,
    model_args: RefusalModelArguments,
    seed: int | None = None,
) -> tuple[Any, Any]:
    """Add the refusal tokens and, with `use_peft`, wrap the model with LoRA plus trainable token rows.

    With `seed`, the random state is reset first, so LoRA starts from the same weights whatever ran before (a first
    run converts the built-in GGUF model, which initialises a model and draws random numbers; a cached run does not).

    Returns:
        `(RefusalTokenIds, model)`: the `PeftModel`, or the model itself (every weight trainable) without PEFT.
    """
    if seed is not None:
        set_seed(seed)
    ids = add_refusal_tokens(
        model,
        tokenizer,
        taxonomy,
        pad_to_multiple_of=model_args.embedding_pad_to_multiple_of,
        init=model_args.token_init,
    )
    if model_args.use_peft:
        lora = get_refusal_lora_config(
            model,
            ids,
            r=model_args.lora_r,
            lora_alpha=model_args.lora_alpha,
            lora_dropout=model_args.lora_dropout,
            target_modules=model_args.lora_target_modules,
            embeddings=model_args.embeddings,
            **model_args.lora_kwargs(),
        )
        model = get_refusal_peft_model(model, lora)
        # Record the name the user gave (e.g. builtin:...), not the resolved cache path, so the adapter loads anywhere.
        model.peft_config[model.active_adapter].base_model_name_or_path = model_args.model_name_or_path
    trainable, total = count_parameters(model)
    logger.info("trainable parameters: %s of %s (%.2f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / total)
    return ids, model


def save_adapter(trainer: Any, out_dir: str) -> None:
    """Save the trained weights: the adapter (LoRA and token rows), or the whole model without PEFT.

    PEFT sees a resized vocabulary and would also save both full embedding matrices (about 250 MB for SmolLM2); the
    trained token rows are already in the adapter and every other row is rebuilt by `add_refusal_tokens` on load.
    Sharded runs (FSDP, DeepSpeed) and full models go through `trainer.save_model`, which gathers the weights first.
    """
    sharded = getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False)
    if sharded or not hasattr(trainer.model, "peft_config"):
        trainer.save_model(out_dir)
    elif trainer.is_world_process_zero():
        trainer.model.save_pretrained(out_dir, save_embedding_layers=False)


def report_scalars(report: dict[str, Any]) -> dict[str, float]:
    """`refusal_scalars` of the held-out report, plus the answer-agreement figures."""
    out = refusal_scalars(report)
    if "agreement" in report:
        for key in ("exact_match", "token_agreement", "next_token_agreement"):
            out[f"refusal/answer_{key}"] = report["agreement"][key]
    return out


def calibrate_probabilities(
    probabilities: Any,
    rows: Sequence[dict],
    taxonomy: RefusalTaxonomy,
    label_column: str,
    targets_file: str,
    output_dir: str,
    seed: int = 0,
) -> dict[str, Any]:
    """The calibration step on evaluated rows: thresholds for `targets_file`, solved on one half, measured on the
    other, written to `output_dir` (what the recipes do after training and `refusal-tokens calibrate` does)."""
    targets = CalibrationTargets.from_file(targets_file)
    probs = torch.as_tensor(probabilities, dtype=torch.float32)
    truth = torch.tensor(labels_of(rows, taxonomy, label_column))
    return run_calibration(probs, truth, taxonomy, targets, output_dir, seed=seed)


class RefusalRecipe:
    """The steps of a refusal-token training run; `run()` calls them in order.

    Subclasses set `trainer_class` and override `load` and `load_data`; every other step is shared.

    Args:
        model_args (`RefusalModelArguments`): Model, tokens, PEFT.
        data_args (`RefusalDataArguments`): Taxonomy and data.
        eval_args (`RefusalEvalArguments`): Held-out evaluation, probes, calibration.
        training_args (`trl.SFTConfig` or `trl.DPOConfig`): The trainer's settings.
    """

    name = "recipe"
    trainer_class: Any = None
    """The TRL trainer class (`SFTTrainer`, `DPOTrainer`)."""

    def __init__(
        self,
        model_args: RefusalModelArguments,
        data_args: RefusalDataArguments,
        eval_args: RefusalEvalArguments,
        training_args: Any,
    ) -> None:
        self.model_args = model_args
        self.data_args = data_args
        self.eval_args = eval_args
        self.training_args = training_args
        self.state = PartialState()
        self.is_main = self.state.is_main_process
        self.columns: LabelColumns = data_args.label_columns()
        self.taxonomy = get_taxonomy(data_args.taxonomy)
        self.classifier = get_classifier(data_args.classifier, self.taxonomy) if data_args.classifier else None
        self.timings: dict[str, float] = {}
        self.t0 = time.perf_counter()
        # Filled by the steps:
        self.model: Any = None
        self.tokenizer: Any = None
        self.splits: dict[str, Any] = {}
        self.probes: Any = None
        self.test: Any = None
        self.eval_label_column = self.columns.label
        self.trainer: Any = None

    # -- steps ----------------------------------------------------------------------------------------------------
    def load(self) -> None:
        """Load `self.model` and `self.tokenizer`."""
        raise NotImplementedError

    def load_data(self) -> None:
        """Build the untagged splits (`self.splits`), the probe rows (`self.probes`) and the test rows."""
        raise NotImplementedError

    def sft_splits(self) -> dict[str, Any]:
        """`build_sft_splits` as the recipes call it: self-distilling on the training device, with a validation split
        (and its answers) only when the Trainer evaluates or the probes run every N steps."""
        evaluating = is_evaluating(self.training_args)
        with on_training_device(self.model, self.training_args, enabled=self_distills(self.data_args)):
            return build_sft_splits(
                self.data_args,
                self.taxonomy,
                self.model,
                self.tokenizer,
                seed=self.training_args.seed,
                distill_splits=("train", "validation") if evaluating else ("train",),
                validation=evaluating or self.eval_args.probe_every_n_steps is not None,
            )

    def add_tokens_and_peft(self) -> None:
        """Add the refusal tokens and wrap the model for training (LoRA + token rows, or all weights)."""
        _, self.model = add_tokens_and_peft(
            self.model, self.tokenizer, self.taxonomy, self.model_args, seed=self.training_args.seed
        )
        if self.data_args.ignore_bias_buffers:
            # As TRL's scripts do: DDP cannot broadcast boolean buffers (e.g. causal masks).
            self.model._ddp_params_and_buffers_to_ignore = [
                name for name, buffer in self.model.named_buffers() if buffer.dtype == torch.bool
            ]

    def tag_data(self) -> None:
        """Put each row's token at the start of its response(s)."""
        self.splits = {
            name: tag_dataset(split, self.taxonomy, label_columns=self.columns, classifier=self.classifier)
            for name, split in self.splits.items()
        }
        logger.info(", ".join(f"{name}: {len(ds)} rows" for name, ds in self.splits.items()))

    def build_trainer(self) -> Any:
        """The recipe's TRL trainer on the tagged splits, with the token rows' optimizer."""
        return self.trainer_class(
            model=self.model,
            args=self.training_args,
            train_dataset=self.splits["train"],
            eval_dataset=self.splits.get("validation"),
            processing_class=self.tokenizer,
            optimizers=self.optimizers(),
        )

    def optimizers(self) -> tuple[Any, None]:
        """The `optimizers` argument of the trainer: the trainer's own optimizer, with the token rows at theirs."""
        return build_refusal_optimizer(self.model, self.training_args, self.model_args.token_learning_rate), None

    def add_probe_callback(self) -> None:
        """Attach a `RefusalRateCallback` on (at most `probe_max_rows` of) the labelled probe rows, if any."""
        probes = self.probes
        if probes is None or not len(probes):
            return
        self.trainer.add_callback(
            RefusalRateCallback(
                self.trainer,
                probes.select(range(min(self.eval_args.probe_max_rows, len(probes)))),
                RefusalSettings(default=self.eval_args.default_threshold),
                label_column=self.columns.label,
                every_n_steps=self.eval_args.probe_every_n_steps,
                batch_size=self.training_args.per_device_eval_batch_size,
                min_refusal_rate=self.eval_args.min_refusal_rate,
                stop_on_drift=self.eval_args.stop_on_drift,
            )
        )

    def train(self) -> None:
        """Train; `resume_from_checkpoint` (a checkpoint folder, or true for the last one in output_dir) resumes."""
        resume = self.training_args.resume_from_checkpoint
        if isinstance(resume, str) and resume.lower() in ("true", "false"):
            resume = resume.lower() == "true"
        self.trainer.train(resume_from_checkpoint=resume or None)

    def save(self) -> None:
        """Write the trained weights, the tokenizer, the taxonomy and the default thresholds to `output_dir`."""
        out_dir = self.training_args.output_dir
        save_adapter(self.trainer, out_dir)
        if self.trainer.is_world_process_zero():
            self.tokenizer.save_pretrained(out_dir)
            self.taxonomy.save_pretrained(out_dir)
            self.default_settings().save(os.path.join(out_dir, THRESHOLDS_FILE))

    def default_settings(self) -> RefusalSettings:
        return RefusalSettings(default=self.eval_args.default_threshold)

    def evaluate(self) -> dict[str, Any]:
        """The held-out table of the test rows at the default thresholds, and the answer agreement."""
        model = self.trainer.model.eval()
        test = self.test
        if self.eval_args.eval_max_rows is not None:
            test = test.select(range(min(self.eval_args.eval_max_rows, len(test))))
        rows = test.to_list()
        report = evaluate_refusal_tokens(
            model,
            self.tokenizer,
            rows,
            self.default_settings(),
            label_column=self.eval_label_column,
            batch_size=self.training_args.per_device_eval_batch_size,
        )
        corpora = corpus_summaries(
            report["probabilities"],
            rows,
            RefusalTokenIds.from_tokenizer(self.tokenizer),
            self.default_settings(),
            label_column=self.eval_label_column,
        )
        if corpora:
            report["corpora"] = corpora
        benign = [request_text(prompt_messages(r, i)) for i, r in enumerate(rows) if r.get("kind") == "benign"]
        benign = benign[: self.eval_args.agreement_prompts]
        if benign and hasattr(model, "disable_adapter"):
            report["agreement"] = answer_agreement(
                model, self.tokenizer, benign, max_new_tokens=self.eval_args.agreement_max_new_tokens
            )
        elif benign:
            logger.info("answer agreement skipped: it compares with the base model, which full fine-tuning replaced.")
        keep = (self.eval_label_column, "kind", "source", "template", "corpus")
        report["test_rows"] = [{k: r[k] for k in keep if k in r} for r in rows]
        report["_rows"] = rows
        return report

    def calibrate(self, report: dict[str, Any]) -> None:
        """With `calibration_targets`: thresholds solved on one half of the test rows, measured on the other."""
        if not self.eval_args.calibration_targets:
            return
        rows, probs = report["_rows"], report["probabilities"]
        corpus = self.eval_args.calibration_corpus
        if corpus is not None:
            idx = [i for i, r in enumerate(rows) if r.get("corpus") == corpus]
            if not idx:
                known = sorted({str(r.get("corpus")) for r in rows})
                raise ValueError(
                    f"calibration_corpus={corpus!r}: no test rows of that corpus; the corpora are {known}."
                )
            rows, probs = [rows[i] for i in idx], [probs[i] for i in idx]
        report["calibration"] = calibrate_probabilities(
            probs,
            rows,
            self.taxonomy,
            self.eval_label_column,
            self.eval_args.calibration_targets,
            os.path.join(self.training_args.output_dir, CALIBRATION_DIR),
        )

    def report(self, report: dict[str, Any]) -> None:
        """Write `refusal_eval.json`, log the scalars through the trainer, and log the tables."""
        out_dir = self.training_args.output_dir
        rows = report.pop("_rows")
        self.timings["total_s"] = time.perf_counter() - self.t0
        report["timings"] = self.timings
        report["output_dir"] = out_dir
        atomic_write_json(os.path.join(out_dir, self.eval_args.results_file), report)
        self.trainer.log(report_scalars(report))
        settings = self.default_settings().to_dict()
        if "corpora" in report:
            lines = []
            for name, part in report["corpora"].items():
                if name == next(iter(report["corpora"])) and "agreement" in report:
                    part = dict(part, agreement=report["agreement"])
                lines += [
                    f"Held-out test rows of {name} ({part['overall']['support']} rows), thresholds {settings}:",
                    format_report(part),
                    "",
                ]
            lines.pop()
        else:
            lines = [f"Held-out test split ({len(rows)} rows), thresholds {settings}:", format_report(report)]
        if "calibration" in report:
            lines += [
                "",
                f"Calibration to {self.eval_args.calibration_targets} (solved on one half of the test rows"
                + (f" of {self.eval_args.calibration_corpus}" if self.eval_args.calibration_corpus else "")
                + ", measured on the other):",
                format_calibration_report(report["calibration"]),
                f"Calibrated thresholds: {report['calibration']['thresholds_file']}",
            ]
        parts = ", ".join(
            f"{k[:-2].replace('_', ' ')} {v:.0f}"
            for k, v in self.timings.items()
            if k != "total_s" and math.isfinite(v)
        )
        lines += [
            "",
            f"Saved the trained weights, tokenizer, taxonomy and {THRESHOLDS_FILE} to {out_dir} "
            f"(total {self.timings['total_s']:.0f} s: {parts}).",
        ]
        logger.info("\n".join(lines))

    # -- the run ----------------------------------------------------------------------------------------------------
    def _timed(self, key: str, step: Any) -> Any:
        t = time.perf_counter()
        out = step()
        self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - t
        return out

    def prepare_output(self) -> None:
        """Refuse a non-empty `output_dir` (or, with `overwrite_output_dir`, empty an earlier run's), and stamp it.

        Resuming (`resume_from_checkpoint`) keeps the folder: its checkpoints are what the run resumes from.
        """
        out = self.training_args.output_dir
        if self.is_main:
            resume = self.training_args.resume_from_checkpoint
            info = {
                "model": self.model_args.model_name_or_path,
                "taxonomy": self.taxonomy.name,
                "data": self.data_args.describe_data(),
            }
            if resume:
                os.makedirs(out, exist_ok=True)
                atomic_write_json(
                    os.path.join(out, RUN_FILE), {"command": self.name, "resumed_from": str(resume), **info}
                )
            else:
                prepare_output_dir(out, overwrite=self.eval_args.overwrite_output_dir, command=self.name, **info)
        self.state.wait_for_everyone()

    def run(self) -> dict[str, Any]:
        """Run every step; returns the held-out report on the main process, `{}` on the others."""
        self.prepare_output()
        prepare_wandb(self.training_args.report_to, announce=self.is_main)
        logger.info("loading %s", self.model_args.model_name_or_path)
        self._timed("load_model_s", self.load)
        self._timed("data_s", self.load_data)
        self.add_tokens_and_peft()
        self.tag_data()
        self.trainer = self.build_trainer()
        self.add_probe_callback()
        self._timed("train_s", self.train)
        self.save()
        report: dict[str, Any] = {}
        if self.trainer.is_world_process_zero():
            report = self._timed("eval_s", self.evaluate)
            self.calibrate(report)
            self.report(report)
        self.state.wait_for_everyone()
        finish_wandb()
        return report
