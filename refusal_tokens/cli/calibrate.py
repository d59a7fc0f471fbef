"""`refusal-tokens calibrate`: per-category thresholds that meet refusal-rate targets, solved from labelled prompts.

It runs the same calibration step as the recipes (`recipes.base.calibrate_probabilities`), on the prompts you give.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..data.loading import read_rows
from ..evaluation.calibration import THRESHOLDS_FILE, format_calibration_report
from ..evaluation.metrics import evaluate_refusal_tokens
from ..inference.models import load_refusal_model
from ..recipes.base import CALIBRATION_DIR, calibrate_probabilities
from ..tokens import load_taxonomy
from ..utils.config import parse_command
from ..utils.io import prepare_output_dir

HELP = "Solve per-category thresholds that meet refusal-rate targets (one half solves, the other measures)."

KEY_FIELDS = ("model", "data", "targets", "label_column", "output_dir")
"""The fields `--help` lists."""


@dataclass
class CalibrateArguments:
    model: str = field(metadata={"help": "Recipe output_dir, checkpoint, hub id or builtin: name."})
    data: str = field(metadata={"help": "Labelled prompts: JSONL/JSON/CSV/parquet with a prompt and a label."})
    targets: str = field(
        metadata={"help": "YAML: refusal_rates per category and/or max_over_refusal; optional rule (passing or top)."}
    )
    adapter: str | None = field(default=None, metadata={"help": "Adapter directory, if --model is the base model."})
    label_column: str = field(default="refusal_label", metadata={"help": "Column holding respond or a category."})
    output_dir: str | None = field(default=None, metadata={"help": "Default: <model>/calibration."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace the outputs of an earlier run in output_dir (a non-empty output_dir is refused)."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of the calibration / held-out split."})


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command(CalibrateArguments, argv, "calibrate", HELP, KEY_FIELDS)
    rows = read_rows(args.data)
    for n, row in enumerate(rows, 1):
        if args.label_column not in row or not ("prompt" in row or "messages" in row):
            raise ValueError(
                f"{args.data}: row {n} needs a 'prompt' (or 'messages') and a {args.label_column!r} field."
            )
    out = args.output_dir or os.path.join(args.model if os.path.isdir(args.model) else ".", CALIBRATION_DIR)
    prepare_output_dir(out, overwrite=args.overwrite_output_dir, command="calibrate", model=args.model, data=args.data)
    model, tokenizer = load_refusal_model(args.model, args.adapter)
    evaluated = evaluate_refusal_tokens(model, tokenizer, rows, label_column=args.label_column)
    report = calibrate_probabilities(
        evaluated["probabilities"], rows, load_taxonomy(tokenizer), args.label_column, args.targets, out, args.seed
    )
    print(format_calibration_report(report))
    print(f"\nThresholds (solved on one half of {len(rows)} prompts, measured on the other): {out}/{THRESHOLDS_FILE}")
    return 0
