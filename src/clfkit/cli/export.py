"""``clf-export``: the thin click layer over :func:`clfkit.export.api.export_checkpoint`."""
from __future__ import annotations

from pathlib import Path

import click

from clfkit.cli.common import CONTEXT, user_errors

__all__ = ["export_cmd"]


@click.command("clf-export", context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--opset", default=17, show_default=True, help="ONNX opset version (13–20).")
@click.option("--verify", "verify_dir", type=click.Path(path_type=Path), default=None,
              help="Folder of photos to verify on (up to 64) [default: the run's validation split, else "
                   "generated images].")
@click.option("--atol", default=1e-4, show_default=True,
              help="fp32 passes only if every |Δprobability| against PyTorch is at most this.")
@click.option("--int8/--no-int8", default=None,
              help="The int8 file beside OUT (model.onnx → model.int8.onnx), statically quantized on real photos and "
                   "verified like the others; clf-infer runs it only where it agrees with PyTorch >= 99 % and is "
                   "faster [default: written when calibration photos are found; --int8 requires it].")
@click.option("--calibration", type=click.Path(path_type=Path), default=None,
              help="Photos for --int8 calibration (up to 256) [default: the run's train split].")
@click.option("--fp16", is_flag=True, help="Also write an fp16 file for GPUs beside OUT (model.fp16.onnx); input and output stay float32.")
@click.option("--embed-preprocess", type=click.Choice(["pixels", "full"]), is_flag=False, flag_value="pixels",
              default=None,
              help="pixels (the flag alone): graph input is uint8 [batch, H, W, 3] resized+cropped pixels; /255 and "
                   "mean/std run inside.  full: input is one decoded RGB photo uint8 [1, H, W, 3] of any size; the "
                   "resize (Pillow's, pixel for pixel) and centre crop run inside too; written at opset >= 18 "
                   "whatever --opset says; not with --int8/--fp16.")
@user_errors
def export_cmd(checkpoint: Path, out: Path, opset: int, verify_dir: Path | None, atol: float, int8: bool | None,
               calibration: Path | None, fp16: bool, embed_preprocess: str | None) -> None:
    """Export CHECKPOINT (a clf-train model.pt) to the ONNX file OUT and verify it against PyTorch.

    The preprocessing contract (ModelSpec) and the class names come from the checkpoint and are stored in
    OUT's metadata.  The comparison table is printed and saved beside OUT (model.onnx → model.verify.json).
    The exit code is non-zero when a file fails verification: fp32 on any top-1 difference or |Δprob| > --atol,
    bf16/fp16 below 98 % and int8 below 90 % top-1 agreement with PyTorch (a flip on an image PyTorch nearly
    ties, its top two probabilities within 0.1, is forgiven); --embed-preprocess full below 99.5 % agreement
    or |Δprob| > 0.02.
    """
    from clfkit.export.api import export_checkpoint

    result = export_checkpoint(checkpoint, out, opset=opset, verify_dir=verify_dir, atol=atol, int8=int8,
                               calibration=calibration, fp16=fp16, embed_preprocess=embed_preprocess,
                               log=lambda msg: click.echo(msg, err=True))
    for report in result.reports:
        click.echo(report.format_table())
        click.echo("")
    for name, why in result.dropped.items():  # a default variant that failed: deleted, the export still passes
        click.echo(f"{name} {why}")
    for precision, path in result.files.items():
        click.echo(f"wrote {path} ({precision})")
    click.echo(f"verification report: {result.verify_json}")
    if result.passed:
        click.echo(f"clf-infer on this CPU will run: {result.default_run}")
    if not result.passed:
        names = ", ".join(Path(r.onnx_file).name for r in result.failed)
        raise click.ClickException(f"verification FAILED for {names}; do not deploy it (details in "
                                   f"{result.verify_json})")
