"""Refusal classifier benchmark: XSTest refusal detection, CoCoNot categories, throughput, mixing throughput.

- Binary refusal detection (full or partial refusal) on the 2,250 human-labelled XSTest completions in
  `../shared/data/xstest`: accuracy and F1 per backend, beside the dataset's own string-match labels.
- Category accuracy on CoCoNot's 1,001 should-refuse prompts (coconot preset), each paired with the same generic
  refusal so that only the prompt tells the category.
- Pairs per second of each backend, and tagging + mixing rows per second on a 100k-row synthetic dataset.

    python bench/classifier.py --out bench/results/classifier.json

Prints Markdown tables for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from results_io import default_device, write_results  # noqa: E402

HERE = os.path.dirname(__file__)
SHARED = os.path.join(HERE, "..", "..", "shared", "data")
GENERIC_REFUSAL = "I'm sorry, but I can't help with that request."


def xstest_rows(path: str) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        {
            "prompt": r["prompt"],
            "response": r["completion"] or "",
            "refusal": r["final_label"] in ("2_full_refusal", "3_partial_refusal"),
            "strmatch": r["strmatch_label"] == "2_full_refusal",
        }
        for r in rows
    ]


def binary_scores(pred: list[bool], gold: list[bool]) -> dict:
    tp = sum(p and g for p, g in zip(pred, gold))
    fp = sum(p and not g for p, g in zip(pred, gold))
    fn = sum(g and not p for p, g in zip(pred, gold))
    acc = sum(p == g for p, g in zip(pred, gold)) / len(gold)
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"accuracy": acc, "f1": f1, "precision": prec, "recall": rec, "n": len(gold)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=SHARED)
    parser.add_argument("--mix-rows", type=int, default=100_000)
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--folds", type=int, default=5, help="Folds of the in-domain head (0: skip).")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    xs_path = os.path.join(args.data, "xstest", "xstest_v2_completions_all_labeled.csv")
    if not os.path.isfile(xs_path):
        sys.exit(f"XSTest not found at {xs_path}: it lives in ../shared/data (see its README).")

    import torch

    from refusal_tokens.classifiers import (
        EmbeddingRefusalClassifier,
        KeywordRefusalClassifier,
        SentenceEmbedder,
        pair_features,
        train_embedding_head,
    )

    result: dict = {"device": default_device(), "torch_threads": torch.get_num_threads()}
    xs = xstest_rows(xs_path)
    prompts, responses, gold = [r["prompt"] for r in xs], [r["response"] for r in xs], [r["refusal"] for r in xs]
    result["xstest"] = {"string match (dataset's strmatch_label)": binary_scores([r["strmatch"] for r in xs], gold)}
    throughput = {}

    emb = SentenceEmbedder()
    for name, clf in (
        ("keyword (cannot-should-not)", KeywordRefusalClassifier("cannot-should-not")),
        (
            "embedding, shipped head (cannot-should-not)",
            EmbeddingRefusalClassifier(taxonomy="cannot-should-not", embedder=emb),
        ),
    ):
        clf.classify(prompts[:32], responses[:32])  # warm-up
        t = time.perf_counter()
        out = clf.classify(prompts, responses, batch_size=64)
        throughput[name] = len(xs) / (time.perf_counter() - t)
        result["xstest"][name] = binary_scores(out.refused, gold)

    # The same approach retrained on labelled data (what `refusal-tokens train-classifier --data` does): k-fold,
    # folds split by prompt (XSTest answers each prompt with 5 models; a fold holding one of them would leak).
    if args.folds > 1:  # --folds 0 skips the in-domain retraining
        feats = pair_features(emb, prompts, responses)
        prompt_ids: dict[str, int] = {}
        pid = torch.tensor([prompt_ids.setdefault(p, len(prompt_ids)) for p in prompts])
        g = torch.Generator().manual_seed(0)
        fold_of_prompt = torch.empty(len(prompt_ids), dtype=torch.long)
        fold_of_prompt[torch.randperm(len(prompt_ids), generator=g)] = torch.arange(len(prompt_ids)) % args.folds
        fold = fold_of_prompt[pid]
        pred = [False] * len(xs)
        for k in range(args.folds):
            test_idx = (fold == k).nonzero().squeeze(1)
            train_idx = (fold != k).nonzero().squeeze(1)
            labels = ["privacy" if gold[i] else "respond" for i in train_idx.tolist()]  # binary: any category
            head = train_embedding_head(feats[train_idx], labels, "cannot-should-not")
            for i, s in zip(test_idx.tolist(), head.scores(feats[test_idx])):
                pred[i] = bool(s[0] < 0.5)
        result["xstest"][f"embedding, head retrained on XSTest ({args.folds}-fold by prompt)"] = binary_scores(
            pred, gold
        )

    # CoCoNot categories from prompts
    coconot = os.path.join(args.data, "coconot", "coconot_eval.jsonl")
    if os.path.isfile(coconot):
        from coconot import CATEGORIES

        rows = [json.loads(line) for line in open(coconot, encoding="utf-8") if line.strip()]
        cp = [r["prompt"] for r in rows]
        truth = [CATEGORIES[r["category"]] for r in rows]
        result["coconot_category"] = {}
        for name, clf in (
            ("keyword", KeywordRefusalClassifier("coconot")),
            ("embedding, shipped head", EmbeddingRefusalClassifier(taxonomy="coconot", embedder=emb)),
        ):
            got = clf(cp, [GENERIC_REFUSAL] * len(cp))
            per = {}
            for c in sorted(set(truth)):
                idx = [i for i, t in enumerate(truth) if t == c]
                per[c] = sum(got[i] == c for i in idx) / len(idx)
            result["coconot_category"][name] = {
                "accuracy": sum(a == b for a, b in zip(got, truth)) / len(truth),
                "per_category": per,
                "n": len(truth),
            }

    # tagging + mixing throughput with the keyword backend
    from datasets import Dataset

    from refusal_tokens.data.mixing import mix_datasets

    base = [
        {"prompt": f"What is the home address of person {i}?", "completion": "I'm sorry, but I can't share that."}
        if i % 5 == 0
        else {"prompt": f"Explain topic number {i}.", "completion": "Sure. Here is a short explanation of it."}
        for i in range(args.mix_rows)
    ]
    ds = Dataset.from_list(base)
    t = time.perf_counter()
    mixed, report = mix_datasets(
        [ds],
        "cannot-should-not",
        KeywordRefusalClassifier("cannot-should-not"),
        targets={"respond": 0.7, "privacy": 0.3},
        num_proc=args.num_proc,
    )
    secs = time.perf_counter() - t
    result["mixing"] = {"rows": args.mix_rows, "seconds": secs, "rows_per_s": args.mix_rows / secs,
                        "num_proc": args.num_proc, "after": report.after}  # fmt: skip
    result["throughput_pairs_per_s"] = throughput

    print("| backend | XSTest accuracy | F1 | precision | recall |")
    print("|---|---|---|---|---|")
    for name, m in result["xstest"].items():
        print(f"| {name} | {m['accuracy']:.3f} | {m['f1']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} |")
    if "coconot_category" in result:
        print("\n| backend | CoCoNot category accuracy | " + " | ".join(sorted(set(truth))) + " |")
        print("|---|---|" + "---|" * len(set(truth)))
        for name, m in result["coconot_category"].items():
            cells = " | ".join(f"{m['per_category'][c]:.3f}" for c in sorted(set(truth)))
            print(f"| {name} | {m['accuracy']:.3f} | {cells} |")
    print("\n| backend | pairs/s |")
    print("|---|---|")
    for name, v in throughput.items():
        print(f"| {name} | {v:.0f} |")
    print(f"\nTagging + mixing {args.mix_rows} rows (keyword, num_proc={args.num_proc}): "
          f"{result['mixing']['rows_per_s']:.0f} rows/s")  # fmt: skip
    write_results(args.out, result)


if __name__ == "__main__":
    main()
