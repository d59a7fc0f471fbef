"""Data: one reader of TRL dataset formats, loading, tagging rows with their token, auditing and mixing datasets,
and the built-in synthetic corpus."""

from .formats import LabelColumns, TaggingError, detect_format, prompt_and_response, prompt_messages, request_text
from .loading import load_dataset_splits, load_split
from .mixing import CompositionReport, audit_dataset, classify_dataset, mix_datasets, mix_streams
from .tagging import tag_dataset, tag_example

__all__ = [
    "CompositionReport",
    "LabelColumns",
    "TaggingError",
    "audit_dataset",
    "classify_dataset",
    "detect_format",
    "load_dataset_splits",
    "load_split",
    "mix_datasets",
    "mix_streams",
    "prompt_and_response",
    "prompt_messages",
    "request_text",
    "tag_dataset",
    "tag_example",
]
