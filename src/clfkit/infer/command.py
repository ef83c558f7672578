"""``clf-infer``: predict a folder of photos with an exported ONNX model (and evaluate a labelled one).

:func:`run_infer` is the library function (engine + paths → rows written, report, summary); ``infer_cmd`` is
the thin click layer over it.  No torch import.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import click

from clfkit.artifact import check_writable
from clfkit.cli import user_errors
from clfkit.errors import ConfigError
from clfkit.infer.engine import DEVICES, Engine
from clfkit.infer.evaluate import Evaluation
from clfkit.infer.outputs import finished_paths, open_writer, path_key
from clfkit.infer.sources import detect_labelled, expand_paths
from clfkit.preprocess import tta_view_names

__all__ = ["EXIT_SOME_FAILED", "InferResult", "check_options", "run_infer", "infer_cmd"]

EXIT_SOME_FAILED = 3  # some files could not be read; every readable file was still predicted and written


@dataclass(frozen=True)
class InferResult:
    total: int
    failed: int
    seconds: float
    provider: str
    report: dict[str, Any] | None  # what went into metrics.json / summary.json, when --report was given

    @property
    def images_per_s(self) -> float:
        return (self.total - self.failed) / self.seconds if self.seconds > 0 else 0.0


def check_options(out: str | Path | None, report: str | Path | None, visualize: int, skip_existing: bool) -> None:
    """Option combinations that cannot work, refused before the model is loaded."""
    if visualize and report is None:
        raise ConfigError("--visualize needs --report DIR (the figures are written there)")
    if skip_existing and (out is None or str(out) == "-"):
        raise ConfigError("--skip-existing needs --out FILE.csv or FILE.jsonl (it reads the rows already there)")
    if skip_existing and Path(out).suffix.lower() == ".json":
        raise ConfigError(f"--skip-existing: --out {out} is a .json array, written only when a run finishes; use "
                          ".csv or .jsonl for runs you may need to continue")
    if skip_existing and report is not None:
        raise ConfigError("--skip-existing cannot be combined with --report: the report needs every file's "
                          "probabilities, which the rows of the earlier run do not hold; rerun the report in full")


def run_infer(engine: Engine, paths: Sequence[str | Path], *, out: str | Path | None = None,
              report: str | Path | None = None, tta: int = 0, batch_size: int = 32, topk: int = 5,
              recursive: bool = True, visualize: int = 0, fast_decode: bool = False,
              workers: int | None = None, progress: bool = False, skip_existing: bool = False,
              log: Callable[[str], None] = lambda msg: None) -> InferResult:
    """Predict every image under ``paths``, stream rows to ``out`` and, with ``report``, write the report.

    ``skip_existing`` continues an interrupted run: files that already have a prediction row in ``out`` (a
    .csv/.jsonl) are not predicted again, and the new rows are appended."""
    check_options(out, report, visualize, skip_existing)
    if next(iter(expand_paths(paths, recursive)), None) is None:
        raise ConfigError(f"no image files found in {', '.join(map(str, paths))} (looked for .jpg, .jpeg, .png, "
                          ".bmp, .gif, .tif, .tiff, .webp" + ("" if recursive else "; --no-recursive is set") + ")")
    if report is not None:
        check_writable(report, f"--report {report}")  # before the predictions, not after them
    labelled = detect_labelled(paths, engine.spec.class_names) if report is not None else None
    if labelled is not None:
        log(f"labelled folder {labelled.root}: {len(labelled.known)} class folders of {engine.spec.num_classes} "
            "model classes")
        for line in labelled.describe_unknown(engine.spec.class_names):
            log(line)
    elif report is not None:
        log("input is not a labelled folder (one folder with sub-folders named like the model's classes): the "
            "report has predictions and figures but no accuracy")
    evaluation = Evaluation(engine.spec, labelled, visualize) if report is not None else None
    k = min(topk, engine.spec.num_classes)
    done = finished_paths(out, k) if skip_existing and out is not None else set()

    def todo() -> Iterator[Path]:
        files = expand_paths(paths, recursive, log=log)
        return (f for f in files if path_key(f) not in done) if done else files

    if done:
        log(f"--skip-existing: {len(done)} file(s) already predicted in {out}; only the others are run")
    bar = _progress(sum(1 for _ in todo())) if progress else None  # a cheap listing pass for the total
    start = time.perf_counter()
    seen = failed = 0
    try:
        with open_writer(out, k, engine.provider, append=skip_existing) as writer:
            predictions = engine.predict(todo(), tta=tta, batch_size=batch_size,
                                         topk=k, workers=workers, fast_decode=fast_decode,
                                         keep_probs=labelled is not None)
            for pred in predictions:
                writer.write(pred)
                seen += 1
                failed += not pred.ok
                if evaluation is not None:
                    evaluation.add(pred)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    written = None
    if evaluation is not None and report is not None:
        info = {"model": str(engine.path), "provider": engine.provider, "device": engine.device,
                "input_format": engine.input_format, "precision": engine.precision, "tta": tta,
                "tta_views": tta_view_names(tta), "fast_decode": fast_decode, "batch_size": batch_size,
                "seconds": round(seconds, 3)}
        written = evaluation.write(report, info, log=log)
    return InferResult(total=seen, failed=failed, seconds=seconds,
                       provider=engine.provider, report=written)


def _progress(total: int) -> Any:
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (logs, CI), so no carriage-return noise there
    return tqdm(total=total, unit="img", desc="clf-infer", file=sys.stderr, disable=None, smoothing=0.1)


def format_report(report: dict[str, Any]) -> str:
    """Terminal summary of a labelled report: the metrics table and the TTA vs no-TTA comparison."""
    from clfkit.report.metrics import format_metrics_table

    if "per_class" not in report:
        return report.get("note", "")
    lines = [format_metrics_table(report)]
    if report.get("tta", 0) > 1:
        lines.append(f"\nTTA ({report['tta']} views: {', '.join(report['tta_views'])}) vs the center view alone:")
        lines.append(f"{'class':<24} {'no TTA':>8} {'TTA':>8} {'delta':>8}")
        for row in report["per_class_tta_vs_no_tta"]:
            lines.append(f"{row['class'][:24]:<24} {row['no_tta']:>8.4f} {row['tta']:>8.4f} {row['delta']:>+8.4f}")
    return "\n".join(lines)


# Options shared with clf-serve, which opens the model the same way.
model_option = click.option(
    "--model", "-m", type=click.Path(path_type=Path), default=Path("model.onnx"), show_default=True,
    help="ONNX model written by clf-export (spec and class names are read from it).")
device_option = click.option(
    "--device", type=click.Choice(DEVICES), default="auto", show_default=True,
    help="auto = CUDA when it really works, else CPU (said on stderr); cuda fails if CUDA is not active.")
threads_option = click.option("--threads", type=click.IntRange(min=1), default=None,
                              help="onnxruntime intra-op threads (default: physical cores).")

_EPILOG = f"""\b
Output (--out FILE, format from the extension; without --out: CSV on stdout):
  .csv    path,pred,prob,index,top1,top1_prob,...,topK,topK_prob,error,provider
  .jsonl  the same fields, topk as a list of {{"label", "prob"}}; null for empty values
  .json   one array of the .jsonl rows
  .csv and .jsonl stream: each row is flushed when written, so an interrupted run keeps every finished row.
  .json is written atomically when the run ends (an interrupted run leaves none).
  If the disk fills up or the folder becomes read-only, the file is cut back to its last whole row.
  A file that cannot be read gets a row with `error` set and the rest empty.

\b
Continuing a killed or interrupted run: repeat the command with --skip-existing.  Files that already have a
prediction row in --out are not predicted again and the new rows are appended (so rows are in input order
within each run).  Rows with an error, and a last row cut short, are removed first and those files tried
again, so every file ends with exactly one row.  Files are matched by absolute path.

\b
TTA views (--tta N averages the softmax of the first N): center, hflip, wide (shorter side resized to the
input size, center crop), wide_hflip, top_left, top_right, bottom_left, bottom_right, then seeded random
views (random resized crop 60-100 % area, flip, +-10 deg rotation, brightness/contrast +-10 %).
--tta 0 or 1 is the center view only.  The model batch holds --batch-size x N views.

\b
--fast-decode: JPEGs are decoded at 1/2, 1/4 or 1/8 scale (libjpeg draft mode) while the shorter side stays
>= the model's resize size.  Only photos at least twice that size change; their pixels differ slightly.
Measured: boats photos (256 px) are unchanged; upscaled 4x to 1024 px, ImageNet lite0 top-1 agreed 92.4 %
with a full decode (top-5 99.5 %) and the run was 1.65x faster.

\b
Exit codes: 0 every file predicted; {EXIT_SOME_FAILED} some files could not be read (all others were predicted
and written); 1 a usage problem (bad model, bad option value, no images found); 2 a command-line syntax error.
"""


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=_EPILOG)
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@model_option
@click.option("--spec", "spec_path", type=click.Path(path_type=Path), default=None,
              help="spec.json for an ONNX classifier not exported by clf-export.")
@click.option("--tta", type=click.IntRange(min=0), default=0, show_default=True,
              help="Test-time augmentation: average the probabilities of N views (0 or 1 = off).")
@click.option("--batch-size", "-b", type=click.IntRange(min=1), default=32, show_default=True,
              help="Images per model call.")
@device_option
@threads_option
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Decode threads (default: cores + 1).")
@click.option("--topk", "-k", type=click.IntRange(min=1), default=5, show_default=True,
              help="Most likely classes per row (capped at the number of classes).")
@click.option("--out", "-o", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True), default=None,
              help="preds.csv, preds.jsonl or preds.json (default: CSV on stdout).")
@click.option("--report", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Write metrics.json, confusion matrix and per-class figures here (a labelled folder "
                   "PATH/<class>/<images> is evaluated).")
@click.option("--recursive/--no-recursive", default=True, show_default=True, help="Descend into sub-folders.")
@click.option("--visualize", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --report: N photo panels with top-k bars, N photos per class grid, N mistakes grid.")
@click.option("--fast-decode", is_flag=True, help="Faster JPEG decoding for large photos (see below).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@click.option("--skip-existing", is_flag=True,
              help="Continue an interrupted run: files that already have a prediction row in --out (.csv or "
                   ".jsonl) are not predicted again; new rows are appended (see below).")
@user_errors
def infer_cmd(paths: tuple[str, ...], model: Path, spec_path: Path | None, tta: int, batch_size: int, device: str,
              threads: int | None, workers: int | None, topk: int, out: Path | None, report: Path | None,
              recursive: bool, visualize: int, fast_decode: bool, progress: bool, skip_existing: bool) -> None:
    """Predict the classes of the images in PATH... (files, folders or globs) with an ONNX model.

    A single folder with one sub-folder per class is a labelled set: with --report, accuracy (with and without
    TTA), per-class metrics and a confusion matrix are written; folders the model has no class for are named
    and left out of the metrics.
    """
    def log(msg: str) -> None:
        click.echo(f"clf-infer: {msg}", err=True)

    check_options(out, report, visualize, skip_existing)
    engine = Engine.from_onnx(model, device=device, threads=threads, spec=spec_path, log=log)
    log(f"model {engine.describe()}" + (f", {threads} threads" if threads else ""))
    result = run_infer(engine, paths, out=out, report=report, tta=tta, batch_size=batch_size, topk=topk,
                       recursive=recursive, visualize=visualize, fast_decode=fast_decode, workers=workers,
                       progress=progress, skip_existing=skip_existing, log=log)
    where = f" to {out}" if out not in (None, Path("-")) else ""
    log(f"predicted {result.total - result.failed} of {result.total} files{where} in {result.seconds:.1f} s "
        f"({result.images_per_s:.1f} img/s) on {result.provider}")
    if result.report is not None:
        table = format_report(result.report)
        if table:
            click.echo(table, err=out is None)
        if "accuracy" in result.report:
            log(f"accuracy {result.report['accuracy']:.4f}" + (
                f" with TTA ({tta} views), {result.report['accuracy_no_tta']:.4f} without" if tta > 1 else ""))
        log(f"report written to {report}")
    if result.failed:
        log(f"{result.failed} file(s) could not be read; their rows have the reason in the `error` column "
            f"(exit code {EXIT_SOME_FAILED})")
        click.get_current_context().exit(EXIT_SOME_FAILED)
