"""refusal-tokens: per-category refusal tokens for TRL and PEFT, calibratable after training.

The package is loaded lazily, as TRL's is: `import refusal_tokens` imports nothing but this file, and each name below
imports its own subpackage on first use, so `from refusal_tokens import RefusalTokenLogitsProcessor` in a serving
process never imports trl, datasets, accelerate, wandb or matplotlib.

Layout (imports run one way, down this list; `tests/test_architecture.py` checks it):

- the saved contract: `taxonomy`, `tokens`, `settings` (with the decision rule), `peft`, and `utils`;
- `inference` (prompts, processor, scoring, parsing, models), `data` (formats, loading, tagging, mixing,
  `synthetic`), `classifiers`, `evaluation` (metrics, agreement, calibration, plots);
- `training` (callbacks, distillation, optimizer, W&B);
- `recipes` (arguments, the skeleton, SFT, DPO);
- `cli` (one module per command).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_import_structure: dict[str, list[str]] = {
    "taxonomy": ["PRESETS", "RESPOND_LABEL", "RESPOND_TOKEN", "RefusalCategory", "RefusalTaxonomy", "get_taxonomy"],
    "tokens": ["RefusalTokenIds", "add_refusal_tokens", "load_taxonomy"],
    "settings": ["RefusalSettings"],
    "peft": ["count_parameters", "embeddings_are_tied", "expose_output_bias", "get_refusal_lora_config",
             "get_refusal_peft_model"],
    "inference": ["ParsedGeneration", "RefusalTokenLogitsProcessor", "assistant_header_ids", "build_chat_prompts",
                  "first_token_probabilities", "load_model_and_tokenizer", "load_refusal_model", "parse_generation",
                  "parse_generations"],
    "data": ["CompositionReport", "LabelColumns", "TaggingError", "audit_dataset", "detect_format", "mix_datasets",
             "mix_streams", "tag_dataset", "tag_example"],
    "data.synthetic": ["SyntheticCorpusConfig", "build_synthetic_corpus", "build_synthetic_preferences"],
    "classifiers": ["CallableRefusalClassifier", "CrossEncoderRefusalClassifier", "EmbeddingRefusalClassifier",
                    "HFRefusalClassifier", "KeywordRefusalClassifier", "RefusalClassifier", "SentenceEmbedder",
                    "get_classifier", "pair_features", "train_cross_encoder", "train_embedding_head"],
    "evaluation": ["CalibrationTargets", "answer_agreement", "calibrate_thresholds", "calibration_report",
                   "evaluate_refusal_tokens", "format_report", "run_calibration"],
    "training": ["RefusalRateCallback", "generate_responses", "prepare_wandb", "refusal_optimizer_groups",
                 "self_distill_responses"],
    "recipes": ["RefusalDataArguments", "RefusalEvalArguments", "RefusalModelArguments", "parse_recipe_args",
                "run_dpo", "run_sft"],
}  # fmt: skip

_name_to_module = {name: module for module, names in _import_structure.items() for name in names}
__all__ = sorted(_name_to_module)

if TYPE_CHECKING:
    from .classifiers import (
        CallableRefusalClassifier,
        CrossEncoderRefusalClassifier,
        EmbeddingRefusalClassifier,
        HFRefusalClassifier,
        KeywordRefusalClassifier,
        RefusalClassifier,
        SentenceEmbedder,
        get_classifier,
        pair_features,
        train_cross_encoder,
        train_embedding_head,
    )
    from .data import (
        CompositionReport,
        LabelColumns,
        TaggingError,
        audit_dataset,
        detect_format,
        mix_datasets,
        mix_streams,
        tag_dataset,
        tag_example,
    )
    from .data.synthetic import SyntheticCorpusConfig, build_synthetic_corpus, build_synthetic_preferences
    from .evaluation import (
        CalibrationTargets,
        answer_agreement,
        calibrate_thresholds,
        calibration_report,
        evaluate_refusal_tokens,
        format_report,
        run_calibration,
    )
    from .inference import (
        ParsedGeneration,
        RefusalTokenLogitsProcessor,
        assistant_header_ids,
        build_chat_prompts,
        first_token_probabilities,
        load_model_and_tokenizer,
        load_refusal_model,
        parse_generation,
        parse_generations,
    )
    from .peft import (
        count_parameters,
        embeddings_are_tied,
        expose_output_bias,
        get_refusal_lora_config,
        get_refusal_peft_model,
    )
    from .recipes import (
        RefusalDataArguments,
        RefusalEvalArguments,
        RefusalModelArguments,
        parse_recipe_args,
        run_dpo,
        run_sft,
    )
    from .settings import RefusalSettings
    from .taxonomy import PRESETS, RESPOND_LABEL, RESPOND_TOKEN, RefusalCategory, RefusalTaxonomy, get_taxonomy
    from .tokens import RefusalTokenIds, add_refusal_tokens, load_taxonomy
    from .training import (
        RefusalRateCallback,
        generate_responses,
        prepare_wandb,
        refusal_optimizer_groups,
        self_distill_responses,
    )


def __getattr__(name: str) -> Any:
    module = _name_to_module.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
