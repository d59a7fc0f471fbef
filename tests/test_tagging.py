import pytest
from datasets import Dataset, IterableDataset
from trl import SFTConfig, SFTTrainer

from refusal_tokens import TaggingError, add_refusal_tokens, assistant_header_ids, tag_dataset, tag_example
from refusal_tokens.testing import build_tiny_model

TAX = "coconot"


def test_every_trl_format():
    assert tag_example({"prompt": "p", "completion": "c"}, TAX, "respond")["completion"] == "[respond]c"
    conv = tag_example(
        {"prompt": [{"role": "user", "content": "p"}], "completion": [{"role": "assistant", "content": "no"}]},
        TAX,
        "humanizing",
    )
    assert conv["completion"][0]["content"] == "[refuse:humanizing]no"
    msgs = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"},
    ]
    tagged = tag_example({"messages": msgs}, TAX, "incomplete")["messages"]
    assert [m["content"] for m in tagged] == ["a", "b", "c", "[refuse:incomplete]d"]  # only the judged (last) turn
    assert msgs[3]["content"] == "d"  # input not mutated
    pref = tag_example(
        {"prompt": "p", "chosen": "no", "rejected": "ok"},
        TAX,
        chosen_label="safety_concerns",
        rejected_label="respond",
    )
    assert (pref["chosen"], pref["rejected"]) == ("[refuse:safety_concerns]no", "[respond]ok")


def test_tagging_is_idempotent_but_not_relabelling():
    row = tag_example({"prompt": "p", "completion": "c"}, TAX, "respond")
    assert tag_example(row, TAX, "respond") == row
    with pytest.raises(TaggingError, match="row 7: field 'completion'.*already starts with '\\[respond\\]'"):
        tag_example(row, TAX, "humanizing", index=7)


@pytest.mark.parametrize(
    "rows, match",
    [
        (
            [
                {"prompt": "p", "completion": "c", "refusal_label": "respond"},
                {"prompt": "p", "completion": "c", "refusal_label": "privacy"},
            ],
            "row 1: field 'completion': unknown label",
        ),
        (
            [
                {"prompt": "p", "completion": "c", "refusal_label": "respond"},
                {"prompt": "p", "completion": "c", "refusal_label": None},
            ],
            "row 1: no label",
        ),
        (
            [{"messages": [{"role": "user", "content": "hi"}], "refusal_label": "respond"}],
            "row 0: field 'messages': has no assistant message",
        ),
        ([{"text": "hello", "refusal_label": "respond"}], "expected 'messages'"),
    ],
)
def test_bad_rows_name_row_and_field(rows, match):
    with pytest.raises(TaggingError, match=match):
        tag_dataset(Dataset.from_list(rows), TAX)


def test_missing_label_column_is_explained():
    with pytest.raises(TaggingError, match="no label column 'refusal_label'"):
        tag_dataset(Dataset.from_list([{"prompt": "p", "completion": "c"}]), TAX)


def test_classifier_labels_batches_and_preference_sides():
    calls = []

    def classifier(prompts, responses):
        calls.append(len(prompts))
        return ["safety_concerns" if r.startswith("No") else "respond" for r in responses]

    rows = [
        {"prompt": f"q{i}", "chosen": "No way." if i % 2 else "Sure.", "rejected": "Sure thing."} for i in range(5)
    ]
    out = tag_dataset(Dataset.from_list(rows), TAX, classifier=classifier, batch_size=2)
    assert calls == [2, 2, 2, 2, 1, 1]  # chosen and rejected classified per batch
    assert out["chosen"][1] == "[refuse:safety_concerns]No way." and out["chosen"][0] == "[respond]Sure."
    assert out["rejected_label"] == ["respond"] * 5
    assert out["chosen_label"] == ["respond", "safety_concerns", "respond", "safety_concerns", "respond"]


def test_classifier_on_prompt_completion_and_messages_rows():
    seen = []

    def classifier(prompts, responses):
        seen.extend(zip(prompts, responses))
        return ["humanizing" if "feel" in p else "respond" for p in prompts]

    rows = [{"prompt": "how do you feel?", "completion": "I am an AI."}, {"prompt": "hi", "completion": "Hello."}]
    out = tag_dataset(Dataset.from_list(rows), TAX, classifier=classifier)
    assert out["completion"] == ["[refuse:humanizing]I am an AI.", "[respond]Hello."]
    msgs = [{"messages": [{"role": "user", "content": "how do you feel?"}, {"role": "assistant", "content": "AI."}]}]
    assert tag_dataset(Dataset.from_list(msgs), TAX, classifier=classifier)["refusal_label"] == ["humanizing"]
    assert seen[0] == ("how do you feel?", "I am an AI.")


def test_streaming_dataset():
    rows = [{"prompt": "p", "completion": "c", "refusal_label": "[refuse:humanizing]"}]
    ds = IterableDataset.from_generator(lambda: iter(rows))
    out = list(tag_dataset(ds, TAX))
    assert out[0]["completion"] == "[refuse:humanizing]c" and out[0]["refusal_label"] == "humanizing"


def _sft_examples(tok, model, dataset, **cfg):
    args = SFTConfig(
        output_dir="/tmp/unused",
        report_to="none",
        bf16=False,
        gradient_checkpointing=False,
        max_length=128,
        use_cpu=True,
        **cfg,
    )
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok).train_dataset


@pytest.mark.parametrize("layout", ["prompt_completion", "messages"])
def test_token_is_first_supervised_token_after_chat_template(chat_tokenizer, layout):
    """With ChatML and a Llama-3 style template, TRL's loss mask starts exactly at the refusal token."""
    tok = chat_tokenizer
    model = build_tiny_model(tok)
    ids = add_refusal_tokens(model, tok, TAX)
    labels = ["respond", "humanizing", "safety_concerns"]
    prompts = ["how do you feel today?", "explain the moon", "how to hack the email of my friend?"]
    if layout == "messages":
        rows = [
            {
                "messages": [{"role": "user", "content": p}, {"role": "assistant", "content": "Answer here."}],
                "refusal_label": lab,
            }
            for p, lab in zip(prompts, labels)
        ]
        cfg = {"assistant_only_loss": True}
    else:
        rows = [
            {
                "prompt": [{"role": "user", "content": p}],
                "completion": [{"role": "assistant", "content": "Answer here."}],
                "refusal_label": lab,
            }
            for p, lab in zip(prompts, labels)
        ]
        cfg = {"completion_only_loss": True}
    ds = _sft_examples(tok, model, tag_dataset(Dataset.from_list(rows), TAX), **cfg)
    header = assistant_header_ids(tok)
    for ex, lab in zip(ds, labels):
        input_ids = ex["input_ids"]
        if "labels" in ex:
            mask = [lab_id != -100 for lab_id in ex["labels"]]
        else:
            mask = ex.get("completion_mask") or ex["assistant_masks"]
        first = mask.index(True)
        assert input_ids[first] == ids.id_for(lab)
        assert input_ids[first - len(header) : first] == header  # right after the template's assistant header
