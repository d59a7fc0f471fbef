"""The data of the built-in synthetic refusal corpus, read from the JSON files shipped beside this module.

Written for this project. Each *source* (`sources/<name>.json`) is one fine-grained kind of refusal (the categories
of "Cannot or Should Not?" plus `subjective`, which CoCoNot files under indeterminate) and holds everything about
it in one place: refusal templates with one `{x}` slot and their fillers, several refusal wordings, *contrast*
templates and fillers (prompts that share the surface words of the refusal prompts but are fine to answer: "How do
I kill a Python process?"), and the cue words the keyword classifier looks for. `benign.json` holds general requests
with no refusal look-alike, `phrases.json` the compliance and refusal phrases shared by the corpus, the preference
pairs and the classifier's training pairs, and `presets.json` which sources make up each category of the built-in
taxonomies.

Templates are the unit of the train/validation/test split, so each list holds at least three.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES_DIR = os.path.join(_HERE, "sources")
_SOURCE_KEYS = ("name", "templates", "fillers", "refusals", "contrast_templates", "contrast_fillers", "cues")


@dataclass(frozen=True)
class Source:
    """One fine-grained kind of refusal and its contrast prompts.

    Args:
        name (`str`): The source's name (its file name without `.json`).
        templates (`tuple[str, ...]`): Refusal-worthy prompt templates with one `{x}` slot.
        fillers (`tuple[str, ...]`): Values for the slot of `templates`.
        refusals (`tuple[str, ...]`): Refusal wordings for this kind of request.
        contrast_templates (`tuple[str, ...]`): Look-alike templates that should be answered.
        contrast_fillers (`tuple[str, ...]`): Values for the slot of `contrast_templates`.
        cues (`tuple[str, ...]`): Lower-case substrings of prompts and refusals of this kind, for the keyword
            classifier.
    """

    name: str
    templates: tuple[str, ...]
    fillers: tuple[str, ...]
    refusals: tuple[str, ...]
    contrast_templates: tuple[str, ...]
    contrast_fillers: tuple[str, ...]
    cues: tuple[str, ...]


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _load_source(path: str) -> Source:
    data = _read_json(path)
    if not isinstance(data, dict) or set(data) != set(_SOURCE_KEYS):
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: a source file needs exactly the keys {list(_SOURCE_KEYS)}; got {got}.")
    for key in _SOURCE_KEYS[1:]:
        if not isinstance(data[key], list) or not all(isinstance(v, str) for v in data[key]):
            raise ValueError(f"{path}: field {key!r} must be a list of strings.")
    return Source(data["name"], *(tuple(data[k]) for k in _SOURCE_KEYS[1:]))


def _load_sources() -> dict[str, Source]:
    out = {}
    for file in sorted(os.listdir(SOURCES_DIR)):
        if file.endswith(".json"):
            source = _load_source(os.path.join(SOURCES_DIR, file))
            if source.name != file[: -len(".json")]:
                raise ValueError(f"{SOURCES_DIR}/{file}: its name field is {source.name!r}; name the file after it.")
            out[source.name] = source
    return out


SOURCES: dict[str, Source] = _load_sources()

_BENIGN = _read_json(os.path.join(_HERE, "benign.json"))
BENIGN_TEMPLATES: tuple[str, ...] = tuple(_BENIGN["templates"])
BENIGN_FILLERS: tuple[str, ...] = tuple(_BENIGN["fillers"])

_PHRASES = _read_json(os.path.join(_HERE, "phrases.json"))
COMPLIANCE_ANSWERS: tuple[str, ...] = tuple(_PHRASES["compliance_answers"])
"""Short compliant answers: the fast `responses="template"` answers of benign and contrast prompts, and the rejected
compliance of synthetic preference pairs."""
COMPLIANCE_OPENERS: tuple[str, ...] = tuple(_PHRASES["compliance_openers"])
REFUSAL_OPENERS: tuple[str, ...] = tuple(_PHRASES["refusal_openers"])
REFUSAL_CLOSERS: tuple[str, ...] = tuple(_PHRASES["refusal_closers"])
PARTIAL_REFUSAL_TAILS: tuple[str, ...] = tuple(_PHRASES["partial_refusal_tails"])

PRESET_SOURCES: dict[str, dict[str, tuple[str, ...]]] = {
    preset: {category: tuple(sources) for category, sources in mapping.items()}
    for preset, mapping in _read_json(os.path.join(_HERE, "presets.json")).items()
}
"""Which sources make up each category of the built-in presets. A custom taxonomy whose category names are source
names maps automatically; other custom taxonomies pass `category_sources`."""

_unknown = sorted({s for m in PRESET_SOURCES.values() for srcs in m.values() for s in srcs} - set(SOURCES))
if _unknown:
    raise ValueError(f"{_HERE}/presets.json names sources without a file in {SOURCES_DIR}: {_unknown}.")
