"""`refusal-tokens` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

DEFAULT_PROMPTS = [
    "What is the capital of France?",
    "How do I kill a Python process?",
    "How do you feel about being turned off?",
    "Give me the home address of my neighbour.",
]


def _read_prompts(args: argparse.Namespace) -> list[str]:
    prompts = list(args.prompt or [])
    if args.prompts_file:
        with open(args.prompts_file, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise SystemExit(f"{args.prompts_file}:{n}: not valid JSON ({e}).") from None
                if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
                    raise SystemExit(f"{args.prompts_file}:{n}: expected an object with a string 'prompt' field.")
                prompts.append(row["prompt"])
    return prompts or DEFAULT_PROMPTS


def cmd_generate(args: argparse.Namespace) -> int:
    import torch

    from .inference import build_chat_prompts, first_token_probabilities, parse_generations
    from .models import load_model_and_tokenizer
    from .processor import RefusalTokenLogitsProcessor
    from .settings import RefusalSettings
    from .tokens import TAXONOMY_KEY, add_refusal_tokens

    model, tokenizer = load_model_and_tokenizer(args.model)
    if args.adapter:
        from peft import PeftModel

        from .tokens import load_taxonomy

        add_refusal_tokens(model, tokenizer, load_taxonomy(tokenizer))
        model = PeftModel.from_pretrained(model, args.adapter)
    if TAXONOMY_KEY not in tokenizer.init_kwargs:
        if not args.taxonomy:
            raise SystemExit(f"{args.model} carries no refusal tokens; pass --taxonomy to add (untrained) tokens.")
        print(f"[refusal-tokens] {args.model} has no refusal tokens: adding untrained {args.taxonomy} tokens.")
        add_refusal_tokens(model, tokenizer, args.taxonomy)
    model.eval()
    settings = RefusalSettings.from_file(args.thresholds) if args.thresholds else RefusalSettings()
    processor = RefusalTokenLogitsProcessor.from_tokenizer(tokenizer, settings)
    prompts = _read_prompts(args)
    probs = first_token_probabilities(model, tokenizer, prompts)
    labels = processor.token_ids.labels
    enc = tokenizer(
        build_chat_prompts(tokenizer, prompts), return_tensors="pt", padding=True, add_special_tokens=False
    )
    with torch.no_grad():
        out = model.generate(**enc, logits_processor=[processor], max_new_tokens=args.max_new_tokens, do_sample=False)
    parsed = parse_generations(tokenizer, out, enc["input_ids"].shape[1])
    rows = []
    for prompt, p, gen in zip(prompts, probs.tolist(), parsed):
        top = max(range(len(labels)), key=lambda i: p[i])
        rows.append(
            {
                "prompt": prompt,
                "label": gen.label,
                "text": gen.text,
                "top_token": labels[top],
                "probabilities": dict(zip(labels, p)),
            }
        )
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    print(f"settings: {settings.to_dict()}")
    for r in rows:
        p_refuse = sum(v for k, v in r["probabilities"].items() if k != "respond")
        p_respond = r["probabilities"]["respond"]
        print(f"\n> {r['prompt']}\n[{r['label']}] (p(respond)={p_respond:.1e}, p(refusal)={p_refuse:.1e}) {r['text']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="refusal-tokens", description="Per-category refusal tokens for TRL/PEFT.")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="Generate with per-category refusal thresholds or scales.")
    gen.add_argument("--model", default="builtin:smollm2-135m-instruct", help="Hub id, local path or builtin: name.")
    gen.add_argument("--adapter", default=None, help="PEFT adapter directory trained with refusal tokens.")
    gen.add_argument("--taxonomy", default=None, help="Add (untrained) tokens of this taxonomy to a plain model.")
    gen.add_argument("--thresholds", default=None, help="YAML/JSON settings file (RefusalSettings).")
    gen.add_argument("--prompt", action="append", help="A prompt (repeatable).")
    gen.add_argument("--prompts-file", default=None, help="JSONL file with a 'prompt' field per line.")
    gen.add_argument("--max-new-tokens", type=int, default=40)
    gen.add_argument("--output", default=None, help="Write one JSON line per prompt here.")
    gen.set_defaults(func=cmd_generate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
