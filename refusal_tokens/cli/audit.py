"""`refusal-tokens audit`: the refusal composition of a dataset by category (table, JSON, PNG, optionally W&B)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from ..classifiers import get_classifier
from ..data.loading import load_split
from ..data.mixing import audit_dataset
from ..training.wandb_utils import prepare_wandb
from ..utils.config import parse_command
from ..utils.io import prepare_output_dir

HELP = "Refusal composition of a dataset by category (table, JSON, PNG)."

KEY_FIELDS = ("dataset", "taxonomy", "classifier", "output_dir")
"""The fields `--help` lists."""


@dataclass
class AuditArguments:
    dataset: str = field(
        metadata={"help": "Local JSON/JSONL/CSV/parquet file, save_to_disk folder or hub dataset id."}
    )
    split: str = field(default="train", metadata={"help": "Split to audit."})
    config: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    taxonomy: str = field(default="cannot-should-not", metadata={"help": "Taxonomy preset or file."})
    classifier: str = field(
        default="auto",
        metadata={
            "help": "auto (cross where its weights ship for the taxonomy, else keyword), keyword, embedding, cross, "
            "a .safetensors file, hf:<ckpt>, or module:function (runs its code)."
        },
    )
    label_column: str = field(
        default="refusal_label", metadata={"help": "Labels already present win over the classifier."}
    )
    num_proc: int | None = field(default=None, metadata={"help": "Processes for classification."})
    output_dir: str = field(default="audit", metadata={"help": "Folder of composition.json / composition.png."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace the outputs of an earlier run in output_dir (a non-empty output_dir is refused)."},
    )
    wandb: bool = field(default=False, metadata={"help": "Also log the composition to W&B (offline without a key)."})
    wandb_project: str = field(default="refusal-tokens", metadata={"help": "W&B project."})


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command(AuditArguments, argv, "audit", HELP, KEY_FIELDS)
    prepare_output_dir(args.output_dir, overwrite=args.overwrite_output_dir, command="audit", dataset=args.dataset)
    dataset = load_split(args.dataset, args.split, args.config)
    classifier = get_classifier(args.classifier, args.taxonomy)
    report = audit_dataset(dataset, args.taxonomy, classifier, label_columns=args.label_column, num_proc=args.num_proc)
    if not sum(report.before.values()):
        raise ValueError(
            f"{args.dataset}: none of its {report.total_in} rows could be audited (dropped: {report.dropped}); it "
            "needs a prompt and a response per row ('messages', 'prompt'+'completion', 'prompt'+'response' or "
            "'chosen'+'rejected')."
        )
    paths = report.save(args.output_dir)
    print(report.format())
    print(f"\nWrote {', '.join(paths.values())}")
    if args.wandb:
        log_to_wandb(report, paths, args)
    return 0


def log_to_wandb(report, paths: dict[str, str], args: AuditArguments) -> None:
    """The composition as a W&B bar chart, counts and the PNG, in a run of its own."""
    prepare_wandb("wandb")  # before wandb starts: offline mode without an account
    import wandb  # heavy, and only `--wandb` needs it

    with wandb.init(project=args.wandb_project, job_type="audit", config=asdict(args)) as run:
        shares = report.to_dict()["before"]["shares"]
        table = wandb.Table(
            columns=["class", "count", "share"], data=[[c, n, shares[c]] for c, n in report.before.items()]
        )
        logged = {f"audit/{c}": n for c, n in report.before.items()} | {"audit/total_in": report.total_in}
        logged["audit/composition"] = wandb.plot.bar(table, "class", "share", title="Refusal composition")
        if "png" in paths:
            logged["audit/chart"] = wandb.Image(paths["png"])
        run.log(logged)  # one history row: the counts, the chart and the picture together
