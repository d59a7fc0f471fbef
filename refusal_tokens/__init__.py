"""refusal-tokens: per-category refusal tokens for TRL and PEFT, calibratable after training."""

from .calibration import CalibrationTargets, calibrate_thresholds, calibration_report
from .callbacks import RefusalRateCallback
from .classifiers import (
    CallableRefusalClassifier,
    EmbeddingRefusalClassifier,
    HFRefusalClassifier,
    KeywordRefusalClassifier,
    RefusalClassifier,
    SentenceEmbedder,
    get_classifier,
    pair_features,
    train_embedding_head,
)
from .config import RefusalDataArguments, RefusalEvalArguments, RefusalModelArguments, parse_recipe_args
from .distill import generate_responses, self_distill_responses
from .dpo import run_dpo
from .evaluation import answer_agreement, evaluate_refusal_tokens, format_report
from .inference import (
    ParsedGeneration,
    build_chat_prompts,
    first_token_probabilities,
    parse_generation,
    parse_generations,
)
from .mixer import CompositionReport, audit_dataset, mix_datasets, mix_streams
from .models import load_model_and_tokenizer, load_refusal_model
from .peft_utils import (
    count_parameters,
    embeddings_are_tied,
    expose_output_bias,
    get_refusal_lora_config,
    get_refusal_peft_model,
)
from .processor import RefusalTokenLogitsProcessor, assistant_header_ids
from .settings import RefusalSettings
from .sft import run_sft
from .synthetic import SyntheticCorpusConfig, build_synthetic_corpus
from .tagging import TaggingError, detect_format, tag_dataset, tag_example
from .taxonomy import PRESETS, RESPOND_LABEL, RESPOND_TOKEN, RefusalCategory, RefusalTaxonomy, get_taxonomy
from .tokens import RefusalTokenIds, add_refusal_tokens, load_taxonomy
from .wandb_utils import prepare_wandb

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "RESPOND_LABEL",
    "RESPOND_TOKEN",
    "CalibrationTargets",
    "CallableRefusalClassifier",
    "CompositionReport",
    "EmbeddingRefusalClassifier",
    "HFRefusalClassifier",
    "KeywordRefusalClassifier",
    "ParsedGeneration",
    "RefusalCategory",
    "RefusalClassifier",
    "RefusalDataArguments",
    "RefusalEvalArguments",
    "RefusalModelArguments",
    "RefusalRateCallback",
    "RefusalSettings",
    "RefusalTaxonomy",
    "RefusalTokenIds",
    "RefusalTokenLogitsProcessor",
    "SentenceEmbedder",
    "SyntheticCorpusConfig",
    "TaggingError",
    "add_refusal_tokens",
    "answer_agreement",
    "assistant_header_ids",
    "audit_dataset",
    "build_chat_prompts",
    "build_synthetic_corpus",
    "calibrate_thresholds",
    "calibration_report",
    "count_parameters",
    "detect_format",
    "embeddings_are_tied",
    "evaluate_refusal_tokens",
    "expose_output_bias",
    "first_token_probabilities",
    "format_report",
    "generate_responses",
    "get_classifier",
    "get_refusal_lora_config",
    "get_refusal_peft_model",
    "get_taxonomy",
    "load_model_and_tokenizer",
    "load_refusal_model",
    "load_taxonomy",
    "mix_datasets",
    "mix_streams",
    "pair_features",
    "parse_generation",
    "parse_generations",
    "parse_recipe_args",
    "prepare_wandb",
    "run_dpo",
    "run_sft",
    "self_distill_responses",
    "tag_dataset",
    "tag_example",
    "train_embedding_head",
]
