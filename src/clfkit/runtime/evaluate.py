"""Labelled evaluation during an inference run, and the report folder.  No torch import.

:class:`Evaluation` collects predictions as they stream by (labels from :class:`LabelledInput`; memory grows
only by a few numbers per image plus ``visualize`` kept samples per class), then :meth:`Evaluation.write`
produces::

    DIR/metrics.json            accuracy (with TTA when --tta > 1), accuracy_no_tta (view 0 of the same run),
                                macro/weighted F1, per-class precision/recall/F1/support, the per-class TTA vs
                                no-TTA table, provider, TTA count and view names, unknown folders, failed files;
                                95 % intervals as ``<metric>_ci95`` = [lo, hi] (clfkit.report.intervals)
    DIR/confusion_matrix.csv    rows true, columns predicted (TTA predictions)
    DIR/confusion_matrix.png
    DIR/per_class.png
    DIR/reliability.png         accuracy vs confidence before/after the model's temperature (metrics.json: ece,
                                ece_no_tta, ece_uncalibrated, temperature, the per-bin numbers)
    DIR/coverage.png            accuracy of the kept predictions vs their share as the --reject-below threshold
                                rises (metrics.json: reject_below_for_95/_99, coverage_curve, and with
                                --reject-below: reject_below, rejected, kept_at_reject_below; clfkit.report.coverage)
    with visualize N > 0:
    DIR/panels/*.png            N single-image panels: the photo beside its top-k bar chart, and (unless
                                --no-explain) the occlusion heat map of the predicted class, and of the true
                                class for a mistake, over the model's crop (clfkit.runtime.explain); the
                                mistakes grid draws the predicted class's map; metrics.json ``explanations``
                                says what they cost (photos, model rows and calls, seconds)
    DIR/grids/<class>.png       up to N photos per true class, captioned with the prediction
    DIR/misclassified.png       up to N misclassified photos, the most confident mistakes first

For an unlabelled input the report holds ``summary.json`` (predictions per class, provider, TTA) and, with
``visualize``, the panels and one grid per *predicted* class.  Figures are drawn by :mod:`clfkit.report`.
"""
from __future__ import annotations

import dataclasses
import heapq
import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np

from clfkit.errors import ImageError
from clfkit.io import write_json
from clfkit.report.coverage import coverage_curve, coverage_metrics
from clfkit.report.calibration import (Reliability, calibration_block, expected_calibration_error, reliability,
                                      uncalibrated_probs)
from clfkit.report.metrics import classification_metrics, compare_per_class, confusion_matrix
from clfkit.runtime.explain import Explanation, Occlusion, explain_predictions, overlays
from clfkit.runtime.records import UNKNOWN, Prediction
from clfkit.runtime.sources import LabelledInput
from clfkit.spec import ModelSpec
from clfkit.vision.images import load_rgb

__all__ = ["Evaluation", "MAX_LISTED_ERRORS"]

MAX_LISTED_ERRORS = 200  # failed files listed in the report (all of them are in the predictions file)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


class Evaluation:
    """Accumulates one run's predictions; ``labelled`` None means there are no true labels."""

    def __init__(self, spec: ModelSpec, labelled: LabelledInput | None = None, visualize: int = 0,
                 reject_below: float | None = None, explainer: Occlusion | None = None) -> None:
        if visualize < 0:
            raise ValueError(f"visualize must be >= 0, got {visualize}")
        self.spec = spec
        self.explainer = explainer  # occlusion heat maps for the panels and the mistakes grid (None: none)
        self.reject_below = reject_below  # --reject-below of the run (the predictions carry the decision)
        self.rejected = 0  # predictions "unknown" for it
        self.labelled = labelled
        self.visualize = visualize
        self._index = {name: i for i, name in enumerate(spec.class_names)}
        self.y_true: list[int] = []
        self.y_pred: list[int] = []
        self.y_pred_no_tta: list[int] = []
        self._probs: list[np.ndarray] = []
        self._probs_no_tta: list[np.ndarray] = []
        self.total = 0
        self.errors: list[tuple[str, str]] = []
        self.num_errors = 0
        self.predicted_counts: Counter[str] = Counter()
        self.unlabelled: Counter[str] = Counter()  # folder (or "(root)") → images without a known class
        self._per_category: dict[str, list[tuple[Prediction, str | None]]] = {}
        self._mistakes: list[tuple[float, int, Prediction, str]] = []  # min-heap on probability

    @property
    def num_evaluated(self) -> int:
        return len(self.y_true)

    def add(self, pred: Prediction) -> None:
        self.total += 1
        if not pred.ok:
            self.num_errors += 1
            if len(self.errors) < MAX_LISTED_ERRORS:
                self.errors.append((pred.path, pred.error or ""))
            return
        self.predicted_counts[pred.label or ""] += 1
        self.rejected += pred.rejected
        true = self.labelled.label_of(pred.path) if self.labelled else None
        if self.labelled and true is None:
            self.unlabelled[self.labelled.folder_of(pred.path) or "(root)"] += 1
        if true is not None:
            if pred.probs is None or pred.probs_no_tta is None:
                raise ValueError("labelled evaluation needs predictions made with keep_probs=True")
            self.y_true.append(self._index[true])
            self.y_pred.append(int(pred.index))
            self.y_pred_no_tta.append(int(np.argmax(pred.probs_no_tta)))
            self._probs.append(pred.probs)
            self._probs_no_tta.append(pred.probs_no_tta)
            if pred.index != self._index[true] and self.visualize:  # the top class, "unknown" or not
                item = (float(pred.prob), self.total, self._slim(pred), true)
                (heapq.heappush if len(self._mistakes) < self.visualize else heapq.heappushpop)(self._mistakes, item)
        if self.visualize:
            kept = self._per_category.setdefault(true if self.labelled else (pred.label or ""), [])
            if len(kept) < self.visualize:
                kept.append((self._slim(pred), true))

    @staticmethod
    def _slim(pred: Prediction) -> Prediction:
        return dataclasses.replace(pred, probs=None, probs_no_tta=None)

    # --- metrics -----------------------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any] | None:
        """TTA metrics plus the no-TTA comparison; None when no labelled image was predicted."""
        if not self.y_true:
            return None
        names = list(self.spec.class_names)
        tta = classification_metrics(self.y_true, self.y_pred, names, probs=np.stack(self._probs))
        plain = classification_metrics(self.y_true, self.y_pred_no_tta, names, probs=np.stack(self._probs_no_tta))
        return {
            **tta,
            "accuracy_no_tta": plain["accuracy"],
            "accuracy_no_tta_ci95": plain["accuracy_ci95"],
            "macro_f1_no_tta": plain["macro_f1"],
            "macro_f1_no_tta_ci95": plain["macro_f1_ci95"],
            "per_class_tta_vs_no_tta": compare_per_class(plain, tta, "no_tta", "tta"),
            **self.calibration(),
            **coverage_metrics(np.stack(self._probs), self.y_true, self.reject_below),
        }

    def calibration(self) -> dict[str, Any]:
        """``ece`` of the probabilities written (TTA mean when --tta > 1), ``ece_no_tta`` of the center view's,
        and ``ece_uncalibrated``: the center view's raw softmax, recovered exactly from its calibrated
        probabilities as softmax(T · log p) (:func:`~clfkit.report.calibration.uncalibrated_probs`)."""
        t = self.spec.temperature
        center = np.stack(self._probs_no_tta)
        block = calibration_block(np.stack(self._probs), uncalibrated_probs(center, t), self.y_true, t)
        block["ece_no_tta"] = expected_calibration_error(center, self.y_true)
        block["calibrated"] = self.spec.calibrated
        return block

    def reliability_curves(self, tta: int) -> dict[str, Reliability]:
        """The reliability diagram's curves: the center view before and after the temperature, and with TTA."""
        t = self.spec.temperature
        center = np.stack(self._probs_no_tta)
        curves = {"center view, T = 1 (raw softmax)": reliability(uncalibrated_probs(center, t), self.y_true),
                  f"center view, T = {t:.3f}": reliability(center, self.y_true)}
        if tta > 1:
            curves[f"TTA {tta} views, T = {t:.3f}"] = reliability(np.stack(self._probs), self.y_true)
        return curves

    def confusion(self) -> np.ndarray:
        return confusion_matrix(self.y_true, self.y_pred, self.spec.num_classes)

    def _files(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "predicted": self.total - self.num_errors,
            "failed": self.num_errors,
            "evaluated": self.num_evaluated,
            "unlabelled": dict(sorted(self.unlabelled.items())),
        }

    # --- report ------------------------------------------------------------------------------------------
    def write(self, out_dir: str | Path, run_info: dict[str, Any],
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Write the report folder (see the module docstring); returns what went into the JSON file."""
        from clfkit.io import write_csv_matrix
        from clfkit.report import figures  # matplotlib: only when a report is asked for

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        base = {**run_info, "files": self._files(),
                "failed_files": [{"path": p, "error": e} for p, e in self.errors],
                "predicted_per_class": {n: self.predicted_counts.get(n, 0) for n in self.spec.class_names},
                "reject_below": self.reject_below,
                "rejected": self.rejected if self.reject_below is not None else None}
        explained = self._explain(log)  # before the JSON, which says what the explanations cost
        if self.explainer is not None and self.visualize:
            base["explanations"] = self.explainer.summary()
        if self.labelled is None:
            write_json(base, out / "summary.json")
            self._draw(out, figures, log, explained)
            return base
        base["unknown_folders"] = {name: self.unlabelled.get(name, 0) for name in self.labelled.unknown}
        metrics = self.metrics()
        if metrics is None:
            base["note"] = "no image of a known class folder could be predicted; nothing to evaluate"
            write_json(base, out / "metrics.json")
            return base
        result = {**metrics, **base}
        write_json(result, out / "metrics.json")
        cm = self.confusion()
        names = list(self.spec.class_names)
        write_csv_matrix(cm, names, out / "confusion_matrix.csv")
        figures.plot_confusion_matrix(cm, names, out / "confusion_matrix.png")
        figures.plot_per_class(metrics, out / "per_class.png")
        figures.plot_reliability(self.reliability_curves(int(run_info.get("tta") or 0)), out / "reliability.png",
                                 title=f"Reliability ({self.num_evaluated} images)")
        figures.plot_coverage(coverage_curve(np.stack(self._probs), self.y_true), out / "coverage.png", metrics)
        self._draw(out, figures, log, explained)
        return result

    def _categories(self) -> list[str | None]:
        return [c for c in (*self.spec.class_names, None) if c in self._per_category]

    def _mistakes_shown(self) -> list[tuple[float, int, Prediction, str]]:
        return sorted(self._mistakes, key=lambda m: (-m[0], m[1]))  # the most confident first

    def _explain(self, log: Callable[[str], None] | None) -> dict[str, Explanation]:
        """Occlusion maps of the photos in the panels and the mistakes grid, the only ones explained (the
        per-class grids stay plain: explaining them would cost ``visualize`` × classes photos)."""
        if self.explainer is None or not self.visualize or (self.labelled is not None and not self.y_true):
            return {}
        shown = [*self._round_robin(self._categories()), *((p, t) for _, _, p, t in self._mistakes_shown())]
        return explain_predictions(self.explainer, shown, self._index, log)

    def _draw(self, out: Path, figures: Any, log: Callable[[str], None] | None,
              explained: dict[str, Explanation] | None = None) -> None:
        if not self.visualize:
            return
        explained = explained or {}

        def image(pred: Prediction):
            try:
                return load_rgb(pred.path)
            except ImageError as exc:  # vanished since it was predicted
                if log:
                    log(f"skipped in the figures: {exc}")
                return None

        def caption(pred: Prediction, true: str | None) -> str:
            top = self.spec.class_names[pred.index]
            text = f"{UNKNOWN} ({top} {pred.prob:.0%})" if pred.rejected else f"{pred.label} {pred.prob:.0%}"
            return text if true is None or true == top else f"{text} (wrong)"

        categories = self._categories()
        for n, (pred, true) in enumerate(self._round_robin(categories)):
            photo = image(pred)
            if photo is not None:
                name = f"{n:03d}_{_slug(true or pred.label or '')}_{_slug(Path(pred.path).stem)}.png"
                heat = explained.get(pred.path)
                figures.image_panel(photo, pred.topk, out / "panels" / name, true_label=true,
                                    overlays=overlays(heat, self.spec.class_names, true) if heat else ())
        for category in categories:
            items = [(photo, caption(p, t)) for p, t in self._per_category[category]
                     if (photo := image(p)) is not None]
            name = "unlabelled" if category is None else category
            kind = "true" if self.labelled else "predicted"
            figures.image_grid(items, out / "grids" / f"{_slug(name)}.png", title=f"{kind} class: {name}")
        if self.labelled is not None:
            mistakes = [(p, t, photo) for _, _, p, t in self._mistakes_shown() if (photo := image(p)) is not None]
            items = [(photo, f"{p.label} {p.prob:.0%}\ntrue: {t}") for p, t, photo in mistakes]
            heats = [(e.crop, e.share(0)) if (e := explained.get(p.path)) else None for p, _, _ in mistakes]
            note = "; heat: where the predicted class's evidence is" if any(heats) else ""
            figures.image_grid(items, out / "misclassified.png", overlays=heats if any(heats) else None,
                               title=f"Misclassified ({len(items)} shown), most confident first{note}")

    def _round_robin(self, categories: list) -> list[tuple[Prediction, str | None]]:
        """``visualize`` samples taken one per category in turn, so the panels cover every class."""
        picked: list[tuple[Prediction, str | None]] = []
        depth = 0
        while len(picked) < self.visualize and any(depth < len(self._per_category[c]) for c in categories):
            for c in categories:
                if depth < len(self._per_category[c]) and len(picked) < self.visualize:
                    picked.append(self._per_category[c][depth])
            depth += 1
        return picked
