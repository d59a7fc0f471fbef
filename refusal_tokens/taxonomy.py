"""Refusal taxonomies: which refusal categories exist, their token strings and branches.

A taxonomy is an ordered list of :class:`RefusalCategory`. The order fixes the order of category columns in every
tensor the library returns, so it is part of a trained model's contract and is saved with the model.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from .utils.io import atomic_write_text

RESPOND_TOKEN = "[respond]"
RESPOND_LABEL = "respond"
BRANCHES = ("cannot", "should_not")
TAXONOMY_FILE = "refusal_taxonomy.json"
TAXONOMY_KEY = "refusal_taxonomy"
ZERO_WIDTH_SPACE = "\u200b"
"""Key of the taxonomy in a tokenizer's `init_kwargs` and a model's config (stored by `add_refusal_tokens`)."""

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_TAXONOMY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PLAIN_WORD_RE = re.compile(r"^[\w\-']+$")
"""A token string made only of word characters: ordinary text (a user's prompt) would contain it."""


@dataclass(frozen=True)
class RefusalCategory:
    """One refusal category.

    Args:
        name (`str`): Identifier used in labels, settings files and metrics, e.g. `"privacy"`. Lower-case letters,
            digits and underscores.
        token (`str`): The special token string the model emits first when it refuses for this reason, e.g.
            `"[refuse:privacy]"`.
        branch (`str`): `"should_not"` (the model could answer but must not) or `"cannot"` (the model is unable).
        description (`str`): One line saying what the category covers. Also used to initialise the token's
            embedding row, so write it in plain words.
    """

    name: str
    token: str
    branch: str
    description: str


@dataclass
class RefusalTaxonomy:
    """An ordered set of refusal categories plus the `[respond]` token.

    Args:
        name (`str`): Name of the taxonomy, e.g. `"coconot"`.
        categories (`list[RefusalCategory]`): The categories, in the order used by every tensor the library returns.
        respond_token (`str`, *optional*, defaults to `"[respond]"`): Token emitted first by a compliant answer.

    Example:

    ```python
    >>> from refusal_tokens import get_taxonomy
    >>> taxonomy = get_taxonomy("coconot")
    >>> taxonomy.names
    ['incomplete', 'indeterminate', 'unsupported', 'humanizing', 'safety_concerns']
    >>> taxonomy["humanizing"].token
    '[refuse:humanizing]'
    ```
    """

    name: str
    categories: list[RefusalCategory]
    respond_token: str = RESPOND_TOKEN
    _by_name: dict[str, RefusalCategory] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.categories = [c if isinstance(c, RefusalCategory) else RefusalCategory(**c) for c in self.categories]
        self.validate()
        self._by_name = {c.name: c for c in self.categories}

    def validate(self) -> None:
        """Raise `ValueError` if the taxonomy is empty or has duplicate / malformed names, tokens or branches."""
        if not isinstance(self.name, str) or not _TAXONOMY_NAME_RE.match(self.name):
            raise ValueError(
                f"taxonomy name {self.name!r} must match {_TAXONOMY_NAME_RE.pattern} (letters, digits, '_', '-', "
                "'.'; no '/'): it names files, such as the classifier weights looked up for it."
            )
        if not self.categories:
            raise ValueError(f"Taxonomy {self.name!r} has no categories: give at least one refusal category.")
        seen_names: set[str] = set()
        seen_tokens: set[str] = {self.respond_token}
        if not self.respond_token or _PLAIN_WORD_RE.match(self.respond_token):
            raise ValueError(
                f"taxonomy {self.name!r}: respond_token {self.respond_token!r} is a plain word, which ordinary text "
                "contains; use marked-up text such as '[respond]'."
            )
        for i, cat in enumerate(self.categories):
            where = f"taxonomy {self.name!r}, category #{i} ({cat.name!r})"
            if not _NAME_RE.match(cat.name or ""):
                raise ValueError(f"{where}: name must match {_NAME_RE.pattern} (lower-case, digits, underscores).")
            if cat.name == RESPOND_LABEL:
                raise ValueError(f"{where}: {RESPOND_LABEL!r} is reserved for compliant answers; rename it.")
            if cat.name in seen_names:
                raise ValueError(f"{where}: duplicate category name {cat.name!r}; names must be unique.")
            if not cat.token or cat.token != cat.token.strip() or any(ch.isspace() for ch in cat.token):
                raise ValueError(f"{where}: token {cat.token!r} must be non-empty and contain no whitespace.")
            if _PLAIN_WORD_RE.match(cat.token):
                raise ValueError(
                    f"{where}: token {cat.token!r} is a plain word, which ordinary text contains; use marked-up text "
                    f"such as '[refuse:{cat.name}]'."
                )
            if cat.token in seen_tokens:
                raise ValueError(
                    f"{where}: token {cat.token!r} is already used "
                    f"({'the respond token' if cat.token == self.respond_token else 'by another category'})."
                )
            if cat.branch not in BRANCHES:
                raise ValueError(f"{where}: branch {cat.branch!r} is not one of {BRANCHES}.")
            if not cat.description or not cat.description.strip():
                raise ValueError(f"{where}: description is empty; it initialises the token embedding, so write one.")
            seen_names.add(cat.name)
            seen_tokens.add(cat.token)

    # -- lookup -----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.categories)

    def __iter__(self):
        return iter(self.categories)

    def __getitem__(self, name: str) -> RefusalCategory:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"Unknown refusal category {name!r}; known: {self.names}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def names(self) -> list[str]:
        """Category names in taxonomy order."""
        return [c.name for c in self.categories]

    @property
    def tokens(self) -> list[str]:
        """Category token strings in taxonomy order (without the respond token)."""
        return [c.token for c in self.categories]

    @property
    def all_tokens(self) -> list[str]:
        """`[respond]` followed by every category token: the tokens added to the tokenizer."""
        return [self.respond_token, *self.tokens]

    def branch_of(self, name: str) -> str:
        return self[name].branch

    def normalize_label(self, label: Any) -> str:
        """Map a label (category name, its token string, or `"respond"`/the respond token) to a canonical name.

        Raises:
            `ValueError`: if the label is not part of the taxonomy.
        """
        if isinstance(label, str):
            if label == RESPOND_LABEL or label == self.respond_token:
                return RESPOND_LABEL
            if label in self._by_name:
                return label
            for cat in self.categories:
                if label == cat.token:
                    return cat.name
        raise ValueError(
            f"unknown label {label!r}: expected {RESPOND_LABEL!r} or one of the categories of taxonomy "
            f"{self.name!r}: {self.names}"
        )

    def escape(self, text: str) -> str:
        """`text` with every token string of the taxonomy broken by a zero-width space after its first character.

        User text must never become a refusal token: a prompt that says `[refuse:privacy]` would otherwise be
        tokenized into the special token itself (in training data and at inference). The escaped text reads the
        same and tokenizes as ordinary text. `build_chat_prompts` and `tag_example` apply it to every user and
        system turn, and to response text after the leading token.

        Example:

        ```python
        >>> taxonomy = get_taxonomy("coconot")
        >>> escaped = taxonomy.escape("Start your answer with [respond] please")
        >>> "[respond]" in escaped, escaped.replace(ZERO_WIDTH_SPACE, "")
        (False, 'Start your answer with [respond] please')
        ```
        """
        for tok in self.all_tokens:
            if tok in text:
                text = text.replace(tok, tok[0] + ZERO_WIDTH_SPACE + tok[1:])
        return text

    def escape_turns(self, value: Any) -> Any:
        """`escape` applied to a prompt: a string, or every user and system turn of a list of messages (assistant
        turns, which may carry their own tags, are left as they are). Other values are returned unchanged."""
        if isinstance(value, str):
            return self.escape(value)
        if isinstance(value, list):
            return [
                dict(m, content=self.escape(m["content"]))
                if isinstance(m, dict) and m.get("role") != "assistant" and isinstance(m.get("content"), str)
                else m
                for m in value
            ]
        return value

    def contains_token(self, text: Any) -> bool:
        """Whether `text` (a string) contains the text of one of the taxonomy's tokens."""
        return isinstance(text, str) and any(tok in text for tok in self.all_tokens)

    def token_for(self, label: str) -> str:
        """Token string for a label (category name or `"respond"`)."""
        name = self.normalize_label(label)
        return self.respond_token if name == RESPOND_LABEL else self[name].token

    # -- serialisation ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "respond_token": self.respond_token,
            "categories": [asdict(c) for c in self.categories],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RefusalTaxonomy:
        if not isinstance(data, dict):
            raise ValueError(f"A taxonomy must be a mapping with 'name' and 'categories', got {type(data).__name__}.")
        unknown = set(data) - {"name", "categories", "respond_token"}
        if unknown:
            raise ValueError(f"Unknown taxonomy keys {sorted(unknown)}; allowed: name, categories, respond_token.")
        if "categories" not in data:
            raise ValueError("Taxonomy mapping has no 'categories' list.")
        cats = []
        for i, c in enumerate(data["categories"] or []):
            if not isinstance(c, dict):
                raise ValueError(f"Taxonomy category #{i} must be a mapping, got {c!r}.")
            c = dict(c)
            c.setdefault("token", f"[refuse:{c.get('name', '')}]")
            missing = {"name", "branch", "description"} - set(c)
            extra = set(c) - {"name", "token", "branch", "description"}
            if missing or extra:
                raise ValueError(
                    f"Taxonomy category #{i} ({c.get('name')!r}): missing keys {sorted(missing)}, "
                    f"unknown keys {sorted(extra)}; expected name, token (optional), branch, description."
                )
            cats.append(RefusalCategory(**c))
        return cls(
            name=data.get("name", "custom"), categories=cats, respond_token=data.get("respond_token", RESPOND_TOKEN)
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> RefusalTaxonomy:
        """Load a taxonomy from a YAML or JSON file (see `configs/taxonomies/` for examples)."""
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)  # YAML is a superset of JSON
        try:
            return cls.from_dict(data)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def save_pretrained(self, save_directory: str | os.PathLike) -> str:
        """Write `refusal_taxonomy.json` into `save_directory` (next to a tokenizer, model or adapter)."""
        return atomic_write_text(os.path.join(save_directory, TAXONOMY_FILE), json.dumps(self.to_dict(), indent=2))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> RefusalTaxonomy:
        """Load the taxonomy saved by :meth:`save_pretrained` in a local directory."""
        path = os.path.join(directory, TAXONOMY_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"No {TAXONOMY_FILE} in {directory}: was it saved with refusal_tokens (add_refusal_tokens + "
                "save_pretrained)? Pass the taxonomy explicitly otherwise."
            )
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def check_tokenizer(self, tokenizer: Any) -> None:
        """Check that every token string is, or can become, exactly one token of `tokenizer`.

        A token string that already exists in the vocabulary as an *ordinary* token, or that the tokenizer's
        pre-tokenisation would split before special-token matching, would be ambiguous with normal text.

        Raises:
            `ValueError`: naming the conflicting token and the fix.
        """
        vocab = tokenizer.get_vocab()
        special = set(getattr(tokenizer, "all_special_tokens", [])) | {
            str(t) for t in getattr(tokenizer, "added_tokens_decoder", {}).values()
        }
        from_tokens_key = tokenizer.init_kwargs.get(TAXONOMY_KEY) if hasattr(tokenizer, "init_kwargs") else None
        ours = set(RefusalTaxonomy.from_dict(from_tokens_key).all_tokens) if from_tokens_key else set()
        roles = {
            name: getattr(tokenizer, name, None)
            for name in ("eos_token", "pad_token", "bos_token", "unk_token", "sep_token", "cls_token", "mask_token")
        }
        for tok in self.all_tokens:
            role = next((name for name, value in roles.items() if value == tok), None)
            if role is not None:
                raise ValueError(
                    f"Token {tok!r} of taxonomy {self.name!r} is the tokenizer's {role}; its embedding row would be "
                    "overwritten and the decision rule would ban it after the first token (so generation could not "
                    "stop); choose another token string."
                )
            if tok in special and tok not in ours:
                raise ValueError(
                    f"Token {tok!r} of taxonomy {self.name!r} is already a special token of this tokenizer (id "
                    f"{vocab.get(tok)}), with a meaning of its own; choose another token string."
                )
            if tok in vocab and tok not in special:
                raise ValueError(
                    f"Token {tok!r} already exists in the tokenizer's ordinary vocabulary (id {vocab[tok]}), so "
                    "normal text could produce it; choose a different token string in the taxonomy."
                )


def _cat(name: str, branch: str, description: str) -> RefusalCategory:
    return RefusalCategory(name=name, token=f"[refuse:{name}]", branch=branch, description=description)


def _cannot_should_not() -> RefusalTaxonomy:
    s, c = "should_not", "cannot"
    return RefusalTaxonomy(
        name="cannot-should-not",
        categories=[
            _cat("legal_compliance", s, "refuse requests for illegal activities or help breaking laws"),
            _cat("information_hazards", s, "refuse dangerous information such as weapons, harm or self harm"),
            _cat("intellectual_property", s, "refuse to reproduce copyrighted text or violate intellectual property"),
            _cat("privacy", s, "refuse to reveal or collect private personal information about people"),
            _cat("nsfw", s, "refuse sexual, explicit or graphic adult content"),
            _cat("chain_of_command", s, "refuse instructions that conflict with system or developer rules"),
            _cat("modalities", c, "cannot see images, hear audio, browse the web or act in the physical world"),
            _cat("skill_level", c, "cannot perform the task reliably because it exceeds the model's abilities"),
            _cat("invalid_premise", c, "cannot answer because the question rests on a false premise"),
            _cat("missing_identity", c, "cannot answer questions about personal feelings, body or human experience"),
            _cat("knowledge_cutoff", c, "cannot know recent events after the training data cutoff date"),
            _cat("unknown_unknowns", c, "cannot answer because nobody knows the answer or it is unknowable"),
            _cat("training_data_limits", c, "cannot answer because the information was not in the training data"),
            _cat("missing_context", c, "cannot answer because the request lacks needed context or details"),
            _cat("unclear", c, "refuse for an unclear or unspecified reason"),
        ],
    )


def _coconot() -> RefusalTaxonomy:
    return RefusalTaxonomy(
        name="coconot",
        categories=[
            _cat("incomplete", "cannot", "cannot answer an incomplete, underspecified or false premise request"),
            _cat("indeterminate", "cannot", "cannot give one answer to a subjective or universally unknown question"),
            _cat("unsupported", "cannot", "cannot handle unsupported modalities, lengths or time sensitive facts"),
            _cat("humanizing", "cannot", "cannot claim human feelings, experiences or a personal life"),
            _cat(
                "safety_concerns", "should_not", "should not help with harmful, dangerous, illegal or private requests"
            ),
        ],
    )


def _single() -> RefusalTaxonomy:
    return RefusalTaxonomy(
        name="single",
        categories=[RefusalCategory("refuse", "[refuse]", "should_not", "refuse to answer the request")],
    )


PRESETS = {"cannot-should-not": _cannot_should_not, "coconot": _coconot, "single": _single}


def get_taxonomy(name_or_path: str | os.PathLike | RefusalTaxonomy | dict) -> RefusalTaxonomy:
    """Return a built-in preset (`"cannot-should-not"`, `"coconot"`, `"single"`) or load one from a YAML/JSON file.

    Args:
        name_or_path (`str`, `os.PathLike`, `dict` or `RefusalTaxonomy`): A preset name, a path to a taxonomy file,
            a directory holding `refusal_taxonomy.json` (a saved model or tokenizer), a mapping, or a taxonomy.

    Example:

    ```python
    >>> get_taxonomy("cannot-should-not")["privacy"].branch
    'should_not'
    ```
    """
    if isinstance(name_or_path, RefusalTaxonomy):
        return name_or_path
    if isinstance(name_or_path, dict):
        return RefusalTaxonomy.from_dict(name_or_path)
    key = str(name_or_path)
    if key in PRESETS:
        return PRESETS[key]()
    if os.path.isdir(key):
        return RefusalTaxonomy.from_pretrained(key)
    if os.path.isfile(key):
        return RefusalTaxonomy.from_file(key)
    raise ValueError(
        f"Unknown taxonomy {key!r}: use one of the presets {sorted(PRESETS)} or a path to a YAML/JSON taxonomy file."
    )
