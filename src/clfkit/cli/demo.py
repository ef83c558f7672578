"""``clf-demo``: the thin click layer over :func:`clfkit.demo.run_demo`."""
from __future__ import annotations

from pathlib import Path

import click

from clfkit.cli.common import CONTEXT, user_errors

__all__ = ["demo_cmd"]


@click.command("clf-demo", context_settings=CONTEXT)
@click.option("--out", type=click.Path(path_type=Path), default=Path("clfkit-demo"), show_default=True,
              help="A new folder for everything the demo writes.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Run on this labelled class-per-folder directory instead of drawing one.")
@click.option("--backbone", default="efficientnet_lite0", show_default=True)
@click.option("--per-class", default=40, show_default=True, help="Images per class to draw (without --data).")
@click.option("--epochs", default=60, show_default=True, help="Maximum head epochs (early stopping applies).")
@click.option("--tta", default=5, show_default=True, help="Test-time augmentation views at inference.")
@click.option("--bench/--no-bench", default=True, show_default=True,
              help="Finish with a quick onnxruntime vs PyTorch benchmark.")
@user_errors
def demo_cmd(out: Path, data: Path | None, backbone: str, per_class: int, epochs: int, tta: int,
             bench: bool) -> None:
    """Run split → train → export (verified) → infer with TTA → a quick bench in one go, on a folder the demo
    draws itself (no download) or on --data DIR, and print where the reports are."""
    from clfkit.demo import run_demo

    result = run_demo(out, data=data, backbone=backbone, per_class=per_class, epochs=epochs, tta=tta,
                      bench=bench, log=lambda msg: click.echo(msg, err=True))
    metrics = result.infer_metrics
    click.echo("\n== done in " + ", ".join(f"{k} {v:.0f} s" for k, v in result.steps.items()))
    if "accuracy" in metrics:
        click.echo(f"test accuracy (onnxruntime, TTA {tta}): {metrics['accuracy']:.1%} "
                   f"(no TTA: {metrics['accuracy_no_tta']:.1%}, macro-F1 {metrics['macro_f1']:.3f})")
    click.echo(f"model:       {result.onnx}  (serve it: clf-serve --model {result.onnx})")
    click.echo(f"predictions: {result.predictions}")
    click.echo(f"report:      {result.report}  (metrics.json, confusion_matrix.png, per_class.png, figures)")
    if result.bench.get("speedup_e2e") and result.bench.get("speedup_latency_b1"):
        click.echo(f"bench:       {out / 'bench' / 'report.md'}  (quick run: onnxruntime end to end "
                   f"{result.bench['speedup_e2e']:.1f}x the PyTorch baseline, batch-1 latency "
                   f"{result.bench['speedup_latency_b1']:.1f}x lower)")
