"""PEFT configuration that trains LoRA plus only the refusal-token rows of the embeddings.

`peft` itself is imported only when a config or model is built, so this module is part of the light core.
"""

from __future__ import annotations

from typing import Any

from .tokens import RefusalTokenIds

EMBEDDING_MODES = ("token_rows", "modules_to_save", "none")


def _module_name(model: Any, module: Any) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name
    raise ValueError(f"Could not find module {type(module).__name__} in the model.")


def embeddings_are_tied(model: Any) -> bool:
    """True if the output head shares its weight with the input embedding (SmolLM2, GPT-2 style)."""
    out = model.get_output_embeddings()
    return out is not None and out.weight is model.get_input_embeddings().weight


def get_refusal_lora_config(
    model: Any,
    token_ids: RefusalTokenIds,
    *,
    r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.05,
    target_modules: str | list[str] = "all-linear",
    embeddings: str = "token_rows",
    **lora_kwargs: Any,
) -> Any:
    """A `peft.LoraConfig` for refusal-token training.

    With `embeddings="token_rows"` (the default) only the rows of `[respond]` and the category tokens are trained,
    via PEFT's `trainable_token_indices`: for tied embeddings one shared set of rows, for untied ones the same rows
    of both the input embedding and the output head (the output side is what turns a row into a probability). With
    `embeddings="modules_to_save"` the whole input and output matrices are trained and saved instead (about 100x the
    trainable parameters and adapter size; see BENCHMARKS.md). `"none"` trains LoRA only, which cannot learn the new
    tokens and is there for ablations.

    Args:
        model (`PreTrainedModel`): The base model, already passed through `add_refusal_tokens`.
        token_ids (`RefusalTokenIds`): The ids returned by `add_refusal_tokens`.
        r (`int`, *optional*, defaults to 16): LoRA rank.
        lora_alpha (`int`, *optional*, defaults to 32): LoRA scaling.
        lora_dropout (`float`, *optional*, defaults to 0.05): LoRA dropout.
        target_modules (`str` or `list[str]`, *optional*, defaults to `"all-linear"`): LoRA targets.
        embeddings (`str`, *optional*, defaults to `"token_rows"`): `"token_rows"`, `"modules_to_save"` or `"none"`.
        **lora_kwargs: Any other `LoraConfig` field.

    Returns:
        `peft.LoraConfig` with `task_type="CAUSAL_LM"`.

    Example:

    ```python
    >>> from refusal_tokens import add_refusal_tokens
    >>> from refusal_tokens.testing import build_tiny_model, build_tiny_tokenizer
    >>> tokenizer = build_tiny_tokenizer()  # offline stand-ins for a hub model and its tokenizer
    >>> model = build_tiny_model(tokenizer)
    >>> ids = add_refusal_tokens(model, tokenizer, "coconot")
    >>> config = get_refusal_lora_config(model, ids, r=8)
    >>> peft_model = get_refusal_peft_model(model, config)
    >>> sorted(config.trainable_token_indices.values())[0] == ids.all_ids  # the token rows, trained beside LoRA
    True
    ```
    """
    from peft import LoraConfig

    if embeddings not in EMBEDDING_MODES:
        raise ValueError(f"embeddings={embeddings!r}: use one of {EMBEDDING_MODES}.")
    n_rows = model.get_input_embeddings().weight.shape[0]
    if max(token_ids.all_ids) >= n_rows:
        raise ValueError(
            f"Token id {max(token_ids.all_ids)} is outside the embedding matrix ({n_rows} rows): call "
            "add_refusal_tokens(model, tokenizer, taxonomy) before building the LoRA config."
        )
    tied = embeddings_are_tied(model)
    in_name = _module_name(model, model.get_input_embeddings())
    out_module = model.get_output_embeddings()
    out_name = _module_name(model, out_module) if out_module is not None else None
    extra: dict[str, Any] = {}
    if embeddings == "token_rows":
        ids = list(token_ids.all_ids)
        if tied or out_name is None:
            # PEFT ties the output head to the wrapped input rows: one shared (n_tokens, hidden) delta.
            extra["trainable_token_indices"] = {in_name: ids}
        else:
            extra["trainable_token_indices"] = {in_name: ids, out_name: ids}
    elif embeddings == "modules_to_save":
        extra["modules_to_save"] = [in_name] + ([out_name] if out_name else [])
        if tied:
            extra["ensure_weight_tying"] = True
    overlap = set(extra) & set(lora_kwargs)
    if overlap:
        raise ValueError(f"{sorted(overlap)} are set by embeddings={embeddings!r}; do not pass them as well.")
    return LoraConfig(
        task_type="CAUSAL_LM",
        r=r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=target_modules,
        **extra,
        **lora_kwargs,
    )


def get_refusal_peft_model(model: Any, config: Any, **kwargs: Any) -> Any:
    """`peft.get_peft_model`, made safe for TRL's fused LM-head loss.

    PEFT's `TrainableTokensWrapper` around the output head exposes `weight` (with the trained rows merged) but not
    `bias`, and TRL's fused loss reads `lm_head.bias`. The wrapper is given the wrapped head's own `bias` (`None` for
    virtually every causal LM), which keeps the loss identical to a plain forward pass.

    Args:
        model (`PreTrainedModel`): The base model (after `add_refusal_tokens`).
        config (`peft.PeftConfig`): E.g. from :func:`get_refusal_lora_config`.
        **kwargs: Passed to `peft.get_peft_model`.
    """
    from peft import get_peft_model

    peft_model = get_peft_model(model, config, **kwargs)
    expose_output_bias(peft_model)
    return peft_model


def expose_output_bias(model: Any) -> None:
    """Give a PEFT-wrapped output head a `bias` attribute mirroring the wrapped module's (see above)."""
    from peft.utils import TrainableTokensWrapper

    head = model.get_output_embeddings()
    if isinstance(head, TrainableTokensWrapper) and "bias" not in vars(head):
        # object.__setattr__: a plain attribute, not a registered parameter, so the state dict is unchanged.
        object.__setattr__(head, "bias", getattr(head.original_module, "bias", None))


def count_parameters(model: Any) -> tuple[int, int]:
    """Return `(trainable, total)` parameter counts (shared tensors counted once)."""
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return trainable, total
