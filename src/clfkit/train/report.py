"""Run-folder reports: history.csv + curves.png, and the test report (metrics, confusion matrix, figures)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from clfkit.io import write_csv, write_csv_matrix, write_json
from clfkit.report.calibration import calibration_block, reliability
from clfkit.report.coverage import coverage_curve, coverage_metrics
from clfkit.report.figures import plot_confusion_matrix, plot_coverage, plot_curves, plot_per_class, plot_reliability
from clfkit.report.metrics import classification_metrics, confusion_matrix
from clfkit.spec import ModelSpec
from clfkit.vision.postprocess import softmax

__all__ = ["HISTORY_COLUMNS", "write_history", "write_test_report"]

HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")


def write_history(run_dir: Path, history: Sequence[Mapping[str, Any]], curves: bool = True) -> dict[str, Path]:
    write_csv(run_dir / "history.csv", HISTORY_COLUMNS, ([row.get(c, "") for c in HISTORY_COLUMNS] for row in history))
    files = {"history": run_dir / "history.csv"}
    if curves and history:
        files["curves"] = plot_curves(list(history), run_dir / "curves.png")
    return files


def write_test_report(report_dir: Path, logits: np.ndarray, labels: np.ndarray, spec: ModelSpec,
                      train_counts: Mapping[str, int]) -> dict[str, Any]:
    """metrics.json, confusion_matrix.csv/.png, per_class.png, reliability.png and coverage.png for the test
    split; returns the metrics.  Probabilities use the spec's temperature, as deployed; ``ece_uncalibrated`` is
    the raw softmax's."""
    probs = softmax(logits, temperature=spec.temperature)
    preds = probs.argmax(1)
    metrics = classification_metrics(labels, preds, spec.class_names, probs=probs)
    raw = softmax(logits)
    metrics.update(calibration_block(probs, raw, labels, spec.temperature))
    plot_reliability({"T = 1 (raw softmax)": reliability(raw, labels),
                      f"T = {spec.temperature:.3f} (the model's)": reliability(probs, labels)},
                     report_dir / "reliability.png", title=f"Reliability on the test split ({len(labels)} images)")
    metrics.update(coverage_metrics(probs, labels))  # the --reject-below thresholds for 95 / 99 % on this split
    plot_coverage(coverage_curve(probs, labels), report_dir / "coverage.png", metrics)
    metrics["train_counts"] = dict(train_counts)
    cm = confusion_matrix(labels, preds, spec.num_classes)
    write_json(metrics, report_dir / "metrics.json")
    write_csv_matrix(cm, spec.class_names, report_dir / "confusion_matrix.csv")
    plot_confusion_matrix(cm, spec.class_names, report_dir / "confusion_matrix.png")
    plot_per_class(metrics, report_dir / "per_class.png", train_counts=dict(train_counts))
    return metrics
