"""`refusal-tokens` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

RECIPES = ("sft", "dpo")

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
    from .models import load_refusal_model
    from .processor import RefusalTokenLogitsProcessor
    from .settings import RefusalSettings
    from .tokens import TAXONOMY_KEY, add_refusal_tokens

    model, tokenizer = load_refusal_model(args.model, args.adapter)
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


def _read_labelled_rows(path: str, label_column: str) -> list[dict]:
    from .data import load_dataset_splits

    if os.path.isfile(path) and path.endswith((".jsonl", ".json")):
        rows = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise SystemExit(f"{path}:{n}: not valid JSON ({e}).") from None
    else:
        split = load_dataset_splits(path, test_split=None, test_size=0.5)
        rows = split["train"].to_list() + split["test"].to_list()
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or label_column not in row or not ("prompt" in row or "messages" in row):
            raise SystemExit(f"{path}: row {n} needs a 'prompt' (or 'messages') and a '{label_column}' field.")
    return rows


def cmd_calibrate(args: argparse.Namespace) -> int:
    import torch

    from .calibration import CalibrationTargets, calibration_report, format_calibration_report, save_calibration_plots
    from .evaluation import evaluate_refusal_tokens
    from .models import load_refusal_model
    from .settings import RefusalSettings
    from .tokens import load_taxonomy

    targets = CalibrationTargets.from_file(args.targets)
    rows = _read_labelled_rows(args.data, args.label_column)
    model, tokenizer = load_refusal_model(args.model, args.adapter)
    evaluated = evaluate_refusal_tokens(model, tokenizer, rows, label_column=args.label_column)
    labels = evaluated["labels"]
    taxonomy = load_taxonomy(tokenizer)
    probs = torch.tensor(evaluated["probabilities"])
    truth = torch.tensor([labels.index(taxonomy.normalize_label(r[args.label_column])) for r in rows])
    report = calibration_report(probs, truth, taxonomy, targets, seed=args.seed)
    out = args.output_dir or os.path.join(args.model if os.path.isdir(args.model) else ".", "calibration")
    os.makedirs(out, exist_ok=True)
    settings = RefusalSettings.from_dict(report["settings"])
    settings.save(os.path.join(out, "thresholds.yaml"))
    report["plots"] = save_calibration_plots(probs, truth, taxonomy, settings, out)
    with open(os.path.join(out, "calibration.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    print(format_calibration_report(report))
    print(f"\nThresholds (solved on one half of {len(rows)} prompts, measured on the other): {out}/thresholds.yaml")
    return 0


def cmd_sft(args: argparse.Namespace) -> int:
    from .sft import main as sft_main

    sft_main(args.recipe_args)
    return 0


def cmd_dpo(args: argparse.Namespace) -> int:
    from .dpo import main as dpo_main

    dpo_main(args.recipe_args)
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
    cal = sub.add_parser("calibrate", help="Solve per-category thresholds that meet refusal-rate targets.")
    cal.add_argument("--model", required=True, help="Recipe output_dir, checkpoint, hub id or builtin: name.")
    cal.add_argument("--adapter", default=None, help="Adapter directory, if --model is the base model.")
    cal.add_argument("--data", required=True, help="Labelled prompts: JSONL/JSON/CSV/parquet, with prompt + label.")
    cal.add_argument("--targets", required=True, help="YAML: refusal_rates per category and/or max_over_refusal.")
    cal.add_argument("--label-column", default="refusal_label")
    cal.add_argument("--output-dir", default=None, help="Default: <model>/calibration.")
    cal.add_argument("--seed", type=int, default=0, help="Seed of the calibration / held-out split.")
    cal.set_defaults(func=cmd_calibrate)
    sft = sub.add_parser(
        "sft",
        help="Train with refusal tokens (the SFT recipe); takes --config FILE.yaml and any recipe flag.",
        add_help=False,
    )
    sft.set_defaults(func=cmd_sft)
    dpo = sub.add_parser(
        "dpo",
        help="DPO with refusal tokens (the DPO recipe); takes --config FILE.yaml and any recipe flag.",
        add_help=False,
    )
    dpo.set_defaults(func=cmd_dpo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # Recipe subcommands hand their arguments to the recipe's own strict parser (YAML + flags).
    args, rest = parser.parse_known_args(argv)
    if args.command in RECIPES:
        args.recipe_args = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
