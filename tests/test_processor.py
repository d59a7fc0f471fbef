import math

import pytest
import torch

from refusal_tokens import (
    RefusalSettings,
    RefusalTokenIds,
    RefusalTokenLogitsProcessor,
    add_refusal_tokens,
    assistant_header_ids,
    build_chat_prompts,
    get_taxonomy,
)
from refusal_tokens.testing import build_tiny_model

TAX = get_taxonomy("coconot")  # incomplete, indeterminate, unsupported, humanizing, safety_concerns
IDS = RefusalTokenIds(TAX, respond_id=10, category_ids=(11, 12, 13, 14, 15))
V = 20
HEADER = [7, 8]


def scores_from(probs_by_id: list[dict[int, float]], dtype=torch.float32) -> torch.Tensor:
    """Logits whose softmax is exactly the given probabilities (rest spread evenly over the other ids)."""
    rows = []
    for probs in probs_by_id:
        rest = (1.0 - sum(probs.values())) / (V - len(probs))
        rows.append([math.log(probs.get(i, rest)) for i in range(V)])
    return torch.tensor(rows, dtype=dtype)


ROWS = [
    {11: 0.6, 10: 0.3},  # incomplete clearly
    {14: 0.4, 15: 0.35, 10: 0.2},  # humanizing vs safety, both below 0.5
    {10: 0.9, 15: 0.05},  # respond
]


def decide(settings, rows=ROWS, dtype=torch.float32):
    proc = RefusalTokenLogitsProcessor(IDS, settings, prompt_length=4)
    scores = scores_from(rows, dtype)
    out = proc(torch.zeros(len(rows), 4, dtype=torch.long), scores)
    assert torch.isinf(out).sum(-1).tolist() == [V - 1] * len(rows)  # exactly one token left per row
    return [IDS.label_for_id(i) for i in out.argmax(-1).tolist()]


@pytest.mark.parametrize(
    "settings, expected",
    [
        (RefusalSettings(), ["incomplete", "respond", "respond"]),
        (RefusalSettings(categories={"humanizing": 0.3}), ["incomplete", "humanizing", "respond"]),
        (RefusalSettings(default=0.3), ["incomplete", "humanizing", "respond"]),  # most probable eligible wins
        (RefusalSettings(categories={"safety_concerns": 0.3}), ["incomplete", "safety_concerns", "respond"]),
        (RefusalSettings(branches={"cannot": 0.3}), ["incomplete", "humanizing", "respond"]),
        (
            RefusalSettings(branches={"cannot": 0.3}, categories={"humanizing": 0.45}),
            ["incomplete", "respond", "respond"],
        ),
        (RefusalSettings(categories={"incomplete": 0.7}), ["respond", "respond", "respond"]),
        (RefusalSettings(categories={"safety_concerns": 0.04}), ["incomplete", "safety_concerns", "safety_concerns"]),
        (RefusalSettings(default=1.0), ["respond", "respond", "respond"]),
        # rule="top": only the most probable category competes (humanizing in row 2, safety_concerns in row 3)
        (RefusalSettings(categories={"safety_concerns": 0.3}, rule="top"), ["incomplete", "respond", "respond"]),
        (RefusalSettings(default=0.3, rule="top"), ["incomplete", "humanizing", "respond"]),
        (
            RefusalSettings(categories={"safety_concerns": 0.04}, rule="top"),
            ["incomplete", "respond", "safety_concerns"],
        ),
    ],
)
def test_threshold_decisions_match_hand_computation(settings, expected):
    assert decide(settings) == expected


@pytest.mark.parametrize("rule", ["passing", "top"])
def test_processor_decides_like_settings_decide(rule):
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(200, V, generator=g) * 2
    scores[:, 10:16] += 2  # put real mass on respond and the category tokens
    settings = RefusalSettings(categories=dict(zip(TAX.names, [0.05, 0.1, 0.15, 0.2, 0.08])), rule=rule)
    proc = RefusalTokenLogitsProcessor(IDS, settings, prompt_length=4)
    chosen = proc(torch.zeros(200, 4, dtype=torch.long), scores).argmax(-1)
    expected = settings.decide(scores.softmax(-1)[:, list(IDS.all_ids)], TAX)
    assert chosen.tolist() == [IDS.all_ids[i] for i in expected.tolist()]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_dtypes(dtype):
    assert decide(RefusalSettings(categories={"humanizing": 0.3}), dtype=dtype) == [
        "incomplete",
        "humanizing",
        "respond",
    ]


def test_scale_mode_adds_log_scale_to_logits_only():
    proc = RefusalTokenLogitsProcessor(
        IDS, RefusalSettings(mode="scale", categories={"humanizing": 2.0, "incomplete": 0.0}), prompt_length=4
    )
    scores = scores_from(ROWS)
    original = scores.clone()
    out = proc(torch.zeros(3, 4, dtype=torch.long), scores)
    assert torch.equal(scores, original)  # never in place
    expected = original.clone()
    expected[:, 14] += math.log(2.0)
    expected[:, 11] = -math.inf
    torch.testing.assert_close(out, expected)
    # probability of humanizing relative to respond doubles, as the knob promises
    p_in, p_out = original.softmax(-1), out.softmax(-1)
    torch.testing.assert_close(p_out[:, 14] / p_out[:, 10], 2 * p_in[:, 14] / p_in[:, 10])


def test_later_positions_suppress_tokens_and_do_not_mutate():
    proc = RefusalTokenLogitsProcessor(IDS, prompt_length=4)
    scores = scores_from(ROWS)
    original = scores.clone()
    out = proc(torch.zeros(3, 5, dtype=torch.long), scores)  # one token past the prompt
    assert torch.equal(scores, original)
    assert torch.isinf(out[:, IDS.all_ids]).all()
    others = [i for i in range(V) if i not in IDS.all_ids]
    assert torch.equal(out[:, others], original[:, others])
    keep = RefusalTokenLogitsProcessor(IDS, prompt_length=4, suppress_later=False)
    assert torch.equal(keep(torch.zeros(3, 5, dtype=torch.long), scores), original)


def test_header_detection_is_per_row_with_left_padding():
    proc = RefusalTokenLogitsProcessor(
        IDS, RefusalSettings(categories={"humanizing": 0.3}), assistant_header_ids=HEADER
    )
    pad = 0
    input_ids = torch.tensor(
        [
            [pad, pad, 3, 4, 7, 8],  # left-padded prompt at the first assistant position
            [3, 4, 5, 6, 7, 8],  # another prompt at the first position
            [pad, 3, 7, 8, 14, 2],  # already generating: must not be forced
        ]
    )
    out = proc(input_ids, scores_from(ROWS))
    assert out[0].argmax().item() == 11 and torch.isinf(out[0]).sum() == V - 1
    assert out[1].argmax().item() == 14 and torch.isinf(out[1]).sum() == V - 1
    assert torch.isinf(out[2, IDS.all_ids]).all() and torch.isfinite(out[2, :10]).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="exactly one"):
        RefusalTokenLogitsProcessor(IDS)
    with pytest.raises(ValueError, match="outside the vocabulary of size 12"):
        RefusalTokenLogitsProcessor(IDS, prompt_length=3, vocab_size=12)
    with pytest.raises(ValueError, match="unknown categories"):
        RefusalTokenLogitsProcessor(IDS, {"categories": {"privacy": 0.1}}, prompt_length=3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        RefusalTokenLogitsProcessor(IDS, {"default": 2.0}, prompt_length=3)
    with pytest.raises(ValueError, match=">= 0"):
        RefusalTokenLogitsProcessor(IDS, {"mode": "scale", "categories": {"humanizing": -1}}, prompt_length=3)
    proc = RefusalTokenLogitsProcessor(IDS, prompt_length=3)
    with pytest.raises(ValueError, match="outside the model's vocabulary of size 12"):
        proc(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 12))


def test_settings_file(tmp_path):
    path = RefusalSettings(categories={"humanizing": 0.3}).save(tmp_path / "t.yaml")
    proc = RefusalTokenLogitsProcessor(IDS, str(path), prompt_length=4)
    assert proc.values == [0.5, 0.5, 0.5, 0.3, 0.5]


# -- with generate() -------------------------------------------------------------------------------------------------
PROMPTS = ["hi", "explain the moon and the river to my friend please", "how do you feel?"]


@pytest.fixture
def tagged_model(tokenizer):
    model = build_tiny_model(tokenizer, tied=False)
    ids = add_refusal_tokens(model, tokenizer, "coconot")
    model.eval()
    return model, tokenizer, ids


@pytest.mark.parametrize(
    "gen_kwargs",
    [
        {"do_sample": False},
        {"do_sample": True, "top_p": 0.9, "temperature": 1.3},
        {"num_beams": 3, "do_sample": False},
    ],
    ids=["greedy", "sampling", "beam"],
)
def test_generate_forces_the_decided_token(tagged_model, gen_kwargs):
    model, tok, ids = tagged_model
    enc = tok(build_chat_prompts(tok, PROMPTS), return_tensors="pt", padding=True, add_special_tokens=False)
    n = enc["input_ids"].shape[1]
    for settings, expected in [
        (RefusalSettings(), "respond"),  # untrained rows: p(refusal) ~ 0 < 0.5
        (RefusalSettings(categories={"humanizing": 0.0}), "humanizing"),
    ]:
        proc = RefusalTokenLogitsProcessor.from_tokenizer(tok, settings)
        torch.manual_seed(0)
        out = model.generate(**enc, logits_processor=[proc], max_new_tokens=6, **gen_kwargs)
        assert [ids.label_for_id(t) for t in out[:, n].tolist()] == [expected] * len(PROMPTS)
        later = out[:, n + 1 :]
        assert not torch.isin(later, torch.tensor(ids.all_ids)).any()


def test_text_generation_pipeline_applies_the_processor(tagged_model):
    from transformers import LogitsProcessorList, pipeline

    model, tok, ids = tagged_model
    pipe = pipeline("text-generation", model=model, tokenizer=tok)
    proc = RefusalTokenLogitsProcessor.from_tokenizer(tok, RefusalSettings(categories={"humanizing": 0.0}))
    chats = [[{"role": "user", "content": p}] for p in PROMPTS[:2]]
    outs = pipe(chats, logits_processor=LogitsProcessorList([proc]), max_new_tokens=4, do_sample=False,
                return_tensors=True)  # fmt: skip
    for chat, out in zip(chats, outs):
        prompt_ids = tok(build_chat_prompts(tok, [chat])[0], add_special_tokens=False)["input_ids"]
        generated = out[0]["generated_token_ids"]
        assert generated[len(prompt_ids)] == ids.id_for("humanizing")


def test_left_padded_batch_matches_single_prompts(tagged_model):
    model, tok, ids = tagged_model
    proc = RefusalTokenLogitsProcessor.from_tokenizer(tok, RefusalSettings(mode="scale", default=3.0))
    texts = build_chat_prompts(tok, PROMPTS)
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    batch = model.generate(
        **enc,
        logits_processor=[proc],
        max_new_tokens=5,
        do_sample=False,
        output_scores=True,
        return_dict_in_generate=True,
    )
    for i, text in enumerate(texts):
        one = tok([text], return_tensors="pt", add_special_tokens=False)
        single = model.generate(
            **one,
            logits_processor=[proc],
            max_new_tokens=5,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
        )
        torch.testing.assert_close(batch.scores[0][i], single.scores[0][0], atol=2e-5, rtol=1e-5)
        n_b, n_s = enc["input_ids"].shape[1], one["input_ids"].shape[1]
        assert batch.sequences[i, n_b:].tolist() == single.sequences[0, n_s:].tolist()


def test_header_matches_chat_template(chat_tokenizer):
    header = assistant_header_ids(chat_tokenizer)
    text = build_chat_prompts(chat_tokenizer, ["hello"])[0]
    assert chat_tokenizer(text, add_special_tokens=False)["input_ids"][-len(header) :] == header
