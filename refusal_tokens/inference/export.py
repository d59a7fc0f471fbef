"""Export a trained refusal-token model as a plain checkpoint that servers load: LoRA and the token rows merged, the
tokenizer carrying the refusal tokens, the taxonomy, the thresholds file and a model card written from the run.

The folder loads with `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained` alone: no PEFT,
no refusal_tokens import (the refusal tokens are added special tokens of the tokenizer; the taxonomy is also in
`config.json` under `refusal_taxonomy`, where `refusal_tokens.load_taxonomy` finds it).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from typing import Any

import torch

from ..settings import THRESHOLDS_FILE, RefusalSettings
from ..tokens import load_taxonomy
from ..utils.io import atomic_write_json, atomic_write_text, prepare_output_dir
from .builtin import BUILTIN_HUB_IDS, BUILTIN_PREFIX
from .models import load_refusal_model

logger = logging.getLogger(__name__)

EXPORT_INFO_FILE = "refusal_export.json"
PROBE_TEXT = "Hello! Can you tell me the capital of France, and also my neighbour's home address?"
"""A fixed text whose logits the export is checked on against the adapter model."""

TOLERANCE = 1e-4
"""Largest absolute logit difference accepted between the export (float32) and the adapter model."""


def base_model_name(model_dir: str) -> str:
    """The real name of the model a run started from: the hub id of a `builtin:` model, the base of a chained run
    (DPO on an SFT output) followed back to its start, else what the run was given."""
    name = None
    stamp = os.path.join(model_dir, "refusal_run.json")
    if os.path.isfile(stamp):
        with open(stamp, encoding="utf-8") as f:
            name = json.load(f).get("model")
    if name is None:
        with open(os.path.join(model_dir, "adapter_config.json"), encoding="utf-8") as f:
            name = json.load(f).get("base_model_name_or_path")
    if name and os.path.isfile(os.path.join(name, "refusal_run.json")) and os.path.abspath(name) != model_dir:
        return base_model_name(os.path.abspath(name))
    if name and name.startswith(BUILTIN_PREFIX):
        return BUILTIN_HUB_IDS.get(name[len(BUILTIN_PREFIX) :], name)
    return name or "unknown"


@torch.no_grad()
def _probe_logits(model: Any, tokenizer: Any) -> torch.Tensor:
    enc = tokenizer(PROBE_TEXT, return_tensors="pt").to(model.device)
    return model(**enc).logits.float().cpu()


def export_refusal_model(
    model_dir: str,
    output_dir: str,
    *,
    dtype: str | None = None,
    overwrite: bool = False,
    push_to_hub: str | None = None,
    private: bool = True,
) -> dict[str, Any]:
    """Merge a recipe's output (adapter + token rows) into a plain checkpoint in `output_dir`.

    Args:
        model_dir (`str`): A recipe's `output_dir` (or a merged checkpoint) that `load_refusal_model` reads.
        output_dir (`str`): Folder to write; refused when not empty unless `overwrite` (and then only an earlier
            run's folder), as every command's output folder.
        dtype (`str`, *optional*): Save the weights in this dtype (`bfloat16`, `float16`); default: as trained.
        overwrite (`bool`, *optional*, defaults to `False`): Replace an earlier export in `output_dir`.
        push_to_hub (`str`, *optional*): Upload exactly the written folder to this hub repository.
        private (`bool`, *optional*, defaults to `True`): With `push_to_hub`: create the repository private.

    Returns:
        `dict`: what `refusal_export.json` records: the source, the base model, the logits check (largest absolute
        difference on a probe text, float32, against the adapter model) and the files written.

    Raises:
        `ValueError`: when the merged model's logits differ from the adapter model's by more than `TOLERANCE`, or
        when its output embeddings lost the tie the base model had.

    Example (after `make quickstart`; `refusal-tokens export --model outputs/quickstart --output DIR` does the
    same):

    ```python
    from refusal_tokens.inference.export import export_refusal_model
    from transformers import AutoModelForCausalLM

    info = export_refusal_model("outputs/quickstart", "outputs/quickstart-export")
    model = AutoModelForCausalLM.from_pretrained("outputs/quickstart-export")  # no PEFT, no refusal_tokens needed
    ```
    """
    model, tokenizer = load_refusal_model(model_dir)
    taxonomy = load_taxonomy(tokenizer)
    reference = _probe_logits(model, tokenizer)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    merged = _probe_logits(model, tokenizer)
    diff = float((merged - reference).abs().max())
    if diff > TOLERANCE:
        raise ValueError(f"{model_dir}: the merged model's logits differ from the adapter model's by {diff:.2e} "
                         f"(> {TOLERANCE:.0e}); not exported.")  # fmt: skip
    out_emb, in_emb = model.get_output_embeddings(), model.get_input_embeddings()
    if tied and out_emb is not None and out_emb.weight.data_ptr() != in_emb.weight.data_ptr():
        raise ValueError(f"{model_dir}: the base ties its input and output embeddings but the merged model does not.")
    if dtype is not None:
        model = model.to(getattr(torch, dtype))
    source = os.path.abspath(model_dir)
    prepare_output_dir(output_dir, overwrite=overwrite, command="export", source=source)
    parent = os.path.dirname(os.path.abspath(output_dir))
    # Written into a temporary folder beside the target, then moved in: a crash never leaves half a model.
    with tempfile.TemporaryDirectory(dir=parent, prefix=".export-") as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        for name in (THRESHOLDS_FILE, "refusal_taxonomy.json"):
            if os.path.isfile(os.path.join(model_dir, name)):
                shutil.copyfile(os.path.join(model_dir, name), os.path.join(tmp, name))
        summary = _eval_summary(model_dir)
        if summary is not None:
            atomic_write_json(os.path.join(tmp, "refusal_eval_summary.json"), summary)
        for name in sorted(os.listdir(tmp)):
            os.replace(os.path.join(tmp, name), os.path.join(output_dir, name))
    base = base_model_name(source)
    info = {
        "source": source,
        "base_model": base,
        "taxonomy": taxonomy.name,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "tied_embeddings": tied,
        "logits_max_abs_diff": diff,
        "tolerance": TOLERANCE,
        "files": sorted(os.listdir(output_dir)) + [EXPORT_INFO_FILE, "README.md"],
    }
    atomic_write_text(os.path.join(output_dir, "README.md"), model_card(output_dir, info, summary))
    atomic_write_json(os.path.join(output_dir, EXPORT_INFO_FILE), info)
    logger.info("exported %s to %s (logits within %.1e of the adapter model)", model_dir, output_dir, diff)
    if push_to_hub:
        info["pushed_to"] = push_folder(output_dir, push_to_hub, private=private)
    return info


def push_folder(folder: str, repo_id: str, *, private: bool = True) -> str:
    """Upload exactly `folder` to the hub repository `repo_id` (created if missing); returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=folder, repo_id=repo_id, commit_message="refusal-tokens export")
    return str(getattr(commit, "commit_url", commit))


def _eval_summary(model_dir: str) -> dict[str, Any] | None:
    """The held-out figures of the run (no per-prompt predictions), or `None` when it wrote no report."""
    path = os.path.join(model_dir, "refusal_eval.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    keep = ("overall", "separation", "groups", "settings", "agreement", "calibration", "corpora")
    out = {k: report[k] for k in keep if k in report}
    for corpus in out.get("corpora", {}).values():
        corpus.pop("confusion", None)
    return out


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) else "-"


def model_card(folder: str, info: dict[str, Any], summary: dict[str, Any] | None) -> str:
    """The export's README.md: base model, taxonomy and tokens, training data, held-out table, thresholds, use."""
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    taxonomy = config.get("refusal_taxonomy", {})
    stamp_path = os.path.join(info["source"], "refusal_run.json")
    stamp: dict[str, Any] = {}
    if os.path.isfile(stamp_path):
        with open(stamp_path, encoding="utf-8") as f:
            stamp = json.load(f)
    name = os.path.basename(os.path.normpath(folder))
    lines = [
        "---",
        f"base_model: {info['base_model']}",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags:",
        "- refusal-tokens",
        "- trl",
        f"- {stamp.get('command', 'sft')}",
        "---",
        "",
        f"# {name}",
        "",
        f"`{info['base_model']}` fine-tuned with [refusal-tokens](https://pypi.org/project/refusal-tokens/) "
        f"(`{stamp.get('command', 'sft')}`): every answer starts with `[respond]` or one refusal token per category, "
        "and the probability of each category token is a refusal score with its own threshold. LoRA and the token "
        "rows are merged: this folder is a plain checkpoint (no PEFT needed).",
        "",
        f"## Refusal tokens (taxonomy `{info['taxonomy']}`)",
        "",
        "| token | category | branch | description |",
        "|---|---|---|---|",
    ]
    for cat in taxonomy.get("categories", []):
        lines.append(f"| `{cat['token']}` | {cat['name']} | {cat['branch']} | {cat['description']} |")
    lines += ["", "## Training data", ""]
    data = stamp.get("data")
    if data:
        lines += [f"- {d}" for d in data]
    else:
        lines.append("- not recorded by the run that made this model")
    lines += ["", "## Held-out results (from the run's report, prompts never trained on)", ""]
    if summary:
        lines += [
            "| corpus | refusal recall | over-refusal | AUROC p(refuse) | refusal at 10% over-refusal | "
            "category accuracy |",
            "|---|---|---|---|---|---|",
        ]
        corpora = summary.get("corpora") or {"all": summary}
        for corpus, rep in corpora.items():
            o, s = rep.get("overall", {}), rep.get("separation", {})
            lines.append(
                f"| {corpus} | {_fmt(o.get('refusal_recall'))} | {_fmt(o.get('over_refusal'))} | "
                f"{_fmt(s.get('auroc'))} | {_fmt(s.get('recall_at_max_over_refusal'))} | "
                f"{_fmt(s.get('category_accuracy'))} |"
            )
    else:
        lines.append("The run wrote no held-out report.")
    thresholds = os.path.join(folder, THRESHOLDS_FILE)
    lines += ["", "## Default thresholds (`thresholds.yaml`)", ""]
    if os.path.isfile(thresholds):
        settings = RefusalSettings.from_file(thresholds)
        with open(thresholds, encoding="utf-8") as f:
            lines += ["```yaml", f.read().rstrip(), "```", ""]
        lines.append(f"Mode `{settings.mode}`: a category token is allowed when its probability passes its threshold.")
    else:
        lines.append("None saved: the library's defaults apply.")
    lines += [
        "",
        "## How to use",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        f'model = AutoModelForCausalLM.from_pretrained("{name}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{name}")',
        "# per-category thresholds at generation time:",
        "from refusal_tokens import RefusalSettings, RefusalTokenLogitsProcessor, load_taxonomy",
        "```",
        "",
        "Decode with `skip_special_tokens=False` to read each answer's category token (or use "
        "`refusal_tokens.parse_generation`). Logits of this export equal the adapter model's to "
        f"{info['logits_max_abs_diff']:.1e} (float32, checked at export).",
        "",
    ]
    return "\n".join(lines)
