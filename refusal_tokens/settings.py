"""Per-category inference settings (thresholds or scales) for :class:`RefusalTokenLogitsProcessor`."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import torch
import yaml

from .taxonomy import BRANCHES, RefusalTaxonomy
from .utils.io import atomic_write_text
from .utils.strict_yaml import load_yaml

MODES = ("threshold", "scale")
RULES = ("passing", "top")
_DEFAULTS = {"threshold": 0.5, "scale": 1.0}


def threshold_choice(cat_p: Any, tau: Any, rule: str = "passing") -> tuple[Any, Any]:
    """The threshold rule on category probabilities `(rows, C)` with thresholds `tau` `(C,)` (or `(rows, C)`: one
    set per row, as a server with per-request thresholds has).

    `"passing"`: the most probable category among those with p >= their tau. `"top"`: the most probable category,
    kept only if its p >= its own tau. Shared by `RefusalSettings.decide`, `RefusalTokenLogitsProcessor` and the
    vLLM processor (`serving`), so all decide alike. Pure tensor ops: no host sync.

    Returns:
        `(passed, best)`: whether a category passed (bool, `(rows,)`) and the index of the chosen one.
    """
    if rule == "top":
        best_p, best = cat_p.max(dim=-1)
        own = tau.index_select(0, best) if tau.ndim == 1 else tau.gather(1, best.unsqueeze(1)).squeeze(1)
        return best_p >= own, best
    best_p, best = torch.where(cat_p >= tau, cat_p, -1.0).max(dim=-1)
    return best_p >= 0, best


THRESHOLDS_FILE = "thresholds.yaml"
"""Name of the thresholds file a run, a calibration and an export write (`RefusalSettings.from_file` reads it)."""


@dataclass
class RefusalSettings:
    """How readily the model refuses, per category: the knob turned after training.

    Resolution order for a category: its entry in `categories`, else its branch's entry in `branches`, else
    `default`.

    Args:
        mode (`str`, *optional*, defaults to `"threshold"`):
            `"threshold"` (Jain et al.): at the first assistant position, emit the most probable category token
            whose probability is at least its threshold tau_c (see `rule`), otherwise emit `[respond]`. `"scale"`:
            multiply each category token's probability by s_c (add log s_c to its logit) and let decoding proceed;
            s_c = 0 forbids that category.
        default (`float`, *optional*): Value for categories with no category or branch entry. Defaults to 0.5 in
            threshold mode and 1.0 (unchanged) in scale mode.
        branches (`dict[str, float]`, *optional*): Values per branch, keys `"cannot"` and/or `"should_not"`.
        categories (`dict[str, float]`, *optional*): Values per category name; override the branch value.
        rule (`str`, *optional*, defaults to `"passing"`): Threshold mode only: which category competes for the
            first token. `"passing"`: the most probable of the categories that pass their thresholds, so a
            category with a low threshold also catches prompts the model files under another one. `"top"`: only
            the model's most probable category, refused with if it passes its own threshold; each prompt then
            answers to one knob, and moving one category's threshold changes only the prompts the model files
            under it (less cross-category leakage; see BENCHMARKS.md).

    Example:

    ```python
    >>> settings = RefusalSettings(default=0.5, branches={"cannot": 0.9}, categories={"privacy": 0.2})
    >>> settings.save("thresholds.yaml")
    'thresholds.yaml'
    >>> RefusalSettings.from_file("thresholds.yaml") == settings
    True
    ```
    """

    mode: str = field(default="threshold", metadata={"help": "'threshold' or 'scale'."})
    default: float | None = field(default=None, metadata={"help": "Value for categories without their own entry."})
    branches: dict[str, float] = field(default_factory=dict, metadata={"help": "Values per branch."})
    categories: dict[str, float] = field(default_factory=dict, metadata={"help": "Values per category name."})
    rule: str = field(
        default="passing",
        metadata={"help": "Threshold mode: 'passing' (most probable passing category) or 'top' (top category only)."},
    )

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r} is not one of {MODES}.")
        if self.rule not in RULES:
            raise ValueError(f"rule={self.rule!r} is not one of {RULES}.")
        if self.mode == "scale" and self.rule != "passing":
            raise ValueError(f"rule={self.rule!r} applies to threshold mode only; scale mode has no rule.")
        if self.default is None:
            self.default = _DEFAULTS[self.mode]
        self.branches = dict(self.branches or {})
        self.categories = dict(self.categories or {})
        self._check_value("default", self.default)
        for b, v in self.branches.items():
            if b not in BRANCHES:
                raise ValueError(f"branches: unknown branch {b!r}; use one of {BRANCHES}.")
            self._check_value(f"branches[{b!r}]", v)
        for c, v in self.categories.items():
            self._check_value(f"categories[{c!r}]", v)

    def _check_value(self, where: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise ValueError(f"{where}={value!r} must be a number.")
        if self.mode == "threshold" and not 0.0 <= value <= 1.0:
            raise ValueError(f"{where}={value} is a threshold and must lie in [0, 1].")
        if self.mode == "scale" and (value < 0 or math.isinf(value)):
            raise ValueError(f"{where}={value} is a scale and must be finite and >= 0 (0 forbids the category).")

    def resolve(self, taxonomy: RefusalTaxonomy) -> list[float]:
        """Return one value per category, in taxonomy order.

        Raises:
            `ValueError`: if `categories` names a category the taxonomy does not have.
        """
        unknown = [c for c in self.categories if c not in taxonomy]
        if unknown:
            raise ValueError(
                f"settings name unknown categories {unknown}; taxonomy {taxonomy.name!r} has {taxonomy.names}."
            )
        return [
            float(self.categories.get(c.name, self.branches.get(c.branch, self.default))) for c in taxonomy.categories
        ]

    def decide(self, probs: Any, taxonomy: RefusalTaxonomy) -> Any:
        """The first token greedy decoding with these settings emits, from first-token probabilities.

        The same rule as `RefusalTokenLogitsProcessor`, applied to the columns of `first_token_probabilities`: in
        threshold mode the category chosen by `rule`, else respond; in scale mode the largest of
        p(respond) and s_c * p_c. (Ordinary vocabulary tokens are not in `probs`: in scale mode the decision is among
        the refusal-token columns only.)

        Args:
            probs (`torch.Tensor` of shape `(n, 1 + n_categories)`): Columns `respond`, then categories in taxonomy
                order.
            taxonomy (`RefusalTaxonomy`): The taxonomy of the columns.

        Returns:
            `torch.LongTensor` of shape `(n,)`: column index of the decision (0 = respond).
        """
        values = torch.tensor(self.resolve(taxonomy), dtype=probs.dtype, device=probs.device)
        if probs.ndim != 2 or probs.shape[1] != len(values) + 1:
            raise ValueError(
                f"probs must have shape (n, {len(values) + 1}) (respond + {len(values)} categories), "
                f"got {tuple(probs.shape)}."
            )
        cat = probs[:, 1:]
        if self.mode == "scale":
            return torch.cat([probs[:, :1], cat * values], dim=1).argmax(dim=1)
        passed, best = threshold_choice(cat, values, self.rule)
        return torch.where(passed, best + 1, torch.zeros_like(best))

    def to_dict(self) -> dict[str, Any]:
        out = {"mode": self.mode, "default": self.default, "branches": self.branches, "categories": self.categories}
        if self.rule != "passing":  # files written before the rule existed stay as they were
            out["rule"] = self.rule
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RefusalSettings:
        if not isinstance(data, dict):
            raise ValueError(f"Refusal settings must be a mapping, got {type(data).__name__}.")
        unknown = set(data) - {"mode", "default", "branches", "categories", "rule"}
        if unknown:
            raise ValueError(
                f"Unknown refusal-settings keys {sorted(unknown)}; allowed: mode, default, branches, categories, rule."
            )
        for key in ("branches", "categories"):
            if data.get(key) is not None and not isinstance(data[key], dict):
                raise ValueError(
                    f"{key} must be a mapping of name -> value (e.g. {key}: {{privacy: 0.3}}), got "
                    f"{type(data[key]).__name__} {data[key]!r}."
                )
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> RefusalSettings:
        """Load settings from a YAML or JSON file."""
        data = load_yaml(path, mapping=False)  # duplicate keys are errors, naming the line
        if data is None:
            raise ValueError(
                f"{path}: the file is empty; write the settings (mode, default, branches, categories, rule) or give "
                "no thresholds file to use the defaults."
            )
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: {e}") from None

    def save(self, path: str | os.PathLike) -> str:
        """Write the settings as YAML (`.yaml`/`.yml`) or JSON (any other suffix)."""
        if str(path).endswith((".yaml", ".yml")):
            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        else:
            text = json.dumps(self.to_dict(), indent=2)
        return atomic_write_text(path, text)
