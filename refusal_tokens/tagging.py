"""Put the refusal/respond token at the start of the assistant response, in every TRL dataset format.

Supported formats (TRL's names):

- conversational language modeling: `messages` (the last assistant message is tagged);
- prompt-completion, plain (`completion` is a string) or conversational (`completion` is a message list);
- preference: `chosen` / `rejected` (with or without `prompt`), plain or conversational, each tagged with its own
  label.

The token is prepended with no separator: it is a special token, so the response text tokenises exactly as before
and the token becomes the first completion token, which completion-only and assistant-only losses train.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .taxonomy import RefusalTaxonomy, get_taxonomy

Classifier = Callable[[list[str], list[str]], Sequence[str]]
"""A callable `(prompts, responses) -> labels`, each label `"respond"` or a category name."""


class TaggingError(ValueError):
    """A row could not be tagged; the message names the row index and the field."""


def detect_format(example: dict[str, Any]) -> str:
    """Return `"messages"`, `"prompt_completion"` or `"preference"` for a row in a TRL format.

    Raises:
        `TaggingError`: if the row matches none of them.
    """
    if "chosen" in example and "rejected" in example:
        return "preference"
    if "prompt" in example and "completion" in example:
        return "prompt_completion"
    if "messages" in example:
        return "messages"
    raise TaggingError(
        f"cannot tag a row with columns {sorted(example)}: expected 'messages', 'prompt'+'completion', or "
        "'chosen'+'rejected' (TRL dataset formats)."
    )


def _is_messages(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in value)


def _prefix_text(text: Any, token: str, taxonomy: RefusalTaxonomy, where: str) -> str:
    if not isinstance(text, str):
        raise TaggingError(f"{where}: expected a string response, got {type(text).__name__}.")
    for existing in taxonomy.all_tokens:
        if text.startswith(existing):
            if existing == token:
                return text  # already tagged with the same label: tagging is idempotent
            raise TaggingError(f"{where}: already starts with {existing!r}, but the label says {token!r}.")
    return token + text


def _prefix_messages(messages: Any, token: str, taxonomy: RefusalTaxonomy, where: str) -> list[dict]:
    if not _is_messages(messages):
        raise TaggingError(f"{where}: expected a list of {{'role', 'content'}} messages, got {messages!r:.80}.")
    idx = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if idx is None:
        raise TaggingError(f"{where}: has no assistant message to tag.")
    out = [dict(m) for m in messages]
    out[idx]["content"] = _prefix_text(out[idx]["content"], token, taxonomy, f"{where}[{idx}].content")
    return out


def _prefix_response(value: Any, token: str, taxonomy: RefusalTaxonomy, where: str) -> Any:
    if isinstance(value, list):
        return _prefix_messages(value, token, taxonomy, where)
    return _prefix_text(value, token, taxonomy, where)


def _text_of(value: Any, role: str | None, where: str) -> str:
    """Plain text of a prompt or response field (the last message of `role` for message lists)."""
    if isinstance(value, str):
        return value
    if _is_messages(value):
        msgs = [m for m in value if role is None or m["role"] == role]
        if msgs and isinstance(msgs[-1]["content"], str):
            return msgs[-1]["content"]
    raise TaggingError(f"{where}: cannot read {'a ' + role + ' message' if role else 'text'} from {value!r:.80}.")


def _prompt_and_response(example: dict[str, Any], fmt: str, side: str | None, idx: int) -> tuple[str, str]:
    """(prompt text, response text) of a row; `side` is `chosen`/`rejected` for preference rows, else unused."""
    if fmt == "prompt_completion":
        side = "completion"
    if fmt == "messages":
        msgs = example["messages"]
        if not _is_messages(msgs):
            raise TaggingError(f"row {idx}: field 'messages' is not a list of {{'role', 'content'}} messages.")
        last_asst = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
        if last_asst is None:
            raise TaggingError(f"row {idx}: field 'messages' has no assistant message to tag.")
        return _text_of(msgs[:last_asst], "user", f"row {idx}: field 'messages'"), _text_of(
            msgs[last_asst]["content"], None, f"row {idx}: field 'messages'[{last_asst}].content"
        )
    prompt = example.get("prompt")
    if prompt is None:
        # Implicit-prompt preference rows: the prompt is the shared message prefix of chosen and rejected.
        prompt = [m for m in example[side] if m.get("role") != "assistant"] if _is_messages(example[side]) else ""
    return _text_of(prompt, "user", f"row {idx}: field 'prompt'") if prompt else "", _text_of(
        example[side], "assistant", f"row {idx}: field {side!r}"
    )


def tag_example(
    example: dict[str, Any],
    taxonomy: RefusalTaxonomy | str,
    label: str | None = None,
    *,
    chosen_label: str | None = None,
    rejected_label: str | None = None,
    index: int = 0,
) -> dict[str, Any]:
    """Return a copy of one row with the matching token at the start of its assistant response(s).

    Args:
        example (`dict`): A row in a TRL format.
        taxonomy (`RefusalTaxonomy` or `str`): The taxonomy (or preset name).
        label (`str`, *optional*): `"respond"` or a category name, for `messages` and prompt-completion rows.
        chosen_label (`str`, *optional*): Label of the chosen response, for preference rows.
        rejected_label (`str`, *optional*): Label of the rejected response, for preference rows.
        index (`int`, *optional*, defaults to 0): Row index used in error messages.

    Raises:
        `TaggingError`: naming the row index and the field, for unknown labels and malformed fields.

    Example:

    ```python
    >>> tag_example({"prompt": "Who lives at 12 Elm St?", "completion": "I can't share that."}, "coconot",
    ...             label="safety_concerns")
    {'prompt': 'Who lives at 12 Elm St?', 'completion': "[refuse:safety_concerns]I can't share that."}
    ```
    """
    taxonomy = get_taxonomy(taxonomy)
    fmt = detect_format(example)
    out = dict(example)

    def token(value: Any, field: str) -> str:
        if value is None:
            raise TaggingError(f"row {index}: no label for field {field!r}; give a label column or a classifier.")
        try:
            return taxonomy.token_for(value)
        except ValueError as e:
            raise TaggingError(f"row {index}: field {field!r}: {e}") from None

    if fmt == "messages":
        out["messages"] = _prefix_messages(
            example["messages"], token(label, "messages"), taxonomy, f"row {index}: field 'messages'"
        )
    elif fmt == "prompt_completion":
        out["completion"] = _prefix_response(
            example["completion"], token(label, "completion"), taxonomy, f"row {index}: field 'completion'"
        )
    else:
        for side, lab in (("chosen", chosen_label), ("rejected", rejected_label)):
            out[side] = _prefix_response(example[side], token(lab, side), taxonomy, f"row {index}: field {side!r}")
    return out


def tag_dataset(
    dataset: Any,
    taxonomy: RefusalTaxonomy | str,
    *,
    label_column: str = "refusal_label",
    chosen_label_column: str = "chosen_label",
    rejected_label_column: str = "rejected_label",
    classifier: Classifier | None = None,
    batch_size: int = 1000,
    num_proc: int | None = None,
) -> Any:
    """Tag every row of a `datasets.Dataset` (or `IterableDataset`) with its refusal/respond token.

    Labels come from a column (`"respond"` or a category name per row) or, if `classifier` is given, from
    `classifier(prompts, responses)` called once per batch. Preference rows use one label per side. The label
    columns are kept, so metrics can be computed later.

    Args:
        dataset (`datasets.Dataset` or `datasets.IterableDataset`): Rows in a TRL format.
        taxonomy (`RefusalTaxonomy` or `str`): The taxonomy (or preset name).
        label_column (`str`, *optional*, defaults to `"refusal_label"`): Label column for SFT formats.
        chosen_label_column (`str`, *optional*, defaults to `"chosen_label"`): Label column of chosen responses.
        rejected_label_column (`str`, *optional*, defaults to `"rejected_label"`): Label column of rejected ones.
        classifier (`Callable`, *optional*): Used instead of the label columns; its labels are written to them.
        batch_size (`int`, *optional*, defaults to 1000): Rows per `map` batch (and per classifier call).
        num_proc (`int`, *optional*): Processes for `Dataset.map`.

    Returns:
        The tagged dataset (same type as the input).

    Raises:
        `TaggingError`: naming the row index and field of the first bad row.

    Example:

    ```python
    >>> ds = Dataset.from_list([{"prompt": "Hi", "completion": "Hello!", "refusal_label": "respond"}])
    >>> tag_dataset(ds, "coconot")[0]["completion"]
    '[respond]Hello!'
    ```
    """
    taxonomy = get_taxonomy(taxonomy)

    def _tag_batch(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        rows = [{k: batch[k][i] for k in batch} for i in range(len(indices))]
        if not rows:
            return batch
        fmt = detect_format(rows[0])
        sides = ("chosen", "rejected") if fmt == "preference" else (None,)
        cols = {"chosen": chosen_label_column, "rejected": rejected_label_column, None: label_column}
        labels: dict[str | None, list] = {}
        for side in sides:
            col = cols[side]
            if classifier is not None:
                pairs = [_prompt_and_response(r, detect_format(r), side, idx) for r, idx in zip(rows, indices)]
                got = list(classifier([p for p, _ in pairs], [r for _, r in pairs]))
                if len(got) != len(rows):
                    raise TaggingError(f"classifier returned {len(got)} labels for a batch of {len(rows)} rows.")
                labels[side] = got
            elif col in batch:
                labels[side] = batch[col]
            else:
                raise TaggingError(
                    f"no label column {col!r} in columns {sorted(batch)}; name it with the "
                    f"{'label_column' if side is None else side + '_label_column'} argument or pass a classifier."
                )
        tagged = []
        for i, (row, idx) in enumerate(zip(rows, indices)):
            if fmt == "preference":
                tagged.append(
                    tag_example(
                        row,
                        taxonomy,
                        chosen_label=labels["chosen"][i],
                        rejected_label=labels["rejected"][i],
                        index=idx,
                    )
                )
            else:
                tagged.append(tag_example(row, taxonomy, labels[None][i], index=idx))
        out = {k: [t[k] for t in tagged] for k in tagged[0]}
        for side in sides:
            out[cols[side]] = [taxonomy.normalize_label(v) for v in labels[side]]
        return out

    kwargs: dict[str, Any] = {"batched": True, "batch_size": batch_size, "with_indices": True}
    if num_proc is not None:
        kwargs["num_proc"] = num_proc
    if hasattr(dataset, "_info") and type(dataset).__name__ == "Dataset":
        kwargs["desc"] = "Tagging refusal tokens"
    return dataset.map(_tag_batch, **kwargs)
