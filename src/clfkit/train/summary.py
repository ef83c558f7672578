"""The one-screen summary clf-train prints at the end."""
from __future__ import annotations

from clfkit.train.trainer import FitResult

__all__ = ["format_fit_summary"]


def _pct(value: object) -> str:
    return f"{100 * float(value):.2f} %" if isinstance(value, (int, float)) else "-"


def format_fit_summary(result: FitResult) -> str:
    m = result.metrics
    lines = [
        f"done in {result.seconds:.0f} s: {result.epochs_run} epochs, best epoch {result.best_epoch}",
        f"  validation accuracy {_pct(m.get('val_acc'))}  (loss {m.get('val_loss', float('nan')):.4f})",
    ]
    test = m.get("test")
    if test:
        lines.append(f"  test accuracy       {_pct(test['accuracy'])}  macro-F1 {_pct(test['macro_f1'])}  "
                     f"({test['num_samples']} images)")
    timing = m.get("timing") or {}
    if "cached_speedup" in timing:
        lines.append(f"  one epoch through the backbone {timing['backbone_epoch_s']:.1f} s, on cached features "
                     f"{1000 * timing['cached_epoch_s']:.1f} ms ({timing['cached_speedup']:.0f}x)")
    lines.append(f"  model:   {result.run_dir / 'model.pt'}")
    if "report" in result.files:
        lines.append(f"  report:  {result.run_dir / 'report'}")
    lines.append(f"  curves:  {result.run_dir / 'curves.png'}")
    lines.append(f"next: clf-export {result.run_dir / 'model.pt'} model.onnx")
    return "\n".join(lines)
