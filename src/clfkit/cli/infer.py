"""``clf-infer``: the thin click layer over :func:`clfkit.runtime.infer.run_infer`.  No torch import."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from clfkit.cli.common import (CONTEXT, device_option, model_option, runtime_option, threads_option, topk_option,
                               tta_option, user_errors, workers_option)
from clfkit.runtime.engine import Engine
from clfkit.runtime.infer import (EXIT_SOME_FAILED, check_options, describe_accuracy, describe_coverage,
                                  format_report, run_infer)
from clfkit.runtime.explain import check_explain
from clfkit.runtime.records import check_reject_below
from clfkit.vision.augment import TTA_RANDOM

__all__ = ["infer_cmd"]

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
TTA views (--tta N averages the softmax of the first N): center, hflip, zoom (one crop-ratio step further
in), zoom_hflip, wide (shorter side resized to the input size, center crop), wide_hflip, top_left, top_right,
bottom_left, bottom_right, then seeded random views ({TTA_RANDOM.describe()}).
--tta 0 or 1 is the center view only.  The model batch holds --batch-size x N views.

\b
--fast-decode: JPEGs are decoded at 1/2, 1/4 or 1/8 scale (libjpeg draft mode) while the shorter side stays
>= the model's resize size.  Only photos at least twice that size change; their pixels differ slightly.

\b
More than one machine (--ray; pip install 'clfkit[ray]' on every node):
  Ray Data reads and decodes the files in CPU tasks and runs the model in a pool of actors (one model load
  each; --ray-actors, --ray-cpus-per-actor, --ray-gpus-per-actor).  The model file and the photos must be
  where every node sees them (a shared folder, or s3:// gs:// file:// URIs that pyarrow reads).
  --out preds.csv|.jsonl|.json gathers the rows here, in the order of a local run; --out DIR/ has the
  workers write Parquet shards (same columns) for outputs too big to gather.  --report needs gathered rows.
  With no --ray-address: RAY_ADDRESS (set inside `ray job submit`), else the cluster last started on this
  machine, else a Ray of its own for this command.  A killed actor is restarted and every file still ends
  with one row; --skip-existing continues a CSV/JSONL or a Parquet folder.

\b
--reject-below P: a prediction whose top probability (TTA-averaged with --tta) is below P gets pred
"unknown"; prob, index and top1 still name the top class and its probability, so nothing is lost.  The
summary line counts them.  A model with a class named "unknown" is refused.  With --report on a labelled
folder, coverage.png and metrics.json give accuracy against coverage, the thresholds that reach 95 % and
99 % accuracy on that folder (reject_below_for_95/_99) and, with P, the accuracy of the kept predictions.

\b
Exit codes: 0 every file predicted; {EXIT_SOME_FAILED} some files could not be read (all others were predicted
and written); 1 a usage problem (bad model, bad option value, no images found); 2 a command-line syntax error.
"""


@click.command("clf-infer", context_settings=CONTEXT, epilog=_EPILOG)
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@model_option
@click.option("--spec", "spec_path", type=click.Path(path_type=Path), default=None,
              help="spec.json for an ONNX classifier not exported by clf-export.")
@tta_option
@click.option("--batch-size", "-b", type=click.IntRange(min=1), default=32, show_default=True,
              help="Images per model call.")
@runtime_option
@device_option
@threads_option
@workers_option
@topk_option
@click.option("--reject-below", type=float, default=None, metavar="P",
              help="Write pred = unknown when the top probability is below P (0 < P < 1); the top class stays "
                   "in top1/top1_prob, prob and index (see below).")
@click.option("--out", "-o", type=click.Path(allow_dash=True), default=None,
              help="preds.csv, preds.jsonl or preds.json (default: CSV on stdout); with --ray also DIR/ "
                   "(Parquet shards written by the workers).")
@click.option("--report", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Write metrics.json, confusion matrix and per-class figures here (a labelled folder "
                   "PATH/<class>/<images> is evaluated).")
@click.option("--recursive/--no-recursive", default=True, show_default=True, help="Descend into sub-folders.")
@click.option("--visualize", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --report: N photo panels with top-k bars, N photos per class grid, N mistakes grid.")
@click.option("--no-explain", is_flag=True,
              help="With --visualize: no occlusion heat maps in the panels and the mistakes grid (each costs "
                   "50 model rows per photo shown; the time is logged and in the report).")
@click.option("--fast-decode", is_flag=True, help="Faster JPEG decoding for large photos (see below).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@click.option("--skip-existing", is_flag=True,
              help="Continue an interrupted run: files that already have a prediction row in --out (.csv or "
                   ".jsonl) are not predicted again; new rows are appended (see below).")
@click.option("--ray", "use_ray", is_flag=True,
              help="Run on a Ray cluster (see 'More than one machine' below; needs pip install 'clfkit[ray]').")
@click.option("--ray-address", default=None, metavar="ADDRESS",
              help="With --ray: the cluster's HOST:PORT (default: RAY_ADDRESS, else the cluster last started "
                   "on this machine, else a Ray of its own).")
@click.option("--ray-actors", type=click.IntRange(min=1), default=None,
              help="With --ray: model replicas (default: Ray Data scales the pool to the cluster).")
@click.option("--ray-cpus-per-actor", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="With --ray: CPUs each actor reserves (its inference threads, unless --threads is given).")
@click.option("--ray-gpus-per-actor", type=click.FloatRange(min=0), default=None,
              help="With --ray: GPUs each actor reserves (default: 1 with --device cuda, else 0).")
@user_errors
def infer_cmd(paths: tuple[str, ...], model: Path, spec_path: Path | None, tta: int, batch_size: int, runtime: str,
              precision: str, device: str, threads: int | None, workers: int | None, topk: int,
              reject_below: float | None, out: str | None,
              report: Path | None, recursive: bool, visualize: int, no_explain: bool, fast_decode: bool,
              progress: bool, skip_existing: bool, use_ray: bool, ray_address: str | None, ray_actors: int | None,
              ray_cpus_per_actor: float, ray_gpus_per_actor: float | None) -> None:
    """Predict the classes of the images in PATH... (files, folders or globs) with an ONNX model.

    A single folder with one sub-folder per class is a labelled set: with --report, accuracy (with and without
    TTA), per-class metrics and a confusion matrix are written; folders the model has no class for are named
    and left out of the metrics.
    """
    def log(msg: str) -> None:
        click.echo(f"clf-infer: {msg}", err=True)

    check_reject_below(reject_below)  # its range, before the model is loaded (its classes are checked after)
    check_explain(not no_explain, visualize)
    if use_ray:
        result = _on_ray(paths, model=model, spec_path=spec_path, tta=tta, batch_size=batch_size, runtime=runtime,
                         precision=precision, device=device, threads=threads, workers=workers, topk=topk, out=out,
                         report=report, recursive=recursive, visualize=visualize, fast_decode=fast_decode,
                         progress=progress, skip_existing=skip_existing, address=ray_address, actors=ray_actors,
                         cpus=ray_cpus_per_actor, gpus=ray_gpus_per_actor, reject_below=reject_below,
                         explain=not no_explain, log=log)
    else:
        if any(v is not None for v in (ray_address, ray_actors, ray_gpus_per_actor)):
            raise click.UsageError("--ray-address, --ray-actors and --ray-gpus-per-actor need --ray")
        check_options(out, report, visualize, skip_existing)
        engine = Engine.from_onnx(model, device=device, threads=threads, spec=spec_path, runtime=runtime,
                                  precision=precision, log=log)
        log(f"model {engine.describe()}" + (f", {threads} threads" if threads else ""))
        log(engine.describe_choice())
        result = run_infer(engine, paths, out=out, report=report, tta=tta, batch_size=batch_size, topk=topk,
                           recursive=recursive, visualize=visualize, fast_decode=fast_decode, workers=workers,
                           progress=progress, skip_existing=skip_existing, reject_below=reject_below,
                           explain=not no_explain, log=log)
    where = f" to {out}" if out not in (None, "-") else ""
    log(f"predicted {result.total - result.failed} of {result.total} files{where} in {result.seconds:.1f} s "
        f"({result.images_per_s:.1f} img/s) on {result.provider}")
    if (rejected := result.describe_rejected()) is not None:
        log(rejected)
    if result.report is not None:
        table = format_report(result.report)
        if table:
            click.echo(table, err=out is None)
        if "accuracy" in result.report:
            log(describe_accuracy(result.report, tta))
            for line in describe_coverage(result.report):
                log(line)
        log(f"report written to {report}")
    if result.failed:
        log(f"{result.failed} file(s) could not be read; their rows have the reason in the `error` column "
            f"(exit code {EXIT_SOME_FAILED})")
        click.get_current_context().exit(EXIT_SOME_FAILED)


def _on_ray(paths: tuple[str, ...], *, model: Path, spec_path: Path | None, device: str, runtime: str,
            precision: str, threads: int | None, workers: int | None, address: str | None, actors: int | None,
            cpus: float, gpus: float | None, log, **job) -> Any:
    """--ray: the driver opens the model on its CPU (options and classes are checked here, before the cluster
    is touched); each actor opens it again on its own node."""
    from clfkit.cluster.infer import run_ray_infer
    from clfkit.cluster.job import ModelRef, RayOptions

    if workers is not None:
        raise click.UsageError("--workers sets a local run's decode threads; with --ray, decoding runs in Ray "
                               "tasks across the cluster")
    options = RayOptions(address=address, actors=actors, cpus_per_actor=cpus,
                         gpus_per_actor=(1.0 if device == "cuda" else 0.0) if gpus is None else gpus)
    engine = Engine.from_onnx(model, device="cpu" if device == "cuda" else device, spec=spec_path,
                              runtime="onnxruntime" if device == "cuda" else runtime,
                              precision="auto" if device == "cuda" else precision, log=log)
    log(f"model {engine.describe()} (checked here; each Ray actor opens {model.name} on its node)")
    ref = ModelRef(path=str(model.resolve()), spec=engine.spec, input_format=engine.input_format,
                   spec_path=None if spec_path is None else str(spec_path.resolve()), device=device,
                   runtime=runtime, precision=precision, threads=threads)
    run = run_ray_infer(engine, paths, options, model=ref, log=log, **job)
    log(run.describe())
    return run.result
