"""Trainable parameters and adapter size: LoRA + refusal-token rows vs LoRA + whole embeddings (modules_to_save).

Uses the SmolLM2-135M architecture (tied embeddings) and a Llama-style untied variant of the same size, with random
weights (parameter counts and file sizes do not depend on weight values).

    python bench/trainable_params.py
"""

import os
import tempfile

import torch

# `python bench/trainable_params.py` puts bench/ on sys.path: share the architecture with the processor bench.
from processor import SMOLLM2_135M  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM

from refusal_tokens import (
    RefusalTokenIds,
    count_parameters,
    get_refusal_lora_config,
    get_refusal_peft_model,
    get_taxonomy,
)


def main() -> None:
    taxonomy = get_taxonomy("cannot-should-not")
    n = len(taxonomy.all_tokens)
    print("| embeddings | heads | trainable params | adapter size (MB) |")
    print("|---|---|---|---|")
    for tied in (True, False):
        for mode in ("token_rows", "modules_to_save"):
            torch.manual_seed(0)
            config = LlamaConfig(**{**SMOLLM2_135M, "vocab_size": 49152 + n, "tie_word_embeddings": tied})
            model = LlamaForCausalLM(config)
            ids = RefusalTokenIds(taxonomy, 49152, tuple(range(49153, 49152 + n)))
            peft_model = get_refusal_peft_model(model, get_refusal_lora_config(model, ids, r=16, embeddings=mode))
            trainable, _ = count_parameters(peft_model)
            with tempfile.TemporaryDirectory() as d:
                peft_model.save_pretrained(d)
                size = os.path.getsize(os.path.join(d, "adapter_model.safetensors")) / 1e6
            print(f"| {mode} | {'tied' if tied else 'untied'} | {trainable:,} | {size:.1f} |", flush=True)


if __name__ == "__main__":
    main()
