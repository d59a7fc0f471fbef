"""`refusal-tokens mix`: classify, tag and re-weight datasets to target shares per category."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..classifiers import get_classifier
from ..data.loading import load_split
from ..data.mixing import mix_datasets
from ..utils.config import ConfigError, load_yaml, parse_command
from ..utils.io import prepare_output_dir

HELP = "Classify, tag and re-weight datasets to target shares per category."

KEY_FIELDS = ("data", "targets", "size", "taxonomy", "classifier", "output_dir")
"""The fields `--help` lists."""


@dataclass
class MixArguments:
    data: list[str] = field(metadata={"help": "Source datasets (one or more files, folders or hub ids)."})
    output_dir: str = field(metadata={"help": "Folder of mixed.jsonl and composition.json / composition.png."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace the outputs of an earlier run in output_dir (a non-empty output_dir is refused)."},
    )
    split: str = field(default="train", metadata={"help": "Split of each source."})
    taxonomy: str = field(default="cannot-should-not", metadata={"help": "Taxonomy preset or file."})
    classifier: str = field(
        default="auto",
        metadata={
            "help": "auto (cross where its weights ship for the taxonomy, else keyword), keyword, embedding, cross, "
            "a .safetensors file, hf:<ckpt>, or module:function (runs its code)."
        },
    )
    targets: str | None = field(
        default=None, metadata={"help": "YAML mapping class -> share (respond and categories)."}
    )
    size: int | None = field(default=None, metadata={"help": "Output rows (default: the usable input rows)."})
    seed: int = field(default=0, metadata={"help": "Sampling seed."})
    num_proc: int | None = field(default=None, metadata={"help": "Processes for classification and tagging."})


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command(MixArguments, argv, "mix", HELP, KEY_FIELDS)
    targets = load_yaml(args.targets) if args.targets else None
    if targets is not None and not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in targets.values()
    ):
        raise ConfigError(f"{args.targets}: every share must be a number, e.g. 'respond: 0.8'.")
    prepare_output_dir(args.output_dir, overwrite=args.overwrite_output_dir, command="mix", data=list(args.data))
    sources = [load_split(d, args.split) for d in args.data]
    classifier = get_classifier(args.classifier, args.taxonomy)
    mixed, report = mix_datasets(
        sources, args.taxonomy, classifier, targets=targets, size=args.size, seed=args.seed, num_proc=args.num_proc
    )
    out = os.path.join(args.output_dir, "mixed.jsonl")
    tmp = out + ".partial"
    mixed.to_json(tmp)
    os.replace(tmp, out)  # an interrupted run never leaves a valid-looking partial mixed.jsonl
    paths = report.save(args.output_dir)
    print(report.format())
    print(f"\nWrote {out} ({len(mixed)} rows), {', '.join(paths.values())}")
    return 0
