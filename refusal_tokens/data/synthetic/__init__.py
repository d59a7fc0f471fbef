"""The built-in synthetic refusal corpus: generator code here, the templates as JSON files in `sources/`."""

from .classifier_pairs import synthetic_classifier_pairs
from .corpus import SyntheticCorpusConfig, build_synthetic_corpus, category_sources, refusal_wordings
from .preferences import build_synthetic_preferences
from .sources import PRESET_SOURCES, SOURCES, Source

__all__ = [
    "PRESET_SOURCES",
    "SOURCES",
    "Source",
    "SyntheticCorpusConfig",
    "build_synthetic_corpus",
    "build_synthetic_preferences",
    "category_sources",
    "refusal_wordings",
    "synthetic_classifier_pairs",
]
