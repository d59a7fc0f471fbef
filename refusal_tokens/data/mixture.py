"""Several labelled datasets as one recipe's data: TRL's dataset-mixture entries plus how to label each one.

A recipe YAML lists its datasets as TRL's `DatasetMixtureConfig` does (`datasets:` entries with `path`, `name`,
`data_dir`, `data_files`, `split`), and says for each how its rows get a refusal label and an answer:

```yaml
datasets:
  - path: allenai/coconot          # should-refuse prompts, labelled by their own category column
    name: original
    split: train
    label_column: category
    label_map: {Incomplete requests: incomplete, Requests with safety concerns: safety_concerns, ...}
  - path: allenai/coconot          # look-alike prompts to answer
    name: contrast
    split: test
    part: test
    label: respond
    kind: contrast
```

Rows without an answer are completed: a should-refuse row with a refusal wording of its category, a respond row
with a placeholder that the recipe replaces with the base model's own answer (`responses: self`). `builtin:coconot`
names the built-in real corpus (`refusal_tokens.data.real`), whose `split` is `train`, `validation` or `test`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from ..taxonomy import RESPOND_LABEL, RefusalTaxonomy
from ..utils.config import did_you_mean
from ..utils.logging import get_logger
from .formats import is_messages
from .loading import _located_rows
from .mixing import CompositionReport, _quota_indices
from .real import COCONOT_WORDING_SOURCES, builtin_corpus_file
from .synthetic.corpus import KINDS, category_sources, refusal_wordings
from .synthetic.sources import COMPLIANCE_ANSWERS, SOURCES

logger = get_logger(__name__)

PARTS = ("train", "validation", "test")
ROW_KEYS = ("prompt", "completion", "kind", "source", "template", "corpus", "answer")
"""Columns of every row `load_refusal_datasets` returns (plus the label column)."""


@dataclass
class RefusalDatasetConfig:
    """One entry of a recipe's `datasets`: where the rows are (TRL's `DatasetConfig` fields) and how they are labelled.

    Args:
        path (`str`): Hub id, local file or folder (as `datasets.load_dataset`), or `builtin:coconot`.
        name (`str`, *optional*): Hub dataset configuration (e.g. `original`, `contrast`).
        data_dir (`str`, *optional*): `data_dir` of `datasets.load_dataset`.
        data_files (`str` or `list[str]`, *optional*): `data_files` of `datasets.load_dataset`.
        split (`str`, *optional*, defaults to `"train"`): Split to read (`train`, `validation` or `test` for
            built-in corpora).
        part (`str`, *optional*, defaults to `"train"`): Which recipe split the rows go to: `train`, `validation` or
            `test` (the held-out table).
        corpus (`str`, *optional*): Name of these rows in the reports (default: the dataset's name).
        prompt_column (`str`, *optional*, defaults to `"prompt"`): Column of the user's request (text or messages).
        response_column (`str`, *optional*): Column of an answer to train on; unset: answers are completed.
        label (`str`, *optional*): The label of every row (`respond` or a category).
        label_column (`str`, *optional*): Column holding each row's label.
        label_map (`dict[str, str]`, *optional*): The dataset's values of `label_column` -> labels of the taxonomy; a
            value it does not list is an error.
        kind (`str`, *optional*): `refusal`, `contrast` or `benign` for every row (report groups); default: a `kind`
            column where the rows have one, else `refusal` for category rows and `benign` for respond rows.
        max_rows (`int`, *optional*): Keep at most this many rows (a seeded sample).
        holdout_fraction (`float`, *optional*): Send this share of the rows to the `test` part (the rest go to
            `part`): a seeded split of a dataset that has no test split of its own.
        stratify_column (`str`, *optional*): With `holdout_fraction`, hold out that share of each value of this
            column (e.g. `subcategory`), so every kind of prompt is on both sides.
        seed (`int`, *optional*, defaults to 0): Seed of `max_rows` and `holdout_fraction`.
    """

    path: str
    name: str | None = None
    data_dir: str | None = None
    data_files: str | list[str] | None = None
    split: str = "train"
    part: str = "train"
    corpus: str | None = None
    prompt_column: str = "prompt"
    response_column: str | None = None
    label: str | None = None
    label_column: str | None = None
    label_map: dict[str, str] | None = None
    kind: str | None = None
    max_rows: int | None = None
    holdout_fraction: float | None = None
    stratify_column: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        where = f"datasets entry {self.path!r}"
        if self.part not in PARTS:
            raise ValueError(f"{where}: part={self.part!r}; use one of {list(PARTS)}.")
        if (self.label is None) == (self.label_column is None):
            raise ValueError(
                f"{where}: give exactly one of label (every row's label, e.g. respond) and label_column (the column "
                "holding each row's label)."
            )
        if self.label_map is not None and self.label_column is None:
            raise ValueError(f"{where}: label_map needs label_column (the column whose values it maps).")
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"{where}: kind={self.kind!r}; use one of {list(KINDS)}.")
        if self.max_rows is not None and self.max_rows < 1:
            raise ValueError(f"{where}: max_rows={self.max_rows} must be >= 1.")
        if self.holdout_fraction is not None and not 0 < self.holdout_fraction < 1:
            raise ValueError(f"{where}: holdout_fraction={self.holdout_fraction} must lie in (0, 1).")
        if self.holdout_fraction is not None and self.part == "test":
            raise ValueError(f"{where}: holdout_fraction sends rows to test; the entry's own part must not be test.")
        if self.stratify_column is not None and self.holdout_fraction is None:
            raise ValueError(f"{where}: stratify_column needs holdout_fraction.")
        if self.corpus is None:
            base = self.path.removeprefix("builtin:").rstrip("/")
            self.corpus = os.path.splitext(os.path.basename(base))[0] + (f"-{self.name}" if self.name else "")

    @classmethod
    def from_dict(cls, data: Any, index: int = 1) -> RefusalDatasetConfig:
        """Build an entry from a YAML mapping; unknown keys are an error naming entry `index` (1-based)."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"datasets entry {index}: expected a mapping with 'path', got {type(data).__name__}.")
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                raise ValueError(f"datasets entry {index}: unknown key {key!r}{did_you_mean(key, known)}.")
        if "path" not in data:
            raise ValueError(f"datasets entry {index}: 'path' is required (hub id, local file or builtin:coconot).")
        return cls(**data)


def _raw_rows(config: RefusalDatasetConfig) -> list[tuple[str, dict[str, Any]]]:
    """`(where, row)` of the entry's rows: `file:line` for local JSON Lines, `path (split): row N` otherwise."""
    if config.path.startswith("builtin:"):
        located = _located_rows(builtin_corpus_file(config.path), "train")
        wanted = config.split.split("+")
        bad = [s for s in wanted if s not in PARTS]
        if bad:
            raise ValueError(f"datasets entry {config.path!r}: split={config.split!r}; use train, validation or test.")
        return [(w, r) for w, r in located if r.get("split") in wanted]
    if os.path.isfile(config.path) and not config.data_files and not config.name:
        return _located_rows(config.path, config.split)
    import datasets  # the `datasets` library, only for folders and hub ids

    loaded = datasets.load_dataset(
        config.path, config.name, data_dir=config.data_dir, data_files=config.data_files, split=config.split
    )
    label = f"{config.path}" + (f" ({config.name}, {config.split})" if config.name else f" ({config.split})")
    return [(f"{label}: row {n}", row) for n, row in enumerate(loaded.to_list(), 1)]


def _text(value: Any, role: str, where: str, field_name: str) -> list[dict[str, str]]:
    """A prompt or answer column value as one-turn messages (text, or messages whose last `role` turn is used)."""
    if isinstance(value, str) and value.strip():
        return [{"role": role, "content": value}]
    if is_messages(value) and value:
        if role == "user":  # a conversation: every turn before its last answer
            last = max((i for i, m in enumerate(value) if m.get("role") == "assistant"), default=len(value))
            if last > 0:
                return [dict(m) for m in value[:last]]
        turns = [m for m in value if m.get("role") == role]
        if turns and isinstance(turns[-1].get("content"), str) and turns[-1]["content"].strip():
            return [{"role": role, "content": turns[-1]["content"]}]
    raise ValueError(f"{where}: field {field_name!r} is empty or not text; every row needs it (drop such rows first).")


def _label(config: RefusalDatasetConfig, row: dict[str, Any], where: str, taxonomy: RefusalTaxonomy) -> str:
    if config.label is not None:
        raw: Any = config.label
    else:
        if config.label_column not in row:
            raise ValueError(f"{where}: no column {config.label_column!r} (label_column); columns are {sorted(row)}.")
        raw = row[config.label_column]
        if config.label_map is not None:
            if raw not in config.label_map:
                raise ValueError(
                    f"{where}: field {config.label_column!r}: value {raw!r} is not in label_map (it maps "
                    f"{sorted(config.label_map)}); add it to label_map."
                )
            raw = config.label_map[raw]
    try:
        return taxonomy.normalize_label(raw)
    except ValueError as e:
        field_name = config.label_column or "label"
        raise ValueError(f"{where}: field {field_name!r}: {e}") from None


def _dedupe(located: list[tuple[str, dict[str, Any]]], config: RefusalDatasetConfig) -> list[tuple[str, dict]]:
    """Keep the first row of each prompt: a repeated prompt could land on both sides of a holdout split."""
    seen: set[str] = set()
    out = []
    for where, row in located:
        value = row.get(config.prompt_column)
        key = " ".join(value.split()).lower() if isinstance(value, str) else repr(value)
        if key not in seen:
            seen.add(key)
            out.append((where, row))
    if len(out) < len(located):
        logger.info("%s: %d repeated prompts kept once", config.path, len(located) - len(out))
    return out


def _holdout(
    located: list[tuple[str, dict[str, Any]]], config: RefusalDatasetConfig
) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Split an entry's rows into its `part` and `test` by `holdout_fraction`, per `stratify_column` value."""
    if config.holdout_fraction is None:
        return {config.part: located}
    groups: dict[str, list[int]] = {}
    for i, (where, row) in enumerate(located):
        if config.stratify_column is not None and config.stratify_column not in row:
            raise ValueError(f"{where}: no column {config.stratify_column!r} (stratify_column).")
        key = str(row.get(config.stratify_column)) if config.stratify_column else ""
        groups.setdefault(key, []).append(i)
    test: set[int] = set()
    carry = 0.0  # rounding carried across groups, so the overall share is the asked one
    for key in sorted(groups):
        idx = list(groups[key])
        random.Random(f"{config.seed}/{config.corpus}/{key}").shuffle(idx)
        want = len(idx) * config.holdout_fraction + carry
        n = int(want + 0.5)
        carry = want - n
        test.update(idx[:n])
    return {
        config.part: [x for i, x in enumerate(located) if i not in test],
        "test": [x for i, x in enumerate(located) if i in test],
    }


def load_refusal_dataset(
    config: RefusalDatasetConfig,
    taxonomy: RefusalTaxonomy,
    *,
    label_column: str = "refusal_label",
    seed: int = 0,
) -> dict[str, list[dict[str, Any]]]:
    """The labelled rows of one `datasets` entry by part, in TRL's conversational prompt-completion format, untagged.

    Every row gets `prompt`, `completion`, the label in `label_column`, `kind`, `source` (`<corpus>/<subcategory>`
    where the rows have a subcategory), `corpus` and `answer`: `dataset` (its own answer), `wording` (a refusal wording
    of its category) or `template` (a placeholder for the base model's own answer).

    Raises:
        `ValueError`: naming the file and row (as the user numbers it) and the field of a row without a prompt, an
            answer (`response_column`) or a known label.
    """
    rng = random.Random(f"{seed}/{config.corpus}/{config.part}")
    wordings = refusal_wordings(taxonomy)
    try:
        sources = category_sources(taxonomy)
    except ValueError:  # a custom category without synthetic sources: its rows use the generic wordings
        sources = {}
    located = _raw_rows(config)
    if not located:
        raise ValueError(f"datasets entry {config.path!r} (split {config.split!r}) has no rows.")
    located = _dedupe(located, config)
    if config.max_rows is not None and len(located) > config.max_rows:
        rng_rows = random.Random(f"{config.seed}/{config.corpus}/sample")
        keep = sorted(rng_rows.sample(range(len(located)), config.max_rows))
        located = [located[i] for i in keep]
    return {
        part: [
            _labelled_row(config, where, row, taxonomy, label_column, wordings, sources, rng) for where, row in rows
        ]
        for part, rows in _holdout(located, config).items()
    }


def _labelled_row(
    config: RefusalDatasetConfig,
    where: str,
    row: dict[str, Any],
    taxonomy: RefusalTaxonomy,
    label_column: str,
    wordings: Mapping[str, Sequence[str]],
    sources: Mapping[str, Sequence[str]],
    rng: random.Random,
) -> dict[str, Any]:
    if config.prompt_column not in row:
        raise ValueError(f"{where}: no column {config.prompt_column!r} (prompt_column); columns are {sorted(row)}.")
    prompt = _text(row[config.prompt_column], "user", where, config.prompt_column)
    label = _label(config, row, where, taxonomy)
    if config.response_column is not None:
        if config.response_column not in row:
            raise ValueError(f"{where}: no column {config.response_column!r} (response_column).")
        completion = _text(row[config.response_column], "assistant", where, config.response_column)
        answer = "dataset"
    elif label == RESPOND_LABEL:
        completion, answer = [{"role": "assistant", "content": rng.choice(COMPLIANCE_ANSWERS)}], "template"
    else:
        pool = wordings[label]
        sub_source = COCONOT_WORDING_SOURCES.get(row.get("subcategory"))  # type: ignore[arg-type]
        if sub_source in sources.get(label, ()):
            pool = SOURCES[sub_source].refusals
        completion, answer = [{"role": "assistant", "content": rng.choice(pool)}], "wording"
    kind = config.kind or (row["kind"] if row.get("kind") in KINDS else None)
    kind = kind or ("refusal" if label != RESPOND_LABEL else "benign")
    sub = row.get("subcategory")
    source = f"{config.corpus}/{sub}" if isinstance(sub, str) and sub else config.corpus
    return {
        "prompt": prompt,
        "completion": completion,
        label_column: label,
        "kind": kind,
        "source": source,
        "template": "",
        "corpus": config.corpus,
        "answer": answer,
    }


def load_refusal_datasets(
    configs: Sequence[RefusalDatasetConfig | Mapping[str, Any]],
    taxonomy: RefusalTaxonomy,
    *,
    label_column: str = "refusal_label",
    seed: int = 0,
) -> dict[str, list[dict[str, Any]]]:
    """The rows of every `datasets` entry, gathered by `part` (`train`, `validation`, `test`).

    Example:

    ```python
    >>> from refusal_tokens import get_taxonomy
    >>> parts = load_refusal_datasets([{"path": "builtin:coconot", "split": "test", "part": "test",
    ...                                 "label_column": "refusal_label"}], get_taxonomy("coconot"))
    >>> len(parts["test"]), parts["test"][0]["corpus"]
    (1150, 'coconot')
    ```
    """
    parts: dict[str, list[dict[str, Any]]] = {}
    for i, config in enumerate(configs, 1):
        config = RefusalDatasetConfig.from_dict(config, i)
        for part, rows in load_refusal_dataset(config, taxonomy, label_column=label_column, seed=seed).items():
            parts.setdefault(part, []).extend(rows)
    return parts


def reweight_rows(
    rows: list[dict[str, Any]],
    targets: Mapping[str, float],
    taxonomy: RefusalTaxonomy,
    *,
    label_column: str = "refusal_label",
    size: int | None = None,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], CompositionReport]:
    """Sample labelled rows to target class shares (the mixer's rule: down-sample, or repeat rows to up-sample).

    Args:
        rows (`list[dict]`): Labelled rows.
        targets (`Mapping[str, float]`): Share per class (`respond` and categories), summing to 1.
        size (`int`, *optional*): Output rows; defaults to the number of input rows.

    Returns:
        `(rows, CompositionReport)`.
    """
    columns = [RESPOND_LABEL] + taxonomy.names
    labels = [taxonomy.normalize_label(r[label_column]) for r in rows]
    report = CompositionReport(columns, {c: labels.count(c) for c in columns}, total_in=len(rows))
    picked = [rows[i] for i in _quota_indices(labels, report, {k: float(v) for k, v in targets.items()}, size, seed)]
    report.after = {c: sum(1 for r in picked if r[label_column] == c) for c in columns}
    return picked, report


__all__ = ["RefusalDatasetConfig", "load_refusal_dataset", "load_refusal_datasets", "reweight_rows"]
