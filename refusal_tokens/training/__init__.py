"""Training helpers: the probe callback and drift guard, self-distillation, the token-row optimizer, W&B set-up."""

from .callbacks import RefusalRateCallback
from .distillation import distill_cache_path, generate_responses, self_distill_responses
from .optimizer import build_refusal_optimizer, refusal_optimizer_groups
from .wandb_utils import finish_wandb, prepare_wandb, reports_to_wandb

__all__ = [
    "RefusalRateCallback",
    "build_refusal_optimizer",
    "distill_cache_path",
    "finish_wandb",
    "generate_responses",
    "prepare_wandb",
    "refusal_optimizer_groups",
    "reports_to_wandb",
    "self_distill_responses",
]
