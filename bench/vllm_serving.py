"""The exported quickstart model served by vLLM with the refusal processor (run in the vLLM environment).

- Agreement of the first token between vLLM + `RefusalTokensLogitsProcessor` and transformers +
  `RefusalTokenLogitsProcessor` (greedy, the export's thresholds) on CoCoNot's held-out prompts.
- What a per-request setting does: the refusal rate of each category's should-refuse prompts with the defaults and
  with one request-level change (`safety_concerns` threshold 0.1), in the same engine.
- Generation throughput with and without the processor, side by side in one run (a ratio; absolute times only
  from a GPU).

    make vllm-env && refusal-tokens export --model outputs/quickstart --output outputs/quickstart-export
    .venv-vllm/bin/python bench/vllm_serving.py --model outputs/quickstart-export \\
        --out bench/results/vllm_serving.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
sys.path.insert(0, os.path.dirname(__file__))

from results_io import write_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="outputs/quickstart-export")
    parser.add_argument("--prompts", type=int, default=300, help="CoCoNot held-out prompts (seeded sample).")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--skip-reference", action="store_true", help="Only the throughput ratio and the rates.")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import random

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from vllm import LLM, SamplingParams

    from refusal_tokens import RefusalSettings, RefusalTokenLogitsProcessor, build_chat_prompts, load_taxonomy
    from refusal_tokens.data.real import load_builtin_corpus
    from refusal_tokens.serving.vllm import RefusalTokensLogitsProcessor, parse_category

    rows = load_builtin_corpus("coconot", split="test")
    rows = random.Random(0).sample(rows, min(args.prompts, len(rows)))
    tok = AutoTokenizer.from_pretrained(args.model)
    taxonomy = load_taxonomy(tok)
    chat = build_chat_prompts(tok, [r["prompt"] for r in rows])
    settings = RefusalSettings.from_file(os.path.join(args.model, "thresholds.yaml"))

    # transformers reference: the first token under the export's thresholds
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    tok.padding_side = "left"
    proc = RefusalTokenLogitsProcessor.from_tokenizer(tok, settings)
    labels = ["respond", *taxonomy.names]
    ids = tok.convert_tokens_to_ids([taxonomy.respond_token, *taxonomy.tokens])
    want = []
    with torch.no_grad():
        for start in range(0, 0 if args.skip_reference else len(chat), 32):
            enc = tok(chat[start : start + 32], return_tensors="pt", padding=True, add_special_tokens=False)
            out = model.generate(**enc, logits_processor=[proc], max_new_tokens=1, do_sample=False)
            want += [labels[ids.index(t)] for t in out[:, enc["input_ids"].shape[1]].tolist()]
    del model

    llm = LLM(model=args.model, dtype="float32", max_model_len=512, enforce_eager=True,
              gpu_memory_utilization=0.3, logits_processors=[RefusalTokensLogitsProcessor])  # fmt: skip

    def run(extra=None, max_tokens=args.max_tokens):
        params = SamplingParams(max_tokens=max_tokens, temperature=0.0, skip_special_tokens=False, extra_args=extra)
        t = time.perf_counter()
        outs = llm.generate(chat, params, use_tqdm=False)
        return [o.outputs[0] for o in outs], time.perf_counter() - t

    run(max_tokens=2)  # warm-up
    outs, with_s = run()
    got = [parse_category(o.text, taxonomy) for o in outs]
    tokens = sum(len(o.token_ids) for o in outs)
    override, _ = run({"refusal": {"categories": {"safety_concerns": 0.1}}})
    got_override = [parse_category(o.text, taxonomy) for o in override]

    # the same model in an engine without the processor, for the throughput ratio
    bare = LLM(model=args.model, dtype="float32", max_model_len=512, enforce_eager=True, gpu_memory_utilization=0.3)
    bare.generate(chat[:8], SamplingParams(max_tokens=2), use_tqdm=False)
    t = time.perf_counter()
    bare_outs = bare.generate(chat, SamplingParams(max_tokens=args.max_tokens, temperature=0.0), use_tqdm=False)
    bare_s = time.perf_counter() - t
    bare_tokens = sum(len(o.outputs[0].token_ids) for o in bare_outs)

    def rates(pred):
        out = {}
        for name in taxonomy.names:
            idx = [i for i, r in enumerate(rows) if r["refusal_label"] == name]
            out[name] = sum(pred[i] != "respond" for i in idx) / len(idx)
        contrast = [i for i, r in enumerate(rows) if r["refusal_label"] == "respond"]
        out["over_refusal (contrast)"] = sum(pred[i] != "respond" for i in contrast) / len(contrast)
        return out

    result = {
        "model": args.model,
        "prompts": len(rows),
        "first_token_agreement_with_transformers": (
            sum(a == b for a, b in zip(got, want)) / len(rows) if want else None
        ),
        "refusal_rates_defaults": rates(got),
        "refusal_rates_safety_concerns_0.1": rates(got_override),
        "tokens_per_s_ratio_with_vs_without_processor": (tokens / with_s) / (bare_tokens / bare_s),
        "device": "cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name(0),
    }
    if args.out and os.path.isfile(args.out):  # keep what an earlier run measured that this one skipped
        with open(args.out, encoding="utf-8") as f:
            earlier = json.load(f)
        result = {**earlier, **{k: v for k, v in result.items() if v is not None}}
    write_results(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
