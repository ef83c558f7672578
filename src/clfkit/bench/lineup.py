"""The line-up of one benchmark run: which backends it compares, loaded from the checkpoint, the ONNX files and
the peers, with the rows every ratio is taken against named (:class:`Backends`), not found by position.

Order of the rows: the PyTorch ways (eager fp32 — the baseline —, autocast, torch.compile), then clfkit's runtime
rows (MODEL, --int8, --variant), then OpenVINO used directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from clfkit.bench.backends import BenchBackend, RuntimeBackend, folder_batches, runtime_backend
from clfkit.bench.peers import Peers, openvino_backends
from clfkit.errors import ConfigError
from clfkit.runtime.select import choose
from clfkit.spec import ModelSpec

if TYPE_CHECKING:
    from clfkit.bench.run import BenchConfig

__all__ = ["Backends", "load_backends", "model_batches"]

Log = Callable[[str], None]


@dataclass
class Backends:
    """The compared backends, with those the ratios are taken against named, not found by position."""

    all: list[BenchBackend]
    baseline: BenchBackend  # PyTorch eager fp32: the original pipeline's way
    reference: BenchBackend  # the plain fp32 export on the runtime, as clf-infer runs it
    peers: Peers
    int8: BenchBackend | None = None
    pytorch_best: BenchBackend | None = None  # torch.compile, the strongest PyTorch way
    openvino: BenchBackend | None = None  # OpenVINO used directly, with its own defaults

    @property
    def clfkit(self) -> list[BenchBackend]:
        return [b for b in self.all if isinstance(b, RuntimeBackend)]

    @property
    def default(self) -> BenchBackend | None:
        """The row clf-infer's default flags run."""
        return next((b for b in self.all if getattr(b, "default", False)), None)

    def prepare(self, batch_sizes: set[int], spec: ModelSpec) -> None:
        """Every backend's :meth:`~BenchBackend.prepare` (torch.compile compiles here); a peer that fails is
        dropped or is an error, by :class:`~clfkit.bench.peers.Peers`' rule."""
        for backend in list(self.all):
            peer = getattr(backend, "peer", None)
            if peer is None:
                backend.prepare(sorted(batch_sizes), spec)
            elif self.peers.attempt(peer, lambda b=backend: b.prepare(sorted(batch_sizes), spec) or True) is None:
                self.all.remove(backend)
                self.pytorch_best = None if backend is self.pytorch_best else self.pytorch_best
                self.openvino = None if backend is self.openvino else self.openvino

    def describe_peers(self) -> dict[str, Any]:
        return {"asked": "all" if self.peers.asked is None else list(self.peers.asked),
                "ran": [b.name for b in self.all if getattr(b, "peer", None)], "skipped": self.peers.skipped,
                "pytorch_best": self.pytorch_best.name if self.pytorch_best else None,
                "openvino": self.openvino.name if self.openvino else None}


def model_batches(config: BenchConfig, images: int) -> set[int]:
    """Every batch size a model is called with in this run: the model-only ones and, end to end, full and last
    partial batches times the TTA views."""
    sizes = set(config.batch_sizes)
    for tta in config.tta:
        sizes |= folder_batches(images, config.e2e_batch, max(1, tta))
    return sizes


def load_backends(config: BenchConfig, log: Log) -> tuple[ModelSpec, Backends]:
    import torch

    from clfkit.bench.baseline import torch_backend
    from clfkit.models.classifier import load_checkpoint

    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: PyTorch sees no CUDA device here; use --device cpu")
    loaded = load_checkpoint(config.checkpoint)
    spec = loaded.spec
    low = "fp16" if config.device == "cuda" else "bf16"
    baseline = torch_backend(loaded.model, config.checkpoint, "fp32", config.device)
    backends: list[BenchBackend] = [baseline]
    if config.autocast:
        backends.append(torch_backend(loaded.model, config.checkpoint, low, config.device))
    peers = Peers(config.peers, config.device, log)
    wanted = peers.wanted()
    best = None
    if "torch-compile" in wanted:  # beside the other PyTorch ways; it compiles later, in Backends.prepare
        from clfkit.bench.compiled import compiled_backend

        best = peers.attempt("torch-compile", lambda: compiled_backend(loaded.model, config.checkpoint,
                                                                       config.device))
        backends += [best] if best is not None else []
    taken: set[str] = {b.name for b in backends}
    opened: dict[Path, RuntimeBackend] = {}
    for path in (config.onnx, config.int8, *config.variants):
        if path is None:
            continue
        backend = runtime_backend(path, config.device, config.num_threads, log, taken, runtime=config.runtime)
        if backend.engine.spec != spec:
            raise ConfigError(f"{path} was not exported from {config.checkpoint}: its spec (classes, sizes or "
                              "normalization) differs; export it again with clf-export")
        backends.append(backend)
        opened.setdefault(path, backend)
    # What clf-infer runs with its default flags on MODEL (--runtime/--precision auto) is marked, so the headline
    # ratios are those of the default path whichever runtime, precision or variant file that is; a row of its
    # own only when no row above already runs exactly that.
    choice = choose(config.onnx, device=config.device)
    same = [b for b in opened.values() if b.engine.path == choice.path and b.engine.runtime == choice.runtime
            and choice.precision in ("auto", b.engine.precision_run)]
    if same:
        same[0].default = True
    else:
        backends.append(runtime_backend(config.onnx, config.device, config.num_threads, log, taken, default=True))
    reference, int8 = opened[config.onnx], opened.get(config.int8) if config.int8 is not None else None
    if int8 is not None and int8.precision != "int8":
        raise ConfigError(f"--int8 {config.int8} is a {int8.precision} model; pass the .int8.onnx file "
                          "clf-export --int8 wrote")
    if reference.precision != "fp32" or reference.input_format != "float32_nchw":
        raise ConfigError(f"MODEL {config.onnx} must be the plain fp32 export (it is {reference.precision}, "
                          f"{reference.input_format}); pass variants with --int8 / --variant")
    openvino: list[BenchBackend] = []
    if "openvino" in wanted:  # after the runtime rows: MODEL has been opened, and so checked, by clfkit already
        openvino = peers.attempt("openvino", lambda: openvino_backends(config.onnx, spec, config.num_threads,
                                                                       taken)) or []
    return spec, Backends(backends + openvino, baseline=baseline, reference=reference, peers=peers, int8=int8,
                          pytorch_best=best, openvino=openvino[0] if openvino else None)
