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
import logging
import os
import random
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


def sample_by_group(rows: list[dict], limit: int | None, seed: int = 0) -> list[dict]:
    """At most about `limit` rows, whole prompt groups at a time (a seeded sample)."""
    if limit is None or len(rows) <= limit:
        return rows
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    out: list[dict] = []
    for k in keys:
        if len(out) >= limit:
            break
        out += groups[k]
    return out


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
        output=output,
        info={"data": what},
        show_progress=False,
    )
    logger.info("trained on %d rows (%s) in %.0f s", len(rows), what, time.perf_counter() - t)
    return clf, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--taxonomy", default="coconot")
    parser.add_argument("--max-per-source", type=int, default=1500, help="Training rows per source (by prompt).")
    parser.add_argument("--synthetic-per-category", type=int, default=60)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-response-tokens", type=int, default=96)
    parser.add_argument("--held-out", nargs="*", default=list(HELD_OUT), choices=HELD_OUT)
    parser.add_argument("--ship", action="store_true", help="Train on every source; write the package's weights.")
    parser.add_argument("--out", default=None)
    parser.add_argument("--benchmarks", default=None, help="Write the tables into this BENCHMARKS.md's block.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not os.path.isdir(os.path.join(args.data, "xstest")):
        sys.exit(f"shared data not found at {args.data}: this benchmark reads ../shared/data (see its README).")

    import torch

    from refusal_tokens.classifiers import EmbeddingRefusalClassifier, KeywordRefusalClassifier
    from refusal_tokens.classifiers.cross_encoder import CrossEncoderRefusalClassifier
    from refusal_tokens.data.real import load_builtin_corpus
    from refusal_tokens.data.real.answers import load_answer_source
    from refusal_tokens.data.synthetic import synthetic_classifier_pairs

    sources = {name: load_answer_source(name, args.data, args.taxonomy) for name in (*HELD_OUT, "coconot")}
    synthetic = [
        dict(r, source="synthetic", group=f"synthetic/{i}", partial=False)
        for i, r in enumerate(synthetic_classifier_pairs(args.taxonomy, per_category=args.synthetic_per_category))
    ]
    coconot_test = load_builtin_corpus("coconot", split="test")
    keyword = KeywordRefusalClassifier(args.taxonomy)
    result: dict[str, Any] = {"device": default_device(), "torch_threads": torch.get_num_threads(), "args": vars(args)}
    result["sizes"] = {k: len(v) for k, v in sources.items()} | {"synthetic": len(synthetic)}
    result["loso"] = {}
    for held in args.held_out:
        rows = [r for name, v in sources.items() if name != held for r in sample_by_group(v, args.max_per_source)]
        clf, seconds = train(rows + synthetic, args, None, f"all but {held}")
        test = sources[held]
        t = time.perf_counter()
        pred = clf.classify([r["prompt"] for r in test], [r["response"] for r in test]).refused
        result["loso"][held] = {
            "cross-encoder": binary_scores(pred, test),
            "keyword": binary_scores(
                keyword.classify([r["prompt"] for r in test], [r["response"] for r in test]).refused, test
            ),  # fmt: skip
            "coconot_category": category_scores(clf, coconot_test) if args.taxonomy == "coconot" else None,
            "train_rows": len(rows) + len(synthetic),
            "train_seconds": seconds,
            "eval_pairs_per_s": len(test) / (time.perf_counter() - t),
        }
        logger.info("held out %s: %s", held, result["loso"][held]["cross-encoder"])
        write_results(args.out, result)

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
    if args.ship:
        rows = [r for v in sources.values() for r in sample_by_group(v, args.max_per_source)]
        path = os.path.join(ROOT, "refusal_tokens", "classifiers", "heads", f"cross-{args.taxonomy}.safetensors")
        what = "xstest, jailbreakbench, refusal_direction, coconot train part, synthetic pairs"
        _, seconds = train(rows + synthetic, args, path, what)
        shipped = CrossEncoderRefusalClassifier(path)
        result["shipped"] = {
            "coconot_category": category_scores(shipped, coconot_test) if args.taxonomy == "coconot" else None,
            "train_seconds": seconds,
            "train_rows": len(rows) + len(synthetic),
            "file_bytes": os.path.getsize(path),
        }

    # Pairs per second, one run, same 512 pairs, this machine's threads.
    pairs = sample_by_group(xs, 512, seed=1)[:512]
    p, r = [x["prompt"] for x in pairs], [x["response"] for x in pairs]
    speed = {}
    path = os.path.join(ROOT, "refusal_tokens", "classifiers", "heads", f"cross-{args.taxonomy}.safetensors")
    candidates = [("keyword", keyword), ("embedding (today's default)", emb)]
    if os.path.isfile(path):
        int8 = CrossEncoderRefusalClassifier(path, device="cpu", quantize=True)
        candidates += [("cross-encoder fp32", CrossEncoderRefusalClassifier(path)),
                       ("cross-encoder int8 (CPU)", int8)]  # fmt: skip
        result["int8_agreement_xstest"] = sum(
            a == b for a, b in zip(int8.classify(p, r).refused, candidates[2][1].classify(p, r).refused)
        ) / len(p)
    for name, clf in candidates:
        clf.classify(p[:32], r[:32])
        t = time.perf_counter()
        clf.classify(p, r)
        speed[name] = len(p) / (time.perf_counter() - t)
    result["pairs_per_s"] = speed
    write_results(args.out, result)
    text = report(result)
    print(text)
    if args.benchmarks:
        write_block(args.benchmarks, text)


def _f(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}"


def report(result: dict[str, Any]) -> str:
    a = result["args"]
    lines = [
        f"Made by `python bench/classifier_real.py --out bench/results/classifier_real.json --ship --benchmarks "
        f"BENCHMARKS.md` on {result['device']} ({result['torch_threads']} threads); cross-encoder: LoRA r=16 on "
        f"all-MiniLM-L6-v2, prompt 32 + answer {a['max_response_tokens']} tokens, {a['epochs']} epoch(s), at most "
        f"{a['max_per_source']} training rows per source, {a['synthetic_per_category']} synthetic refusals per "
        "category (and as many compliant pairs).",
        "",
        "Leave one source out (trained on every other source; measured on all of the left-out one):",
        "",
        "| left out | labels | backend | accuracy | F1 | precision | recall | recall of partial refusals | n |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for held, m in result["loso"].items():
        kind = "human (gold)" if held == "xstest" else "automatic (silver)"
        for backend in ("cross-encoder", "keyword"):
            s = m[backend]
            lines.append(
                f"| {held} | {kind} | {backend} | {_f(s['accuracy'])} | {_f(s['f1'])} | {_f(s['precision'])} | "
                f"{_f(s['recall'])} | {_f(s['recall_partial_refusals'])} | {s['n']} |"
            )
    if "xstest_embedding_shipped" in result:
        s = result["xstest_embedding_shipped"]
        lines.append(
            f"| xstest | human (gold) | embedding, shipped head (synthetic only) | {_f(s['accuracy'])} | "
            f"{_f(s['f1'])} | {_f(s['precision'])} | {_f(s['recall'])} | {_f(s['recall_partial_refusals'])} | "
            f"{s['n']} |"
        )
    if "coconot_category_baselines" not in result:
        return _speed_lines(result, lines)
    cats = sorted(result["coconot_category_baselines"]["keyword"]["per_category"])
    lines += [
        "",
        "Category accuracy on the held-out half of the CoCoNot split (500 should-refuse prompts, one generic "
        "refusal):",
        "",
        "| model | accuracy | " + " | ".join(cats) + " |",
        "|---|---|" + "---|" * len(cats),
    ]
    rows = {f"cross-encoder without {k}": m["coconot_category"] for k, m in result["loso"].items()}
    if "shipped" in result:
        rows["**cross-encoder, shipped (every source)**"] = result["shipped"]["coconot_category"]
    rows |= result.get("coconot_category_baselines", {})
    for name, c in rows.items():
        lines.append(f"| {name} | {_f(c['accuracy'])} | " + " | ".join(_f(c["per_category"][k]) for k in cats) + " |")
    return _speed_lines(result, lines)


def _speed_lines(result: dict[str, Any], lines: list[str]) -> str:
    lines += ["", "Pairs per second on the same 512 XSTest pairs, this run:", "", "| backend | pairs/s |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in result["pairs_per_s"].items()]
    if "int8_agreement_xstest" in result:
        lines += ["", f"int8 and fp32 cross-encoder decisions agree on {result['int8_agreement_xstest']:.3f} of them."]
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
