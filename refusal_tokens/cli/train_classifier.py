"""`refusal-tokens train-classifier`: fit a classifier (the cross-encoder, or the embedding backend's head) on the
synthetic pairs, the real labelled answers of `../shared/data`, your labels, or a mix of them.

The shipped cross-encoder weights are reproduced by

    refusal-tokens train-classifier --backend cross --taxonomy coconot --real_data ../shared/data \
        --per_category 60 --max_per_source 1500 --output refusal_tokens/classifiers/heads/cross-coconot.safetensors
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..classifiers import SentenceEmbedder, pair_features, train_cross_encoder, train_embedding_head
from ..data.loading import read_rows
from ..data.real.answers import ANSWER_SOURCES, load_answer_source, sample_by_group
from ..data.synthetic import synthetic_classifier_pairs
from ..inference.builtin import cache_dir
from ..inference.models import load_model_and_tokenizer
from ..training.distillation import distill_cache_path, generate_responses
from ..utils.config import parse_command

HELP = "Train a refusal classifier: the cross-encoder or the embedding head (synthetic, real answers, or yours)."

KEY_FIELDS = ("backend", "taxonomy", "data", "real_data", "label_column", "output")

"""The fields `--help` lists."""


@dataclass
class TrainClassifierArguments:
    output: str = field(metadata={"help": "Weights/head file to write (.safetensors)."})
    backend: str = field(default="cross", metadata={"help": "cross (the cross-encoder) or embedding (a head)."})
    taxonomy: str = field(default="cannot-should-not", metadata={"help": "Taxonomy preset or file."})
    data: str | None = field(
        default=None, metadata={"help": "Labelled pairs (prompt, response, label column); default: synthetic."}
    )
    label_column: str = field(default="label", metadata={"help": "Label column of --data."})
    real_data: str | None = field(
        default=None,
        metadata={"help": "Folder of the public answer sets (../shared/data): train on them too (see --sources)."},
    )
    sources: list[str] = field(
        default_factory=lambda: list(ANSWER_SOURCES),
        metadata={"help": f"With --real_data: which answer sources ({', '.join(ANSWER_SOURCES)})."},
    )
    max_per_source: int | None = field(
        default=None, metadata={"help": "With --real_data: at most this many rows per source (whole prompts)."}
    )
    per_category: int = field(
        default=200, metadata={"help": "Synthetic refusal pairs per category (0: none; default with --data: none)."}
    )
    answers_from: str | None = field(
        default=None, metadata={"help": "Model whose own answers are the synthetic compliance."}
    )
    embedder: str | None = field(
        default=None, metadata={"help": "Sentence-embedding model folder (default: all-MiniLM-L6-v2)."}
    )
    l2: float = field(default=1e-4, metadata={"help": "Embedding backend: L2 penalty of the heads."})
    epochs: float = field(default=1.0, metadata={"help": "Cross-encoder: passes over the data."})
    max_response_tokens: int = field(default=96, metadata={"help": "Cross-encoder: tokens kept of each answer."})
    seed: int = field(default=0, metadata={"help": "Seed of the synthetic pairs."})


def labelled_pairs(args: TrainClassifierArguments) -> tuple[list[tuple[str, str, str]], str]:
    """`(prompt, response, label)` pairs and a description of where they came from: `--data`, the real answer
    sources of `--real_data`, and the synthetic pairs (unless `--per_category 0`, or `--data` alone)."""
    pairs: list[tuple[str, str, str]] = []
    parts = []
    if args.data:
        rows = read_rows(args.data)
        for n, r in enumerate(rows, 1):
            if args.label_column not in r:
                raise ValueError(f"{args.data}: row {n} has no {args.label_column!r} field (set --label_column).")
            if not isinstance(r.get("response"), str) or not r["response"].strip():
                raise ValueError(f"{args.data}: row {n} needs a non-empty string 'response' field.")
        pairs += [(r.get("prompt", ""), r["response"], r[args.label_column]) for r in rows]
        parts.append(args.data)
    if args.real_data:
        for name in args.sources:
            rows = sample_by_group(load_answer_source(name, args.real_data, args.taxonomy), args.max_per_source,
                                  args.seed)  # fmt: skip
            pairs += [(r["prompt"], r["response"], r["label"]) for r in rows]
            parts.append(f"{name} ({len(rows)} rows)")
    if args.per_category > 0 and not (args.data and not args.real_data):
        answers = None
        if args.answers_from:
            model, tok = load_model_and_tokenizer(args.answers_from)
            cache = distill_cache_path(model, 32, os.path.join(cache_dir(), "distill"))

            def answers(prompts: list[str]) -> list[str]:
                return generate_responses(model, tok, prompts, max_new_tokens=32, cache_file=cache)

        rows = synthetic_classifier_pairs(
            args.taxonomy, per_category=args.per_category, answers=answers, seed=args.seed
        )
        pairs += [(r["prompt"], r["response"], r["label"]) for r in rows]
        parts.append(f"synthetic ({args.per_category} per category, answers from {args.answers_from or 'templates'})")
    if not pairs:
        raise ValueError("no training pairs: give --data, --real_data, or --per_category above 0.")
    return pairs, ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command(TrainClassifierArguments, argv, "train-classifier", HELP, KEY_FIELDS)
    if args.backend not in ("cross", "embedding"):
        raise SystemExit(f"train-classifier: --backend {args.backend!r}; use cross or embedding.")
    pairs, source = labelled_pairs(args)
    prompts, responses, labels = ([p[k] for p in pairs] for k in range(3))
    if args.backend == "cross":
        train_cross_encoder(
            prompts,
            responses,
            labels,
            args.taxonomy,
            output=args.output,
            encoder=args.embedder,
            epochs=args.epochs,
            max_response_tokens=args.max_response_tokens,
            seed=args.seed,
            info={"data": source},
        )
        print(f"Trained the cross-encoder on {len(pairs)} pairs from {source}: {args.output}")
        return 0
    embedder = SentenceEmbedder(args.embedder)
    features = pair_features(embedder, prompts, responses)
    head = train_embedding_head(
        features,
        labels,
        args.taxonomy,
        l2=args.l2,
        info={"data": source, "embedder": embedder.path, "max_length": embedder.max_length},
    )
    head.save(args.output)
    print(f"Trained a {len(head.columns)}-class head on {len(pairs)} pairs from {source}: {args.output}")
    return 0
