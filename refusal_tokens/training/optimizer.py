"""The optimizer of a refusal-token run: the Trainer's own (`optim`, betas, epsilon, weight decay), with the token
rows in a parameter group of their own at their own learning rate."""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer

TOKEN_ROWS_MARKER = "trainable_tokens_delta"
"""Name part of PEFT's trainable token-row parameters."""


def refusal_optimizer_groups(
    model: Any,
    learning_rate: float,
    token_learning_rate: float | None = None,
    weight_decay: float = 0.0,
    decay_parameter_names: set[str] | None = None,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups: the new token rows at their own (higher) learning rate, the rest at the base one.

    New token rows start far from where they must end (p < 1e-6 before training) and need a learning rate of about
    1e-3 to 5e-3, while LoRA weights at that rate drift the model's answers. Token rows get no weight decay; the
    other weights get `weight_decay` except biases and norms (the Trainer's rule), when `decay_parameter_names` is
    given.

    Args:
        model (`PeftModel`): From `get_refusal_peft_model`.
        learning_rate (`float`): Rate of LoRA (and any other trainable) weights.
        token_learning_rate (`float`, *optional*): Rate of the token rows; defaults to `learning_rate`.
        weight_decay (`float`, *optional*, defaults to 0.0): Weight decay of the non-token weights.
        decay_parameter_names (`set[str]`, *optional*): Names of the parameters that decay; all non-token weights
            when not given.

    Returns:
        `list[dict]`, each with `params`, `lr` and `weight_decay`; empty groups are left out.

    Example:

    ```python
    >>> from refusal_tokens import add_refusal_tokens
    >>> from refusal_tokens.testing import build_tiny_model, build_tiny_tokenizer
    >>> tokenizer = build_tiny_tokenizer()  # offline stand-ins for a hub model and its tokenizer
    >>> model = build_tiny_model(tokenizer)
    >>> from refusal_tokens import get_refusal_lora_config, get_refusal_peft_model
    >>> ids = add_refusal_tokens(model, tokenizer, "coconot")
    >>> peft_model = get_refusal_peft_model(model, get_refusal_lora_config(model, ids, r=8))
    >>> groups = refusal_optimizer_groups(peft_model, 2e-4, token_learning_rate=4e-3)
    >>> [g["lr"] for g in groups]
    [0.0002, 0.004]
    ```
    """
    tokens, decay, no_decay = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if TOKEN_ROWS_MARKER in name:
            tokens.append(p)
        elif decay_parameter_names is None or name in decay_parameter_names:
            decay.append(p)
        else:
            no_decay.append(p)
    groups = [
        {"params": decay, "lr": learning_rate, "weight_decay": weight_decay},
        {"params": no_decay, "lr": learning_rate, "weight_decay": 0.0},
        {"params": tokens, "lr": token_learning_rate or learning_rate, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def build_refusal_optimizer(model: Any, training_args: Any, token_learning_rate: float | None) -> Any:
    """The optimizer the Trainer would build from `training_args` (`optim`, `optim_args`, betas, epsilon, weight
    decay), with the token rows at `token_learning_rate`; `None` (the Trainer builds its own) when that is unset.

    Args:
        model (`PeftModel`): The model to train.
        training_args (`transformers.TrainingArguments`): E.g. `trl.SFTConfig`.
        token_learning_rate (`float`, *optional*): Learning rate of the token rows.

    Raises:
        `ValueError`: for an `optim` that builds its own parameter groups (GaLore, LOMO, layer-wise and factory
            optimizers), which cannot give the token rows a rate of their own.

    Example:

    ```python
    >>> from refusal_tokens import add_refusal_tokens
    >>> from refusal_tokens.testing import build_tiny_model, build_tiny_tokenizer
    >>> tokenizer = build_tiny_tokenizer()  # offline stand-ins for a hub model and its tokenizer
    >>> model = build_tiny_model(tokenizer)
    >>> from refusal_tokens import get_refusal_lora_config, get_refusal_peft_model
    >>> from trl import SFTConfig
    >>> ids = add_refusal_tokens(model, tokenizer, "coconot")
    >>> peft_model = get_refusal_peft_model(model, get_refusal_lora_config(model, ids, r=8))
    >>> optimizer = build_refusal_optimizer(peft_model, SFTConfig(output_dir="out", optim="sgd", use_cpu=True), 5e-3)
    >>> type(optimizer).__name__, [g["lr"] for g in optimizer.param_groups]
    ('SGD', [2e-05, 0.005])
    ```
    """
    if token_learning_rate is None:
        return None
    optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(training_args, model)
    managed = sorted({"params", "model", "optimizer_dict"} & set(kwargs))
    if managed or not isinstance(optimizer_cls, type) or not issubclass(optimizer_cls, torch.optim.Optimizer):
        raise ValueError(
            f"optim={training_args.optim!r} builds its own parameter groups, so the token rows cannot get "
            f"token_learning_rate={token_learning_rate}: unset token_learning_rate or choose another optim."
        )
    # The Trainer's decay rule (no decay for biases and norms); the method only reads the model.
    decay = set(Trainer.get_decay_parameter_names(None, model))
    groups = refusal_optimizer_groups(
        model, training_args.learning_rate, token_learning_rate, training_args.weight_decay, decay
    )
    return optimizer_cls(groups, **kwargs)
