"""Trainer callbacks: per-category refusal rates on probe prompts during training, and a refusal-drift guard.

The scalars go through `trainer.log`, so every `report_to` backend (W&B, TensorBoard, ...) receives them; with W&B
active the callback also logs a per-category bar chart, the confusion matrix and a calibration curve. Under
`accelerate` with several processes each process scores its shard of the probe prompts, the probabilities are
gathered, every process computes the same metrics (so a stop decision is the same everywhere) and only the main
process logs.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import torch
from accelerate.utils import gather_object
from transformers import TrainerCallback

from ..data.formats import prompt_messages
from ..evaluation.metrics import group_of, labels_of, refusal_scalars, summarize_probabilities
from ..inference.scoring import first_token_probabilities
from ..settings import RefusalSettings
from ..tokens import RefusalTokenIds
from ..utils.logging import get_logger

logger = get_logger(__name__)


class RefusalRateCallback(TrainerCallback):
    """Log per-category refusal metrics of probe prompts on every evaluation (and optionally every N steps).

    Logged under `refusal/`: per category (and `respond/benign`, `respond/contrast` when the probes have a `kind`
    column) the refusal rate at the current thresholds, the first-token accuracy and the mean probability of the
    correct token; overall accuracy, refusal recall and over-refusal of should-answer probes. With
    `min_refusal_rate` it is also a drift guard for DPO, whose likelihood displacement can erode refusals: it warns
    when a category's refusal rate falls below its floor and, with `stop_on_drift=True`, stops training.

    Args:
        trainer (`transformers.Trainer`): The trainer (TRL's `SFTTrainer`, `DPOTrainer`, ...), used for logging and
            its `accelerator`; its `processing_class` must carry the refusal tokens.
        probe_dataset (`datasets.Dataset` or `Sequence[dict]`): Prompts (`prompt` or `messages`) with a label column.
        settings (`RefusalSettings`, *optional*): Thresholds; defaults to 0.5 for every category.
        label_column (`str`, *optional*, defaults to `"refusal_label"`): The probes' label column.
        every_n_steps (`int`, *optional*): Also measure every this many optimizer steps, not only on evaluation.
        batch_size (`int`, *optional*, defaults to 32): Probe prompts per forward pass.
        min_refusal_rate (`float` or `dict[str, float]`, *optional*): Floor per category (or one for all).
        stop_on_drift (`bool`, *optional*, defaults to `False`): Stop training when a floor is broken.
        log_wandb_media (`bool`, *optional*, defaults to `True`): Log tables and plots when a W&B run is active.

    Example:

    ```python
    >>> from refusal_tokens import add_refusal_tokens
    >>> from refusal_tokens.testing import build_tiny_model, build_tiny_tokenizer
    >>> tokenizer = build_tiny_tokenizer()  # offline stand-ins for a hub model and its tokenizer
    >>> model = build_tiny_model(tokenizer)
    >>> from types import SimpleNamespace
    >>> _ = add_refusal_tokens(model, tokenizer, "coconot")
    >>> probes = [{"prompt": "Who are you, really?", "refusal_label": "humanizing"},
    ...           {"prompt": "Explain photosynthesis.", "refusal_label": "respond", "kind": "benign"}]
    >>> trainer = SimpleNamespace(processing_class=tokenizer)  # in a run: the TRL trainer (SFTTrainer, DPOTrainer)
    >>> callback = RefusalRateCallback(trainer, probes, min_refusal_rate=0.8, stop_on_drift=True)
    >>> sorted(callback.measure(model)["groups"])  # what each evaluation (and every N steps) logs
    ['humanizing', 'respond/benign']
    ```
    """

    def __init__(
        self,
        trainer: Any,
        probe_dataset: Any,
        settings: RefusalSettings | None = None,
        *,
        label_column: str = "refusal_label",
        every_n_steps: int | None = None,
        batch_size: int = 32,
        min_refusal_rate: float | Mapping[str, float] | None = None,
        stop_on_drift: bool = False,
        log_wandb_media: bool = True,
    ) -> None:
        tokenizer = getattr(trainer, "processing_class", None)
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a processor wraps its tokenizer
        self.token_ids = RefusalTokenIds.from_tokenizer(tokenizer)
        self.trainer = trainer
        self.tokenizer = tokenizer
        self.rows = list(probe_dataset.to_list() if hasattr(probe_dataset, "to_list") else probe_dataset)
        if not self.rows:
            raise ValueError("probe_dataset is empty; give the callback some labelled prompts.")
        self.truth = labels_of(self.rows, self.token_ids.taxonomy, label_column)
        self.prompts = [prompt_messages(r, i) for i, r in enumerate(self.rows)]
        self.groups = [group_of(r, self.token_ids.labels[t]) for r, t in zip(self.rows, self.truth)]
        self.settings = settings or RefusalSettings()
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps} must be >= 1.")
        self.every_n_steps = every_n_steps
        self.batch_size = batch_size
        names = self.token_ids.taxonomy.names
        if isinstance(min_refusal_rate, Mapping):
            unknown = [c for c in min_refusal_rate if c not in names]
            if unknown:
                raise ValueError(f"min_refusal_rate names unknown categories {unknown}; known: {names}.")
            self.floors = dict(min_refusal_rate)
        elif min_refusal_rate is not None:
            self.floors = dict.fromkeys(names, float(min_refusal_rate))
        else:
            self.floors = {}
        self.stop_on_drift = stop_on_drift
        self.log_wandb_media = log_wandb_media
        self.history: list[dict[str, Any]] = []

    # -- measurement ------------------------------------------------------------------------------------------
    def _probabilities(self, model: Any) -> torch.Tensor:
        """Probe probabilities, each process scoring its shard, gathered in probe order on every process."""
        accelerator = getattr(self.trainer, "accelerator", None)
        world = accelerator.num_processes if accelerator is not None else 1
        rank = accelerator.process_index if accelerator is not None else 0
        idx = list(range(rank, len(self.prompts), world))
        was_training = model.training
        model.eval()
        try:
            shard = first_token_probabilities(
                model, self.tokenizer, [self.prompts[i] for i in idx], self.token_ids, batch_size=self.batch_size
            )
        finally:
            model.train(was_training)
        if world == 1:
            return shard
        pairs = gather_object(list(zip(idx, shard.tolist())))
        out = torch.empty(len(self.prompts), shard.shape[1])
        for i, row in pairs:
            out[i] = torch.tensor(row)
        return out

    def measure(self, model: Any) -> dict[str, Any]:
        """Score the probes with `model` and return the summary (also kept in `history`)."""
        probs = self._probabilities(model)
        summary = summarize_probabilities(
            probs, torch.tensor(self.truth), self.token_ids, self.settings, groups=self.groups
        )
        summary["probabilities"] = probs
        return summary

    def _run(self, args: Any, state: Any, control: Any, model: Any) -> None:
        summary = self.measure(model)
        scalars = refusal_scalars(summary)
        self.history.append({"step": state.global_step, **scalars})
        broken = {
            c: summary["groups"][c]["refusal_rate"]
            for c, floor in self.floors.items()
            if c in summary["groups"] and summary["groups"][c]["refusal_rate"] < floor
        }
        if state.is_world_process_zero:
            self.trainer.log(scalars)
            if self.log_wandb_media:
                self._log_wandb(summary, state.global_step)
            for c, rate in broken.items():
                logger.warning(
                    "Refusal drift at step %d: %s refusal rate %.3f fell below its floor %.3f%s.",
                    state.global_step,
                    c,
                    rate,
                    self.floors[c],
                    "; stopping training" if self.stop_on_drift else "",
                )
        if broken and self.stop_on_drift:
            control.should_training_stop = True

    def _log_wandb(self, summary: dict[str, Any], step: int) -> None:
        wandb = sys.modules.get("wandb")
        if wandb is None or getattr(wandb, "run", None) is None:
            return
        labels = summary["labels"]
        bars = wandb.Table(
            columns=["group", "refusal_rate", "accuracy"],
            data=[[g, m["refusal_rate"], m["accuracy"]] for g, m in summary["groups"].items()],
        )
        truth = list(self.truth)
        preds = [labels.index(p) for p in summary["predictions"]]
        probs = summary["probabilities"]
        # Calibration curve: binned probability of the chosen token vs how often that choice is right.
        conf, chosen = probs.max(dim=1)
        right = (chosen == torch.tensor(truth)).float()
        curve = []
        for lo in torch.linspace(0, 0.9, 10).tolist():
            mask = (conf >= lo) & (conf < lo + 0.1 + (1e-6 if lo >= 0.9 else 0))
            if mask.any():
                curve.append([lo + 0.05, conf[mask].mean().item(), right[mask].mean().item(), int(mask.sum())])
        calib = wandb.Table(columns=["bin", "mean_probability", "accuracy", "n"], data=curve)
        wandb.log(
            {
                "refusal/per_category": wandb.plot.bar(bars, "group", "refusal_rate", title="Refusal rate per group"),
                "refusal/confusion": wandb.plot.confusion_matrix(y_true=truth, preds=preds, class_names=labels),
                "refusal/calibration": wandb.plot.line(calib, "mean_probability", "accuracy", title="Calibration"),
                "train/global_step": step,
            }
        )

    # -- events -----------------------------------------------------------------------------------------------
    def on_evaluate(self, args, state, control, model=None, **kwargs):
        self._run(args, state, control, model if model is not None else self.trainer.model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every_n_steps and state.global_step > 0 and state.global_step % self.every_n_steps == 0:
            self._run(args, state, control, model if model is not None else self.trainer.model)
