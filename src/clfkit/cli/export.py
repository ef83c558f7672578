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
@click.option("--int8", is_flag=True, help="Also write an int8 file beside OUT (model.onnx → model.int8.onnx), statically quantized.")
@click.option("--calibration", type=click.Path(path_type=Path), default=None,
              help="Photos for --int8 calibration (up to 256) [default: the run's train split].")
@click.option("--fp16", is_flag=True, help="Also write an fp16 file for GPUs beside OUT (model.fp16.onnx); input and output stay float32.")
@click.option("--embed-preprocess", is_flag=True,
              help="Graph input is uint8 [batch, H, W, 3] resized+cropped pixels; /255 and mean/std run inside.")
@user_errors
def export_cmd(checkpoint: Path, out: Path, opset: int, verify_dir: Path | None, atol: float, int8: bool,
               calibration: Path | None, fp16: bool, embed_preprocess: bool) -> None:
    """Export CHECKPOINT (a clf-train model.pt) to the ONNX file OUT and verify it against PyTorch.

    The preprocessing contract (ModelSpec) and the class names come from the checkpoint and are stored in
    OUT's metadata.  The comparison table is printed and saved beside OUT (model.onnx → model.verify.json).
    The exit code is non-zero when a file fails verification: fp32 on any top-1 difference or |Δprob| > --atol,
    fp16 below 98 % and int8 below 90 % top-1 agreement with PyTorch.
    """
    from clfkit.export.api import export_checkpoint

    result = export_checkpoint(checkpoint, out, opset=opset, verify_dir=verify_dir, atol=atol, int8=int8,
                               calibration=calibration, fp16=fp16, embed_preprocess=embed_preprocess,
                               log=lambda msg: click.echo(msg, err=True))
    for report in result.reports:
        click.echo(report.format_table())
        click.echo("")
    for precision, path in result.files.items():
        click.echo(f"wrote {path} ({precision})")
    click.echo(f"verification report: {result.verify_json}")
    if not result.passed:
        names = ", ".join(Path(r.onnx_file).name for r in result.failed)
        raise click.ClickException(f"verification FAILED for {names}; do not deploy it (details in "
                                   f"{result.verify_json})")
