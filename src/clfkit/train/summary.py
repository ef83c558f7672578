"""The one-screen summary clf-train prints at the end."""
from __future__ import annotations

from clfkit.report.intervals import format_interval
from clfkit.train.trainer import FitResult

__all__ = ["format_fit_summary"]


def _pct(value: object) -> str:
    return f"{100 * float(value):.2f} %" if isinstance(value, (int, float)) else "-"


def _ci(ci: object) -> str:
    """" [90.1, 96.0]": a 95 % interval in percent after its number; nothing when there is none."""
    return f" {format_interval(ci, percent=True)}" if ci else ""


def format_fit_summary(result: FitResult) -> str:
    m = result.metrics
    lines = [
        f"done in {result.seconds:.0f} s: {result.epochs_run} epochs, best epoch {result.best_epoch}",
        f"  validation accuracy {_pct(m.get('val_acc'))}  (loss {m.get('val_loss', float('nan')):.4f})",
    ]
    test = m.get("test")
    if test:
        lines.append(f"  test accuracy       {_pct(test['accuracy'])}{_ci(test.get('accuracy_ci95'))}  "
                     f"macro-F1 {_pct(test['macro_f1'])}{_ci(test.get('macro_f1_ci95'))}  "
                     f"({test['num_samples']} images)" + ("; [ ] = 95 % interval" if test.get("accuracy_ci95") else ""))
    fitted = m.get("calibration")
    if fitted:
        line = f"  calibration: temperature {m['temperature']:.3f} on the validation split"
        if fitted.get("note"):
            line += f" ({fitted['note']})"
        if test and "ece" in test:
            line += (f"; test ECE {100 * test['ece_uncalibrated']:.2f} % → {100 * test['ece']:.2f} % "
                     "(before → after)")
        lines.append(line)
    timing = m.get("timing") or {}
    if m.get("mode_requested") == "auto":
        lines.append(f"  path:    --mode auto → {m.get('mode')}: {m.get('mode_reason')}")
    if m.get("input_size"):
        lines.append(f"  input:   {m['input_size']} px: {m.get('input_size_reason', '')}")
    partial = m.get("partial")
    if partial:
        stages = ", ".join(f"{k[:-2].replace('_', ' ')} {v:.0f} s" for k, v in timing.items() if k.endswith("_s"))
        lines.append(f"  partial: blocks {partial['cut']}-{partial['blocks'] - 1} of {partial['blocks']} trained on "
                     f"{partial['views']} cached views per image ({partial['cache_mb']:.0f} MB, "
                     f"{partial['prefix_runtime']}), {partial['epochs_run']}/{partial['epochs_planned']} passes; "
                     f"stopped by {partial['stopped_by']}")
        budget = partial["budget_s"]
        lines.append(f"  time:    {stages}; {result.seconds:.0f} s of the {budget:.0f} s --time-budget"
                     + (" (over)" if result.seconds > budget else ""))
        tta = partial.get("tta_val")
        if tta:
            lines.append(f"  TTA on the validation split: {tta['views']} views {100 * tta['val_acc_tta']:.2f} % vs "
                         f"center {100 * tta['val_acc_center']:.2f} % ({'helps' if tta['helps'] else 'does not help'})")
    if "cached_speedup" in timing:
        on = f" ({m['feature_runtime']})" if m.get("feature_runtime") else ""
        lines.append(f"  one epoch through the backbone{on} {timing['backbone_epoch_s']:.1f} s, on cached features "
                     f"{1000 * timing['cached_epoch_s']:.1f} ms ({timing['cached_speedup']:.0f}x)")
    lines.append(f"  model:   {result.run_dir / 'model.pt'}")
    if "report" in result.files:
        lines.append(f"  report:  {result.run_dir / 'report'}")
    lines.append(f"  curves:  {result.run_dir / 'curves.png'}")
    audit = m.get("label_audit")
    if audit:
        top = audit["top"][0] if audit["top"] else None
        lines.append(f"  labels:  {audit['disagree']} of {audit['images']} train/val photos have a label a "
                     f"{audit['folds']}-fold out-of-fold model doubts ({audit['cross_class_photos']} filed in several "
                     f"classes; its accuracy {_pct(audit['oof_accuracy'])}); {audit['seconds']:.1f} s, of which "
                     f"{audit['feature_s']:.1f} s for features → {audit['csv']}")
        if top and top["margin"] < 0:  # no arrow when the model agrees with every label
            lines.append(f"           first: {top['path']} ({top['given']} → {top['suggested']})")
    lines.append(f"next: clf-export {result.run_dir / 'model.pt'} model.onnx")
    return "\n".join(lines)
