"""Evaluation: per-category metrics from first-token probabilities, answer agreement, calibration and its plots."""

from .agreement import answer_agreement
from .calibration import (
    CalibrationTargets,
    calibrate_thresholds,
    calibration_report,
    cross_category_leakage,
    format_calibration_report,
    run_calibration,
    split_halves,
)
from .metrics import (
    evaluate_refusal_tokens,
    format_report,
    group_of,
    labels_of,
    refusal_rates,
    refusal_scalars,
    roc_curve,
    summarize_probabilities,
)
from .plots import save_calibration_plots

__all__ = [
    "CalibrationTargets",
    "answer_agreement",
    "calibrate_thresholds",
    "calibration_report",
    "cross_category_leakage",
    "evaluate_refusal_tokens",
    "format_calibration_report",
    "format_report",
    "group_of",
    "labels_of",
    "refusal_rates",
    "refusal_scalars",
    "roc_curve",
    "run_calibration",
    "save_calibration_plots",
    "split_halves",
    "summarize_probabilities",
]
