"""`refusal-tokens train-classifier`: fit the embedding classifier's head on the synthetic pairs or your labels."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..classifiers import SentenceEmbedder, pair_features, train_embedding_head
from ..data.loading import read_rows
from ..data.synthetic import synthetic_classifier_pairs
from ..inference.builtin import cache_dir
from ..inference.models import load_model_and_tokenizer
from ..training.distillation import distill_cache_path, generate_responses
from ..utils.config import parse_command

HELP = "Train the embedding classifier head (synthetic data or yours)."

KEY_FIELDS = ("taxonomy", "data", "label_column", "output")
"""The fields `--help` lists."""


@dataclass
class TrainClassifierArguments:
    output: str = field(metadata={"help": "Head file to write (.safetensors)."})
    taxonomy: str = field(default="cannot-should-not", metadata={"help": "Taxonomy preset or file."})
    data: str | None = field(
        default=None, metadata={"help": "Labelled pairs (prompt, response, label column); default: synthetic."}
    )
    label_column: str = field(default="label", metadata={"help": "Label column of --data."})
    per_category: int = field(default=200, metadata={"help": "Synthetic refusal pairs per category."})
    answers_from: str | None = field(
        default=None, metadata={"help": "Model whose own answers are the synthetic compliance."}
    )
    embedder: str | None = field(
        default=None, metadata={"help": "Sentence-embedding model folder (default: all-MiniLM-L6-v2)."}
    )
    l2: float = field(default=1e-4, metadata={"help": "L2 penalty of the heads."})
    seed: int = field(default=0, metadata={"help": "Seed of the synthetic pairs."})


def labelled_pairs(args: TrainClassifierArguments) -> tuple[list[tuple[str, str, str]], str]:
    """`(prompt, response, label)` pairs and a description of where they came from."""
    if args.data:
        rows = read_rows(args.data)
        for n, r in enumerate(rows, 1):
            if args.label_column not in r:
                raise ValueError(f"{args.data}: row {n} has no {args.label_column!r} field (set --label_column).")
            if not isinstance(r.get("response"), str) or not r["response"].strip():
                raise ValueError(f"{args.data}: row {n} needs a non-empty string 'response' field.")
        return [(r.get("prompt", ""), r["response"], r[args.label_column]) for r in rows], args.data
    answers = None
    if args.answers_from:
        model, tok = load_model_and_tokenizer(args.answers_from)
        cache = distill_cache_path(model, 32, os.path.join(cache_dir(), "distill"))

        def answers(prompts: list[str]) -> list[str]:
            return generate_responses(model, tok, prompts, max_new_tokens=32, cache_file=cache)

    rows = synthetic_classifier_pairs(args.taxonomy, per_category=args.per_category, answers=answers, seed=args.seed)
    source = f"synthetic ({args.per_category} per category, answers from {args.answers_from or 'templates'})"
    return [(r["prompt"], r["response"], r["label"]) for r in rows], source


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command(TrainClassifierArguments, argv, "train-classifier", HELP, KEY_FIELDS)
    pairs, source = labelled_pairs(args)
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
