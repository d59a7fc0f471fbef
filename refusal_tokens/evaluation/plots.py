"""Plots of a calibration: refusal rate against each category's threshold, and each category's ROC curve.

matplotlib is an optional dependency (`pip install refusal-tokens[plots]`); it is imported when a plot is drawn.
"""

from __future__ import annotations

import math
import os

import torch

from ..settings import RefusalSettings
from ..taxonomy import RefusalTaxonomy
from .metrics import refusal_rates, roc_curve


def save_calibration_plots(
    probs: torch.Tensor,
    truth: torch.Tensor,
    taxonomy: RefusalTaxonomy,
    settings: RefusalSettings,
    output_dir: str | os.PathLike,
) -> dict[str, str]:
    """Write `refusal_rate_vs_threshold.png` and `roc.png` (one curve per category) to `output_dir`.

    The refusal-rate curves sweep one category's threshold with the others at `settings`: its own prompts' refusal
    rate and the over-refusal of respond prompts. The ROC curves score each category's prompts against respond
    prompts by that category's token probability. Needs matplotlib (`pip install refusal-tokens[plots]`).

    Returns:
        `dict` mapping plot name to file path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probs, truth = probs.float().cpu(), truth.long().cpu()
    os.makedirs(output_dir, exist_ok=True)
    values = dict(zip(taxonomy.names, settings.resolve(taxonomy)))
    grid = torch.linspace(0, 1, 51).tolist()
    n = len(taxonomy)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for k, c in enumerate(taxonomy.names):
        ax = axes[k // cols][k % cols]
        own, over = [], []
        for t in grid:
            r = refusal_rates(probs, truth, RefusalSettings(categories={**values, c: t}, rule=settings.rule), taxonomy)
            own.append(r[c])
            over.append(r["over_refusal"])
        ax.plot(grid, own, label="its own prompts refused")
        ax.plot(grid, over, label="respond prompts refused", linestyle="--")
        ax.axvline(values[c], color="grey", linewidth=0.8)
        ax.set_title(c, fontsize=9)
        ax.set_xlabel("threshold")
        ax.set_ylim(-0.02, 1.02)
        if k == 0:
            ax.legend(fontsize=7)
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.tight_layout()
    paths = {"refusal_rate_vs_threshold": os.path.join(output_dir, "refusal_rate_vs_threshold.png")}
    fig.savefig(paths["refusal_rate_vs_threshold"], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    for j, c in enumerate(taxonomy.names, start=1):
        keep = (truth == j) | (truth == 0)
        fpr, tpr, auc = roc_curve(probs[keep, j], truth[keep] == j)
        ax.plot(fpr, tpr, label=f"{c} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("respond prompts passing (false-positive rate)")
    ax.set_ylabel("category prompts passing (true-positive rate)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths["roc"] = os.path.join(output_dir, "roc.png")
    fig.savefig(paths["roc"], dpi=100)
    plt.close(fig)
    return paths
