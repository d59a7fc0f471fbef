"""The refusal rule for servers: per-row settings (one set per request), the operator's bounds on what a request may
change, and one pure, batched function on the logits. No server import here: the vLLM adapters (`serving.vllm`)
call these, and the tests check them against `RefusalTokenLogitsProcessor` in the main environment.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..settings import MODES, RULES, RefusalSettings, threshold_choice
from ..taxonomy import BRANCHES, RefusalTaxonomy
from ..utils.strict_yaml import load_yaml

REQUEST_KEY = "refusal"
"""The key of a request's `SamplingParams.extra_args` (`vllm_xargs` in the OpenAI-compatible server) that holds its
refusal settings: a mapping with any of `mode`, `default`, `branches`, `categories`, `rule`, merged over the
server's defaults, or that mapping as a JSON string (`vllm_xargs` values must be flat: strings, numbers, lists)."""

POLICY_ENV = "REFUSAL_TOKENS_POLICY"
"""Environment variable naming the operator's policy file (YAML, `ServingPolicy` fields)."""


@dataclass
class ServingPolicy:
    """What a request may change, set by whoever runs the server (YAML file named by `REFUSAL_TOKENS_POLICY`).

    Args:
        allow_overrides (`bool`, *optional*, defaults to `True`): Whether requests may send refusal settings at all.
        locked (`list[str]`, *optional*): Categories or branches whose values no request may change (nor, when any is
            locked, the `mode`, `default` or `rule`, which would change them too).
        max_thresholds (`dict[str, float]`, *optional*): Per category or branch, the highest threshold a request may
            ask for: a floor under how readily that category refuses. A request above it is refused; values a
            request changes indirectly (through `default` or a branch) are capped.
    """

    allow_overrides: bool = True
    locked: list[str] = field(default_factory=list)
    max_thresholds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.allow_overrides, bool):
            raise ValueError(f"allow_overrides={self.allow_overrides!r} must be true or false.")
        if not isinstance(self.locked, list) or not all(isinstance(x, str) for x in self.locked):
            raise ValueError(f"locked={self.locked!r} must be a list of category or branch names.")
        if not isinstance(self.max_thresholds, dict):
            raise ValueError(f"max_thresholds={self.max_thresholds!r} must be a mapping of name -> threshold.")
        for name, cap in self.max_thresholds.items():
            if isinstance(cap, bool) or not isinstance(cap, (int, float)) or not 0.0 <= cap <= 1.0:
                raise ValueError(f"max_thresholds[{name!r}]={cap!r} must be a number in [0, 1].")

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> ServingPolicy:
        data = load_yaml(path)
        unknown = set(data) - {"allow_overrides", "locked", "max_thresholds"}
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}; allowed: allow_overrides, locked, "
                             "max_thresholds.")  # fmt: skip
        try:
            return cls(**data)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    @classmethod
    def from_env(cls) -> ServingPolicy:
        """The policy of `$REFUSAL_TOKENS_POLICY`, or the permissive default when it is unset."""
        path = os.environ.get(POLICY_ENV)
        return _policy_file(path) if path else cls()

    def check_names(self, taxonomy: RefusalTaxonomy) -> None:
        """Raise `ValueError` for a locked or capped name that is neither a category nor a branch."""
        known = set(taxonomy.names) | set(BRANCHES)
        bad = [n for n in [*self.locked, *self.max_thresholds] if n not in known]
        if bad:
            raise ValueError(f"serving policy names {bad}, which are neither categories of {taxonomy.name!r} "
                             f"({taxonomy.names}) nor branches {BRANCHES}.")  # fmt: skip

    def caps(self, taxonomy: RefusalTaxonomy) -> list[float]:
        """The cap on each category's threshold (its own, else its branch's, else none: 1.0)."""
        return [
            float(self.max_thresholds.get(c.name, self.max_thresholds.get(c.branch, 1.0))) for c in taxonomy.categories
        ]


@functools.lru_cache(maxsize=8)
def _policy_file(path: str) -> ServingPolicy:
    """`ServingPolicy.from_file`, read once per path: vLLM checks every request at admission."""
    return ServingPolicy.from_file(path)


def check_request(
    request: Any, policy: ServingPolicy, base: RefusalSettings, taxonomy: RefusalTaxonomy | None = None
) -> RefusalSettings:
    """Validate a request's refusal settings against the policy and return the settings it gets.

    Args:
        request: The value of `extra_args["refusal"]` (a mapping), or `None` for the server's defaults.
        policy (`ServingPolicy`): The operator's bounds.
        base (`RefusalSettings`): The server's defaults (the model's `thresholds.yaml`).
        taxonomy (`RefusalTaxonomy`, *optional*): When known, category names are checked too.

    Raises:
        `ValueError`: one line naming the key and the fix (vLLM answers it with HTTP 400).
    """
    if request is None:
        return base
    where = f"extra_args[{REQUEST_KEY!r}]"
    if isinstance(request, str):
        try:
            request = json.loads(request)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not a JSON object ({e.msg} at character {e.pos}).") from None
    if not policy.allow_overrides:
        raise ValueError(f"{where}: this server does not accept per-request refusal settings (operator policy).")
    if not isinstance(request, Mapping):
        raise ValueError(f"{where} must be a mapping (mode, default, branches, categories, rule); got "
                         f"{type(request).__name__}.")  # fmt: skip
    unknown = set(request) - {"mode", "default", "branches", "categories", "rule"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed: mode, default, branches, categories, "
                         "rule.")  # fmt: skip
    for key in ("branches", "categories"):
        if request.get(key) is not None and not isinstance(request[key], Mapping):
            raise ValueError(f"{where}.{key} must be a mapping of name -> value, got {type(request[key]).__name__}.")
    mode = request.get("mode", base.mode)
    if mode not in MODES:
        raise ValueError(f"{where}.mode={mode!r} is not one of {MODES}.")
    if request.get("rule", base.rule) not in RULES:
        raise ValueError(f"{where}.rule={request['rule']!r} is not one of {RULES}.")
    changed = {f"categories.{k}" for k in request.get("categories") or {}} | {
        f"branches.{k}" for k in request.get("branches") or {}
    }
    if policy.locked:
        wide = [k for k in ("mode", "default", "rule") if k in request]
        hit = [k for k in sorted(changed) if k.split(".", 1)[1] in policy.locked]
        if wide or hit:
            raise ValueError(f"{where}: {', '.join(wide + hit)} cannot be changed on this server (locked by the "
                             f"operator: {policy.locked}).")  # fmt: skip
    if (policy.max_thresholds or policy.locked) and mode != base.mode:
        raise ValueError(f"{where}.mode={mode!r}: this server's bounds are set in {base.mode!r} mode; keep it.")
    same = mode == base.mode
    try:
        settings = RefusalSettings(
            mode=mode,
            default=request.get("default", base.default if same else None),
            branches={**(base.branches if same else {}), **(request.get("branches") or {})},
            categories={**(base.categories if same else {}), **(request.get("categories") or {})},
            rule=request.get("rule", base.rule if same else "passing"),
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from None
    if settings.mode == "threshold":
        for name, cap in policy.max_thresholds.items():
            for group in ("categories", "branches"):
                value = (request.get(group) or {}).get(name)
                if value is not None and value > cap:
                    raise ValueError(
                        f"{where}.{group}.{name}={value}: above this server's cap of {cap} (a higher threshold "
                        "would refuse less than the operator allows)."
                    )
    if taxonomy is not None:
        try:
            settings.resolve(taxonomy)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
    return settings


@dataclass
class RowSettings:
    """One request's settings as the batched rule reads them (values in taxonomy order)."""

    values: list[float]
    scale: bool
    top: bool

    @classmethod
    def from_settings(
        cls, settings: RefusalSettings, taxonomy: RefusalTaxonomy, caps: Sequence[float] | None = None
    ) -> RowSettings:
        values = settings.resolve(taxonomy)
        if settings.mode == "threshold" and caps is not None:
            values = [min(v, c) for v, c in zip(values, caps)]
        return cls(values, settings.mode == "scale", settings.rule == "top")


def pack_rows(rows: Sequence[RowSettings | None], n_categories: int) -> dict[str, torch.Tensor]:
    """Host tensors of per-row settings: `tau` / `log_s` `(rows, C)` / `(rows, 1 + C)` and the `scale`, `top` and
    `active` flags (`None` rows are inactive: their logits pass through unchanged)."""
    tau = torch.full((len(rows), n_categories), 0.5)
    log_s = torch.zeros((len(rows), 1 + n_categories))
    scale = torch.zeros(len(rows), dtype=torch.bool)
    top = torch.zeros(len(rows), dtype=torch.bool)
    active = torch.zeros(len(rows), dtype=torch.bool)
    for i, row in enumerate(rows):
        if row is None:
            continue
        active[i] = True
        scale[i], top[i] = row.scale, row.top
        if row.scale:
            log_s[i, 1:] = torch.tensor([math.log(v) if v > 0 else -math.inf for v in row.values])
        else:
            tau[i] = torch.tensor(row.values)
    return {"tau": tau, "log_s": log_s, "scale": scale, "top": top, "active": active}


def refusal_logits(
    logits: torch.Tensor,
    *,
    first: torch.Tensor,
    active: torch.Tensor,
    tau: torch.Tensor,
    log_s: torch.Tensor,
    scale: torch.Tensor,
    top: torch.Tensor,
    all_ids: torch.Tensor,
    suppress_later: bool = True,
) -> torch.Tensor:
    """The refusal rule on a batch of logits, one settings row per logits row; returns a new tensor.

    At a row's first generated position: threshold mode emits the category chosen by `threshold_choice` (rule
    `passing`, or `top` where `top`) or forces `[respond]`; scale mode adds log s_c to each category token's logit.
    At other positions the respond/refusal tokens are forbidden (`suppress_later`). Inactive rows pass through.
    Pure tensor ops on the logits' device: no host sync, `logits` never modified.

    Args:
        logits (`torch.Tensor` of shape `(rows, vocab)`).
        first, active, scale, top (`torch.BoolTensor` of shape `(rows,)`): Per-row flags.
        tau (`torch.Tensor` of shape `(rows, C)`): Thresholds (threshold rows).
        log_s (`torch.Tensor` of shape `(rows, 1 + C)`): Log scales, 0 for respond (scale rows).
        all_ids (`torch.LongTensor` of shape `(1 + C,)`): `[respond, *categories]` token ids.
    """
    cat_ids = all_ids[1:]
    cat_p = logits.float().softmax(dim=-1).index_select(1, cat_ids)
    passed_any, best_any = threshold_choice(cat_p, tau, "passing")
    passed_top, best_top = threshold_choice(cat_p, tau, "top")
    passed = torch.where(top, passed_top, passed_any)
    best = torch.where(top, best_top, best_any)
    choice = torch.where(passed, cat_ids[best], all_ids[0])  # (rows,)
    forced = torch.full_like(logits, -math.inf).scatter(1, choice.unsqueeze(1), 0.0)
    special = logits.index_select(1, all_ids)
    later = torch.full_like(special, -math.inf) if suppress_later else special
    new_special = torch.where(first.unsqueeze(1), special + log_s.to(special.dtype), later)
    out = logits.index_copy(1, all_ids, new_special)
    out = torch.where((first & ~scale).unsqueeze(1), forced, out)
    return torch.where(active.unsqueeze(1), out, logits)
