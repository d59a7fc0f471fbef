import pytest

from refusal_tokens import RefusalSettings, get_taxonomy


def test_category_overrides_branch_overrides_default():
    tax = get_taxonomy("cannot-should-not")
    s = RefusalSettings(default=0.5, branches={"cannot": 0.9}, categories={"privacy": 0.2, "modalities": 0.1})
    values = dict(zip(tax.names, s.resolve(tax)))
    assert values["privacy"] == 0.2
    assert values["legal_compliance"] == 0.5
    assert values["modalities"] == 0.1
    assert values["skill_level"] == 0.9


def test_scale_default_is_identity():
    assert RefusalSettings(mode="scale").resolve(get_taxonomy("coconot")) == [1.0] * 5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mode": "bias"}, "mode"),
        ({"default": 1.5}, r"\[0, 1\]"),
        ({"categories": {"privacy": -0.1}}, r"\[0, 1\]"),
        ({"mode": "scale", "default": -1.0}, ">= 0"),
        ({"branches": {"sometimes": 0.1}}, "unknown branch"),
        ({"categories": {"privacy": "high"}}, "must be a number"),
        ({"rule": "max"}, "rule"),
        ({"mode": "scale", "rule": "top"}, "threshold mode only"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RefusalSettings(**kwargs)


def test_unknown_category_is_named():
    with pytest.raises(ValueError, match="unknown categories.*'privacy'"):
        RefusalSettings(categories={"privacy": 0.3}).resolve(get_taxonomy("coconot"))


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip_files(tmp_path, suffix):
    s = RefusalSettings(mode="scale", default=1.0, branches={"should_not": 2.0}, categories={"humanizing": 0.0})
    path = s.save(tmp_path / f"t{suffix}")
    assert RefusalSettings.from_file(path) == s


def test_unknown_file_key(tmp_path):
    (tmp_path / "t.yaml").write_text("mode: threshold\nthreshold: 0.3\n")
    with pytest.raises(ValueError, match="Unknown refusal-settings keys"):
        RefusalSettings.from_file(tmp_path / "t.yaml")


def test_rule_round_trips_and_default_files_stay_as_they_were(tmp_path):
    top = RefusalSettings(categories={"privacy": 0.2}, rule="top")
    assert RefusalSettings.from_file(top.save(tmp_path / "top.yaml")) == top
    assert "rule" not in RefusalSettings().to_dict()  # thresholds files written before the rule existed still load


def test_top_rule_only_lets_the_most_probable_category_compete():
    import torch

    tax = get_taxonomy("coconot")  # incomplete, indeterminate, unsupported, humanizing, safety_concerns
    probs = torch.tensor([[0.3, 0.0, 0.0, 0.0, 0.4, 0.3], [0.3, 0.5, 0.2, 0.0, 0.0, 0.0]])
    tau = {"humanizing": 0.5, "safety_concerns": 0.2, "incomplete": 0.6, "indeterminate": 0.1}
    # row 0: humanizing is most probable but below 0.5; safety_concerns passes its 0.2
    assert RefusalSettings(categories=tau).decide(probs, tax).tolist() == [5, 2]
    assert RefusalSettings(categories=tau, rule="top").decide(probs, tax).tolist() == [0, 0]
