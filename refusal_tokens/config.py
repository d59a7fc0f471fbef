"""Recipe configuration: dataclasses whose fields are exactly the keys of a recipe YAML, and a strict parser.

A recipe YAML is flat, as with TRL's scripts: model keys, data keys, evaluation keys and any `SFTConfig` /
`DPOConfig` key side by side. Unknown keys in the YAML or on the command line are an error; command-line flags
override the YAML.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class RefusalModelArguments:
    """Which model to train, and how (LoRA plus the refusal token rows)."""

    model_name_or_path: str = field(
        default="builtin:smollm2-135m-instruct",
        metadata={
            "help": "Hugging Face hub id, local path, or a built-in model such as builtin:smollm2-135m-instruct."
        },
    )
    dtype: str = field(
        default="float32",
        metadata={"help": "Weights dtype for loading: auto, float32, bfloat16 or float16.", "choices": list(DTYPES)},
    )
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
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scaling numerator)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "LoRA target modules; 'all-linear' for every linear layer but the head."},
    )
    token_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the new token rows (AdamW param group); unset: the trainer's learning_rate. "
            "New rows need ~1e-3 to 5e-3, LoRA much less."
        },
    )
    embeddings: str = field(
        default="token_rows",
        metadata={
            "help": "How the new tokens are trained: token_rows (only their rows, PEFT trainable_token_indices), "
            "modules_to_save (whole embedding and head) or none.",
            "choices": ["token_rows", "modules_to_save", "none"],
        },
    )

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r}: use one of {DTYPES}.")
        if self.lora_r < 1:
            raise ValueError(f"lora_r={self.lora_r} must be >= 1.")

    def torch_dtype(self) -> Any:
        import torch

        return "auto" if self.dtype == "auto" else getattr(torch, self.dtype)

    def target_modules(self) -> str | list[str]:
        return "all-linear" if list(self.lora_target_modules) == ["all-linear"] else list(self.lora_target_modules)


@dataclass
class RefusalDataArguments:
    """The taxonomy and the data: the built-in synthetic corpus, or a real dataset in a TRL format."""

    taxonomy: str = field(
        default="coconot",
        metadata={"help": "Taxonomy preset (cannot-should-not, coconot, single) or a YAML/JSON taxonomy file."},
    )
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Unset: the built-in synthetic corpus. Otherwise a local JSON/JSONL/CSV/parquet file, a folder "
            "saved with save_to_disk, or a hub dataset id, in a TRL format (messages, prompt/completion)."
        },
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str = field(
        default="test", metadata={"help": "Held-out split to evaluate on; made from the train split if missing."}
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
            "help": "Label rows with a classifier instead of label_column: keyword, embedding, a head .safetensors "
            "file, hf:<checkpoint>, or module:function (a callable (prompts, responses) -> labels)."
        },
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
        if self.responses not in ("self", "template"):
            raise ValueError(f"responses={self.responses!r}: use 'self' or 'template'.")
        if not 0 < self.test_size < 1:
            raise ValueError(f"test_size={self.test_size} must lie in (0, 1).")


@dataclass
class RefusalEvalArguments:
    """The held-out evaluation printed and saved at the end of a recipe."""

    default_threshold: float = field(
        default=0.5, metadata={"help": "Threshold of every category in the saved default thresholds file."}
    )
    eval_max_rows: int | None = field(default=None, metadata={"help": "Evaluate on at most this many test rows."})
    agreement_prompts: int = field(
        default=32,
        metadata={
            "help": "Benign test prompts on which greedy answers after [respond] are compared to the base "
            "model's (0 skips)."
        },
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
    results_file: str = field(
        default="refusal_eval.json", metadata={"help": "File name (in output_dir) of the evaluation results."}
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.default_threshold <= 1.0:
            raise ValueError(f"default_threshold={self.default_threshold} must lie in [0, 1].")


def parse_recipe_args(dataclass_types: Sequence[type], argv: Sequence[str] | None = None) -> tuple[Any, ...]:
    """Parse `--config file.yaml` plus command-line flags into `dataclass_types`, strictly.

    Args:
        dataclass_types (`Sequence[type]`): The recipe's dataclasses, e.g. model, data, eval and `SFTConfig`.
        argv (`Sequence[str]`, *optional*): Arguments; defaults to `sys.argv[1:]`.

    Returns:
        One instance per dataclass type.

    Raises:
        `ValueError`: on an unknown YAML key or command-line flag, naming it.
    """
    import difflib
    import sys
    from dataclasses import fields

    import yaml
    from trl import TrlParser

    argv = list(argv) if argv is not None else sys.argv[1:]
    if "--config" in argv:
        # Check the YAML's keys before any dataclass is built, so a typo is reported as such (and not hidden behind
        # a later validation error of a default value).
        path = argv[argv.index("--config") + 1] if argv.index("--config") + 1 < len(argv) else None
        if path is None:
            raise ValueError("--config needs a YAML file path.")
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f) or {}
        if not isinstance(config, dict):
            raise ValueError(f"{path}: expected a YAML mapping of recipe keys, got {type(config).__name__}.")
        known = {f.name for t in dataclass_types for f in fields(t)} | {"env"}
        unknown = sorted(set(config) - known)
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, known, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            names = ", ".join(t.__name__ for t in dataclass_types)
            raise ValueError(f"{path}: unknown keys {', '.join(hints)}; every key must be a field of {names}.")
    parser = TrlParser(list(dataclass_types))
    return tuple(parser.parse_args_and_config(args=argv))
