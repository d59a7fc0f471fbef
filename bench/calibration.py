"""Calibration on real prompts: targets vs achieved on a held-out half, and cross-category leakage.

Reads CoCoNot from `../shared/data/coconot` (1,001 should-refuse prompts labelled by category, 379 contrast prompts
labelled respond), scores them once with a recipe's trained model (`first_token_probabilities`), then for several
target settings solves thresholds on a random half (`calibrate_thresholds`) and measures the other half.

    python bench/calibration.py --model outputs/quickstart --out bench/results/calibration.json
    python bench/calibration.py --probabilities bench/results/calibration.json --rule top   # no model: saved scores
    python bench/calibration.py --model outputs/quickstart --add-harmful --out OUT.json  # + the harmful pools

Prints Markdown tables for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from coconot import DATA, load_rows  # noqa: E402
from results_io import default_device, write_results  # noqa: E402

TARGETS = {
    "rate 0.5 each": {"refusal_rates": dict.fromkeys(("incomplete", "indeterminate", "unsupported", "humanizing",
                                                      "safety_concerns"), 0.5)},
    "rate 0.8 each": {"refusal_rates": dict.fromkeys(("incomplete", "indeterminate", "unsupported", "humanizing",
                                                      "safety_concerns"), 0.8)},
    "mixed": {"refusal_rates": {"safety_concerns": 0.9, "humanizing": 0.3, "incomplete": 0.6}},
    "over-refusal <= 0.05": {"max_over_refusal": 0.05},
    "over-refusal <= 0.20": {"max_over_refusal": 0.20},
}  # fmt: skip


def with_harmful_pools(rows: list[dict], shared: str, n_harmless: int) -> list[dict]:
    """`rows` plus the shared harmful-request pools (safety_concerns) and harmless prompts (respond), deduplicated."""
    import csv

    def column(path: str, name: str) -> list[str]:
        with open(os.path.join(shared, path), encoding="utf-8", newline="") as f:
            return [r[name] for r in csv.DictReader(f)]

    harmful = column("harmful_behaviors/harmbench_behaviors_text_all.csv", "Behavior")
    harmful += column("harmful_behaviors/jailbreakbench_harmful_behaviors.csv", "Goal")
    harmful += column("harmful_behaviors/strongreject_dataset.csv", "forbidden_prompt")
    harmful += column("harmful_behaviors/simple_safety_tests.csv", "prompts_final")
    for split in ("train", "val", "test"):
        with open(os.path.join(shared, "refusal_direction", "splits", f"harmful_{split}.json"), encoding="utf-8") as f:
            harmful += [r["instruction"] for r in json.load(f)]
    with open(os.path.join(shared, "refusal_direction", "splits", "harmless_test.json"), encoding="utf-8") as f:
        harmless = [r["instruction"] for r in json.load(f)][:n_harmless]
    seen = {r["prompt"] for r in rows}
    out = list(rows)
    for prompts, category, should in ((harmful, "safety_concerns", True), (harmless, "respond", False)):
        for p in prompts:
            if p.strip() and p not in seen:
                seen.add(p)
                out.append({"prompt": p, "category": category, "should_refuse": should})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Recipe output_dir trained with the coconot taxonomy.")
    parser.add_argument(
        "--probabilities", default=None, help="Instead of --model: a JSON this script wrote (its saved scores)."
    )
    parser.add_argument("--rule", default="passing", choices=["passing", "top"], help="RefusalSettings.rule.")
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Random halves to average over.")
    parser.add_argument("--device", default=None, help="Default: cuda when available, else cpu.")
    parser.add_argument(
        "--add-harmful",
        action="store_true",
        help="Also score the harmful-request pools of ../shared/data (HarmBench, JailbreakBench, StrongREJECT, "
        "SimpleSafetyTests, refusal_direction's harmful splits) as safety_concerns and --harmless of "
        "refusal_direction's harmless prompts as respond: about 1,000 prompts per half for that category and for "
        "over-refusal, where CoCoNot alone has 200.",
    )
    parser.add_argument("--harmless", type=int, default=2000, help="Harmless prompts added with --add-harmful.")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if (args.model is None) == (args.probabilities is None):
        parser.error("give exactly one of --model and --probabilities")
    if args.model and not os.path.isdir(args.data):
        sys.exit(f"CoCoNot data not found at {args.data}: it lives in ../shared/data/coconot (see its README).")

    import torch

    from refusal_tokens import first_token_probabilities, get_taxonomy, load_refusal_model, load_taxonomy
    from refusal_tokens.evaluation.calibration import CalibrationTargets, calibration_report

    if args.probabilities:
        with open(args.probabilities, encoding="utf-8") as f:
            saved = json.load(f)
        if "probabilities" not in saved:
            sys.exit(f"{args.probabilities} holds no saved probabilities; re-run with --model to write them.")
        taxonomy, labels = get_taxonomy("coconot"), saved["labels"]
        probs, truth = torch.tensor(saved["probabilities"]), torch.tensor(saved["truth"])
        source = saved["model"]
    else:
        rows = load_rows(args.data, None)
        if args.add_harmful:
            rows = with_harmful_pools(rows, os.path.dirname(os.path.abspath(args.data)), args.harmless)
        model, tok = load_refusal_model(args.model)
        model.to(args.device or default_device())
        taxonomy = load_taxonomy(tok)
        probs = first_token_probabilities(model, tok, [r["prompt"] for r in rows])
        labels = ["respond"] + taxonomy.names
        truth = torch.tensor([labels.index(r["category"]) if r["should_refuse"] else 0 for r in rows])
        source = args.model
    # probabilities and labels are kept so other decision rules can be studied without the model
    result = {"model": source, "rule": args.rule, "n": len(truth), "labels": labels, "truth": truth.tolist()}
    result["runs"] = {}
    result["probabilities"] = [[round(p, 6) for p in row] for row in probs.tolist()]
    for name, spec in TARGETS.items():
        targets = CalibrationTargets(**spec, rule=args.rule)
        runs = [calibration_report(probs, truth, taxonomy, targets, seed=s) for s in args.seeds]
        result["runs"][name] = runs

    print(
        "| targets | category | target | held-out achieved (mean over seeds) | abs error | halves reaching it "
        "| max leak to others | max token leak |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, runs in result["runs"].items():
        spec = TARGETS[name]
        keys = list(spec.get("refusal_rates", {})) + (["over_refusal"] if "max_over_refusal" in spec else [])
        for k in keys:
            target = spec["refusal_rates"][k] if k != "over_refusal" else spec["max_over_refusal"]
            got = sum(r["held_out"][k] for r in runs) / len(runs)
            err = sum(abs(r["held_out"][k] - target) for r in runs) / len(runs)
            leaks = [
                sum(r["leakage"][k][m] for r in runs) / len(runs) if k in runs[0]["leakage"] else None
                for m in ("max_other_change", "max_other_token_change")
            ]
            leak_s = " | ".join(f"{v:.3f}" if v is not None else "-" for v in leaks)
            # on its calibration half: a target the probabilities cannot give is not a sampling error
            reached = sum(k not in r.get("unreached", {}) for r in runs)
            print(f"| {name} | {k} | {target:.2f} | {got:.3f} | {err:.3f} | {reached}/{len(runs)} | {leak_s} |")
        if "max_over_refusal" in spec:
            for c in taxonomy.names:
                got = sum(r["held_out"][c] for r in runs) / len(runs)
                print(f"| {name} | {c} (refused within the ceiling) | - | {got:.3f} | - | - | - | - |")
    write_results(args.out, result)


if __name__ == "__main__":
    main()
