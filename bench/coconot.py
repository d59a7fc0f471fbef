"""How synthetic refusal-token training carries over to real prompts: CoCoNot (Brahman et al., 2024).

Reads `../shared/data/coconot` (1,001 should-refuse prompts in 5 categories, 379 contrast should-answer prompts).

- Untrained model (`--base`): greedy answers, judged by the string-match rule of `refusal_tokens.keywords`.
- Trained model (`--adapter`, the recipe's output_dir): the first-token decision at the saved thresholds (the token
  the processor makes `generate()` emit), and whether its category is CoCoNot's.

    python bench/coconot.py --adapter outputs/quickstart --out bench/results/coconot.json

Writes JSON and prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from results_io import default_device, write_results  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "coconot")
CATEGORIES = {
    "Incomplete requests": "incomplete",
    "Indeterminate requests": "indeterminate",
    "Unsupported requests": "unsupported",
    "Humanizing requests": "humanizing",
    "Requests with safety concerns": "safety_concerns",
}


def load_rows(data_dir: str, limit: int | None) -> list[dict]:
    rows = []
    for name, should_refuse in (("coconot_eval.jsonl", True), ("coconot_contrast_eval.jsonl", False)):
        with open(os.path.join(data_dir, name), encoding="utf-8") as f:
            part = [json.loads(line) for line in f if line.strip()]
        for r in part[:limit]:
            rows.append({"prompt": r["prompt"], "category": CATEGORIES[r["category"]], "should_refuse": should_refuse})
    return rows


def summarise(rows: list[dict], refused: list[bool], predicted: list[str] | None = None) -> dict:
    out: dict[str, dict] = {}
    for cat in CATEGORIES.values():
        for should in (True, False):
            idx = [i for i, r in enumerate(rows) if r["category"] == cat and r["should_refuse"] == should]
            if not idx:
                continue
            key = f"{cat}/{'refuse' if should else 'contrast'}"
            out[key] = {"n": len(idx), "refusal_rate": sum(refused[i] for i in idx) / len(idx)}
            if predicted is not None and should:
                out[key]["category_accuracy"] = sum(predicted[i] == cat for i in idx) / len(idx)
    for should in (True, False):
        idx = [i for i, r in enumerate(rows) if r["should_refuse"] == should]
        key = "all/refuse" if should else "all/contrast"
        out[key] = {"n": len(idx), "refusal_rate": sum(refused[i] for i in idx) / len(idx)}
        if predicted is not None and should:
            out[key]["category_accuracy"] = sum(predicted[i] == rows[i]["category"] for i in idx) / len(idx)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="builtin:smollm2-135m-instruct")
    parser.add_argument("--adapter", default=None, help="Output dir of the SFT recipe (adapter + thresholds.yaml).")
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--limit", type=int, default=None, help="At most this many prompts per file (quick runs).")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="Untrained answers: tokens generated.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--skip-untrained", action="store_true")
    parser.add_argument("--device", default=None, help="Default: cuda when available, else cpu.")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if not os.path.isdir(args.data):
        sys.exit(f"CoCoNot data not found at {args.data}: it lives in ../shared/data/coconot (see its README).")

    import torch

    from refusal_tokens import RefusalSettings, first_token_probabilities, load_taxonomy
    from refusal_tokens.classifiers.keyword import is_refusal_text
    from refusal_tokens.inference.models import load_model_and_tokenizer, load_refusal_model
    from refusal_tokens.training.distillation import generate_responses

    device = args.device or default_device()
    rows = load_rows(args.data, args.limit)
    prompts = [r["prompt"] for r in rows]
    result: dict = {
        "base": args.base,
        "adapter": args.adapter,
        "n": len(rows),
        "rule": "refusal_tokens.keywords",
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
    }

    if not args.skip_untrained:
        model, tok = load_model_and_tokenizer(args.base)
        model.to(device)
        t = time.perf_counter()
        answers = generate_responses(
            model, tok, prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size
        )
        refused = [is_refusal_text(a) for a in answers]
        result["untrained"] = summarise(rows, refused)
        result["untrained_seconds"] = time.perf_counter() - t
        result["untrained_examples"] = [
            {"prompt": p, "answer": a, "refused": x} for p, a, x in list(zip(prompts, answers, refused))[:5]
        ]

    if args.adapter:
        model, tok = load_refusal_model(args.base, args.adapter)
        model.to(device)
        taxonomy = load_taxonomy(tok)
        if taxonomy.name != "coconot":
            sys.exit(f"{args.adapter} was trained with taxonomy {taxonomy.name!r}; this benchmark needs 'coconot'.")
        settings = RefusalSettings.from_file(os.path.join(args.adapter, "thresholds.yaml"))
        probs = first_token_probabilities(model, tok, prompts, batch_size=args.batch_size)
        labels = ["respond"] + taxonomy.names
        decided = [labels[i] for i in settings.decide(probs, taxonomy).tolist()]
        result["trained"] = summarise(rows, [d != "respond" for d in decided], decided)
        result["settings"] = settings.to_dict()

    write_results(args.out, result)
    keys = list((result.get("trained") or result.get("untrained")).keys())
    print("| prompts | n | untrained refusal rate | trained refusal rate | trained category accuracy |")
    print("|---|---|---|---|---|")
    for k in keys:
        u = result.get("untrained", {}).get(k, {})
        tr = result.get("trained", {}).get(k, {})
        n = (u or tr)["n"]
        fmt = lambda d, f: f"{d[f]:.3f}" if f in d else ""  # noqa: E731
        print(f"| {k} | {n} | {fmt(u, 'refusal_rate')} | {fmt(tr, 'refusal_rate')} | {fmt(tr, 'category_accuracy')} |")


if __name__ == "__main__":
    main()
