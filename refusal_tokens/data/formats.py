"""One reader of rows in TRL's dataset formats: which format a row is in, its prompt, its response(s), its labels.

Every part of the library that needs "the prompt" or "the response" of a row (tagging, mixing, evaluation, the probe
callback, self-distillation, the classifiers' training pairs) reads it here, so they agree on multi-turn rows:

- the *conversation* before the response (`prompt_messages`) is what the model sees before its first assistant token:
  a string prompt, a message list, or a `messages` row cut before its last assistant turn;
- the *request* (`request_text`) is the last user turn of that conversation: what the response answers, and what a
  classifier reads beside the response.

Supported formats (TRL's names): conversational language modeling (`messages`), prompt-completion (plain or
conversational) and preference (`chosen`/`rejected`, with or without `prompt`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FORMATS = ("messages", "prompt_completion", "preference")
Prompt = str | list[dict[str, str]]


class TaggingError(ValueError):
    """A row could not be read or tagged; the message names the row and the field."""


@dataclass(frozen=True)
class LabelColumns:
    """The label columns of a dataset: one for SFT formats, one per side for preference rows.

    Args:
        label (`str`, *optional*, defaults to `"refusal_label"`): `respond` or a category per row (SFT formats).
        chosen (`str`, *optional*, defaults to `"chosen_label"`): Label of each chosen response (preference rows).
        rejected (`str`, *optional*, defaults to `"rejected_label"`): Label of each rejected response.
    """

    label: str = "refusal_label"
    chosen: str = "chosen_label"
    rejected: str = "rejected_label"

    def for_side(self, side: str | None) -> str:
        """The column of `side` (`"chosen"`, `"rejected"`, or `None` for SFT rows)."""
        return {None: self.label, "chosen": self.chosen, "rejected": self.rejected}[side]

    @staticmethod
    def sides(fmt: str) -> tuple[str | None, ...]:
        """The labelled sides of a row format: `("chosen", "rejected")` for preference rows, else `(None,)`."""
        return ("chosen", "rejected") if fmt == "preference" else (None,)

    def argument_name(self, side: str | None) -> str:
        """The argument that sets the column of `side`, for error messages."""
        return "label_column" if side is None else f"{side}_label_column"


def detect_format(example: dict[str, Any]) -> str:
    """Return `"messages"`, `"prompt_completion"` or `"preference"` for a row in a TRL format.

    Raises:
        `TaggingError`: if the row matches none of them.

    Example:

    ```python
    >>> detect_format({"prompt": "Hi", "completion": "Hello!"})
    'prompt_completion'
    ```
    """
    if "chosen" in example and "rejected" in example:
        return "preference"
    if "prompt" in example and "completion" in example:
        return "prompt_completion"
    if "messages" in example:
        return "messages"
    raise TaggingError(
        f"cannot read a row with columns {sorted(example)}: expected 'messages', 'prompt'+'completion', or "
        "'chosen'+'rejected' (TRL dataset formats)."
    )


def is_messages(value: Any) -> bool:
    """Whether `value` is a list of `{"role", "content"}` messages."""
    return isinstance(value, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in value)


def last_assistant_index(messages: list[dict[str, Any]]) -> int | None:
    """Index of the last assistant message, or `None`."""
    return max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)


def _messages_field(example: dict[str, Any], index: int) -> tuple[list[dict[str, Any]], int]:
    msgs = example["messages"]
    if not is_messages(msgs):
        raise TaggingError(f"row {index}: field 'messages' is not a list of {{'role', 'content'}} messages.")
    last = last_assistant_index(msgs)
    if last is None:
        raise TaggingError(f"row {index}: field 'messages' has no assistant message.")
    return msgs, last


def prompt_messages(example: dict[str, Any], index: int = 0) -> Prompt:
    """The conversation before the response: what the model reads before its first assistant token.

    A `prompt` field as it is (string or messages); for a `messages` row, the messages before the last assistant turn.
    Preference rows without a `prompt` use the shared non-assistant prefix of `chosen`.

    Raises:
        `TaggingError`: naming the row if it holds no prompt.
    """
    if "prompt" in example and example["prompt"] is not None:
        return example["prompt"]
    if "messages" in example:
        msgs, last = _messages_field(example, index)
        return msgs[:last]
    if "chosen" in example and is_messages(example["chosen"]):
        return [m for m in example["chosen"] if m.get("role") != "assistant"]
    raise TaggingError(f"row {index}: no 'prompt' or 'messages' field to read; columns are {sorted(example)}.")


def text_of(value: Any, role: str | None, where: str) -> str:
    """Plain text of a prompt or response field: a string, or the last message of `role` of a message list."""
    if isinstance(value, str):
        return value
    if is_messages(value):
        msgs = [m for m in value if role is None or m["role"] == role]
        if msgs and isinstance(msgs[-1]["content"], str):
            return msgs[-1]["content"]
    raise TaggingError(f"{where}: cannot read {'a ' + role + ' message' if role else 'text'} from {value!r:.80}.")


def request_text(prompt: Prompt, where: str = "prompt") -> str:
    """The request a response answers: a string prompt, or the last user turn of a conversation."""
    return text_of(prompt, "user", where)


def prompt_and_response(example: dict[str, Any], side: str | None = None, index: int = 0) -> tuple[str, str]:
    """`(request text, response text)` of a row; `side` is `"chosen"`/`"rejected"` for preference rows.

    Besides TRL's formats, a row with `prompt` and `response` columns (the shape of judged-answer sets such as
    JailbreakBench's) is read as a prompt and its answer, for classifying and auditing.

    Raises:
        `TaggingError`: naming the row and field that cannot be read.
    """
    if "response" in example and "prompt" in example and not {"completion", "messages", "chosen"} & set(example):
        prompt_text = request_text(prompt_messages(example, index), f"row {index}: field 'prompt'")
        return prompt_text, text_of(example["response"], "assistant", f"row {index}: field 'response'")
    fmt = detect_format(example)
    if fmt == "messages":
        msgs, last = _messages_field(example, index)
        prompt = request_text(msgs[:last], f"row {index}: field 'messages'") if last else ""
        return prompt, text_of(msgs[last]["content"], None, f"row {index}: field 'messages'[{last}].content")
    field = "completion" if fmt == "prompt_completion" else side
    if field not in ("completion", "chosen", "rejected"):
        raise TaggingError(f"row {index}: a preference row has two responses; pass side='chosen' or 'rejected'.")
    prompt = prompt_messages(example, index) if "prompt" in example or is_messages(example[field]) else ""
    prompt_text = request_text(prompt, f"row {index}: field 'prompt'") if prompt else ""
    return prompt_text, text_of(example[field], "assistant", f"row {index}: field {field!r}")
