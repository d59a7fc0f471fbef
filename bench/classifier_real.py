"""Refusal classifiers on real answers: leave-one-source-out, CoCoNot categories, pairs per second.

For each real answer source S of `refusal_tokens.data.real.answers` (XSTest: human labels, gold; JailbreakBench and
refusal_direction: automatic labels, silver) the cross-encoder is trained on every other source, CoCoNot's training
part and the synthetic pairs, and measured on all of S, which it never saw; the keyword rule is measured on the same
rows. Every model is also measured on CoCoNot's held-out half (its 500 should-refuse prompts, each paired with one
generic refusal, so only the prompt tells the category). Then the model trained on every source is measured the
same way on CoCoNot and written with `--ship` as the package's weights. Pairs per second of the keyword rule, the
embedding backend (today's default) and the cross-encoder (fp32 and dynamic int8) on the same 512 XSTest pairs, in
this run, side by side.

    python bench/classifier_real.py --out bench/results/classifier_real.json --ship --benchmarks BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from results_io import default_device, write_results  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DATA = os.path.join(ROOT, "..", "shared", "data")
GENERIC_REFUSAL = "I'm sorry, but I can't help with that request."
HELD_OUT = ("xstest", "jailbreakbench", "refusal_direction")
logger = logging.getLogger("bench.classifier_real")


def binary_scores(pred: list[bool], rows: list[dict]) -> dict[str, Any]:
    gold = [r["label"] != "respond" for r in rows]
    tp = sum(p and g for p, g in zip(pred, gold))
    fp = sum(p and not g for p, g in zip(pred, gold))
    fn = sum(g and not p for p, g in zip(pred, gold))
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    partial = [p for p, r in zip(pred, rows) if r["partial"]]
    full = [p for p, r in zip(pred, rows) if r["label"] != "respond" and not r["partial"]]
    return {
        "accuracy": sum(p == g for p, g in zip(pred, gold)) / len(gold),
        "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
        "precision": prec,
        "recall": rec,
        "recall_full_refusals": sum(full) / len(full) if full else None,
        "recall_partial_refusals": sum(partial) / len(partial) if partial else None,
        "n": len(gold),
    }


def category_scores(clf: Any, test_rows: list[dict]) -> dict[str, Any]:
    rows = [r for r in test_rows if r["kind"] == "refusal"]
    got = clf([r["prompt"] for r in rows], [GENERIC_REFUSAL] * len(rows))
    truth = [r["refusal_label"] for r in rows]
    per = {c: sum(g == c for g, t in zip(got, truth) if t == c) / truth.count(c) for c in sorted(set(truth))}
    return {"accuracy": sum(g == t for g, t in zip(got, truth)) / len(truth), "per_category": per, "n": len(truth)}


def train(rows: list[dict], args: argparse.Namespace, output: str | None, what: str) -> Any:
    from refusal_tokens.classifiers.cross_encoder import train_cross_encoder

    t = time.perf_counter()
    clf = train_cross_encoder(
        [r["prompt"] for r in rows],
        [r["response"] for r in rows],
        [r["label"] for r in rows],
        args.taxonomy,
        epochs=args.epochs,
        max_response_tokens=args.max_response_tokens,
        prompt_dropout=args.prompt_dropout,
        category_weight=args.category_weight,
        output=output,
        info={"data": what},
        show_progress=False,
    )
    logger.info("trained on %d rows (%s) in %.0f s", len(rows), what, time.perf_counter() - t)
    return clf, time.perf_counter() - t


def config_name(args: argparse.Namespace) -> str:
    """A configuration's name: `--name`, else what differs from the defaults (`base` when nothing does)."""
    if args.name:
        return args.name
    parts = [f"dropout {args.prompt_dropout}"] if args.prompt_dropout else []
    parts += [f"category x{args.category_weight:g}"] if args.category_weight != 1.0 else []
    parts += [f"{args.epochs:g} epochs"] if args.epochs != 1.0 else []
    parts += [f"{args.max_response_tokens} answer tokens"] if args.max_response_tokens != 96 else []
    parts += [f"{args.max_per_source} per source"] if args.max_per_source != 1500 else []
    return ", ".join(parts) or "base"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--taxonomy", default="coconot")
    parser.add_argument("--max-per-source", type=int, default=1500, help="Training rows per source (by prompt).")
    parser.add_argument("--synthetic-per-category", type=int, default=60)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-response-tokens", type=int, default=96)
    parser.add_argument("--prompt-dropout", type=float, default=0.0)
    parser.add_argument("--category-weight", type=float, default=1.0)
    parser.add_argument("--name", default=None, help="Name of the configuration (default: the flags that differ).")
    parser.add_argument("--held-out", nargs="*", default=list(HELD_OUT), choices=HELD_OUT)
    parser.add_argument("--ship", action="store_true", help="Train on every source; write the package's weights.")
    parser.add_argument("--baselines", action="store_true", help="Measure the keyword/embedding baselines and speed.")
    parser.add_argument("--out", default=None, help="Results JSON; configurations already in it are kept.")
    parser.add_argument("--benchmarks", default=None, help="Write the tables into this BENCHMARKS.md's block.")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not os.path.isdir(os.path.join(args.data, "xstest")):
        sys.exit(f"shared data not found at {args.data}: this benchmark reads ../shared/data (see its README).")

    import torch

    from refusal_tokens.classifiers import EmbeddingRefusalClassifier, KeywordRefusalClassifier
    from refusal_tokens.classifiers.cross_encoder import CrossEncoderRefusalClassifier
    from refusal_tokens.data.real import load_builtin_corpus
    from refusal_tokens.data.real.answers import load_answer_source, sample_by_group
    from refusal_tokens.data.synthetic import synthetic_classifier_pairs

    result: dict[str, Any] = {"configs": {}}
    if args.out and os.path.isfile(args.out):
        with open(args.out, encoding="utf-8") as f:
            result = json.load(f)
    if args.report_only:
        print(report(result))
        if args.benchmarks:
            write_block(args.benchmarks, report(result))
        return
    result.update(device=default_device(), torch_threads=torch.get_num_threads())
    sources = {name: load_answer_source(name, args.data, args.taxonomy) for name in (*HELD_OUT, "coconot")}
    synthetic = [
        dict(r, source="synthetic", group=f"synthetic/{i}", partial=False)
        for i, r in enumerate(synthetic_classifier_pairs(args.taxonomy, per_category=args.synthetic_per_category))
    ]
    coconot_test = load_builtin_corpus("coconot", split="test")
    keyword = KeywordRefusalClassifier(args.taxonomy)
    result["sizes"] = {k: len(v) for k, v in sources.items()} | {"synthetic": len(synthetic)}
    name = config_name(args)
    config = result["configs"].setdefault(name, {"args": vars(args), "loso": {}})
    config["args"] = vars(args)
    for held in args.held_out:
        rows = [r for n, v in sources.items() if n != held for r in sample_by_group(v, args.max_per_source)]
        clf, seconds = train(rows + synthetic, args, None, f"all but {held}")
        test = sources[held]
        t = time.perf_counter()
        pred = clf.classify([r["prompt"] for r in test], [r["response"] for r in test]).refused
        config["loso"][held] = {
            "cross-encoder": binary_scores(pred, test),
            "keyword": binary_scores(
                keyword.classify([r["prompt"] for r in test], [r["response"] for r in test]).refused, test
            ),
            "coconot_category": category_scores(clf, coconot_test) if args.taxonomy == "coconot" else None,
            "train_rows": len(rows) + len(synthetic),
            "train_seconds": seconds,
        }
        logger.info("%s, held out %s: %s", name, held, config["loso"][held]["cross-encoder"])
        write_results(args.out, result)

    path = os.path.join(ROOT, "refusal_tokens", "classifiers", "heads", f"cross-{args.taxonomy}.safetensors")
    if args.ship:
        rows = [r for v in sources.values() for r in sample_by_group(v, args.max_per_source)]
        what = "xstest, jailbreakbench, refusal_direction, coconot train part, synthetic pairs"
        _, seconds = train(rows + synthetic, args, path, what)
        shipped = CrossEncoderRefusalClassifier(path)
        result.setdefault("shipped", {})[args.taxonomy] = {
            "config": name,
            "coconot_category": category_scores(shipped, coconot_test) if args.taxonomy == "coconot" else None,
            "train_seconds": seconds,
            "train_rows": len(rows) + len(synthetic),
            "file_bytes": os.path.getsize(path),
        }
        write_results(args.out, result)

    if args.baselines:
        xs = sources["xstest"]
        emb = EmbeddingRefusalClassifier(taxonomy=args.taxonomy)
        result["xstest_embedding_shipped"] = binary_scores(
            emb.classify([r["prompt"] for r in xs], [r["response"] for r in xs]).refused, xs
        )
        if args.taxonomy == "coconot":
            result["coconot_category_baselines"] = {
                "keyword": category_scores(keyword, coconot_test),
                "embedding, shipped head": category_scores(emb, coconot_test),
            }
        # Pairs per second, one run, the same 512 pairs, this machine's threads.
        pairs = sample_by_group(xs, 512, seed=1)[:512]
        p, r = [x["prompt"] for x in pairs], [x["response"] for x in pairs]
        speed = {}
        candidates = [("keyword", keyword), ("embedding (the earlier default)", emb)]
        if os.path.isfile(path):
            fp32 = CrossEncoderRefusalClassifier(path)
            int8 = CrossEncoderRefusalClassifier(path, device="cpu", quantize=True)
            candidates += [("cross-encoder fp32", fp32), ("cross-encoder int8 (CPU)", int8)]
            result["int8_agreement_xstest"] = sum(
                a == b for a, b in zip(int8.classify(p, r).refused, fp32.classify(p, r).refused)
            ) / len(p)
        for label, clf in candidates:
            clf.classify(p[:32], r[:32])
            t = time.perf_counter()
            clf.classify(p, r)
            speed[label] = len(p) / (time.perf_counter() - t)
        result["pairs_per_s"] = speed
    write_results(args.out, result)
    text = report(result)
    print(text)
    if args.benchmarks:
        write_block(args.benchmarks, text)


def _f(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}"


def report(result: dict[str, Any]) -> str:
    lines = [
        "Made by `python bench/classifier_real.py` (one invocation per configuration, flags as named below; "
        f"`--ship` for the shipped weights, `--baselines` for the baselines and speed) on {result.get('device')} "
        f"({result.get('torch_threads')} threads). Cross-encoder: LoRA r=16 on all-MiniLM-L6-v2, prompt 32 + "
        "answer 96 tokens, 1,500 training rows per source at most (whole prompts), 60 synthetic refusals per "
        "category and as many compliant pairs.",
        "",
        "Leave one source out (trained on every other source; measured on all of the left-out one):",
        "",
        "| left out | labels | classifier | accuracy | F1 | precision | recall | recall of partial refusals | n |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def row(held: str, label: str, s: dict[str, Any]) -> str:
        kind = "human (gold)" if held == "xstest" else "automatic (silver)"
        return (
            f"| {held} | {kind} | {label} | {_f(s['accuracy'])} | {_f(s['f1'])} | {_f(s['precision'])} | "
            f"{_f(s['recall'])} | {_f(s['recall_partial_refusals'])} | {s['n']} |"
        )

    for held in HELD_OUT:
        measured = [(n, c["loso"][held]) for n, c in result["configs"].items() if held in c["loso"]]
        for n, m in measured:
            lines.append(row(held, f"cross-encoder ({n})", m["cross-encoder"]))
        if measured:
            lines.append(row(held, "keyword", measured[0][1]["keyword"]))
        if held == "xstest" and "xstest_embedding_shipped" in result:
            lines.append(row(held, "embedding, shipped head (synthetic only)", result["xstest_embedding_shipped"]))
    cats_rows: dict[str, dict[str, Any]] = {}
    for n, c in result["configs"].items():
        for held, m in c["loso"].items():
            if m.get("coconot_category"):
                cats_rows[f"cross-encoder ({n}) without {held}"] = m["coconot_category"]
    shipped = (result.get("shipped") or {}).get("coconot")
    if shipped and shipped.get("coconot_category"):
        cats_rows[f"**cross-encoder, shipped ({shipped['config']}, every source)**"] = shipped["coconot_category"]
    cats_rows |= result.get("coconot_category_baselines", {})
    if cats_rows:
        cats = sorted(next(iter(cats_rows.values()))["per_category"])
        lines += [
            "",
            "Category accuracy on the held-out half of the CoCoNot split (500 should-refuse prompts, one generic "
            "refusal):",
            "",
            "| classifier | accuracy | " + " | ".join(cats) + " |",
            "|---|---|" + "---|" * len(cats),
        ]
        for label, c in cats_rows.items():
            lines.append(f"| {label} | {_f(c['accuracy'])} | " + " | ".join(_f(c["per_category"][k]) for k in cats)
                         + " |")  # fmt: skip
    if "pairs_per_s" in result:
        lines += ["", "Pairs per second on the same 512 XSTest pairs, one run:", "", "| classifier | pairs/s |",
                  "|---|---|"]  # fmt: skip
        lines += [f"| {k} | {v:.0f} |" for k, v in result["pairs_per_s"].items()]
        if "int8_agreement_xstest" in result:
            lines += ["", f"int8 and fp32 cross-encoder decisions agree on {result['int8_agreement_xstest']:.3f} of "
                      "those pairs."]  # fmt: skip
    return "\n".join(lines)


BEGIN, END = "<!-- bench/classifier_real.py: begin -->", "<!-- bench/classifier_real.py: end -->"


def write_block(path: str, text: str) -> None:
    with open(path, encoding="utf-8") as f:
        doc = f.read()
    if BEGIN not in doc:
        raise SystemExit(f"{path}: no {BEGIN} ... {END} block to write into.")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}{BEGIN}\n{text}\n{END}{tail}")


if __name__ == "__main__":
    main()
