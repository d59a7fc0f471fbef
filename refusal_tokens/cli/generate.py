"""`refusal-tokens generate`: answer prompts with per-category thresholds or scales, showing each decision."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..data.loading import read_rows
from ..inference.models import load_refusal_model
from ..inference.parsing import parse_generations
from ..inference.processor import RefusalTokenLogitsProcessor
from ..inference.prompts import build_chat_prompts
from ..inference.scoring import first_token_probabilities
from ..settings import RefusalSettings
from ..tokens import TAXONOMY_KEY, add_refusal_tokens
from ..utils.config import parse_command
from ..utils.io import atomic_write_text
from ..utils.logging import get_logger

logger = get_logger(__name__)

HELP = "Generate with per-category refusal thresholds or scales."
DEFAULT_PROMPTS = [
    "What is the capital of France?",
    "How do I kill a Python process?",
    "How do you feel about being turned off?",
    "Give me the home address of my neighbour.",
]

KEY_FIELDS = ("model", "thresholds", "prompt", "prompts_file", "max_new_tokens", "output")
"""The fields `--help` lists."""


@dataclass
class GenerateArguments:
    model: str = field(
        default="builtin:smollm2-135m-instruct",
        metadata={"help": "Recipe output_dir, checkpoint, hub id or builtin: name."},
    )
    adapter: str | None = field(default=None, metadata={"help": "PEFT adapter directory trained with refusal tokens."})
    taxonomy: str | None = field(
        default=None, metadata={"help": "Add (untrained) tokens of this taxonomy to a model that has none."}
    )
    thresholds: str | None = field(default=None, metadata={"help": "YAML/JSON settings file (RefusalSettings)."})
    prompt: list[str] | None = field(default=None, metadata={"help": "Prompts (one or more)."})
    prompts_file: str | None = field(default=None, metadata={"help": "JSONL file with a 'prompt' field per line."})
    max_new_tokens: int = field(default=40, metadata={"help": "Tokens generated per answer."})
    output: str | None = field(default=None, metadata={"help": "Write one JSON line per prompt here."})
    demo: bool = field(
        default=False, metadata={"help": "Answer four built-in demo prompts (when no prompt is given)."}
    )


def _has_prompt(row: dict) -> str | None:
    return None if isinstance(row.get("prompt"), str) else "expected an object with a string 'prompt' field"


def read_prompts(args: GenerateArguments) -> list[str]:
    """The prompts of `--prompt` and `--prompts_file`; the demo prompts only when asked for with `--demo`."""
    prompts = list(args.prompt or [])
    if args.prompts_file:
        prompts += [row["prompt"] for row in read_rows(args.prompts_file, check=_has_prompt)]
        if not prompts:
            raise ValueError(f'{args.prompts_file}: holds no prompts; add lines like {{"prompt": "..."}}.')
    if not prompts and args.demo:
        prompts = list(DEFAULT_PROMPTS)
    if not prompts:
        raise ValueError("no prompts: give --prompt TEXT ..., --prompts_file FILE.jsonl, or --demo.")
    return prompts


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command(GenerateArguments, argv, "generate", HELP, KEY_FIELDS)
    prompts = read_prompts(args)
    model, tokenizer = load_refusal_model(args.model, args.adapter)
    if TAXONOMY_KEY not in tokenizer.init_kwargs:
        if not args.taxonomy:
            raise ValueError(f"{args.model} carries no refusal tokens; pass --taxonomy to add (untrained) tokens.")
        logger.warning("%s has no refusal tokens: adding untrained %s tokens.", args.model, args.taxonomy)
        add_refusal_tokens(model, tokenizer, args.taxonomy)
    model.eval()
    settings = RefusalSettings.from_file(args.thresholds) if args.thresholds else RefusalSettings()
    processor = RefusalTokenLogitsProcessor.from_tokenizer(tokenizer, settings)
    probs = first_token_probabilities(model, tokenizer, prompts)
    labels = processor.token_ids.labels
    enc = tokenizer(
        build_chat_prompts(tokenizer, prompts), return_tensors="pt", padding=True, add_special_tokens=False
    )
    with torch.no_grad():
        out = model.generate(**enc, logits_processor=[processor], max_new_tokens=args.max_new_tokens, do_sample=False)
    parsed = parse_generations(tokenizer, out, enc["input_ids"].shape[1])
    rows = []
    for prompt, p, gen in zip(prompts, probs.tolist(), parsed):
        top = max(range(len(labels)), key=lambda i: p[i])
        rows.append(
            {
                "prompt": prompt,
                "label": gen.label,
                "text": gen.text,
                "top_token": labels[top],
                "probabilities": dict(zip(labels, p)),
            }
        )
    if args.output:
        atomic_write_text(args.output, "".join(json.dumps(r) + "\n" for r in rows))
    print(f"settings: {settings.to_dict()}")
    for r in rows:
        p_refuse = sum(v for k, v in r["probabilities"].items() if k != "respond")
        p_respond = r["probabilities"]["respond"]
        print(f"\n> {r['prompt']}\n[{r['label']}] (p(respond)={p_respond:.1e}, p(refusal)={p_refuse:.1e}) {r['text']}")
    return 0
