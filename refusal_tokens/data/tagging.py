"""Put the refusal/respond token at the start of the assistant response, in every TRL dataset format.

Supported formats (TRL's names):

- conversational language modeling: `messages` (the last assistant message is tagged);
- prompt-completion, plain (`completion` is a string) or conversational (`completion` is a message list);
- preference: `chosen` / `rejected` (with or without `prompt`), plain or conversational, each tagged with its own
  label.

The token is prepended with no separator: it is a special token, so the response text tokenises exactly as before
and the token becomes the first completion token, which completion-only and assistant-only losses train.

Token text inside the rows (a user turn that says `[respond]`, a response quoting `[refuse:privacy]`) is escaped
(`RefusalTaxonomy.escape`): only the tag itself is ever the special token. Conversations (`messages`) are tagged on
their last assistant turn, the one the label describes; earlier assistant turns are left as they are (TRL still
trains on them unless the loss is restricted to the completion: split a multi-turn set into prompt-completion rows,
one per answer, to label and train each answer with its token).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..taxonomy import RefusalTaxonomy, get_taxonomy
from .formats import LabelColumns, TaggingError, detect_format, is_messages, last_assistant_index, prompt_and_response

Classifier = Callable[[list[str], list[str]], Sequence[str]]
"""A callable `(prompts, responses) -> labels`, each label `"respond"` or a category name."""


def _prefix_text(text: Any, token: str, taxonomy: RefusalTaxonomy, where: str) -> str:
    if not isinstance(text, str):
        raise TaggingError(f"{where}: expected a string response, got {type(text).__name__}.")
    if not text.strip():
        raise TaggingError(f"{where}: the response is empty; drop such rows or give them an answer.")
    for existing in taxonomy.all_tokens:
        if text.startswith(existing):
            if existing == token:  # already tagged with the same label: tagging is idempotent
                return token + taxonomy.escape(text[len(token) :])
            raise TaggingError(f"{where}: already starts with {existing!r}, but the label says {token!r}.")
    return token + taxonomy.escape(text)


def _prefix_messages(messages: Any, token: str, taxonomy: RefusalTaxonomy, where: str) -> list[dict]:
    if not is_messages(messages):
        raise TaggingError(f"{where}: expected a list of {{'role', 'content'}} messages, got {messages!r:.80}.")
    idx = last_assistant_index(messages)
    if idx is None:
        raise TaggingError(f"{where}: has no assistant message to tag.")
    out = [dict(m) for m in messages]
    out[idx]["content"] = _prefix_text(out[idx]["content"], token, taxonomy, f"{where}[{idx}].content")
    return out


def _prefix_response(value: Any, token: str, taxonomy: RefusalTaxonomy, where: str) -> Any:
    if isinstance(value, list):
        return _prefix_messages(value, token, taxonomy, where)
    return _prefix_text(value, token, taxonomy, where)


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

    if "prompt" in out:
        out["prompt"] = taxonomy.escape_turns(out["prompt"])
    if fmt == "messages":
        out["messages"] = _prefix_messages(
            taxonomy.escape_turns(example["messages"]),
            token(label, "messages"),
            taxonomy,
            f"row {index}: field 'messages'",
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
    label_columns: LabelColumns | str | None = None,
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
        label_columns (`LabelColumns` or `str`, *optional*): The label columns (`refusal_label`, and `chosen_label` /
            `rejected_label` for preference rows, by default); a string names the SFT label column.
        classifier (`Callable`, *optional*): Used instead of the label columns; its labels are written to them.
        batch_size (`int`, *optional*, defaults to 1000): Rows per `map` batch (and per classifier call).
        num_proc (`int`, *optional*): Processes for `Dataset.map`.

    Returns:
        The tagged dataset (same type as the input).

    Raises:
        `TaggingError`: naming the row index and field of the first bad row.

    Example:

    ```python
    >>> from datasets import Dataset
    >>> ds = Dataset.from_list([{"prompt": "Hi", "completion": "Hello!", "refusal_label": "respond"}])
    >>> tag_dataset(ds, "coconot")[0]["completion"]
    '[respond]Hello!'
    ```
    """
    taxonomy = get_taxonomy(taxonomy)
    columns = as_label_columns(label_columns)

    def _tag_batch(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        rows = [{k: batch[k][i] for k in batch} for i in range(len(indices))]
        if not rows:
            return batch
        fmt = detect_format(rows[0])
        sides = LabelColumns.sides(fmt)
        labels: dict[str | None, list] = {}
        for side in sides:
            col = columns.for_side(side)
            if classifier is not None:
                pairs = [prompt_and_response(r, side, idx) for r, idx in zip(rows, indices)]
                got = list(classifier([p for p, _ in pairs], [r for _, r in pairs]))
                if len(got) != len(rows):
                    raise TaggingError(f"classifier returned {len(got)} labels for a batch of {len(rows)} rows.")
                labels[side] = got
            elif col in batch:
                labels[side] = batch[col]
            else:
                raise TaggingError(
                    f"no label column {col!r} in columns {sorted(batch)}; name it with "
                    f"LabelColumns({columns.argument_name(side).replace('_column', '')}=...) or pass a classifier."
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
            out[columns.for_side(side)] = [taxonomy.normalize_label(v) for v in labels[side]]
        return out

    kwargs: dict[str, Any] = {"batched": True, "batch_size": batch_size, "with_indices": True}
    if num_proc is not None:
        kwargs["num_proc"] = num_proc
    if hasattr(dataset, "_info") and type(dataset).__name__ == "Dataset":
        kwargs["desc"] = "Tagging refusal tokens"
    return dataset.map(_tag_batch, **kwargs)


def as_label_columns(label_columns: LabelColumns | str | None) -> LabelColumns:
    """`label_columns` as a `LabelColumns`: the defaults for `None`, the SFT label column for a string."""
    if label_columns is None:
        return LabelColumns()
    if isinstance(label_columns, str):
        return LabelColumns(label=label_columns)
    if not isinstance(label_columns, LabelColumns):
        raise TypeError(f"label_columns must be a LabelColumns or a column name, got {type(label_columns).__name__}.")
    return label_columns
