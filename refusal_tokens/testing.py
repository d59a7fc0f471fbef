"""Helpers for tests, examples and smoke runs without hub access: tiny tokenizers and models built locally.

Re-exported from `refusal_tokens.inference.builtin`, where the `builtin:tiny-random` model is built from them.
"""

from .inference.builtin import CHATML_TEMPLATE, LLAMA3_TEMPLATE, build_tiny_model, build_tiny_tokenizer

__all__ = ["CHATML_TEMPLATE", "LLAMA3_TEMPLATE", "build_tiny_model", "build_tiny_tokenizer"]
