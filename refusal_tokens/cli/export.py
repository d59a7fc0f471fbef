"""`refusal-tokens export`: merge a trained model's adapter and token rows into a plain checkpoint a server loads,
with the tokenizer, the taxonomy, the thresholds file and a model card (`inference.export`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..inference.export import export_refusal_model
from ..utils.config import parse_command

HELP = "Merge a trained model into a plain checkpoint (no PEFT needed) with its thresholds and a model card."

KEY_FIELDS = ("model", "output", "dtype", "push_to_hub")
"""The fields `--help` lists."""


@dataclass
class ExportArguments:
    model: str = field(metadata={"help": "Recipe output_dir (adapter + tokenizer) to export."})
    output: str = field(metadata={"help": "Folder to write the checkpoint into."})
    dtype: str | None = field(
        default=None, metadata={"help": "Save weights as bfloat16 or float16 (default: as trained)."}
    )
    push_to_hub: str | None = field(
        default=None, metadata={"help": "Upload exactly the written folder to this hub repository (owner/name)."}
    )
    private: bool = field(default=True, metadata={"help": "With --push_to_hub: create the repository private."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace an earlier export in --output (a non-empty folder is refused)."},
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command(ExportArguments, argv, "export", HELP, KEY_FIELDS)
    if args.dtype not in (None, "bfloat16", "float16", "float32"):
        raise ValueError(f"--dtype {args.dtype!r}: use bfloat16, float16 or float32.")
    info = export_refusal_model(
        args.model,
        args.output,
        dtype=args.dtype,
        overwrite=args.overwrite_output_dir,
        push_to_hub=args.push_to_hub,
        private=args.private,
    )
    print(
        f"Exported {args.model} (base {info['base_model']}, taxonomy {info['taxonomy']}) to {args.output}: logits "
        f"within {info['logits_max_abs_diff']:.1e} of the adapter model; load it with "
        f"AutoModelForCausalLM.from_pretrained({args.output!r})."
    )
    if info.get("pushed_to"):
        print(f"Pushed to {info['pushed_to']}")
    return 0
