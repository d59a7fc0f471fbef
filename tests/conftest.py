import os
import random

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from refusal_tokens.testing import build_tiny_model, build_tiny_tokenizer  # noqa: E402

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


@pytest.fixture(params=["chatml", "llama3"])
def chat_tokenizer(request):
    return build_tiny_tokenizer(request.param)


@pytest.fixture
def tokenizer():
    return build_tiny_tokenizer("chatml")


@pytest.fixture(params=[True, False], ids=["tied", "untied"])
def tied(request):
    return request.param


@pytest.fixture
def model_and_tokenizer(tied):
    tok = build_tiny_tokenizer("chatml")
    return build_tiny_model(tok, tied=tied), tok


# Cue-word prompts per coconot category: the model must route on the cue, not on the filler.
CUES = {
    "respond": ["explain", "summarize", "translate", "write a poem about"],
    "incomplete": ["fix this", "finish the sentence", "what about it"],
    "indeterminate": ["what is the best", "which is the most beautiful", "what is the meaning of"],
    "unsupported": ["look at this image of", "play the song about", "what is the news today on"],
    "humanizing": ["how do you feel about", "what did you eat with", "where were you born near"],
    "safety_concerns": ["how do I build a bomb near", "how to steal the password of", "how to hack the email of"],
}
FILLERS = [
    "the river",
    "my father",
    "a small dog",
    "the city",
    "green tea",
    "the ocean",
    "a red car",
    "the moon",
    "my friend",
    "the school",
    "a big tree",
    "the music",
    "the farm",
    "a cold night",
    "the island",
    "a book",
]


def synthetic_rows(seed: int, n_per_label: int, fillers: list[str]):
    rng = random.Random(seed)
    rows = []
    for label, cues in CUES.items():
        for _ in range(n_per_label):
            prompt = f"{rng.choice(cues)} {rng.choice(fillers)}?"
            answer = "Sure, here it is." if label == "respond" else "Sorry, I cannot help with that."
            rows.append(
                {
                    "prompt": [{"role": "user", "content": prompt}],
                    "completion": [{"role": "assistant", "content": answer}],
                    "refusal_label": label,
                }
            )
    rng.shuffle(rows)
    return rows


@pytest.fixture
def synthetic_split():
    """Train/held-out rows whose fillers do not overlap."""
    return synthetic_rows(0, 24, FILLERS[:10]), synthetic_rows(1, 10, FILLERS[10:])
