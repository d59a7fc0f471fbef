"""Recipe configuration: dataclasses whose fields are exactly the keys of a recipe YAML, and the strict parser.

A recipe YAML is flat, as with TRL's scripts: model keys, data keys, evaluation keys and any `SFTConfig` /
`DPOConfig` key side by side. The model and data arguments extend TRL's own `ModelConfig` and `ScriptArguments`, so
their fields (`model_name_or_path`, `dtype`, `use_peft`, `lora_r`, ..., `dataset_name`, `dataset_train_split`, ...)
mean and default to what they do in TRL; the refusal-token fields are added beside them. Unknown keys in the YAML or
on the command line are an error; command-line flags override the YAML.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trl import ModelConfig, ScriptArguments

from ..data.formats import LabelColumns
from ..data.mixture import RefusalDatasetConfig
from ..utils.config import parse_dataclasses

EMBEDDING_MODES = ("token_rows", "modules_to_save", "none")


@dataclass
class RefusalModelArguments(ModelConfig):
    """Which model to train and how: TRL's `ModelConfig` (model, dtype, PEFT/LoRA) plus the refusal tokens' rows.

    With `use_peft: true` (every shipped config) the recipes train LoRA plus only the rows of the new tokens (PEFT's
    `trainable_token_indices`); with `use_peft: false` (TRL's default) every weight is trained (full fine-tuning).

    Parameters beyond `ModelConfig`:
        embedding_pad_to_multiple_of (`int`, *optional*): Resize the embedding matrix to a multiple of this.
        token_init (`str`, *optional*, defaults to `"description"`): Initial rows of the new tokens.
        token_learning_rate (`float`, *optional*): Learning rate of the token rows (their own optimizer group).
        embeddings (`str`, *optional*, defaults to `"token_rows"`): How the new tokens are trained under PEFT.
    """

    embedding_pad_to_multiple_of: int | None = field(
        default=None, metadata={"help": "Resize the embedding matrix to a multiple of this (e.g. 64) after adding."}
    )
    token_init: str = field(
        default="description",
        metadata={
            "help": "Initial rows of the new tokens: description (mean embedding of the category description), "
            "mean, or none.",
            "choices": ["description", "mean", "none"],
        },
    )
    token_learning_rate: float | None = field(
        metadata={
            "help": "Learning rate of the new token rows (an optimizer group of their own, of the optimizer `optim` "
            "names); unset: the trainer's learning_rate. New rows need ~1e-3 to 5e-3, LoRA much less."
        },
        default=None,
    )
    embeddings: str = field(
        default="token_rows",
        metadata={
            "help": "How the new tokens are trained under PEFT: token_rows (only their rows, "
            "trainable_token_indices), modules_to_save (whole embedding and head) or none.",
            "choices": list(EMBEDDING_MODES),
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.model_name_or_path:
            raise ValueError(
                "model_name_or_path is required: a hub id, a local path or builtin:smollm2-135m-instruct."
            )
        if self.embeddings not in EMBEDDING_MODES:
            raise ValueError(f"embeddings={self.embeddings!r}: use one of {EMBEDDING_MODES}.")
        if self.token_init not in ("description", "mean", "none"):
            raise ValueError(f"token_init={self.token_init!r}: use description, mean or none.")
        if self.lora_r < 1:
            raise ValueError(f"lora_r={self.lora_r} must be >= 1.")
        if self.load_in_8bit or self.load_in_4bit:
            raise ValueError(
                "load_in_8bit / load_in_4bit: quantised base models are not supported by the refusal-token recipes "
                "(the embedding matrix is resized and its new rows trained); load the model in bfloat16 instead."
            )
        if self.lora_task_type != "CAUSAL_LM":
            raise ValueError(f"lora_task_type={self.lora_task_type!r}: refusal tokens need a causal LM (CAUSAL_LM).")
        if not self.use_peft and self.token_learning_rate is not None:
            raise ValueError(
                "token_learning_rate needs use_peft: true (only PEFT keeps the token rows as parameters of their "
                "own); unset it, or set use_peft: true."
            )

    def torch_dtype(self) -> Any:
        """The dtype to load the weights in (`"auto"` or a `torch.dtype`)."""
        import torch

        return "auto" if self.dtype in (None, "auto") else getattr(torch, self.dtype)

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `from_pretrained` for the base model: dtype, revision, attention implementation."""
        kwargs: dict[str, Any] = {"dtype": self.torch_dtype()}
        if self.model_revision and self.model_revision != "main":
            kwargs["revision"] = self.model_revision
        if self.attn_implementation is not None:
            kwargs["attn_implementation"] = self.attn_implementation
        return kwargs

    def lora_kwargs(self) -> dict[str, Any]:
        """The `LoraConfig` fields of `ModelConfig` beyond rank, alpha, dropout and target modules."""
        kwargs: dict[str, Any] = {"use_rslora": self.use_rslora, "use_dora": self.use_dora}
        if self.lora_target_parameters:
            kwargs["target_parameters"] = self.lora_target_parameters
        if self.lora_modules_to_save:
            kwargs["modules_to_save"] = self.lora_modules_to_save
        return kwargs


@dataclass
class RefusalDataArguments(ScriptArguments):
    """The taxonomy and the data: TRL's `ScriptArguments` (dataset name, config, splits) plus the built-in synthetic
    corpus, the label columns and the classifier."""

    taxonomy: str = field(
        default="coconot",
        metadata={"help": "Taxonomy preset (cannot-should-not, coconot, single) or a YAML/JSON taxonomy file."},
    )
    test_size: float = field(
        default=0.1, metadata={"help": "Fraction of the train split held out when there is no test split."}
    )
    label_column: str = field(
        default="refusal_label", metadata={"help": "Column holding 'respond' or a category name per row."}
    )
    chosen_label_column: str = field(
        default="chosen_label", metadata={"help": "Preference data (DPO recipe): label column of chosen responses."}
    )
    rejected_label_column: str = field(
        default="rejected_label", metadata={"help": "Preference data (DPO recipe): label column of rejected ones."}
    )
    classifier: str | None = field(
        default=None,
        metadata={
            "help": "Label rows with a classifier instead of label_column: auto, keyword, embedding, cross, a "
            ".safetensors file, hf:<checkpoint>, or module:function (a callable (prompts, responses) -> labels; "
            "this imports and runs that module's code, so name only code you trust)."
        },
    )
    datasets: list[RefusalDatasetConfig] = field(
        default_factory=list,
        metadata={
            "help": "Labelled datasets to train and test on (YAML list; TRL's dataset-mixture entries: path, name, "
            "data_dir, data_files, split, plus part, label or label_column + label_map, response_column, kind, "
            "max_rows, corpus). path may be builtin:coconot, the built-in real corpus. See refusal_tokens.data."
            "mixture."
        },
    )
    synthetic: bool | None = field(
        default=None,
        metadata={
            "help": "Add the built-in synthetic corpus (its train, validation and test splits) to the data; unset: "
            "only when neither dataset_name nor datasets is given."
        },
    )
    mix_targets: dict[str, float] | None = field(
        default=None,
        metadata={
            "help": "Share of each class (respond and every category) in the training rows of `datasets` (sampled "
            "as `refusal-tokens mix` does: down-sampled, or rows repeated); unset: the rows as they come."
        },
    )
    mix_size: int | None = field(
        default=None, metadata={"help": "Training rows of `datasets` after mix_targets; unset: as many as read."}
    )
    synthetic_train_per_category: int = field(
        default=64, metadata={"help": "Synthetic corpus: refusal rows per category in the train split."}
    )
    synthetic_train_benign: int = field(default=96, metadata={"help": "Synthetic corpus: benign train rows."})
    synthetic_train_contrast: int = field(
        default=96, metadata={"help": "Synthetic corpus: contrast (look-alike, should answer) train rows."}
    )
    synthetic_eval_fraction: float = field(
        default=0.25, metadata={"help": "Synthetic corpus: validation and test size as a fraction of train."}
    )
    synthetic_seed: int = field(default=0, metadata={"help": "Synthetic corpus: seed of template split and sampling."})
    responses: str = field(
        default="self",
        metadata={
            "help": "Answers of benign/contrast synthetic rows: self (the base model's own greedy answers, cached) "
            "or template (fast, fixed phrases).",
            "choices": ["self", "template"],
        },
    )
    distill_max_new_tokens: int = field(default=48, metadata={"help": "Self-distillation: answer length limit."})
    distill_batch_size: int = field(default=32, metadata={"help": "Self-distillation: prompts per generate() call."})

    def __post_init__(self) -> None:
        self.datasets = [RefusalDatasetConfig.from_dict(d, i) for i, d in enumerate(self.datasets or [], 1)]
        if self.datasets and self.dataset_name:
            raise ValueError(
                "give either dataset_name (one labelled dataset) or datasets (a list of entries), not both; move "
                f"{self.dataset_name!r} into datasets as an entry."
            )
        if self.mix_targets is not None and not self.datasets:
            raise ValueError("mix_targets re-weights the rows of `datasets`; list the datasets, or unset it.")
        if self.mix_size is not None and (self.mix_targets is None or self.mix_size < 1):
            raise ValueError(f"mix_size={self.mix_size}: needs mix_targets and must be >= 1.")
        if self.datasets and not any(d.part == "train" for d in self.datasets):
            raise ValueError("datasets: no entry has part: train, so there is nothing to train on.")
        if (
            self.datasets
            and not self.use_synthetic()
            and not any(d.part == "test" or d.holdout_fraction for d in self.datasets)
        ):
            raise ValueError(
                "datasets: no entry has part: test and the synthetic corpus is off, so there is no held-out table; "
                "add a test entry or synthetic: true."
            )
        if self.responses not in ("self", "template"):
            raise ValueError(f"responses={self.responses!r}: use 'self' or 'template'.")
        if not 0 < self.test_size < 1:
            raise ValueError(f"test_size={self.test_size} must lie in (0, 1).")
        if self.dataset_streaming:
            raise ValueError(
                "dataset_streaming: the recipes hold out a test split and tag every row before training, so they "
                "read datasets in memory; stream with `refusal-tokens mix` (mix_streams) instead."
            )

    def use_synthetic(self) -> bool:
        """Whether the built-in synthetic corpus is part of the data (`synthetic`, or by default without data)."""
        if self.synthetic is not None:
            return self.synthetic
        return not self.dataset_name and not self.datasets

    def describe_data(self) -> list[str]:
        """One line per data source of the run (for the run stamp and the exported model card)."""
        lines = []
        if self.dataset_name:
            lines.append(f"{self.dataset_name} (split {self.dataset_train_split})")
        for entry in self.datasets or []:
            files = f" {entry.data_files}" if entry.data_files else ""
            label = f"label {entry.label}" if entry.label else f"labels from {entry.label_column or 'label_column'}"
            lines.append(f"{entry.path}{files} (split {entry.split} -> {entry.part}; {label})")
        if self.mix_targets:
            lines.append(f"mixed to {self.mix_targets}" + (f", {self.mix_size} rows" if self.mix_size else ""))
        if self.use_synthetic():
            lines.append(
                f"refusal-tokens synthetic corpus ({self.synthetic_train_per_category} per category, "
                f"{self.synthetic_train_benign} benign, {self.synthetic_train_contrast} contrast prompts)"
            )
        return lines

    def label_columns(self) -> LabelColumns:
        """The label columns as a `LabelColumns`."""
        return LabelColumns(self.label_column, self.chosen_label_column, self.rejected_label_column)


@dataclass
class RefusalEvalArguments:
    """The held-out evaluation printed and saved at the end of a recipe, the probes and the calibration step."""

    default_threshold: float = field(
        default=0.5, metadata={"help": "Threshold of every category in the saved default thresholds file."}
    )
    eval_max_rows: int | None = field(default=None, metadata={"help": "Evaluate on at most this many test rows."})
    agreement_prompts: int = field(
        default=32, metadata={"help": "Benign test prompts whose answers after [respond] are compared to the base's."}
    )
    agreement_max_new_tokens: int = field(default=24, metadata={"help": "Tokens compared per answer."})
    probe_every_n_steps: int | None = field(
        default=None,
        metadata={
            "help": "RefusalRateCallback: also log per-category refusal metrics of the validation probes every N "
            "steps (they are always logged on evaluation)."
        },
    )
    probe_max_rows: int = field(default=256, metadata={"help": "RefusalRateCallback: validation rows used as probes."})
    min_refusal_rate: float | None = field(
        default=None,
        metadata={"help": "Drift guard: warn when a category's probe refusal rate falls below this floor."},
    )
    stop_on_drift: bool = field(default=False, metadata={"help": "Drift guard: stop training when a floor breaks."})
    calibration_targets: str | None = field(
        default=None,
        metadata={
            "help": "Targets YAML (refusal_rates per category and/or max_over_refusal): after training, solve "
            "thresholds on half of the test split, measure them on the other half, write calibration/ in output_dir."
        },
    )
    calibration_corpus: str | None = field(
        default=None,
        metadata={
            "help": "Calibrate on the test rows of this corpus only (e.g. coconot, the built-in real corpus, when the "
            "synthetic corpus is tested beside it); unset: every test row."
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace the outputs of an earlier run in output_dir (a non-empty output_dir is refused)."},
    )
    results_file: str = field(
        default="refusal_eval.json", metadata={"help": "File name (in output_dir) of the evaluation results."}
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.default_threshold <= 1.0:
            raise ValueError(f"default_threshold={self.default_threshold} must lie in [0, 1].")
        name = self.results_file
        # written inside output_dir: a path would write elsewhere (or over another run's files)
        if not name or name != os.path.basename(name) or name in (".", "..") or "\\" in name:
            raise ValueError(f"results_file={name!r} must be a plain file name (it is written inside output_dir).")


RECIPE_KEY_FIELDS = (
    "model_name_or_path",
    "use_peft",
    "taxonomy",
    "dataset_name",
    "output_dir",
    "max_steps",
    "learning_rate",
    "token_learning_rate",
    "calibration_targets",
    "report_to",
)
"""The fields `refusal-tokens sft --help` lists (`--help_all` lists every field)."""


def parse_recipe_args(
    dataclass_types: Sequence[type], argv: Sequence[str] | None = None, *, prog: str = "refusal-tokens"
) -> tuple[Any, ...]:
    """Parse `--config file.yaml` plus command-line flags into `dataclass_types`, strictly (see `parse_dataclasses`).

    Args:
        dataclass_types (`Sequence[type]`): The recipe's dataclasses, e.g. model, data, eval and `SFTConfig`.
        argv (`Sequence[str]`, *optional*): Arguments; defaults to `sys.argv[1:]`.
        prog (`str`, *optional*): Program name in messages.

    Returns:
        One instance per dataclass type.

    Raises:
        `ConfigError`: on an unknown YAML key or command-line flag, naming it.
    """
    description = (
        "Train a chat model with refusal tokens (LoRA plus the token rows through PEFT, TRL's trainer), evaluate it "
        "on held-out prompts and save the adapter, tokenizer, taxonomy and default thresholds."
    )
    return parse_dataclasses(dataclass_types, argv, prog=prog, description=description, key_fields=RECIPE_KEY_FIELDS)
