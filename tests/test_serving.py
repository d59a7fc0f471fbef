"""The serving rule (`refusal_tokens.serving.rule`): the same decisions as `RefusalTokenLogitsProcessor`, per-request
settings in one batch, and the operator's bounds on what a request may change."""

import json
import math
import re

import pytest
import torch

from refusal_tokens import RefusalSettings, RefusalTokenIds, RefusalTokenLogitsProcessor, get_taxonomy
from refusal_tokens.serving import RowSettings, ServingPolicy, check_request, pack_rows, refusal_logits

TAX = get_taxonomy("coconot")
IDS = RefusalTokenIds(taxonomy=TAX, respond_id=90, category_ids=(91, 92, 93, 94, 95))
VOCAB = 100


def _rule(logits, settings_per_row, first):
    rows = [RowSettings.from_settings(s, TAX) if s is not None else None for s in settings_per_row]
    packed = pack_rows(rows, len(TAX))
    return refusal_logits(
        logits,
        first=torch.tensor(first),
        active=packed["active"],
        tau=packed["tau"],
        log_s=packed["log_s"],
        scale=packed["scale"],
        top=packed["top"],
        all_ids=torch.tensor(IDS.all_ids),
    )


@pytest.mark.parametrize(
    "settings",
    [
        RefusalSettings(),
        RefusalSettings(categories={"humanizing": 0.05, "safety_concerns": 0.2}),
        RefusalSettings(categories={"humanizing": 0.05, "safety_concerns": 0.2}, rule="top"),
        RefusalSettings(mode="scale", categories={"humanizing": 4.0, "incomplete": 0.0}),
    ],
    ids=["default", "passing", "top", "scale"],
)
def test_same_result_as_the_transformers_processor(settings):
    torch.manual_seed(0)
    logits = torch.randn(16, VOCAB) * 3
    logits[:, IDS.all_ids] += torch.randn(16, 6) * 4  # the refusal tokens compete for the first position
    ref = RefusalTokenLogitsProcessor(IDS, settings, prompt_length=5)
    want_first = ref(torch.zeros(16, 5, dtype=torch.long), logits)
    want_later = ref(torch.zeros(16, 6, dtype=torch.long), logits)
    got = _rule(logits, [settings] * 16, [True] * 8 + [False] * 8)
    assert torch.equal(got[:8], want_first[:8])
    assert torch.equal(got[8:], want_later[8:])


def test_per_request_settings_in_one_batch_and_inactive_rows_pass_through():
    logits = torch.zeros(4, VOCAB)
    logits[:, IDS.respond_id] = 2.0
    logits[:, 95] = 1.0  # safety_concerns: p about 0.025, well below 0.5
    before = logits.clone()
    strict = RefusalSettings(categories={"safety_concerns": 0.01})
    got = _rule(logits, [RefusalSettings(), strict, None, strict], [True, True, True, False])
    assert torch.equal(logits, before)  # never modified in place
    assert got[0].argmax() == IDS.respond_id and got[1].argmax() == 95
    assert torch.equal(got[2], logits[2])  # inactive: untouched
    assert got[3, IDS.all_ids].eq(-math.inf).all()  # later position: the tokens are forbidden
    assert got[0].isinf().sum() == VOCAB - 1  # threshold mode decides the first token outright


def test_check_request_merges_over_the_servers_defaults():
    base = RefusalSettings(default=0.5, categories={"humanizing": 0.3})
    got = check_request({"categories": {"safety_concerns": 0.1}}, ServingPolicy(), base, TAX)
    assert got.categories == {"humanizing": 0.3, "safety_concerns": 0.1} and got.default == 0.5
    as_json = check_request(json.dumps({"default": 0.7}), ServingPolicy(), base, TAX)  # vllm_xargs form
    assert as_json.default == 0.7 and as_json.categories == {"humanizing": 0.3}
    scale = check_request({"mode": "scale", "categories": {"humanizing": 2.0}}, ServingPolicy(), base, TAX)
    assert scale.mode == "scale" and scale.default == 1.0 and scale.categories == {"humanizing": 2.0}
    assert check_request(None, ServingPolicy(), base) is base


@pytest.mark.parametrize(
    "request_, message",
    [
        ({"categories": {"humanizing": 2.0}}, "must lie in [0, 1]"),
        ({"categories": {"privacy": 0.2}}, "unknown categories ['privacy']"),
        ({"threshold": 0.2}, "unknown keys ['threshold']"),
        ({"categories": [0.2]}, "categories must be a mapping"),
        ({"mode": "bias"}, "mode='bias' is not one of"),
        ("{not json", "not a JSON object"),
        (0.3, "must be a mapping"),
    ],
)
def test_bad_requests_are_one_line_errors(request_, message):
    with pytest.raises(ValueError, match=r"extra_args\['refusal'\].*" + re.escape(message)):
        check_request(request_, ServingPolicy(), RefusalSettings(), TAX)


def test_operator_policy_bounds_what_a_request_may_change():
    base = RefusalSettings(categories={"safety_concerns": 0.3})
    closed = ServingPolicy(allow_overrides=False)
    with pytest.raises(ValueError, match="does not accept per-request refusal settings"):
        check_request({"default": 0.4}, closed, base, TAX)
    assert check_request(None, closed, base, TAX) is base  # no override asked: fine
    locked = ServingPolicy(locked=["safety_concerns"])
    with pytest.raises(ValueError, match="categories.safety_concerns cannot be changed"):
        check_request({"categories": {"safety_concerns": 0.9}}, locked, base, TAX)
    with pytest.raises(ValueError, match="default cannot be changed"):
        check_request({"default": 0.9}, locked, base, TAX)
    assert check_request({"categories": {"humanizing": 0.9}}, locked, base, TAX).categories["humanizing"] == 0.9
    capped = ServingPolicy(max_thresholds={"safety_concerns": 0.4})
    with pytest.raises(ValueError, match="above this server's cap of 0.4"):
        check_request({"categories": {"safety_concerns": 0.9}}, capped, base, TAX)
    with pytest.raises(ValueError, match="keep it"):
        check_request({"mode": "scale"}, capped, base, TAX)
    # a cap also holds against values changed indirectly (a default): the engine clamps them
    settings = check_request({"default": 0.95}, capped, base.__class__(default=0.5), TAX)
    row = RowSettings.from_settings(settings, TAX, capped.caps(TAX))
    assert row.values[TAX.names.index("safety_concerns")] == 0.4 and row.values[0] == 0.95


def test_policy_files_are_strict(tmp_path):
    good = tmp_path / "policy.yaml"
    good.write_text("locked: [safety_concerns]\nmax_thresholds: {should_not: 0.3}\n")
    policy = ServingPolicy.from_file(good)
    assert policy.locked == ["safety_concerns"]
    assert policy.caps(TAX) == [1.0, 1.0, 1.0, 1.0, 0.3]  # the should_not branch's cap reaches safety_concerns
    bad = tmp_path / "bad.yaml"
    bad.write_text("lockd: [x]\n")
    with pytest.raises(ValueError, match=r"unknown keys \['lockd'\]"):
        ServingPolicy.from_file(bad)
    with pytest.raises(ValueError, match="neither categories"):
        ServingPolicy(locked=["privacy"]).check_names(TAX)
    with pytest.raises(ValueError, match=r"max_thresholds\['x'\]=2 must be a number in \[0, 1\]"):
        ServingPolicy(max_thresholds={"x": 2})
