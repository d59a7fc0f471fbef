"""Loading models by name (hub ids, local paths, `builtin:` names) and recipe outputs (adapters) for inference."""

from __future__ import annotations

import json
import os
from typing import Any

from ..tokens import TAXONOMY_KEY, add_refusal_tokens, load_taxonomy
from .builtin import resolve_model_path


def _for_generation(tokenizer: Any) -> Any:
    """A pad token (the end-of-sequence one if missing) and left padding, as batched generation needs."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_model_and_tokenizer(name_or_path: str, **model_kwargs: Any) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer from a hub id, a local path or a `builtin:` name.

    Args:
        name_or_path (`str`): E.g. `"HuggingFaceTB/SmolLM2-135M-Instruct"`, `"./my-model"`,
            `"builtin:smollm2-135m-instruct"`.
        **model_kwargs: Passed to `AutoModelForCausalLM.from_pretrained` (e.g. `dtype`, `device_map`).

    Returns:
        `(model, tokenizer)`; the tokenizer pads on the left (generation) and has a pad token.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, **model_kwargs)
    return model, _for_generation(tokenizer)


def load_refusal_model(path_or_name: str, adapter: str | None = None, **model_kwargs: Any) -> tuple[Any, Any]:
    """Load a model trained with refusal tokens: a recipe's output directory (adapter), or a full checkpoint.

    A directory with `adapter_config.json` is a PEFT adapter: its base model (`base_model_name_or_path`, which may
    be a `builtin:` name) is loaded, resized to the saved tokenizer's refusal tokens, and the adapter (LoRA and token
    rows) applied. Anything else loads as a plain model, with `adapter` applied on top if given.

    Args:
        path_or_name (`str`): Recipe `output_dir`, merged checkpoint, hub id or `builtin:` name.
        adapter (`str`, *optional*): Adapter directory to apply to `path_or_name` (its tokenizer is used).
        **model_kwargs: Passed to `from_pretrained` of the base model.

    Returns:
        `(model, tokenizer)` in eval mode, tokenizer padding on the left.
    """
    from transformers import AutoTokenizer

    if adapter is None and os.path.isfile(os.path.join(path_or_name, "adapter_config.json")):
        with open(os.path.join(path_or_name, "adapter_config.json"), encoding="utf-8") as f:
            base_name = json.load(f).get("base_model_name_or_path")
        if not base_name:
            raise ValueError(f"{path_or_name}/adapter_config.json names no base_model_name_or_path; pass the base.")
        path_or_name, adapter = base_name, path_or_name
    if os.path.isfile(os.path.join(path_or_name, "adapter_config.json")):
        # an adapter trained on top of another (DPO after SFT): load and merge the lower one first
        model, tokenizer = load_refusal_model(path_or_name, **model_kwargs)
        model = model.merge_and_unload()
    else:
        model, tokenizer = load_model_and_tokenizer(path_or_name, **model_kwargs)
    if adapter is not None:
        from peft import PeftModel

        weights = [
            f for f in ("adapter_model.safetensors", "adapter_model.bin") if os.path.isfile(os.path.join(adapter, f))
        ]
        if os.path.isdir(adapter) and not weights:
            raise ValueError(
                f"{adapter}: adapter_config.json but no adapter_model.safetensors; the run that wrote it did not "
                "finish saving (rerun it, or resume from a checkpoint)."
            )
        tokenizer = _for_generation(AutoTokenizer.from_pretrained(adapter))
        if TAXONOMY_KEY not in tokenizer.init_kwargs:
            raise ValueError(f"{adapter}: its tokenizer carries no refusal tokens; was it saved by the recipe?")
        add_refusal_tokens(model, tokenizer, load_taxonomy(tokenizer))  # resize before loading the adapter
        try:
            model = PeftModel.from_pretrained(model, adapter)
        except Exception as e:  # a cut file raises safetensors' own error, which names no path
            if type(e).__name__ not in ("SafetensorError", "HeaderTooLarge", "EOFError", "UnpicklingError"):
                raise
            raise ValueError(
                f"{os.path.join(adapter, weights[0])}: unreadable ({type(e).__name__}: {e}); the file is cut or "
                "corrupt: rerun the training that wrote it."
            ) from None
    return model.eval(), tokenizer
