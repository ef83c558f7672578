"""``run_bench``: PyTorch baseline vs onnxruntime (and its int8/fp16/uint8-input variants) and the strongest
peers that are not clfkit (torch.compile, OpenVINO used directly: :mod:`clfkit.bench.peers`) on the same images,
the same thread count, in one process and one run.  Returns the results as a dict; :mod:`clfkit.bench.report`
writes them.

Per backend it measures

* model-only latency for each batch size (warm-up, then >= ``min_runs`` calls and >= ``min_seconds``; the same
  preprocessed eval images for every backend) → p50/p90/p99 ms and images/s;
* end-to-end throughput over the evaluation folder (decode → preprocess → model → probabilities) at
  ``e2e_batch_size``: the median of ``e2e_repeats`` interleaved passes without TTA, and one pass per ``tta``
  value; the probabilities of those passes give top-1/top-5, agreement with PyTorch fp32 and max |Δprob|;
* peak memory in a separate process (see :mod:`clfkit.bench.memory`) and the model file size;
* for torch.compile, the compile time of every batch size the run calls, before any of the timings above.

The evaluation images are ``DATA/test`` when DATA holds clf-split's ``train/val/test`` (``DATA/val`` when there
is no test split), else DATA itself as a class-per-folder directory.  Every image is decoded once before any
timing: unreadable files are dropped (and listed), and both backends then read files from a warm page cache.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from clfkit.bench.backends import BenchBackend, FolderRun
from clfkit.bench.env import environment, load_average, usable_cores
from clfkit.bench.lineup import load_backends, model_batches
from clfkit.bench.peers import check_peers
from clfkit.bench.summary import accuracy_row, e2e_over_model_only, summarize
from clfkit.bench.timing import MIN_RUNS, MIN_SECONDS, WARMUP, time_fn
from clfkit.data.layout import evaluation_folder
from clfkit.data.scan import class_dirs, iter_image_files
from clfkit.errors import ConfigError, DataError, ImageError, printable
from clfkit.io import to_jsonable
from clfkit.parallel import ordered_map
from clfkit.report.intervals import format_interval
from clfkit.spec import ModelSpec
from clfkit.vision.images import load_rgb
from clfkit.vision.preprocess import resize_crop
from clfkit.vision.tta import tta_view_names

__all__ = ["SCHEMA", "BenchConfig", "EvalSet", "eval_set", "run_bench"]

SCHEMA = "clfkit.bench/1"
MEMORY_BATCHES = 4  # the memory probe runs this many end-to-end batches: enough to reach the steady state
Log = Callable[[str], None]


@dataclass
class BenchConfig:
    """Options of one benchmark run (the ``clf-bench`` flags), validated on creation."""

    checkpoint: Path
    onnx: Path
    data: Path
    int8: Path | None = None
    variants: tuple[Path, ...] = ()  # more clf-export files: fp16, --embed-preprocess, …
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    tta: tuple[int, ...] = (0, 5)
    device: str = "cpu"
    runtime: str = "onnxruntime"  # what runs the clfkit rows (MODEL, --int8, --variant); "auto" as clf-infer picks
    threads: int | None = None  # None: the usable cores
    e2e_batch_size: int | None = None  # None: the largest of batch_sizes
    decode_workers: int | None = None  # onnxruntime pipeline decode threads (None: cores + 1, clf-infer's default)
    loader_workers: int | None = None  # PyTorch DataLoader worker processes (None: = threads)
    warmup: int = WARMUP
    min_runs: int = MIN_RUNS
    min_seconds: float = MIN_SECONDS
    e2e_repeats: int = 3  # end-to-end passes without TTA per backend; the median counts
    memory: bool = True
    max_images: int | None = None
    seed: int = 0
    peers: tuple[str, ...] | None = None  # None: every peer that can run here; (): none (--no-peers)
    autocast: bool = True  # the PyTorch bf16 (CPU) / fp16 (CUDA) autocast row; clf-demo drops it where bf16 is emulated
    command: str | None = None

    def __post_init__(self) -> None:
        self.checkpoint, self.onnx, self.data = Path(self.checkpoint), Path(self.onnx), Path(self.data)
        self.int8 = Path(self.int8) if self.int8 is not None else None
        self.variants = tuple(Path(v) for v in self.variants)
        if self.peers is not None:
            self.peers = check_peers(self.peers)
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ConfigError(f"--batch-sizes must be whole numbers >= 1, got {list(self.batch_sizes)}")
        if any(t < 0 for t in self.tta):
            raise ConfigError(f"--tta values must be >= 0 views, got {list(self.tta)}")
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"--device must be cpu or cuda, got {self.device!r}")
        if self.runtime not in ("auto", "onnxruntime", "openvino"):
            raise ConfigError(f"--runtime must be auto, onnxruntime or openvino, got {self.runtime!r}")
        for flag, value in (("--threads", self.threads), ("--e2e-batch-size", self.e2e_batch_size),
                            ("--max-images", self.max_images)):
            if value is not None and value < 1:
                raise ConfigError(f"{flag} must be at least 1, got {value}")
        if self.decode_workers is not None and self.decode_workers < 0:
            raise ConfigError(f"--workers must be >= 0, got {self.decode_workers}")
        if self.loader_workers is not None and self.loader_workers < 0:
            raise ConfigError(f"--loader-workers must be >= 0, got {self.loader_workers}")
        if self.e2e_repeats < 1:
            raise ConfigError(f"--repeats must be at least 1, got {self.e2e_repeats}")
        if self.min_runs < 1 or self.min_seconds < 0 or self.warmup < 0:
            raise ConfigError("--min-runs must be >= 1, --min-seconds and --warmup >= 0")
        for flag, path in (("CHECKPOINT", self.checkpoint), ("MODEL", self.onnx), ("--int8", self.int8),
                           *(("--variant", v) for v in self.variants)):
            if path is not None and not path.is_file():
                raise ConfigError(f"{flag} {path}: file not found")
        if not self.data.is_dir():
            raise ConfigError(f"DATA_DIR {self.data}: folder not found")
        # Always measure without TTA (the end-to-end number the targets use); 1 view is the same as 0.
        self.tta = tuple(sorted({0, *(t for t in self.tta if t > 1)}))
        self.batch_sizes = tuple(sorted(set(self.batch_sizes) | {self.e2e_batch}))

    @property
    def e2e_batch(self) -> int:
        return self.e2e_batch_size or max(self.batch_sizes)

    @property
    def num_threads(self) -> int:
        return self.threads or usable_cores()

    @property
    def num_loader_workers(self) -> int:
        return self.num_threads if self.loader_workers is None else self.loader_workers

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(e2e_batch_size=self.e2e_batch, threads=self.num_threads,
                    loader_workers=self.num_loader_workers, peers="all" if self.peers is None else list(self.peers))
        return data


@dataclass
class EvalSet:
    folder: Path
    split: str | None  # "test", "val", or None when DATA_DIR itself is the labelled folder
    paths: list[Path]
    labels: np.ndarray  # int64 (N,) indices into the spec's class names
    unknown_folders: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def describe(self, spec: ModelSpec) -> dict[str, Any]:
        counts = np.bincount(self.labels, minlength=spec.num_classes)
        return {"folder": str(self.folder), "split": self.split, "images": len(self.paths),
                "classes": spec.num_classes, "per_class": dict(zip(spec.class_names, counts.tolist())),
                "unknown_folders": self.unknown_folders, "skipped": self.skipped}


def _readable(path: Path) -> str | None:
    try:
        load_rgb(path)
    except ImageError as exc:
        return exc.reason
    return None


def eval_set(data: Path, class_names: tuple[str, ...], *, max_images: int | None = None,
             workers: int | None = None) -> EvalSet:
    """The labelled evaluation images (see the module docstring), each decoded once to drop unreadable ones."""
    folder, split = evaluation_folder(Path(data))
    dirs, _ = class_dirs(folder)
    index = {name: i for i, name in enumerate(class_names)}
    known = [d for d in dirs if d.name in index]
    if not known:
        raise DataError(f"DATA_DIR {folder}: no sub-folder is named like one of the model's classes "
                        f"({', '.join(class_names[:5])}{'…' if len(class_names) > 5 else ''}); pass the clf-split "
                        "folder or a class-per-folder directory")
    items = [(p, index[d.name]) for d in known for p in iter_image_files(d)]
    if max_images is not None and len(items) > max_images:  # evenly spaced, so every class keeps its share
        picks = np.unique(np.linspace(0, len(items) - 1, max_images).round().astype(int))
        items = [items[i] for i in picks]
    reasons = list(ordered_map(_readable, [p for p, _ in items], workers=workers))
    good = [(p, y) for (p, y), r in zip(items, reasons) if r is None]
    skipped = [{"path": str(p), "error": r} for (p, _), r in zip(items, reasons) if r is not None]
    if not good:
        raise DataError(f"DATA_DIR {folder}: no readable image in the class folders")
    return EvalSet(folder=folder, split=split, paths=[p for p, _ in good],
                   labels=np.asarray([y for _, y in good], np.int64),
                   unknown_folders=[d.name for d in dirs if d.name not in index], skipped=skipped)


def _sample_views(evalset: EvalSet, spec: ModelSpec, count: int) -> np.ndarray:
    """uint8 (count, H, W, 3) eval crops of the first images (cycled when there are fewer): the model-only input."""
    crops = [resize_crop(load_rgb(p), spec) for p in evalset.paths[:count]]
    return np.stack([crops[i % len(crops)] for i in range(count)])


def _latency(backends: list[BenchBackend], views: np.ndarray, spec: ModelSpec, config: BenchConfig,
             log: Log) -> list[dict[str, Any]]:
    rows = []
    for batch_size in config.batch_sizes:  # batch size outer: load drift on a busy machine hits every backend
        for backend in backends:
            fn, sync = backend.model_call(views[:batch_size], spec)
            timing = time_fn(fn, warmup=config.warmup, min_runs=config.min_runs, min_seconds=config.min_seconds,
                             sync=sync)
            rows.append({"backend": backend.name, "batch_size": batch_size, **timing.to_dict(),
                         "images_per_s": timing.images_per_s(batch_size)})
            log(f"latency  {backend.name:<28} batch {batch_size:>3}: p50 {timing.p50_ms:8.2f} ms  "
                f"p99 {timing.p99_ms:8.2f} ms  {rows[-1]['images_per_s']:7.1f} img/s  ({timing.runs} runs)")
    return rows


def _e2e_row(backend: BenchBackend, tta: int, run: FolderRun, seconds: list[float], evalset: EvalSet,
             reference: FolderRun | None, batch_size: int) -> dict[str, Any]:
    n = len(evalset.paths)
    rates = [n / s for s in seconds]
    row: dict[str, Any] = {"backend": backend.name, "tta": tta, "batch_size": batch_size, "images": n,
                           "seconds": float(np.median(seconds)), "images_per_s": float(np.median(rates)),
                           "images_per_s_passes": rates,
                           **accuracy_row(run.probs, evalset.labels, reference.probs if reference else None)}
    if tta > 1:
        plain = accuracy_row(run.probs_no_tta, evalset.labels, None)
        row.update(top1_view0=plain["top1"], top5_view0=plain["top5"], top1_view0_ci95=plain["top1_ci95"])
    return row


def _e2e(backends: list[BenchBackend], baseline: BenchBackend, evalset: EvalSet, spec: ModelSpec,
         config: BenchConfig, log: Log) -> list[dict[str, Any]]:
    """End-to-end passes.  Without TTA (the throughput the targets use) every backend makes ``e2e_repeats``
    passes, interleaved (pass 1 of every backend, then pass 2, …) so load changes on a shared machine hit all
    backends alike; images/s is the median pass.  Each TTA setting gets one pass (for its accuracy)."""
    rows = []
    for tta in config.tta:
        repeats = config.e2e_repeats if tta == 0 else 1
        runs: dict[str, FolderRun] = {}
        seconds: dict[str, list[float]] = {b.name: [] for b in backends}
        for _ in range(repeats):
            for backend in backends:
                run = backend.folder_run(evalset.paths, spec, batch_size=config.e2e_batch, tta=tta,
                                         decode_workers=config.decode_workers,
                                         loader_workers=config.num_loader_workers, seed=config.seed)
                runs.setdefault(backend.name, run)
                seconds[backend.name].append(run.seconds)
        reference = runs.get(baseline.name)
        for backend in backends:
            row = _e2e_row(backend, tta, runs[backend.name], seconds[backend.name], evalset, reference,
                           config.e2e_batch)
            rows.append(row)
            log(f"e2e      {backend.name:<28} tta {tta}: {row['images_per_s']:7.1f} img/s  top-1 {row['top1']:.4f} "
                f"{format_interval(row['top1_ci95'])}"
                + (f"  agree {row['agreement_top1']:.4f}  max|dp| {row['max_abs_dprob']:.2e}"
                   if "agreement_top1" in row else ""))
    return rows


def _memory(backends: list[BenchBackend], evalset: EvalSet, config: BenchConfig, log: Log) -> list[dict[str, Any]]:
    from clfkit.bench.memory import measure_memory

    count = min(len(evalset.paths), MEMORY_BATCHES * config.e2e_batch)
    picks = np.unique(np.linspace(0, len(evalset.paths) - 1, count).round().astype(int))
    paths = [str(evalset.paths[i]) for i in picks]
    rows = []
    for backend in backends:
        job = {**backend.memory_job(), "threads": config.num_threads, "batch_size": config.e2e_batch,
               "decode_workers": config.decode_workers, "loader_workers": config.num_loader_workers, "paths": paths}
        result = measure_memory(job)
        rows.append({"backend": backend.name, **result})
        log(f"memory   {backend.name:<28} " + (f"peak RSS {result['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in result
                                               else result.get("error", "")))
    return rows


def run_bench(config: BenchConfig, log: Log = lambda msg: None) -> dict[str, Any]:
    """Run every measurement of ``config`` and return the results, JSON-ready (see the module docstring)."""
    import torch

    started = time.perf_counter()
    load_start = load_average()
    threads = config.num_threads
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        spec, loaded = load_backends(config, log)
        backends = loaded.all
        evalset = eval_set(config.data, spec.class_names, max_images=config.max_images,
                           workers=config.decode_workers)
        for skipped in evalset.skipped:
            log(f"skipped unreadable image {printable(skipped['path'])}: {skipped['error']}")
        log(f"{len(evalset.paths)} evaluation images in {evalset.folder}; {threads} threads; backends: "
            + ", ".join(f"{b.name} ({b.provider})" for b in backends))
        batches = model_batches(config, len(evalset.paths))
        if loaded.pytorch_best is not None:
            log(f"compiling {loaded.pytorch_best.name} for batch sizes {', '.join(map(str, sorted(batches)))} "
                "(torch.compile: minutes on a large model when inductor's cache is cold; not in any timing)")
        loaded.prepare(batches, spec)  # compiles, before anything is timed
        for info in (b.describe() for b in backends):
            if info.get("compile_seconds") is not None:
                log(f"compile  {info['name']:<28} {info['compile_seconds']:.1f} s (in no timing)")
        views = _sample_views(evalset, spec, max(config.batch_sizes))
        latency = _latency(backends, views, spec, config, log)
        e2e = _e2e(backends, loaded.baseline, evalset, spec, config, log)
        for row in e2e:  # end to end as a share of the same backend's model-only throughput at the same batch
            row["e2e_over_model_only"] = e2e_over_model_only(latency, row)
        memory = _memory(backends, evalset, config, log) if config.memory else []
    finally:
        torch.set_num_threads(previous_threads)
    env = environment(config.command)
    env.update(threads=threads, torch_threads=threads, ort_intra_op_threads=threads,
               decode_workers=config.decode_workers, loader_workers=config.num_loader_workers,
               load_average_start=load_start, load_average_end=load_average(),
               providers={b.name: b.describe()["providers"] for b in backends})
    return to_jsonable({
        "schema": SCHEMA,
        **summarize(latency, e2e, e2e_batch_size=config.e2e_batch, baseline=loaded.baseline.name,
                    reference=loaded.reference.name, int8=loaded.int8.name if loaded.int8 else None,
                    pytorch_best=loaded.pytorch_best.name if loaded.pytorch_best else None,
                    openvino=loaded.openvino.name if loaded.openvino else None,
                    clfkit=[b.name for b in loaded.clfkit],
                    default=loaded.default.name if loaded.default else None),
        "default_backend": loaded.default.name if loaded.default else None,
        "peers": loaded.describe_peers(),
        "config": config.to_dict(),
        "environment": env,
        "spec": spec.to_dict(),
        "data": evalset.describe(spec),
        "tta_views": {str(t): tta_view_names(t) for t in config.tta if t > 1},
        "backends": [b.describe() for b in backends],
        "latency": latency,
        "e2e": e2e,
        "memory": memory,
        "seconds": time.perf_counter() - started,
    })
