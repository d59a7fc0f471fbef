"""Inference: chat prompts, the logits processor, first-token probabilities, parsing generations, loading models.

This path imports torch and transformers only (no trl, datasets, accelerate, wandb or matplotlib), so a serving
process that only needs `RefusalTokenLogitsProcessor` stays light.
"""

from .models import load_model_and_tokenizer, load_refusal_model
from .parsing import ParsedGeneration, parse_generation, parse_generations
from .processor import RefusalTokenLogitsProcessor
from .prompts import Prompt, assistant_header_ids, build_chat_prompts
from .scoring import first_token_probabilities, greedy_new_token_ids

__all__ = [
    "ParsedGeneration",
    "Prompt",
    "RefusalTokenLogitsProcessor",
    "assistant_header_ids",
    "build_chat_prompts",
    "first_token_probabilities",
    "greedy_new_token_ids",
    "load_model_and_tokenizer",
    "load_refusal_model",
    "parse_generation",
    "parse_generations",
]
