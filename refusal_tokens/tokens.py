"""Adding refusal tokens to a tokenizer and model, and looking up their ids."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import torch

from .taxonomy import RESPOND_LABEL, TAXONOMY_KEY, RefusalTaxonomy, get_taxonomy

# Key under which the taxonomy is stored in `tokenizer.init_kwargs` (hence in tokenizer_config.json) and in
# `model.config` (hence in config.json), so a reloaded tokenizer or model carries it without extra files.
PAD_KEY = "refusal_pad_to_multiple_of"
"""Key (in `tokenizer.init_kwargs`) of the `pad_to_multiple_of` the embeddings were resized with, so a base model
rebuilt to load an adapter gets the same padded vocabulary (the padding rows take part in every softmax)."""
RESPOND_DESCRIPTION = "answer the request helpfully and directly"


@dataclass(frozen=True)
class RefusalTokenIds:
    """Token ids of `[respond]` and of each category token, in taxonomy order.

    Args:
        taxonomy (`RefusalTaxonomy`): The taxonomy the ids belong to.
        respond_id (`int`): Id of the respond token.
        category_ids (`tuple[int, ...]`): Ids of the category tokens, in taxonomy order.
    """

    taxonomy: RefusalTaxonomy
    respond_id: int
    category_ids: tuple[int, ...]

    @property
    def all_ids(self) -> list[int]:
        """`[respond_id, *category_ids]`: the column order of every probability table the library returns."""
        return [self.respond_id, *self.category_ids]

    @property
    def labels(self) -> list[str]:
        """`["respond", *category names]`, aligned with :attr:`all_ids`."""
        return [RESPOND_LABEL, *self.taxonomy.names]

    def id_for(self, label: str) -> int:
        """Token id for a label (`"respond"`, a category name, or a token string)."""
        name = self.taxonomy.normalize_label(label)
        return self.respond_id if name == RESPOND_LABEL else self.category_ids[self.taxonomy.names.index(name)]

    def label_for_id(self, token_id: int) -> str | None:
        """Label of a token id, or `None` if it is not one of the refusal/respond tokens."""
        try:
            return self.labels[self.all_ids.index(int(token_id))]
        except ValueError:
            return None

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, taxonomy: RefusalTaxonomy | str | None = None) -> RefusalTokenIds:
        """Look up the ids in a tokenizer that already holds the tokens.

        Args:
            tokenizer: A tokenizer prepared by :func:`add_refusal_tokens` (or reloaded from such a checkpoint).
            taxonomy (`RefusalTaxonomy` or `str`, *optional*): Defaults to the taxonomy stored with the tokenizer.

        Raises:
            `ValueError`: if a token is missing or is split into several ids.
        """
        taxonomy = get_taxonomy(taxonomy) if taxonomy is not None else load_taxonomy(tokenizer)
        ids = []
        for tok in taxonomy.all_tokens:
            enc = tokenizer.encode(tok, add_special_tokens=False)
            tid = tokenizer.convert_tokens_to_ids(tok)
            if len(enc) != 1 or enc[0] != tid or tid is None or tid == tokenizer.unk_token_id:
                raise ValueError(
                    f"Token {tok!r} is not a single token of this tokenizer (encodes to {enc}); "
                    "call add_refusal_tokens(model, tokenizer, taxonomy) first."
                )
            ids.append(tid)
        return cls(taxonomy=taxonomy, respond_id=ids[0], category_ids=tuple(ids[1:]))


def load_taxonomy(source: Any) -> RefusalTaxonomy:
    """Return the taxonomy saved with a tokenizer, a model, or in a checkpoint directory.

    Args:
        source: A tokenizer, a model (or PEFT model), or a local directory path.

    Raises:
        `ValueError`: if no taxonomy is stored there.
    """
    if isinstance(source, (str, os.PathLike)):
        if not os.path.isdir(source):
            raise ValueError(f"{source!r} is not a directory holding a saved refusal-tokens checkpoint.")
        if os.path.isfile(os.path.join(source, "refusal_taxonomy.json")):
            return RefusalTaxonomy.from_pretrained(source)
        # `add_refusal_tokens` + `save_pretrained` store it in the tokenizer's and the model's config files
        for name in ("tokenizer_config.json", "config.json"):
            path = os.path.join(source, name)
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    data = json.load(f).get(TAXONOMY_KEY)
                if data is not None:
                    return RefusalTaxonomy.from_dict(data)
        raise ValueError(
            f"{source}: no refusal taxonomy in refusal_taxonomy.json, tokenizer_config.json or config.json; was it "
            "saved after add_refusal_tokens? Pass the taxonomy explicitly otherwise."
        )
    data = getattr(source, "init_kwargs", {}).get(TAXONOMY_KEY)
    if data is None:
        config = getattr(source, "config", None)
        data = getattr(config, TAXONOMY_KEY, None)
    if data is None:
        raise ValueError(
            f"No refusal taxonomy is stored with this {type(source).__name__}; pass `taxonomy=` explicitly or call "
            "add_refusal_tokens(model, tokenizer, taxonomy) first."
        )
    return RefusalTaxonomy.from_dict(data)


def _description_ids(tokenizer: Any, text: str) -> list[int]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"Description {text!r} tokenizes to nothing; write a non-empty description.")
    return ids


@torch.no_grad()
def _init_rows(model: Any, tokenizer: Any, taxonomy: RefusalTaxonomy, token_ids: list[int], init: str) -> None:
    texts = [RESPOND_DESCRIPTION, *(c.description for c in taxonomy.categories)]
    inp = model.get_input_embeddings().weight
    out_module = model.get_output_embeddings()
    out = None if out_module is None or out_module.weight is inp else out_module.weight
    if init == "mean":
        # Mean of all pre-existing rows: a neutral start when descriptions are not meaningful.
        n_old = min(token_ids)
        sources = [list(range(n_old))] * len(token_ids)
    else:
        sources = [_description_ids(tokenizer, t) for t in texts]
    for tid, src in zip(token_ids, sources):
        src_t = torch.tensor(src, device=inp.device)
        inp[tid] = inp.index_select(0, src_t).float().mean(0).to(inp.dtype)
        if out is not None:
            out[tid] = out.index_select(0, src_t.to(out.device)).float().mean(0).to(out.dtype)


@torch.no_grad()
def _fill_padding_rows(model: Any, n_old: int, n_used: int) -> None:
    # Rows past the tokenizer (from pad_to_multiple_of) are never trained; give them a deterministic value so a
    # base model rebuilt for loading an adapter matches the one it was trained from.
    inp = model.get_input_embeddings().weight
    out_module = model.get_output_embeddings()
    for w in {id(inp): inp, id(out_module.weight): out_module.weight}.values() if out_module is not None else [inp]:
        if w.shape[0] > n_used:
            w[n_used:] = w[:n_old].float().mean(0).to(w.dtype)


def add_refusal_tokens(
    model: Any,
    tokenizer: Any,
    taxonomy: RefusalTaxonomy | str = "cannot-should-not",
    *,
    pad_to_multiple_of: int | None = None,
    init: str = "description",
) -> RefusalTokenIds:
    """Add `[respond]` and one token per refusal category to `tokenizer` and `model`.

    The tokens are added as special tokens (never split, never produced by ordinary text), the embeddings are
    resized, and each new row is initialised from the mean embedding of its category description (`init=
    "description"`), which starts the token near words that mean the same thing rather than at random. For untied
    output heads the output rows are initialised the same way from the output matrix. The taxonomy is stored in
    `tokenizer.init_kwargs` and `model.config`, so `save_pretrained` writes it and a reload needs nothing else.

    Calling it again on a tokenizer and model that already hold the tokens (a reloaded checkpoint) changes nothing.

    Args:
        model (`PreTrainedModel`): The causal LM. Tied (SmolLM2, GPT-2) and untied (Llama, Qwen2) heads both work.
        tokenizer (`PreTrainedTokenizerBase`): Its tokenizer.
        taxonomy (`RefusalTaxonomy` or `str`, *optional*, defaults to `"cannot-should-not"`): A preset name, a
            taxonomy file, or a taxonomy.
        pad_to_multiple_of (`int`, *optional*): Resize the embedding matrix to a multiple of this (e.g. 64) for
            faster matrix kernels. Stored with the tokenizer, so a reload (`load_refusal_model`) pads the same way.
        init (`str`, *optional*, defaults to `"description"`): `"description"` (mean embedding of the category's
            description), `"mean"` (mean of all existing rows) or `"none"` (keep the resize's rows).

    Returns:
        `RefusalTokenIds`: the id of `[respond]` and of each category token.

    Example:

    ```python
    >>> from refusal_tokens import add_refusal_tokens
    >>> from refusal_tokens.testing import build_tiny_model, build_tiny_tokenizer
    >>> tokenizer = build_tiny_tokenizer()  # offline stand-ins for a hub model and its tokenizer
    >>> model = build_tiny_model(tokenizer)
    >>> ids = add_refusal_tokens(model, tokenizer, "coconot")
    >>> tokenizer.convert_ids_to_tokens(ids.all_ids)
    ['[respond]', '[refuse:incomplete]', '[refuse:indeterminate]', ...]
    ```
    """
    if init not in ("description", "mean", "none"):
        raise ValueError(f"init={init!r}: use 'description', 'mean' or 'none'.")
    taxonomy = get_taxonomy(taxonomy)
    stored = tokenizer.init_kwargs.get(TAXONOMY_KEY)
    if stored is not None and RefusalTaxonomy.from_dict(stored).to_dict() != taxonomy.to_dict():
        raise ValueError(
            f"This tokenizer already carries refusal taxonomy {stored.get('name')!r}, which differs from "
            f"{taxonomy.name!r}; start from the base tokenizer to use another taxonomy."
        )
    # Always checked, also for tokens already in the vocabulary: a token equal to EOS or another special token would
    # have its row overwritten and be banned after the first position.
    taxonomy.check_tokenizer(tokenizer)
    existing = set(tokenizer.get_vocab())
    missing = [t for t in taxonomy.all_tokens if t not in existing]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    tokenizer.init_kwargs[TAXONOMY_KEY] = taxonomy.to_dict()
    if pad_to_multiple_of is None:
        pad_to_multiple_of = tokenizer.init_kwargs.get(PAD_KEY)  # a reloaded tokenizer remembers its padding
    elif pad_to_multiple_of > 1:
        tokenizer.init_kwargs[PAD_KEY] = int(pad_to_multiple_of)
    ids = RefusalTokenIds.from_tokenizer(tokenizer, taxonomy)

    model_config_taxonomy = getattr(model.config, TAXONOMY_KEY, None)
    n_rows = model.get_input_embeddings().weight.shape[0]
    if model_config_taxonomy == taxonomy.to_dict() and n_rows > max(ids.all_ids):
        return ids  # a checkpoint saved after add_refusal_tokens: rows are trained, leave them alone
    if n_rows < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=pad_to_multiple_of, mean_resizing=False)
        _fill_padding_rows(model, n_old=n_rows, n_used=len(tokenizer))
    if init != "none":
        _init_rows(model, tokenizer, taxonomy, ids.all_ids, init)
    setattr(model.config, TAXONOMY_KEY, taxonomy.to_dict())
    return ids
