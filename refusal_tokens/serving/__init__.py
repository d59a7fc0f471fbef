"""Serving a refusal-token model: the rule batched per request (`rule`) and its adapters for servers (`vllm`).

`rule` imports only torch and the saved contract; `serving.vllm` imports vLLM (its own environment) and is imported
only by name (`--logits-processors refusal_tokens.serving.vllm:RefusalTokensLogitsProcessor`).
"""

from .rule import REQUEST_KEY, RowSettings, ServingPolicy, check_request, pack_rows, refusal_logits

__all__ = ["REQUEST_KEY", "RowSettings", "ServingPolicy", "check_request", "pack_rows", "refusal_logits"]
