"""Calibration: per-category thresholds that meet refusal-rate targets, solved from first-token probabilities.

No generation is needed: one batched forward pass gives every prompt's probability of `[respond]` and of each
category token (`first_token_probabilities`), and `RefusalSettings.decide` is the exact rule the logits processor
applies during `generate()`. Thresholds are solved on one half of the labelled prompts and measured on the other.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from ..settings import RULES, THRESHOLDS_FILE, RefusalSettings
from ..taxonomy import RefusalTaxonomy
from ..utils.io import atomic_write_json
from ..utils.logging import get_logger
from ..utils.strict_yaml import load_yaml
from .metrics import refusal_rates
from .plots import save_calibration_plots

logger = get_logger(__name__)
REPORT_FILE = "calibration.json"


@dataclass
class CalibrationTargets:
    """What the thresholds should achieve.

    Args:
        refusal_rates (`dict[str, float]`, *optional*): Target refusal rate per category, measured on that
            category's should-refuse prompts (e.g. `{"humanizing": 0.5}` refuses about half of them).
        max_over_refusal (`float`, *optional*): Ceiling on the refusal rate of should-answer (`respond`) prompts. The
            categories without a `refusal_rates` entry then refuse as much as they can within it.
        default_threshold (`float`, *optional*, defaults to 0.5): Threshold of categories with neither.
        rule (`str`, *optional*, defaults to `"passing"`): The `RefusalSettings.rule` the thresholds are solved for
            and written with (`"top"`: each prompt answers only to its most probable category's threshold, which
            cuts cross-category leakage).

    Example:

    ```yaml
    # targets.yaml
    max_over_refusal: 0.05
    refusal_rates:
      humanizing: 0.5
    ```
    """

    refusal_rates: dict[str, float] = field(default_factory=dict)
    max_over_refusal: float | None = None
    default_threshold: float = 0.5
    rule: str = "passing"

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"rule={self.rule!r} is not one of {RULES}.")
        if self.refusal_rates is not None and not isinstance(self.refusal_rates, dict):
            raise ValueError(
                f"refusal_rates must be a mapping of category -> rate (e.g. refusal_rates: {{privacy: 0.9}}), got "
                f"{type(self.refusal_rates).__name__} {self.refusal_rates!r}."
            )
        self.refusal_rates = dict(self.refusal_rates or {})
        for name, rate in self.refusal_rates.items():
            # bool is an int in Python: `true` would be taken as a rate of 1.0
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
                raise ValueError(f"refusal_rates[{name!r}]={rate!r} must be a number in [0, 1].")
        if self.max_over_refusal is not None and (
            isinstance(self.max_over_refusal, bool)
            or not isinstance(self.max_over_refusal, (int, float))
            or not 0.0 <= self.max_over_refusal <= 1.0
        ):
            raise ValueError(f"max_over_refusal={self.max_over_refusal!r} must lie in [0, 1].")
        if not self.refusal_rates and self.max_over_refusal is None:
            raise ValueError("Give refusal_rates per category, max_over_refusal, or both.")

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> CalibrationTargets:
        """Load targets from YAML or JSON (keys `refusal_rates`, `max_over_refusal`, `default_threshold`)."""
        data = load_yaml(path, mapping=False)  # duplicate keys are errors, naming the line
        if data is None:
            raise ValueError(f"{path}: the file is empty; give refusal_rates per category and/or max_over_refusal.")
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping (refusal_rates, max_over_refusal, ...), got "
                             f"{type(data).__name__}.")  # fmt: skip
        unknown = set(data) - {"refusal_rates", "max_over_refusal", "default_threshold", "rule"}
        if unknown:
            raise ValueError(
                f"{path}: unknown keys {sorted(unknown)}; allowed: refusal_rates, max_over_refusal, "
                "default_threshold, rule."
            )
        try:
            return cls(**data)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


def _check_inputs(probs: torch.Tensor, truth: torch.Tensor, taxonomy: RefusalTaxonomy) -> None:
    if probs.ndim != 2 or probs.shape[1] != len(taxonomy) + 1:
        raise ValueError(f"probs must have shape (n, {len(taxonomy) + 1}), got {tuple(probs.shape)}.")
    if truth.shape != (probs.shape[0],):
        raise ValueError(f"truth must have shape ({probs.shape[0]},), got {tuple(truth.shape)}.")


def _just_above(value: torch.Tensor) -> float:
    """The next float32 above `value` (capped at 1): decisions compare in float32, where a float64 step rounds away."""
    up = torch.nextafter(value.float(), torch.tensor(math.inf, dtype=torch.float32))
    return min(1.0, up.item())


def _threshold_for_share(scores: torch.Tensor, share: float) -> float:
    """The threshold t such that the share of `scores` >= t is as close to `share` as the ties allow."""
    if scores.numel() == 0:
        return 1.0
    s = scores.sort(descending=True).values
    k = round(share * len(s))
    if k <= 0:
        return _just_above(s[0])
    if k >= len(s):
        return s[-1].item()
    return (s[k - 1].item() + s[k].item()) / 2 if s[k - 1] > s[k] else s[k - 1].item()


def calibrate_thresholds(
    probs: torch.Tensor,
    truth: torch.Tensor,
    taxonomy: RefusalTaxonomy,
    targets: CalibrationTargets,
    *,
    passes: int = 3,
) -> RefusalSettings:
    """Solve per-category thresholds that meet `targets` on labelled first-token probabilities.

    Categories with a target rate start at the quantile of their own prompts' probabilities that gives that rate,
    then a few coordinate passes re-solve each one under the full decision rule (a prompt may be claimed by a more
    probable category that also passes its threshold). Categories without a target share what is left of
    `max_over_refusal` once the targeted categories' refusals of respond prompts are counted, equally (a share one
    cannot use goes to the others): each gets the lowest threshold at which at most its share of the remaining
    respond prompts would be refused under it (any that passes it for `rule="passing"`, those it is the most
    probable category of for `"top"`). They are solved last, so over-refusal stays within the ceiling on these
    prompts unless the rate targets alone exceed it.

    Args:
        probs (`torch.Tensor` of shape `(n, 1 + C)`): `first_token_probabilities` of labelled prompts.
        truth (`torch.LongTensor` of shape `(n,)`): Column index of each prompt's label (0 = respond).
        taxonomy (`RefusalTaxonomy`): The taxonomy of the columns.
        targets (`CalibrationTargets`): What to achieve.
        passes (`int`, *optional*, defaults to 3): Coordinate passes over the categories with a target.

    Returns:
        `RefusalSettings` in threshold mode with one entry per category.
    """
    probs = probs.float().cpu()
    truth = truth.long().cpu()
    _check_inputs(probs, truth, taxonomy)
    unknown = [c for c in targets.refusal_rates if c not in taxonomy]
    if unknown:
        raise ValueError(
            f"targets name unknown categories {unknown}; taxonomy {taxonomy.name!r} has {taxonomy.names}."
        )
    _check_measurable(truth, taxonomy, targets, "the prompts given")
    tau = dict.fromkeys(taxonomy.names, targets.default_threshold)
    free = [c for c in taxonomy.names if c not in targets.refusal_rates]
    ceiling = targets.max_over_refusal is not None and bool(free)
    for c, rate in targets.refusal_rates.items():
        col = taxonomy.names.index(c) + 1
        tau[c] = _threshold_for_share(probs[truth == col, col], rate)
    for _ in range(passes):
        if ceiling:
            _share_ceiling(probs, truth, taxonomy, targets, tau, free)
        for c, rate in targets.refusal_rates.items():
            _solve_rate(probs, truth, taxonomy, targets.rule, tau, c, rate)
    if ceiling:  # last, so the ceiling holds on these prompts whatever the rate targets refuse
        _share_ceiling(probs, truth, taxonomy, targets, tau, free)
    return RefusalSettings(mode="threshold", default=targets.default_threshold, categories=tau, rule=targets.rule)


def _check_measurable(truth: torch.Tensor, taxonomy: RefusalTaxonomy, targets: CalibrationTargets, where: str) -> None:
    """A target that no prompt can measure would be met by any threshold (or by refusing everything): an error."""
    if targets.max_over_refusal is not None and not bool((truth == 0).any()):
        raise ValueError(
            f"max_over_refusal={targets.max_over_refusal} cannot be measured: {where} hold no respond "
            "(should-answer) prompts, so any threshold meets it, down to refusing everything; add should-answer "
            "prompts or remove max_over_refusal."
        )
    empty = [c for c in targets.refusal_rates if not bool((truth == taxonomy.names.index(c) + 1).any())]
    if empty:
        raise ValueError(
            f"refusal_rates for {empty} cannot be measured: {where} hold no prompts of those categories; add "
            "labelled prompts of them or remove their targets."
        )


def _share_ceiling(
    probs: torch.Tensor,
    truth: torch.Tensor,
    taxonomy: RefusalTaxonomy,
    targets: CalibrationTargets,
    tau: dict[str, float],
    free: list[str],
) -> None:
    """Set the thresholds of the `free` categories (no rate target) so respond prompts stay within the ceiling.

    Respond prompts that the categories with a rate target already refuse use up the ceiling first; the rest is
    shared equally, in prompts, and a category that cannot use its share passes the rest on.
    """
    respond = probs[truth == 0]
    never = dict.fromkeys(free, 1.0)
    taken = RefusalSettings(categories={**tau, **never}, rule=targets.rule).decide(respond, taxonomy) != 0
    pool = respond[~taken]
    top = pool[:, 1:].argmax(dim=1) + 1
    candidates = {}
    for c in free:
        col = taxonomy.names.index(c) + 1
        # Under "top" only the respond prompts filed under c can be refused as c; under "passing" any can.
        scores = pool[top == col, col] if targets.rule == "top" else pool[:, col]
        candidates[c] = scores.sort(descending=True).values
    left = max(0, math.floor(targets.max_over_refusal * len(respond) + 1e-9) - int(taken.sum()))
    order = sorted(free, key=lambda c: len(candidates[c]))
    for i, c in enumerate(order):
        s = candidates[c]
        k = left // (len(order) - i)
        tau[c] = 0.0 if k >= len(s) else _just_above(s[k])
        left -= int((s >= tau[c]).sum())


def _solve_rate(
    probs: torch.Tensor,
    truth: torch.Tensor,
    taxonomy: RefusalTaxonomy,
    rule: str,
    tau: dict[str, float],
    c: str,
    rate: float,
) -> None:
    """Re-solve category `c`'s threshold for its target `rate` under the full decision rule, the others fixed."""
    col = taxonomy.names.index(c) + 1
    mask = truth == col
    if not mask.any():
        return
    # The category's refusal rate falls monotonically as its threshold rises: binary-search the candidates.
    candidates = sorted(set(probs[mask, col].tolist()) | {0.0, 1.0})
    sub = probs[mask]

    def rate_at(t: float) -> float:
        trial = RefusalSettings(categories={**tau, c: t}, rule=rule)
        return (trial.decide(sub, taxonomy) != 0).float().mean().item()

    lo, hi = 0, len(candidates) - 1
    while lo < hi:  # first candidate whose rate is <= target
        mid = (lo + hi) // 2
        if rate_at(candidates[mid]) <= rate:
            hi = mid
        else:
            lo = mid + 1
    options = [candidates[i] for i in (lo - 1, lo) if 0 <= i < len(candidates)]
    tau[c] = min(options, key=lambda t: abs(rate_at(t) - rate))


def cross_category_leakage(
    probs: torch.Tensor,
    truth: torch.Tensor,
    settings: RefusalSettings,
    taxonomy: RefusalTaxonomy,
    *,
    shift: float = 0.1,
) -> dict[str, dict[str, float]]:
    """How much moving one category's threshold moves every *other* category's refusal rate.

    For each category c, its threshold is moved so that its own refusal rate changes by about `shift` (up, or down
    where it cannot go up); the result is, per c, the largest absolute change of another category's refusal rate
    (on that category's labelled prompts: what a user sees, and where the model's confusion of categories shows),
    of over-refusal, and of another category's *token* rate (the share of all prompts answered with that token: the
    decision rule's own coupling, exactly 0 under `rule="top"`, where a prompt only answers to the threshold of its
    most probable category).

    Returns:
        `dict` mapping each category to `{"own_change", "max_other_change", "over_refusal_change",
        "max_other_token_change"}`.
    """
    base = refusal_rates(probs, truth, settings, taxonomy)
    base_tokens = _token_rates(probs, settings, taxonomy)
    values = dict(zip(taxonomy.names, settings.resolve(taxonomy)))
    out = {}
    for j, c in enumerate(taxonomy.names, start=1):
        own = probs[truth == j, j]
        if own.numel() == 0:
            continue
        target = base[c] + shift if base[c] + shift <= 1.0 else base[c] - shift
        moved = RefusalSettings(categories={**values, c: _threshold_for_share(own, target)}, rule=settings.rule)
        after = refusal_rates(probs, truth, moved, taxonomy)
        others = [abs(after[o] - base[o]) for o in taxonomy.names if o != c and not math.isnan(base[o])]
        tokens = (_token_rates(probs, moved, taxonomy) - base_tokens).abs()
        tokens[j - 1] = 0.0
        out[c] = {
            "own_change": after[c] - base[c],
            "max_other_change": max(others) if others else 0.0,
            "over_refusal_change": after["over_refusal"] - base["over_refusal"],
            "max_other_token_change": tokens.max().item(),
        }
    return out


def _token_rates(probs: torch.Tensor, settings: RefusalSettings, taxonomy: RefusalTaxonomy) -> torch.Tensor:
    """Share of all prompts answered with each category's token, `(len(taxonomy),)`."""
    decided = settings.decide(probs, taxonomy)
    return torch.bincount(decided, minlength=len(taxonomy) + 1)[1:].float() / max(len(decided), 1)


def split_halves(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of `range(n)` into a calibration half and a held-out half."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    return perm[: n // 2], perm[n // 2 :]


def calibration_report(
    probs: torch.Tensor,
    truth: torch.Tensor,
    taxonomy: RefusalTaxonomy,
    targets: CalibrationTargets,
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """Calibrate on one half of the prompts, measure on the other: achieved vs target, and leakage.

    Returns:
        `dict` with `settings` (solved on the calibration half), `targets`, `calibration` and `held_out` refusal
        rates, per-category `error` (held-out achieved minus target, where a target exists), `sampling_error` (the
        binomial standard error of a held-out rate at its target, sqrt(t (1 - t) / n): an error much smaller than
        this cannot be shown on so few prompts), `unreached` (the targets, with the rate reached instead, that the
        solved thresholds miss on the calibration half itself by more than 2 points or one prompt: the model cannot
        give that rate, e.g. because other categories' thresholds decide these prompts; a held-out error there is
        not sampling), `leakage` (on the held-out half) and the split sizes (`support`).
    """
    probs = probs.float().cpu()
    truth = truth.long().cpu()
    _check_inputs(probs, truth, taxonomy)
    cal, held = split_halves(len(truth), seed)
    _check_measurable(truth[cal], taxonomy, targets, "the calibration half of the prompts")
    _check_measurable(truth[held], taxonomy, targets, "the held-out half of the prompts")
    settings = calibrate_thresholds(probs[cal], truth[cal], taxonomy, targets)
    on_cal = refusal_rates(probs[cal], truth[cal], settings, taxonomy)
    on_held = refusal_rates(probs[held], truth[held], settings, taxonomy)
    error = {c: on_held[c] - r for c, r in targets.refusal_rates.items()}
    goals = dict(targets.refusal_rates)
    if targets.max_over_refusal is not None:
        error["over_refusal"] = on_held["over_refusal"] - targets.max_over_refusal
        goals["over_refusal"] = targets.max_over_refusal
    labels = ["respond"] + taxonomy.names
    support = {
        name: {c: int((truth[part] == j).sum()) for j, c in enumerate(labels)}
        for name, part in (("calibration", cal), ("held_out", held))
    }
    held_n = support["held_out"]
    # How far a held-out rate may land from its target by chance alone (binomial standard error at the target).
    sampling_error = {}
    for k, t in goals.items():
        n = held_n["respond" if k == "over_refusal" else k]
        sampling_error[k] = math.sqrt(t * (1 - t) / n) if n else math.nan
    cal_n = support["calibration"]
    unreached = {}
    for c, t in targets.refusal_rates.items():
        if cal_n[c] and abs(on_cal[c] - t) > max(1 / cal_n[c], 0.02) + 1e-6:
            unreached[c] = on_cal[c]
    ceiling = targets.max_over_refusal
    if ceiling is not None and on_cal["over_refusal"] > ceiling + max(1 / cal_n["respond"], 0.02) + 1e-6:
        unreached["over_refusal"] = on_cal["over_refusal"]  # the rate targets alone refuse more respond prompts
    return {
        "settings": settings.to_dict(),
        "targets": {
            "refusal_rates": targets.refusal_rates,
            "max_over_refusal": targets.max_over_refusal,
            "rule": targets.rule,
        },
        "calibration": on_cal,
        "held_out": on_held,
        "error": error,
        "sampling_error": sampling_error,
        "unreached": unreached,
        "all_targets_reached": not unreached,
        "leakage": cross_category_leakage(probs[held], truth[held], settings, taxonomy),
        "support": support,
    }


def format_calibration_report(report: dict[str, Any]) -> str:
    """Achieved vs target per category (calibration half and held-out half) and leakage, as aligned text."""
    head = (
        f"{'category':<22} {'target':>8} {'threshold':>10} {'calib.':>8} {'held-out':>9} {'n held':>7} "
        f"{'s.e.':>6} {'max leak':>9} {'token leak':>11}"
    )
    lines = [head, "-" * len(head)]
    targets = report["targets"]["refusal_rates"]
    se = report.get("sampling_error", {})
    n_held = report["support"]["held_out"]

    def fmt_se(k: str) -> str:
        return f"{se[k]:.3f}" if k in se else "-"

    for c, tau in report["settings"]["categories"].items():
        target = f"{targets[c]:.3f}" if c in targets else "-"
        leak = report["leakage"].get(c, {})
        lines.append(
            f"{c:<22} {target:>8} {tau:>10.4f} {report['calibration'][c]:>8.3f} {report['held_out'][c]:>9.3f} "
            f"{n_held.get(c, 0):>7d} {fmt_se(c):>6} {leak.get('max_other_change', math.nan):>9.3f} "
            f"{leak.get('max_other_token_change', math.nan):>11.3f}"
        )
    ceiling = report["targets"]["max_over_refusal"]
    lines.append(
        f"{'over-refusal':<22} {ceiling if ceiling is not None else '-':>8} {'':>10} "
        f"{report['calibration']['over_refusal']:>8.3f} {report['held_out']['over_refusal']:>9.3f} "
        f"{n_held.get('respond', 0):>7d} {fmt_se('over_refusal'):>6}"
    )
    rule = report["targets"].get("rule", "passing")
    for c, got in report.get("unreached", {}).items():
        if c == "over_refusal":
            lines.append(
                f"NOT REACHED: over-refusal ceiling {ceiling:.3f} (calibration half: {got:.3f}); the rate targets "
                "alone refuse more should-answer prompts than that: lower them or raise max_over_refusal"
            )
            continue
        lines.append(
            f"NOT REACHED: {c} target {targets[c]:.3f} (calibration half: {got:.3f}); other categories' "
            "thresholds or ties decide these prompts"
        )
    lines.append(
        f"rule: {rule}; s.e.: binomial standard error of a held-out rate at its target (how far it may land by chance)"
    )
    lines.append(
        "max leak: largest move of another category's refusal rate (on its labelled prompts) when this threshold\n"
        "moves the category's own rate by 10 points; token leak: the same for another token's share of all prompts"
    )
    return "\n".join(lines)


def run_calibration(
    probs: torch.Tensor,
    truth: torch.Tensor,
    taxonomy: RefusalTaxonomy,
    targets: CalibrationTargets,
    output_dir: str | os.PathLike,
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """The calibration step of the recipes and of `refusal-tokens calibrate`: solve, measure, write the files.

    Thresholds are solved on one half of the labelled prompts and measured on the other (`calibration_report`);
    `output_dir` receives `thresholds.yaml` (load it with `RefusalTokenLogitsProcessor`), `calibration.json` (the
    report) and, when matplotlib is installed, `refusal_rate_vs_threshold.png` and `roc.png`.

    Args:
        probs (`torch.Tensor` of shape `(n, 1 + C)`): `first_token_probabilities` of labelled prompts.
        truth (`torch.LongTensor` of shape `(n,)`): Column index of each prompt's label (0 = respond).
        taxonomy (`RefusalTaxonomy`): The taxonomy of the columns.
        targets (`CalibrationTargets`): What to achieve.
        output_dir (`str`): Folder of the outputs (created).
        seed (`int`, *optional*, defaults to 0): Seed of the calibration / held-out split.

    Returns:
        The report of `calibration_report`, with `thresholds_file` and `plots` (file paths) added.
    """
    report = calibration_report(probs, truth, taxonomy, targets, seed=seed)
    if report["unreached"]:
        got = ", ".join(f"{k} {v:.3f}" for k, v in report["unreached"].items())
        logger.warning(
            "calibration: targets NOT reached on the calibration half (%s); the thresholds are the closest the model "
            "gives, flagged in %s (all_targets_reached: false).",
            got,
            REPORT_FILE,
        )
    os.makedirs(output_dir, exist_ok=True)
    settings = RefusalSettings.from_dict(report["settings"])
    report["thresholds_file"] = settings.save(os.path.join(output_dir, THRESHOLDS_FILE))
    try:
        report["plots"] = save_calibration_plots(probs, truth, taxonomy, settings, output_dir)
    except ImportError:
        report["plots"] = {}
        logger.warning("matplotlib is not installed: calibration plots skipped (pip install refusal-tokens[plots]).")
    atomic_write_json(os.path.join(output_dir, REPORT_FILE), report)
    return report
