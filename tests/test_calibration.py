"""Threshold calibration on synthetic first-token probabilities: targets met, ceilings kept, leakage measured."""

import pytest
import torch

from refusal_tokens import RefusalSettings, get_taxonomy
from refusal_tokens.evaluation.calibration import (
    CalibrationTargets,
    calibrate_thresholds,
    calibration_report,
    cross_category_leakage,
    format_calibration_report,
)
from refusal_tokens.evaluation.metrics import refusal_rates

TAX = get_taxonomy("coconot")


def _probs(n_per=200, seed=0):
    """Respond rows put little mass on the category tokens; category rows put a spread of mass on their own."""
    g = torch.Generator().manual_seed(seed)
    rows, truth = [], []
    for j in range(len(TAX) + 1):
        for _ in range(n_per):
            p = torch.rand(len(TAX) + 1, generator=g) * 0.05
            if j == 0:
                p[0] = 1.0
                p[1:] *= torch.rand(len(TAX), generator=g) * 4  # some respond prompts look like a category
            else:
                p[j] = torch.rand(1, generator=g).item()  # own-category probability anywhere in [0, 1]
                p[0] = 1 - p[j]
            rows.append(p / p.sum())
            truth.append(j)
    return torch.stack(rows), torch.tensor(truth)


def _incomplete_spread_then(indeterminate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """As many incomplete prompts as `indeterminate` rows, their own probability spread over [0.05, 0.95], then the
    given indeterminate rows: probabilities and truth."""
    n = len(indeterminate)
    own = torch.linspace(0.05, 0.95, n)
    inc = torch.stack([1 - own, own] + [torch.zeros(n)] * 4, dim=1)
    return torch.cat([inc, indeterminate]), torch.tensor([1] * n + [2] * n)


@pytest.mark.parametrize("rule", ["passing", "top"])
def test_target_rates_are_met_on_the_calibration_data(rule):
    probs, truth = _probs()
    targets = CalibrationTargets(
        refusal_rates={"humanizing": 0.3, "safety_concerns": 0.9, "incomplete": 0.5}, rule=rule
    )
    settings = calibrate_thresholds(probs, truth, TAX, targets)
    assert settings.rule == rule
    got = refusal_rates(probs, truth, settings, TAX)
    for c, r in targets.refusal_rates.items():
        assert abs(got[c] - r) <= 0.01, (c, got[c], r)


@pytest.mark.parametrize("rule", ["passing", "top"])
def test_over_refusal_ceiling_holds_and_refusals_are_maximised(rule):
    probs, truth = _probs()
    targets = CalibrationTargets(max_over_refusal=0.05, rule=rule)
    settings = calibrate_thresholds(probs, truth, TAX, targets)
    got = refusal_rates(probs, truth, settings, TAX)
    assert 0.04 <= got["over_refusal"] <= 0.05 + 1e-6  # the ceiling is used, not only respected
    # lowering any threshold a little would break the per-category share of the ceiling or refuse no more
    loose = RefusalSettings(categories={c: max(0.0, v - 0.05) for c, v in settings.categories.items()}, rule=rule)
    assert refusal_rates(probs, truth, loose, TAX)["over_refusal"] > 0.05 + 1e-6


@pytest.mark.parametrize("rule", ["passing", "top"])
def test_ceiling_counts_the_respond_prompts_that_rate_targets_refuse(rule):
    probs, truth = _probs()
    lookalike = (truth == 0).nonzero().squeeze(1)[:8]  # 4% of respond prompts look like humanizing
    probs[lookalike] = torch.tensor([0.4, 0.0, 0.0, 0.0, 0.6, 0.0])
    targets = CalibrationTargets(refusal_rates={"humanizing": 0.5}, max_over_refusal=0.05, rule=rule)
    settings = calibrate_thresholds(probs, truth, TAX, targets)
    assert settings.categories["humanizing"] <= 0.6  # its rate target refuses the look-alikes...
    got = refusal_rates(probs, truth, settings, TAX)
    assert abs(got["humanizing"] - 0.5) <= 0.01
    assert 0.04 <= got["over_refusal"] <= 0.05 + 1e-6  # ...so the other categories get only the last 1%


def test_report_measures_on_the_other_half_and_leakage_is_small():
    probs, truth = _probs(n_per=2000)  # ~1000 prompts per category and half: sampling error about 2 points
    targets = CalibrationTargets(refusal_rates=dict.fromkeys(TAX.names, 0.6))
    report = calibration_report(probs, truth, TAX, targets, seed=1)
    assert sum(report["support"]["calibration"].values()) + sum(report["support"]["held_out"].values()) == len(truth)
    for c in TAX.names:
        assert abs(report["error"][c]) < 0.05, (c, report["error"][c])
        n = report["support"]["held_out"][c]
        assert report["sampling_error"][c] == pytest.approx((0.6 * 0.4 / n) ** 0.5)
    for c, leak in report["leakage"].items():
        assert abs(leak["own_change"]) >= 0.05
        assert leak["max_other_change"] < 0.01, (c, leak)
    assert report["unreached"] == {}


def test_report_names_targets_the_probabilities_cannot_give():
    # every indeterminate prompt has the same probabilities: its rate is 0 or 1, never 0.5
    probs, truth = _incomplete_spread_then(torch.tensor([[0.3, 0.0, 0.7, 0.0, 0.0, 0.0]] * 100))
    targets = CalibrationTargets(refusal_rates={"incomplete": 0.5, "indeterminate": 0.5})
    report = calibration_report(probs, truth, TAX, targets)
    assert set(report["unreached"]) == {"indeterminate"}
    assert report["unreached"]["indeterminate"] in (0.0, 1.0)
    assert "NOT REACHED: indeterminate target 0.500" in format_calibration_report(report)
    assert report["all_targets_reached"] is False


def test_leakage_is_detected_when_categories_compete():
    # indeterminate prompts that put p=0.25 on `incomplete`: lowering incomplete's threshold makes them refuse
    probs, truth = _incomplete_spread_then(torch.tensor([[0.65, 0.25, 0.1, 0.0, 0.0, 0.0]] * 50))
    settings = RefusalSettings(categories={"incomplete": 0.3, "indeterminate": 0.3})
    leak = cross_category_leakage(probs, truth, settings, TAX)
    assert leak["incomplete"]["own_change"] == pytest.approx(0.1, abs=0.03)
    assert leak["incomplete"]["max_other_change"] == 1.0


def test_top_rule_does_not_leak_when_every_prompt_tops_its_own_category():
    # indeterminate prompts: own p=0.4 (below its 0.5 threshold), p=0.25 on incomplete. Lowering incomplete's
    # threshold below 0.25 makes the passing rule refuse them all as incomplete; under "top" they answer only to
    # indeterminate's threshold.
    probs, truth = _incomplete_spread_then(torch.tensor([[0.35, 0.25, 0.4, 0.0, 0.0, 0.0]] * 50))
    tau = {"incomplete": 0.3, "indeterminate": 0.5}
    passing = cross_category_leakage(probs, truth, RefusalSettings(categories=tau), TAX)
    top = cross_category_leakage(probs, truth, RefusalSettings(categories=tau, rule="top"), TAX)
    assert passing["incomplete"]["max_other_change"] == 1.0
    assert top["incomplete"]["own_change"] == pytest.approx(0.1, abs=0.03)
    assert top["incomplete"]["max_other_change"] == 0.0


def test_token_leak_is_zero_under_top_even_when_the_model_confuses_categories():
    # Indeterminate prompts that the model files under incomplete: moving incomplete's threshold changes their
    # refusal rate under both rules (the model's confusion), but under "top" no other token's share moves.
    own = torch.linspace(0.05, 0.95, 50)
    probs, truth = _incomplete_spread_then(
        torch.stack([1 - own * 0.6, own * 0.5, own * 0.1] + [torch.zeros(50)] * 3, 1)
    )
    tau = {"incomplete": 0.5, "indeterminate": 0.02}
    passing = cross_category_leakage(probs, truth, RefusalSettings(categories=tau), TAX)
    top = cross_category_leakage(probs, truth, RefusalSettings(categories=tau, rule="top"), TAX)
    assert top["incomplete"]["max_other_change"] > 0.05  # labelled leak: the confused prompts
    assert top["incomplete"]["max_other_token_change"] == 0.0
    assert passing["incomplete"]["max_other_token_change"] > 0.05  # they switch from one token to the other


def test_bad_targets_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="refusal_rates per category, max_over_refusal, or both"):
        CalibrationTargets()
    with pytest.raises(ValueError, match=r"refusal_rates\['humanizing'\]=1.5"):
        CalibrationTargets(refusal_rates={"humanizing": 1.5})
    path = tmp_path / "t.yaml"
    path.write_text("max_overrefusal: 0.1\n")
    with pytest.raises(ValueError, match="unknown keys"):
        CalibrationTargets.from_file(path)
    probs, truth = _probs(n_per=10)
    with pytest.raises(ValueError, match="unknown categories"):
        calibrate_thresholds(probs, truth, TAX, CalibrationTargets(refusal_rates={"privacy": 0.5}))
    with pytest.raises(ValueError, match="rule='first'"):
        CalibrationTargets(max_over_refusal=0.1, rule="first")
    path.write_text("max_over_refusal: 0.1\nrule: top\n")
    assert CalibrationTargets.from_file(path).rule == "top"


def test_a_ceiling_without_should_answer_prompts_is_an_error_not_all_zero_thresholds():
    # only refusal prompts: every threshold "meets" max_over_refusal, down to refusing everything
    probs, truth = _incomplete_spread_then(torch.tensor([[0.3, 0.0, 0.7, 0.0, 0.0, 0.0]] * 20))
    refusing = truth != 0
    with pytest.raises(ValueError, match="max_over_refusal=0.1 cannot be measured: .* no respond"):
        calibration_report(probs[refusing], truth[refusing], TAX, CalibrationTargets(max_over_refusal=0.1))
    with pytest.raises(ValueError, match=r"refusal_rates for \['humanizing'\] cannot be measured"):
        calibration_report(probs, truth, TAX, CalibrationTargets(refusal_rates={"humanizing": 0.5}))


def test_an_unreachable_ceiling_is_flagged_in_the_report():
    # respond prompts that look exactly like incomplete prompts: a 0.9 incomplete rate refuses 90% of them too
    g = torch.Generator().manual_seed(0)
    p = torch.rand(200, generator=g)
    probs = torch.zeros(200, 6)
    probs[:, 0], probs[:, 1] = 1 - p, p
    truth = torch.tensor([1, 0] * 100)
    targets = CalibrationTargets(refusal_rates={"incomplete": 0.9}, max_over_refusal=0.05)
    report = calibration_report(probs, truth, TAX, targets)
    assert report["unreached"]["over_refusal"] > 0.5 and report["all_targets_reached"] is False
    assert "NOT REACHED: over-refusal ceiling 0.050" in format_calibration_report(report)
