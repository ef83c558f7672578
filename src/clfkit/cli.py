"""Console commands.  Each is a thin click layer over one library function.

User errors (:class:`clfkit.errors.ClfError`) and the machine's own (disk full, read-only folder, no
permission: :func:`clfkit.errors.environment_error`) become one line on stderr and exit code 1 (click's usage
errors exit 2); anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

import click

from clfkit.errors import ClfError, environment_error

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn ClfError into click.ClickException: one clear line, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ClfError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # disk full, read-only folder, no permission: one line too; other OSErrors are bugs
            line = environment_error(exc)
            if line is None:
                raise
            raise click.ClickException(line) from None
        except KeyboardInterrupt:
            raise click.ClickException("interrupted") from None

    return wrapper  # type: ignore[return-value]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path), default=Path("data"))
@click.option("--val", default=0.15, show_default=True, help="Fraction of each class for validation.")
@click.option("--test", default=0.15, show_default=True, help="Fraction of each class for the test split.")
@click.option("--seed", default=0, show_default=True, help="Random seed; same seed and files → same split.")
@click.option("--min-images", default=1, show_default=True, help="Drop classes with fewer readable images.")
@click.option("--mode", type=click.Choice(["hardlink", "copy", "symlink"]), default="hardlink", show_default=True,
              help="How files get into DST (hardlinks fall back to copies across filesystems).")
@click.option("--overwrite", is_flag=True, help="Replace a previous split in DST.")
@click.option("--workers", type=int, default=None, help="Threads for hashing and decoding.")
@user_errors
def split_cmd(src: Path, dst: Path, val: float, test: float, seed: int, min_images: int, mode: str,
              overwrite: bool, workers: int | None) -> None:
    """Split SRC/<class>/*.jpg into DST/{train,val,test}/<class>/ with a manifest (DST defaults to data/).

    Stratified per class and seeded; identical files never straddle splits; unreadable files are listed in
    DST/quarantine.csv instead of copied.
    """
    from tqdm.auto import tqdm

    from clfkit.data.make_split import format_summary, make_split

    def log(msg: str) -> None:  # one line per quarantined file, written above the progress bar
        tqdm.write(msg, file=sys.stderr)

    result = make_split(src, dst, val=val, test=test, seed=seed, min_images=min_images, mode=mode,
                        overwrite=overwrite, workers=workers, log=log)
    click.echo(format_summary(result))
    click.echo(f"split written to {dst} (manifest: {dst / 'manifest.csv'})")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("data", type=click.Path(path_type=Path), default=Path("data"))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Run folder (default: a new folder under runs/).")
@click.option("--auto-split", is_flag=True, help="DATA is a plain class-per-folder directory: split it first "
              "(seeded, stratified; the split and its manifest go into RUN_DIR/data).")
@click.option("--backbone", default="efficientnet_lite2", show_default=True,
              help="efficientnet_lite0/1/2 (packaged ImageNet weights, offline), tv:<torchvision name> or "
                   "timm:<timm name> (downloaded).")
@click.option("--pretrained/--no-pretrained", default=True, show_default=True)
@click.option("--weights", type=click.Path(path_type=Path), default=None, help="Backbone state dict file to start from.")
@click.option("--mode", type=click.Choice(["head", "finetune"]), default="head", show_default=True,
              help="head: frozen backbone, cached features (fast on CPU); finetune: train everything.")
@click.option("--head", type=click.Choice(["linear", "mlp"]), default="linear", show_default=True)
@click.option("--epochs", type=int, default=None, help="Maximum epochs [head: 100, finetune: 15].")
@click.option("--batch-size", type=int, default=None, help="[head: 256 cached features, finetune: 32 images]")
@click.option("--lr", type=float, default=None, help="Peak learning rate [head: 1e-3, finetune: 3e-4].")
@click.option("--weight-decay", type=float, default=None, help="[1e-2]")
@click.option("--optimizer", type=click.Choice(["adamw", "adam", "sgd"]), default="adamw", show_default=True)
@click.option("--patience", type=int, default=10, show_default=True,
              help="Stop after this many epochs without a lower validation loss (0: never).")
@click.option("--label-smoothing", type=float, default=0.1, show_default=True)
@click.option("--class-weights", type=click.Choice(["auto", "none"]), default="none", show_default=True,
              help="auto: weight the loss by inverse class frequency (favours rare classes; on the boats "
                   "photos it cost accuracy and macro-F1, see benchmarks/results/train_boats.md).")
@click.option("--cache-views", type=int, default=3, show_default=True,
              help="head mode: views per training image (center, flip, then random crops).")
@click.option("--input-size", type=int, default=None, help="Train at another resolution than the backbone's.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True)
@click.option("--workers", type=int, default=None, help="Image loading workers.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="Continue the run in this RUN_DIR from its last completed epoch (other options are ignored).")
@user_errors
def train_cmd(data: Path, **options: Any) -> None:
    """Fine-tune an ImageNet backbone on DATA/{train,val[,test]}/<class>/ (what clf-split writes).

    Writes RUN_DIR/model.pt (with its preprocessing spec), history.csv, curves.png and, with a test split,
    report/ (metrics.json, confusion matrix, per-class figure).
    """
    from clfkit.train.config import TrainConfig
    from clfkit.train.fit import fit
    from clfkit.train.summary import format_fit_summary

    result = fit(TrainConfig(data=data, **options), log=lambda msg: click.echo(msg, err=True))
    if result.files:  # rank 0 only under torchrun
        click.echo(format_fit_summary(result))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
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
