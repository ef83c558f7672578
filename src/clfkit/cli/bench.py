"""``clf-bench``: the thin click layer over :func:`clfkit.bench.run.run_bench` and :func:`write_report`."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from clfkit.cli.common import CONTEXT, user_errors, workers_option
from clfkit.errors import ConfigError
from clfkit.io import check_writable

__all__ = ["bench_cmd", "parse_int_list"]


def parse_int_list(text: str, flag: str, minimum: int) -> tuple[int, ...]:
    """``"1,8,32"`` → (1, 8, 32); a click error naming ``flag`` for anything else."""
    try:
        values = tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise click.BadParameter(f"expected comma-separated whole numbers such as 1,8,32, got {text!r}",
                                 param_hint=flag) from None
    if not values or any(v < minimum for v in values):
        raise click.BadParameter(f"every value must be >= {minimum}, got {text!r}", param_hint=flag)
    return values


_EPILOG = """\b
Writes into --out DIR:
  report.md       targets (met / MISSED), end-to-end, latency, memory and environment tables
  results.json    everything, with speedup_e2e and speedup_latency_b1 at the top level, and the
                  peer ratios (peer_ratios, speedup_*_vs_pytorch_best, speedup_*_vs_openvino)
  results.csv     one row per measurement (kind = latency, e2e or memory)
  latency.png     p50 latency vs batch size per backend
  throughput.png  model-only and end-to-end images/s per backend

\b
Evaluation images: DATA_DIR/test when DATA_DIR is a clf-split folder (train/val/test; val if there is no
test), else DATA_DIR itself as class-per-folder.  Close other work first: the load average is recorded.

\b
Peers (not clfkit), measured beside it unless --no-peers:
  torch-compile   torch.compile + channels_last (+ bf16/fp16 autocast where the hardware has it natively);
                  its compile time is reported on its own and can take minutes on a large model
  openvino        OpenVINO used directly on MODEL: its defaults, and INFERENCE_PRECISION_HINT f32
A peer that cannot run here is skipped with the reason, unless it was named in --peers.
"""


@click.command("clf-bench", context_settings=CONTEXT, epilog=_EPILOG)
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for the report files.")
@click.option("--int8", "int8", type=click.Path(path_type=Path), default=None,
              help="The .int8.onnx file written by clf-export --int8 (compared and given a verdict).")
@click.option("--variant", "variants", type=click.Path(path_type=Path), multiple=True,
              help="Another clf-export file to compare (.fp16.onnx, an --embed-preprocess export); repeatable.")
@click.option("--batch-sizes", default="1,8,32", show_default=True, help="Model-only batch sizes.")
@click.option("--tta", "tta", default="0,5", show_default=True,
              help="TTA view counts for the end-to-end accuracy runs (0 = none, always measured).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--runtime", type=click.Choice(["auto", "onnxruntime", "openvino"]), default="onnxruntime",
              show_default=True,
              help="What runs MODEL, --int8 and --variant rows (each in its own precision); auto: what clf-infer "
                   "would pick for that file. The row clf-infer's default flags run is measured whatever this is.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads for torch and onnxruntime alike [default: usable cores].")
@click.option("--e2e-batch-size", type=click.IntRange(min=1), default=None,
              help="Batch size of the end-to-end runs [default: the largest --batch-sizes].")
@workers_option
@click.option("--loader-workers", type=click.IntRange(min=0), default=None,
              help="PyTorch DataLoader worker processes [default: --threads].")
@click.option("--min-runs", type=click.IntRange(min=1), default=30, show_default=True,
              help="Timed model calls per latency row (at least).")
@click.option("--min-seconds", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Timed seconds per latency row (at least).")
@click.option("--repeats", "e2e_repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="End-to-end passes without TTA per backend (interleaved; the median is reported).")
@click.option("--max-images", type=click.IntRange(min=1), default=None,
              help="Use at most N evaluation images (evenly spaced over the classes) for a quick look.")
@click.option("--memory/--no-memory", default=True, show_default=True,
              help="Measure peak memory per backend in a child process.")
@click.option("--peers", "peers", default=None, metavar="LIST",
              help="Peers to measure beside clfkit: comma-separated torch-compile, openvino; or all, or none "
                   "[default: all].")
@click.option("--no-peers", is_flag=True, help="Measure no peer (the same as --peers none).")
@user_errors
def bench_cmd(checkpoint: Path, model: Path, data_dir: Path, out: Path, int8: Path | None,
              variants: tuple[Path, ...], batch_sizes: str, tta: str, device: str, runtime: str,
              threads: int | None,
              e2e_batch_size: int | None, workers: int | None, loader_workers: int | None, min_runs: int,
              min_seconds: float, e2e_repeats: int, max_images: int | None,
              memory: bool, peers: str | None, no_peers: bool) -> None:
    """Compare CHECKPOINT (clf-train's model.pt, run the way the original PyTorch pipeline runs it) with MODEL
    (its clf-export ONNX file) on the labelled images in DATA_DIR: latency, throughput, accuracy, memory."""
    from clfkit.bench.peers import parse_peers
    from clfkit.bench.report import write_report
    from clfkit.bench.run import BenchConfig, run_bench

    if no_peers and peers is not None:
        raise ConfigError("Can't provide both --peers and --no-peers. Choose one.")
    config = BenchConfig(
        checkpoint=checkpoint, onnx=model, data=data_dir, int8=int8, variants=variants,
        batch_sizes=parse_int_list(batch_sizes, "--batch-sizes", 1), tta=parse_int_list(tta, "--tta", 0),
        device=device, runtime=runtime, threads=threads, e2e_batch_size=e2e_batch_size, decode_workers=workers,
        loader_workers=loader_workers, min_runs=min_runs, min_seconds=min_seconds, e2e_repeats=e2e_repeats,
        memory=memory, peers=() if no_peers else parse_peers(peers) if peers is not None else None,
        max_images=max_images, command=shlex.join(["clf-bench", *sys.argv[1:]]),
    )
    check_writable(out, f"--out {out}")  # before minutes of measuring, not after
    results = run_bench(config, log=lambda msg: click.echo(f"clf-bench: {msg}", err=True))
    files = write_report(results, out)
    for target in results["targets"]:
        status = {True: "met", False: "MISSED", None: "not measured"}[target["met"]]
        click.echo(f"{status:>12}  {target['description']}"
                   + (f": {target['value']:.2f}" if target["value"] is not None else ""))
    for row in results.get("peer_ratios", []):
        if row["versus"] == "pytorch_eager":
            continue  # the targets above already compare with eager PyTorch
        click.echo(f"{row['backend']} vs {row['versus_backend']}: " + ", ".join(
            f"{label} {row[key]:.2f}x" if row[key] is not None else f"{label} n/a"
            for label, key in (("end to end", "e2e_speedup"), ("batch-1 latency", "latency_b1_speedup"),
                               ("model only", "model_only_speedup"))))
    if results.get("int8"):
        click.echo(results["int8"]["reason"])
    click.echo(f"report: {files['report.md']}")
