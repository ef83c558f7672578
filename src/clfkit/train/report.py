"""Run-folder reports: history.csv + curves.png, and the test report (metrics, confusion matrix, figures)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from clfkit.io import write_csv, write_csv_matrix, write_json
from clfkit.report.figures import plot_confusion_matrix, plot_curves, plot_per_class
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
    """metrics.json, confusion_matrix.csv/.png and per_class.png for the test split; returns the metrics."""
    probs = softmax(logits)
    preds = probs.argmax(1)
    metrics = classification_metrics(labels, preds, spec.class_names, probs=probs)
    metrics["train_counts"] = dict(train_counts)
    cm = confusion_matrix(labels, preds, spec.num_classes)
    write_json(metrics, report_dir / "metrics.json")
    write_csv_matrix(cm, spec.class_names, report_dir / "confusion_matrix.csv")
    plot_confusion_matrix(cm, spec.class_names, report_dir / "confusion_matrix.png")
    plot_per_class(metrics, report_dir / "per_class.png", train_counts=dict(train_counts))
    return metrics
