"""Self-distillation: the base model's own greedy answers as training responses for prompts it should answer.

Training `[respond]` + the model's own answer teaches the token without teaching new answers, so the tuned model keeps
answering benign prompts as before. Answers are generated once in batches and cached in a JSONL file keyed by model
and generation settings, so a second run (or another process) reads them back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from ..data.formats import prompt_messages, request_text
from ..inference.prompts import build_chat_prompts
from ..inference.scoring import greedy_new_token_ids
from ..utils.logging import get_logger

logger = get_logger(__name__)

_CACHE_VERSION = 2
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)|\n")


def _trim_to_sentence(text: str) -> str:
    """Cut an answer that hit the token limit after its last complete sentence, so no row teaches a cut-off ending."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    if ends and ends[-1] >= len(text) // 3:
        return text[: ends[-1]].strip()
    return text.strip()


def distill_cache_path(model: Any, max_new_tokens: int, cache_dir: str) -> str:
    """The cache file for answers of `model` (by its `name_or_path` and config) at `max_new_tokens`."""
    config = model.config.to_json_string(use_diff=True) if hasattr(model.config, "to_json_string") else ""
    name = getattr(model.config, "_name_or_path", "") or getattr(model, "name_or_path", "")
    # The format version changes whenever answer post-processing does, so stale answers are never reused.
    key = hashlib.sha256(f"{_CACHE_VERSION}\n{name}\n{config}\n{max_new_tokens}".encode()).hexdigest()[:16]
    return os.path.join(cache_dir, f"answers-{key}.jsonl")


def _read_cache(path: str | None) -> dict[str, str]:
    """Answers cached in `path`; unreadable lines (a run killed while appending) are skipped and regenerated."""
    cached: dict[str, str] = {}
    if path and os.path.isfile(path):
        bad = 0
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    cached[row["prompt"]] = row["answer"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    bad += 1
        if bad:
            logger.warning(
                "%s: skipped %d unreadable line(s) of the answer cache; they are generated again.", path, bad
            )
    return cached


def _ends_with_newline(path: str) -> bool:
    """Whether `path` is missing, empty or ends with a newline (appending to it starts a new line)."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return True
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


@torch.no_grad()
def generate_responses(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 48,
    batch_size: int = 32,
    cache_file: str | None = None,
    show_progress: bool = True,
) -> list[str]:
    """Greedy answers of `model` to `prompts` (chat template applied), trimmed to whole sentences, with a cache.

    Args:
        model (`PreTrainedModel`): The model whose answers are wanted, before any refusal-token training.
        tokenizer: Its tokenizer.
        prompts (`Sequence[str]`): User prompts.
        max_new_tokens (`int`, *optional*, defaults to 48): Answer length limit.
        batch_size (`int`, *optional*, defaults to 32): Prompts per `generate()` call.
        cache_file (`str`, *optional*): JSONL cache; prompts found there are not generated again, new answers are
            appended.
        show_progress (`bool`, *optional*, defaults to `True`): Show a progress bar.

    Returns:
        `list[str]`, one answer per prompt.
    """
    cached = _read_cache(cache_file)
    todo = sorted({p for p in prompts if p not in cached}, key=len)  # similar lengths batch with less padding
    if todo:
        was_training = model.training
        model.eval()
        try:
            bar = tqdm(total=len(todo), desc="Self-distilling answers", disable=not show_progress, unit="prompt")
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                ids = greedy_new_token_ids(
                    model, tokenizer, build_chat_prompts(tokenizer, chunk), max_new_tokens, batch_size
                )
                answers = [_trim_to_sentence(t) for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
                for p, a in zip(chunk, answers):
                    cached[p] = a
                if cache_file:
                    os.makedirs(os.path.dirname(os.path.abspath(cache_file)), exist_ok=True)
                    cut = not _ends_with_newline(cache_file)
                    with open(cache_file, "a", encoding="utf-8") as f:
                        if cut:
                            f.write("\n")  # a line cut by a killed run stays on its own line
                        for p, a in zip(chunk, answers):
                            f.write(json.dumps({"prompt": p, "answer": a}) + "\n")
                bar.update(len(chunk))
            bar.close()
        finally:
            model.train(was_training)
    return [cached[p] for p in prompts]


def self_distill_responses(
    rows: list[dict[str, Any]],
    model: Any,
    tokenizer: Any,
    label_column: str = "refusal_label",
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Replace the completion of every `respond` row (conversational prompt-completion) with the model's answer.

    Rows whose `answer` column says `dataset` keep their own answer. Rows whose answer comes back empty keep their
    template answer, and are counted in the returned rows' `answer` column (`"model"` or `"template"`), so nothing
    changes silently.

    Args:
        rows (`list[dict]`): Rows of `build_synthetic_corpus` or `load_refusal_datasets` (or any conversational
            prompt-completion rows with a label column).
        model, tokenizer: The base model and tokenizer.
        label_column (`str`, *optional*, defaults to `"refusal_label"`): The label column.
        **kwargs: Passed to `generate_responses` (`max_new_tokens`, `batch_size`, `cache_file`, ...).
    """
    idx = [i for i, r in enumerate(rows) if r[label_column] == "respond" and r.get("answer") != "dataset"]
    prompts = [request_text(prompt_messages(rows[i], i)) for i in idx]
    answers = generate_responses(model, tokenizer, prompts, **kwargs)
    out = [dict(r, answer=r.get("answer", "template")) for r in rows]
    for i, a in zip(idx, answers):
        if a:
            out[i]["completion"] = [{"role": "assistant", "content": a}]
            out[i]["answer"] = "model"
    return out
