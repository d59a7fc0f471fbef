"""`RefusalTokenLogitsProcessor`: per-category thresholds or scales on the first assistant token."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessor

from ..settings import RefusalSettings, threshold_choice
from ..tokens import RefusalTokenIds
from .prompts import assistant_header_ids


class RefusalTokenLogitsProcessor(LogitsProcessor):
    r"""Apply per-category refusal thresholds or scales to the first assistant token.

    In `"threshold"` mode (Jain et al., "Refusal Tokens") the first position is decided outright: the most probable
    category whose softmax probability is at least its threshold tau_c is emitted (with `rule="top"` in the settings,
    the most probable category if it passes its own threshold), otherwise `[respond]` is forced.
    Forcing `[respond]` (rather than only banning refusal tokens) keeps a trained model from starting with junk. In
    `"scale"` mode each category token's probability is multiplied by s_c (log s_c added to its logit) and decoding
    (greedy, sampling or beam search) continues as usual.

    The first position is found without state, so one processor can serve many `generate()` calls: either every row
    whose ids end with the chat template's assistant header (robust to left padding and beams), or, with
    `prompt_length`, the step whose input length equals it. Everything is vectorised over the batch with index
    tensors built once per device; `scores` is never modified in place and nothing synchronises with the host.

    Args:
        token_ids (`RefusalTokenIds`): Ids of `[respond]` and the category tokens (see `add_refusal_tokens`).
        settings (`RefusalSettings`, `dict` or path, *optional*): Thresholds or scales per category/branch; a
            YAML/JSON file path or a mapping is loaded with `RefusalSettings`. Defaults to thresholds of 0.5.
        assistant_header_ids (`Sequence[int]`, *optional*): Ids that end every prompt at the first assistant
            position (see :func:`assistant_header_ids`).
        prompt_length (`int`, *optional*): Alternative to `assistant_header_ids`: the padded prompt length of the
            batch passed to `generate()`.
        suppress_later (`bool`, *optional*, defaults to `True`): Forbid the respond/refusal tokens at every other
            position, where they have no meaning.
        vocab_size (`int`, *optional*): If given, token ids are checked against it at construction.

    Example:

    ```python
    >>> from refusal_tokens import add_refusal_tokens
    >>> from refusal_tokens.testing import build_tiny_model, build_tiny_tokenizer
    >>> tokenizer = build_tiny_tokenizer()  # offline stand-ins for a hub model and its tokenizer
    >>> model = build_tiny_model(tokenizer)
    >>> from refusal_tokens import RefusalTokenLogitsProcessor, RefusalSettings, build_chat_prompts
    >>> _ = add_refusal_tokens(model, tokenizer, "coconot")
    >>> processor = RefusalTokenLogitsProcessor.from_tokenizer(
    ...     tokenizer, RefusalSettings(mode="threshold", categories={"humanizing": 0.2})
    ... )
    >>> tokenizer.padding_side = "left"
    >>> inputs = tokenizer(build_chat_prompts(tokenizer, ["Hi there"]), return_tensors="pt", add_special_tokens=False)
    >>> out = model.generate(**inputs, logits_processor=[processor], max_new_tokens=4, do_sample=False)
    >>> first = tokenizer.convert_ids_to_tokens(int(out[0, inputs["input_ids"].shape[1]]))
    >>> first.startswith(("[respond]", "[refuse:"))  # every answer starts with a token of the taxonomy
    True
    ```
    """

    def __init__(
        self,
        token_ids: RefusalTokenIds,
        settings: RefusalSettings | dict | str | os.PathLike | None = None,
        *,
        assistant_header_ids: Sequence[int] | None = None,
        prompt_length: int | None = None,
        suppress_later: bool = True,
        vocab_size: int | None = None,
    ) -> None:
        if settings is None:
            settings = RefusalSettings()
        elif isinstance(settings, dict):
            settings = RefusalSettings.from_dict(settings)
        elif isinstance(settings, (str, os.PathLike)):
            settings = RefusalSettings.from_file(settings)
        if not isinstance(settings, RefusalSettings):
            raise ValueError(
                f"settings must be RefusalSettings, a dict or a file path, got {type(settings).__name__}."
            )
        if (assistant_header_ids is None) == (prompt_length is None):
            raise ValueError(
                "Give exactly one of `assistant_header_ids` (chat prompts; see assistant_header_ids(tokenizer)) or "
                "`prompt_length` (the padded input length passed to generate())."
            )
        if prompt_length is not None and (not isinstance(prompt_length, int) or prompt_length < 1):
            raise ValueError(f"prompt_length={prompt_length!r} must be a positive int.")
        if assistant_header_ids is not None:
            assistant_header_ids = [int(i) for i in assistant_header_ids]
            if not assistant_header_ids:
                raise ValueError("assistant_header_ids is empty.")
        all_ids = token_ids.all_ids
        if min(all_ids) < 0:
            raise ValueError(f"Refusal token ids {all_ids} contain a negative id.")
        if vocab_size is not None and max(all_ids) >= vocab_size:
            raise ValueError(
                f"Refusal token id {max(all_ids)} lies outside the vocabulary of size {vocab_size}; resize the "
                "model's embeddings (add_refusal_tokens does) or check the tokenizer."
            )
        self.token_ids = token_ids
        self.settings = settings
        self.values = settings.resolve(token_ids.taxonomy)
        self.mode = settings.mode
        self.rule = settings.rule
        self.prompt_length = prompt_length
        self.header = assistant_header_ids
        self.suppress_later = suppress_later
        self._max_id = max(all_ids)
        self._cache: dict[tuple, dict[str, torch.Tensor]] = {}

    @classmethod
    def from_tokenizer(
        cls, tokenizer: Any, settings: RefusalSettings | dict | str | os.PathLike | None = None, **kwargs: Any
    ) -> RefusalTokenLogitsProcessor:
        """Build the processor from a tokenizer that carries the refusal tokens and a chat template.

        Args:
            tokenizer: Tokenizer prepared by `add_refusal_tokens` or reloaded from such a checkpoint.
            settings: As in the constructor.
            **kwargs: Passed to the constructor (e.g. `taxonomy=` is not accepted here: the tokenizer's is used;
                `prompt_length=` replaces header detection).
        """
        token_ids = RefusalTokenIds.from_tokenizer(tokenizer)
        if "prompt_length" not in kwargs and "assistant_header_ids" not in kwargs:
            kwargs["assistant_header_ids"] = assistant_header_ids(tokenizer)
        return cls(token_ids, settings, **kwargs)

    def _tensors(self, scores: torch.Tensor) -> dict[str, torch.Tensor]:
        key = (scores.device, scores.dtype, scores.shape[-1])
        cached = self._cache.get(key)
        if cached is None:
            dev = scores.device

            def put(values, dtype):
                # A plain torch.tensor(..., device="cuda") copies from pageable memory and blocks the host;
                # a pinned, non-blocking copy is queued on the stream like any kernel.
                t = torch.tensor(values, dtype=dtype)
                return t.pin_memory().to(dev, non_blocking=True) if dev.type == "cuda" else t.to(dev)

            cat_ids = put(self.token_ids.category_ids, torch.long)
            cached = {
                "cat_ids": cat_ids,
                "all_ids": put(self.token_ids.all_ids, torch.long),
                "respond": put(self.token_ids.respond_id, torch.long),
            }
            if self.header is not None:
                cached["header"] = put(self.header, torch.long)
            if self.mode == "threshold":
                cached["tau"] = put(self.values, torch.float32)
            else:
                # respond keeps its logit (log 1 = 0); each category gets log s_c.
                cached["log_s"] = put([0.0] + [math.log(v) if v > 0 else -math.inf for v in self.values], scores.dtype)
            self._cache[key] = cached
        return cached

    def _decide(self, scores: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
        """Threshold mode: the token each row must start with, shape (rows, 1)."""
        # softmax over the whole vocabulary (measured faster than logsumexp + gather on CPU, same on GPU).
        cat_p = scores.float().softmax(dim=-1).index_select(1, t["cat_ids"])  # (rows, C)
        passed, best = threshold_choice(cat_p, t["tau"], self.rule)
        return torch.where(passed, t["cat_ids"][best], t["respond"]).unsqueeze(1)

    def _later(self, scores: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores for a position that is not the first: the respond/refusal tokens forbidden if asked."""
        return scores.index_fill(1, t["all_ids"], -math.inf) if self.suppress_later else scores

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._max_id >= scores.shape[-1]:
            raise ValueError(
                f"Refusal token id {self._max_id} lies outside the model's vocabulary of size {scores.shape[-1]}; "
                "resize the embeddings with add_refusal_tokens."
            )
        t = self._tensors(scores)
        if self.prompt_length is not None:
            # A comparison of Python ints (shapes): no host sync, and later steps skip the decision entirely.
            if input_ids.shape[1] != self.prompt_length:
                return self._later(scores, t)
            at_first = None
        else:
            k = t["header"].shape[0]
            if input_ids.shape[1] < k:
                return self._later(scores, t)
            at_first = (input_ids[:, -k:] == t["header"]).all(dim=-1, keepdim=True)  # (rows, 1)

        if self.mode == "threshold" and at_first is None:
            return torch.full_like(scores, -math.inf).scatter_(1, self._decide(scores, t), 0.0)
        # `out` is our own copy, so the in-place edits below never touch the caller's `scores`.
        out = scores.index_fill(1, t["all_ids"], -math.inf) if self.suppress_later else scores.clone()
        if self.mode == "scale":
            orig = scores.index_select(1, t["all_ids"])
            first_vals = orig + t["log_s"]
            vals = (
                first_vals
                if at_first is None
                else torch.where(at_first, first_vals, out.index_select(1, t["all_ids"]))
            )
            return out.index_copy_(1, t["all_ids"], vals)
        choice = self._decide(scores, t)
        # Rows at the first position: -inf everywhere but the chosen token. Other rows: unchanged (the scatter
        # writes back the value already there).
        keep = out.gather(1, choice)
        # Adding a (rows, 1) column of -inf/0 is ~10x faster than a broadcast masked_fill_ on CPU.
        out.add_(torch.where(at_first, -math.inf, 0.0).to(out.dtype))
        return out.scatter_(1, choice, torch.where(at_first, torch.zeros_like(keep), keep))
