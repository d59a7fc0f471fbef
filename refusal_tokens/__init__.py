"""refusal-tokens: per-category refusal tokens for TRL and PEFT, calibratable after training."""

from .inference import (
    ParsedGeneration,
    build_chat_prompts,
    first_token_probabilities,
    parse_generation,
    parse_generations,
)
from .peft_utils import (
    count_parameters,
    embeddings_are_tied,
    expose_output_bias,
    get_refusal_lora_config,
    get_refusal_peft_model,
)
from .processor import RefusalTokenLogitsProcessor, assistant_header_ids
from .settings import RefusalSettings
from .tagging import TaggingError, detect_format, tag_dataset, tag_example
from .taxonomy import PRESETS, RESPOND_LABEL, RESPOND_TOKEN, RefusalCategory, RefusalTaxonomy, get_taxonomy
from .tokens import RefusalTokenIds, add_refusal_tokens, load_taxonomy

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "RESPOND_LABEL",
    "RESPOND_TOKEN",
    "ParsedGeneration",
    "RefusalCategory",
    "RefusalSettings",
    "RefusalTaxonomy",
    "RefusalTokenIds",
    "RefusalTokenLogitsProcessor",
    "TaggingError",
    "add_refusal_tokens",
    "assistant_header_ids",
    "build_chat_prompts",
    "count_parameters",
    "detect_format",
    "embeddings_are_tied",
    "expose_output_bias",
    "first_token_probabilities",
    "get_refusal_lora_config",
    "get_refusal_peft_model",
    "get_taxonomy",
    "load_taxonomy",
    "parse_generation",
    "parse_generations",
    "tag_dataset",
    "tag_example",
]
