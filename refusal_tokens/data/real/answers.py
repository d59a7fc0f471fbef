"""Real labelled answers for training and measuring refusal classifiers: readers of the public sets in
`../shared/data` (or a copy of them), one function per source, all returning the same rows.

Every row is `{"prompt", "response", "label", "source", "group", "partial"}`:

- `label`: `"respond"` (complies), a category of the requested taxonomy, or `ANY_REFUSAL` (a refusal whose
  category the source does not say: it trains and measures the refuse-vs-comply decision only);
- `group`: rows with the same group share a prompt, so folds split by group never put one prompt on both sides;
- `partial`: XSTest's partial refusals (counted as refusals, reported apart).

These files are read, never shipped: their licenses differ (see each folder's SOURCE.md), and a classifier trained
on them ships only its weights. `GOLD` names the human-labelled source; the others are silver (automatic labels).

Example:

```python
>>> import os
>>> from refusal_tokens.data.real.answers import load_answer_source
>>> rows = load_answer_source("xstest", "../shared/data") if os.path.isdir("../shared/data/xstest") else None
```
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections.abc import Callable
from typing import Any

from ...taxonomy import RESPOND_LABEL, RefusalTaxonomy, get_taxonomy
from ..synthetic.corpus import GENERIC_REFUSALS, refusal_wordings
from . import load_builtin_corpus
from .coconot_split import COCONOT_WORDING_SOURCES

ANY_REFUSAL = "refusal"
"""Label of a refusal of unknown category (trains the refuse-vs-comply decision only)."""

GOLD = ("xstest",)
"""Sources labelled by people (the others' labels are automatic: silver)."""


def _row(prompt: str, response: str, label: str, source: str, group: str, partial: bool = False) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "response": response,
        "label": label,
        "source": source,
        "group": group,
        "partial": partial,
    }


def _path(data_dir: str, *parts: str) -> str:
    path = os.path.join(data_dir, *parts)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} not found: the real answer sets live in ../shared/data (see its README); pass data_dir=."
        )
    return path


def _jsonl(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        out = []
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}: line {n} is not JSON ({err.msg}).") from None
        return out


def xstest_answers(data_dir: str, taxonomy: RefusalTaxonomy | str = "coconot") -> list[dict[str, Any]]:
    """XSTest v2: 2,250 answers of 5 chat models to 450 prompts, labelled by two people (full or partial refusal =
    refusal; CC-BY-4.0 prompts). Category unknown (`ANY_REFUSAL`)."""
    path = _path(data_dir, "xstest", "xstest_v2_completions_all_labeled.csv")
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for n, r in enumerate(rows, 2):  # line 1 is the header
        label = r.get("final_label")
        if label not in ("1_full_compliance", "2_full_refusal", "3_partial_refusal"):
            raise ValueError(f"{path}: line {n}: final_label={label!r} is not an XSTest label.")
        refused = label != "1_full_compliance"
        out.append(
            _row(
                r["prompt"],
                r["completion"] or "",
                ANY_REFUSAL if refused else RESPOND_LABEL,
                "xstest",
                f"xstest/{r['id']}",
                partial=label == "3_partial_refusal",
            )
        )
    return out


def jailbreakbench_answers(data_dir: str, taxonomy: RefusalTaxonomy | str = "coconot") -> list[dict[str, Any]]:
    """JailbreakBench artifacts: 1,637 answers to jailbreak attacks, judged `jailbroken` by an LLM (silver: not
    jailbroken is read as a refusal; MIT). The prompt is the plain behaviour (`goal`), not the attack text."""
    path = _path(data_dir, "jailbreakbench_artifacts", "jbb_artifacts_responses.jsonl")
    out = []
    for r in _jsonl(path):
        refused = str(r["jailbroken"]).lower() != "true"
        out.append(
            _row(
                r["goal"],
                r["response"] or "",
                ANY_REFUSAL if refused else RESPOND_LABEL,
                "jailbreakbench",
                f"jbb/{r['index']}",
            )  # fmt: skip
        )
    return out


def refusal_direction_answers(data_dir: str, taxonomy: RefusalTaxonomy | str = "coconot") -> list[dict[str, Any]]:
    """refusal_direction completions: 2,500 answers of 5 models with and without refusal-direction interventions,
    labelled by a refusal-substring rule (silver; Apache-2.0)."""
    path = _path(data_dir, "refusal_direction", "completions_with_auto_labels.jsonl")
    out = []
    for r in _jsonl(path):
        refused = int(r["is_jailbreak_substring_matching"]) == 0
        group = f"rd/{r['prompt_set']}/{r['prompt']}"
        label = ANY_REFUSAL if refused else RESPOND_LABEL
        out.append(_row(r["prompt"], r["response"] or "", label, "refusal_direction", group))
    return out


def _category(row: dict[str, Any], taxonomy: RefusalTaxonomy) -> str:
    """The taxonomy's category of a CoCoNot should-refuse prompt, or `ANY_REFUSAL` when it has none."""
    if taxonomy.name == "coconot":
        return row["refusal_label"]
    source = COCONOT_WORDING_SOURCES.get(row["subcategory"])
    return source if source in taxonomy.names else ANY_REFUSAL


GENERIC_SHARE = 0.5
"""Share of CoCoNot's should-refuse prompts paired with a wording that names no category ("I can't help with this
one."): a classifier must then read the category from the request, as it must on real answers that refuse without
saying why (with category wordings only, the cross-encoder learned the category from the wording: 0.57 category
accuracy on CoCoNot's held-out half with one generic refusal)."""


def coconot_answers(
    data_dir: str, taxonomy: RefusalTaxonomy | str = "coconot", split: str = "train"
) -> list[dict[str, Any]]:
    """CoCoNot rows of one part of the built-in split (`refusal_tokens/data/real/coconot`; MIT):

    - its should-refuse prompts, each with a refusal wording of its category (`refusal_wordings`, chosen by the
      prompt's id) or, for `GENERIC_SHARE` of them, a wording that names no category (`GENERIC_REFUSALS` but the
      first, which the benchmarks pair with held-out prompts), labelled with the category (`coconot` taxonomy;
      other taxonomies through `COCONOT_WORDING_SOURCES`, else `ANY_REFUSAL`): this is what teaches categories;
    - its preference prompts with their `chosen` answers (real compliant answers; `respond`), read from
      `coconot/coconot_pref.jsonl` in `data_dir`.
    """
    taxonomy = get_taxonomy(taxonomy)
    wordings = refusal_wordings("coconot")
    cs_wordings = refusal_wordings(taxonomy) if taxonomy.name != "coconot" else wordings
    chosen: dict[str, str] = {}
    for r in _jsonl(_path(data_dir, "coconot", "coconot_pref.jsonl")):
        chosen.setdefault(" ".join(r["prompt"].split()).lower(), r["chosen"])
    out = []
    for r in load_builtin_corpus("coconot", split=split):
        group = f"coconot/{r['id']}"
        if r["kind"] == "refusal":
            label = _category(r, taxonomy)
            key = int(r["id"], 36)
            pool = cs_wordings.get(label) or wordings[r["refusal_label"]]
            if (key // 7) % 100 < GENERIC_SHARE * 100:
                pool = GENERIC_REFUSALS[1:]
            response = pool[key % len(pool)]
            out.append(_row(r["prompt"], response, label, "coconot", group))
        elif r["origin"] == "coconot_pref.jsonl":
            answer = chosen.get(" ".join(r["prompt"].split()).lower())
            if answer:
                out.append(_row(r["prompt"], answer, RESPOND_LABEL, "coconot", group))
    return out


def sample_by_group(rows: list[dict[str, Any]], limit: int | None, seed: int = 0) -> list[dict[str, Any]]:
    """At most about `limit` rows, whole prompt groups at a time (a seeded sample), so no prompt is split between a
    sample and the rest."""
    if limit is None or len(rows) <= limit:
        return rows
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    out: list[dict[str, Any]] = []
    for k in keys:
        if len(out) >= limit:
            break
        out += groups[k]
    return out


ANSWER_SOURCES: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "xstest": xstest_answers,
    "jailbreakbench": jailbreakbench_answers,
    "refusal_direction": refusal_direction_answers,
    "coconot": coconot_answers,
}
"""The real answer sources by name."""


def load_answer_source(name: str, data_dir: str, taxonomy: RefusalTaxonomy | str = "coconot") -> list[dict[str, Any]]:
    """Rows of one source of `ANSWER_SOURCES` (CoCoNot: the training part of the built-in split)."""
    if name not in ANSWER_SOURCES:
        raise ValueError(f"unknown answer source {name!r}; choose from {sorted(ANSWER_SOURCES)}.")
    return ANSWER_SOURCES[name](data_dir, taxonomy)
