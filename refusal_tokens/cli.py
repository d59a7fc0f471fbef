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
    from .data import load_split

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
        rows = load_split(path).to_list()
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or label_column not in row or not ("prompt" in row or "messages" in row):
            raise SystemExit(f"{path}: row {n} needs a 'prompt' (or 'messages') and a '{label_column}' field.")
    return rows


def cmd_calibrate(args: argparse.Namespace) -> int:
    import torch

    from .calibration import CalibrationTargets, calibration_report, format_calibration_report, save_calibration_plots
    from .evaluation import evaluate_refusal_tokens, labels_of
    from .models import load_refusal_model
    from .settings import RefusalSettings
    from .tokens import load_taxonomy

    targets = CalibrationTargets.from_file(args.targets)
    rows = _read_labelled_rows(args.data, args.label_column)
    model, tokenizer = load_refusal_model(args.model, args.adapter)
    evaluated = evaluate_refusal_tokens(model, tokenizer, rows, label_column=args.label_column)
    taxonomy = load_taxonomy(tokenizer)
    probs = torch.tensor(evaluated["probabilities"])
    truth = torch.tensor(labels_of(rows, taxonomy, args.label_column))
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


def _classifier_from(args: argparse.Namespace) -> object:
    from .classifiers import get_classifier

    return get_classifier(args.classifier, args.taxonomy)


def cmd_audit(args: argparse.Namespace) -> int:
    from .data import load_split
    from .mixer import audit_dataset

    dataset = load_split(args.dataset, args.split, args.config)
    classifier = _classifier_from(args)
    report = audit_dataset(dataset, args.taxonomy, classifier, label_column=args.label_column, num_proc=args.num_proc)
    out = args.output_dir or "audit"
    paths = report.save(out)
    print(report.format())
    print(f"\nWrote {', '.join(paths.values())}")
    if args.wandb:
        from .wandb_utils import prepare_wandb

        prepare_wandb("wandb")
        import wandb

        with wandb.init(project=args.wandb_project, job_type="audit", config=vars(args)) as run:
            table = wandb.Table(
                columns=["class", "count", "share"],
                data=[[c, n, report.to_dict()["before"]["shares"][c]] for c, n in report.before.items()],
            )
            run.log({"audit/composition": wandb.plot.bar(table, "class", "share", title="Refusal composition")})
            run.log({f"audit/{c}": n for c, n in report.before.items()} | {"audit/total_in": report.total_in})
            if "png" in paths:
                run.log({"audit/chart": wandb.Image(paths["png"])})
    return 0


def cmd_mix(args: argparse.Namespace) -> int:
    import yaml

    from .data import load_split
    from .mixer import mix_datasets

    targets = None
    if args.targets:
        with open(args.targets, encoding="utf-8") as f:
            targets = yaml.safe_load(f)
        if not isinstance(targets, dict):
            raise SystemExit(f"{args.targets}: expected a mapping of class -> share.")
    sources = [load_split(d, args.split) for d in args.data]
    classifier = _classifier_from(args)
    mixed, report = mix_datasets(
        sources, args.taxonomy, classifier, targets=targets, size=args.size, seed=args.seed, num_proc=args.num_proc
    )
    os.makedirs(args.output_dir, exist_ok=True)
    mixed.to_json(os.path.join(args.output_dir, "mixed.jsonl"))
    paths = report.save(args.output_dir)
    print(report.format())
    print(f"\nWrote {os.path.join(args.output_dir, 'mixed.jsonl')} ({len(mixed)} rows), {', '.join(paths.values())}")
    return 0


def cmd_train_classifier(args: argparse.Namespace) -> int:
    from .classifiers import SentenceEmbedder, pair_features, train_embedding_head

    if args.data:
        rows = _read_labelled_rows(args.data, args.label_column)
        for n, r in enumerate(rows, 1):
            if not isinstance(r.get("response"), str) or not r["response"].strip():
                raise SystemExit(f"{args.data}: row {n} needs a non-empty string 'response' field.")
        pairs = [(r.get("prompt", ""), r["response"], r[args.label_column]) for r in rows]
        source = args.data
    else:
        from .classifier_data import synthetic_classifier_pairs

        answers = None
        if args.answers_from:
            from .distill import distill_cache_path, generate_responses
            from .models import cache_dir, load_model_and_tokenizer

            model, tok = load_model_and_tokenizer(args.answers_from)
            cache = distill_cache_path(model, 32, os.path.join(cache_dir(), "distill"))

            def answers(prompts: list[str]) -> list[str]:
                return generate_responses(model, tok, prompts, max_new_tokens=32, cache_file=cache)

        rows = synthetic_classifier_pairs(
            args.taxonomy, per_category=args.per_category, answers=answers, seed=args.seed
        )
        pairs = [(r["prompt"], r["response"], r["label"]) for r in rows]
        source = f"synthetic ({args.per_category} per category, answers from {args.answers_from or 'templates'})"
    embedder = SentenceEmbedder(args.embedder)
    features = pair_features(embedder, [p for p, _, _ in pairs], [r for _, r, _ in pairs])
    head = train_embedding_head(
        features,
        [lab for _, _, lab in pairs],
        args.taxonomy,
        l2=args.l2,
        info={"data": source, "embedder": embedder.path, "max_length": embedder.max_length},
    )
    head.save(args.output)
    print(f"Trained a {len(head.columns)}-class head on {len(pairs)} pairs from {source}: {args.output}")
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
    cal.add_argument(
        "--targets",
        required=True,
        help="YAML: refusal_rates per category and/or max_over_refusal; optional rule (passing or top).",
    )
    cal.add_argument("--label-column", default="refusal_label")
    cal.add_argument("--output-dir", default=None, help="Default: <model>/calibration.")
    cal.add_argument("--seed", type=int, default=0, help="Seed of the calibration / held-out split.")
    cal.set_defaults(func=cmd_calibrate)
    aud = sub.add_parser("audit", help="Refusal composition of a dataset by category (table, JSON, PNG).")
    aud.add_argument("dataset", help="Local JSON/JSONL/CSV/parquet file, save_to_disk folder or hub dataset id.")
    aud.add_argument("--split", default="train")
    aud.add_argument("--config", default=None, help="Hub dataset configuration.")
    aud.add_argument("--taxonomy", default="cannot-should-not")
    aud.add_argument("--classifier", default="keyword", help="keyword, embedding, a head file, hf:<ckpt>, mod:fn.")
    aud.add_argument("--label-column", default="refusal_label", help="Labels already present win over the classifier.")
    aud.add_argument("--num-proc", type=int, default=None)
    aud.add_argument("--output-dir", default=None, help="Default: ./audit")
    aud.add_argument("--wandb", action="store_true", help="Also log the composition to W&B (offline without a key).")
    aud.add_argument("--wandb-project", default="refusal-tokens")
    aud.set_defaults(func=cmd_audit)
    mix = sub.add_parser("mix", help="Classify, tag and re-weight datasets to target shares per category.")
    mix.add_argument("--data", action="append", required=True, help="A source dataset (repeatable).")
    mix.add_argument("--split", default="train")
    mix.add_argument("--taxonomy", default="cannot-should-not")
    mix.add_argument("--classifier", default="keyword")
    mix.add_argument("--targets", default=None, help="YAML mapping class -> share (respond and categories).")
    mix.add_argument("--size", type=int, default=None, help="Output rows (default: the usable input rows).")
    mix.add_argument("--seed", type=int, default=0)
    mix.add_argument("--num-proc", type=int, default=None)
    mix.add_argument("--output-dir", required=True)
    mix.set_defaults(func=cmd_mix)
    tc = sub.add_parser("train-classifier", help="Train the embedding classifier head (synthetic data or yours).")
    tc.add_argument("--taxonomy", default="cannot-should-not")
    tc.add_argument("--data", default=None, help="Labelled pairs (prompt, response, label); default: synthetic.")
    tc.add_argument("--label-column", default="label")
    tc.add_argument("--per-category", type=int, default=200, help="Synthetic refusal pairs per category.")
    tc.add_argument("--answers-from", default=None, help="Model whose own answers are the synthetic compliance.")
    tc.add_argument("--embedder", default=None, help="Sentence-embedding model folder (default: all-MiniLM-L6-v2).")
    tc.add_argument("--l2", type=float, default=1e-4, help="L2 penalty of the heads.")
    tc.add_argument("--seed", type=int, default=0)
    tc.add_argument("--output", required=True, help="Head file to write (.safetensors).")
    tc.set_defaults(func=cmd_train_classifier)
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
