import re

import pytest

from refusal_tokens import RefusalTaxonomy, add_refusal_tokens, get_taxonomy
from refusal_tokens.testing import build_tiny_model


def test_presets_match_the_papers():
    csn = get_taxonomy("cannot-should-not")
    should_not = [c.name for c in csn if c.branch == "should_not"]
    cannot = [c.name for c in csn if c.branch == "cannot"]
    assert should_not == [
        "legal_compliance",
        "information_hazards",
        "intellectual_property",
        "privacy",
        "nsfw",
        "chain_of_command",
    ]
    assert {
        "modalities",
        "skill_level",
        "invalid_premise",
        "missing_identity",
        "knowledge_cutoff",
        "unknown_unknowns",
        "training_data_limits",
        "missing_context",
        "unclear",
    } == set(cannot)
    assert get_taxonomy("coconot").names == [
        "incomplete",
        "indeterminate",
        "unsupported",
        "humanizing",
        "safety_concerns",
    ]
    assert get_taxonomy("single").tokens == ["[refuse]"]
    for name in ("cannot-should-not", "coconot", "single"):
        t = get_taxonomy(name)
        assert all(c.description for c in t)
        assert RefusalTaxonomy.from_dict(t.to_dict()) == t


def test_yaml_file_and_saved_directory(tmp_path):
    path = tmp_path / "tax.yaml"
    path.write_text(
        "name: mine\ncategories:\n"
        "  - {name: medical, branch: should_not, description: refuse medical diagnoses}\n"
        "  - {name: vision, token: '[cant:see]', branch: cannot, description: cannot see images}\n"
    )
    t = get_taxonomy(str(path))
    assert t.tokens == ["[refuse:medical]", "[cant:see]"]
    t.save_pretrained(tmp_path / "ckpt")
    assert get_taxonomy(str(tmp_path / "ckpt")) == t


@pytest.mark.parametrize(
    "categories, match",
    [
        ([], "no categories"),
        (
            [
                {"name": "a", "branch": "cannot", "description": "x"},
                {"name": "a", "branch": "cannot", "description": "y"},
            ],
            "duplicate category name",
        ),
        (
            [
                {"name": "a", "token": "[t]", "branch": "cannot", "description": "x"},
                {"name": "b", "token": "[t]", "branch": "cannot", "description": "y"},
            ],
            "already used",
        ),
        ([{"name": "a", "token": "[respond]", "branch": "cannot", "description": "x"}], "respond token"),
        ([{"name": "a", "branch": "maybe", "description": "x"}], "branch"),
        ([{"name": "Bad Name", "branch": "cannot", "description": "x"}], "name must match"),
        ([{"name": "a", "branch": "cannot", "description": " "}], "description is empty"),
        ([{"name": "a", "branch": "cannot", "description": "x", "colour": "red"}], "unknown keys"),
        ([{"name": "respond", "branch": "cannot", "description": "x"}], "reserved"),
    ],
)
def test_validation_errors(categories, match):
    with pytest.raises(ValueError, match=match):
        RefusalTaxonomy.from_dict({"name": "t", "categories": categories})


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="presets"):
        get_taxonomy("nope")


def test_token_already_in_ordinary_vocabulary_is_rejected(tokenizer):
    special = set(tokenizer.all_special_tokens) | {str(t) for t in tokenizer.added_tokens_decoder.values()}
    ordinary = next(
        t
        for t in sorted(tokenizer.get_vocab())
        if len(t) > 1 and not re.fullmatch(r"[\w\-']+", t) and t not in special
    )
    tax = RefusalTaxonomy.from_dict(
        {"name": "t", "categories": [{"name": "a", "token": ordinary, "branch": "cannot", "description": "x"}]}
    )
    with pytest.raises(ValueError, match="ordinary vocabulary"):
        add_refusal_tokens(build_tiny_model(tokenizer), tokenizer, tax)


def test_plain_word_tokens_are_rejected_at_construction():
    # user text containing the word would become the token
    with pytest.raises(ValueError, match="token 'privacy' is a plain word"):
        RefusalTaxonomy.from_dict(
            {"name": "t", "categories": [{"name": "a", "token": "privacy", "branch": "cannot", "description": "x"}]}
        )
    with pytest.raises(ValueError, match="respond_token 'ok' is a plain word"):
        RefusalTaxonomy.from_dict(
            {
                "name": "t",
                "respond_token": "ok",
                "categories": [{"name": "a", "token": "[a]", "branch": "cannot", "description": "x"}],
            }
        )


@pytest.mark.parametrize("role", ["eos_token", "pad_token"])
def test_a_token_equal_to_eos_or_pad_is_refused(tokenizer, role):
    # its row would be overwritten and it would be banned after the first token: generation could not stop
    tok = getattr(tokenizer, role)
    tax = RefusalTaxonomy.from_dict(
        {"name": "t", "categories": [{"name": "a", "token": tok, "branch": "cannot", "description": "x"}]}
    )
    with pytest.raises(ValueError, match=f"is the tokenizer's {role}"):
        add_refusal_tokens(build_tiny_model(tokenizer), tokenizer, tax)


def test_a_token_equal_to_another_special_token_is_refused(tokenizer):
    tax = RefusalTaxonomy.from_dict(
        {"name": "t", "categories": [{"name": "a", "token": "<|im_start|>", "branch": "cannot", "description": "x"}]}
    )
    with pytest.raises(ValueError, match="already a special token of this tokenizer"):
        add_refusal_tokens(build_tiny_model(tokenizer), tokenizer, tax)


def test_normalize_label():
    t = get_taxonomy("coconot")
    assert t.normalize_label("[refuse:humanizing]") == "humanizing"
    assert t.normalize_label("[respond]") == "respond"
    with pytest.raises(ValueError, match="unknown label 'privacy'"):
        t.normalize_label("privacy")
