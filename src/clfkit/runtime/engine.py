"""The Engine: a loaded model (any runtime :class:`~clfkit.runtime.backend.Backend`) with the spec that says
how to feed it.  No torch import.

The spec comes from the file's clfkit metadata (``--spec spec.json`` only for ONNX classifiers exported
elsewhere); :meth:`Engine.prepare` turns uint8 crops into the model's input format, :meth:`Engine.run` runs a
batch and checks the output against the spec, :meth:`Engine.predict` streams paths or images to predictions.
The backend says what really runs the model (``engine.provider``, ``engine.device``); every output records it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from clfkit.artifacts.onnx_meta import OnnxMetadata, parse_metadata
from clfkit.errors import ConfigError, ModelError, SpecError
from clfkit.runtime.backend import Backend
from clfkit.runtime.registry import open_backend
from clfkit.runtime.select import Choice, choose
from clfkit.spec import ModelSpec
from clfkit.vision.preprocess import normalize_batch

__all__ = ["Engine"]

Log = Callable[[str], None]


def _input_format_of(backend: Backend, source: str) -> str:
    """Guess a foreign model's input format from its input tensor: float (B, 3, H, W) or uint8 (B, H, W, 3)."""
    shape = list(backend.input_shape)

    def is_3(dim: object) -> bool:  # a symbolic/unknown dimension could be 3
        return not isinstance(dim, int) or dim == 3

    if len(shape) == 4 and backend.input_type == "float32" and is_3(shape[1]):
        return "float32_nchw"
    if len(shape) == 4 and backend.input_type == "uint8" and is_3(shape[3]):
        return "uint8_nhwc"
    raise ModelError(f"{source}: input {backend.input_name!r} is {backend.input_type} with shape {shape}; clfkit feeds float32 "
                     "(batch, 3, H, W) or uint8 (batch, H, W, 3) images")


def _load_spec(spec: ModelSpec | str | os.PathLike) -> ModelSpec:
    if isinstance(spec, ModelSpec):
        return spec
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--spec {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        return ModelSpec.from_json(text)
    except SpecError as exc:
        raise ConfigError(f"--spec {path}: {exc}") from None


def _resolve_metadata(backend: Backend, source: str, spec: ModelSpec | str | os.PathLike | None) -> OnnxMetadata:
    props = dict(backend.metadata())
    if spec is None:
        return parse_metadata(props, source=source)  # ModelError for a foreign model: "was not exported by …"
    given = _load_spec(spec)
    try:
        own = parse_metadata(props, source=source)
    except ModelError:
        return OnnxMetadata(spec=given, input_format=_input_format_of(backend, source),
                            precision="fp32", version="foreign")
    if own.spec != given:
        raise ConfigError(f"{source} carries its own spec (classes {list(own.spec.class_names)[:5]}…); "
                          "--spec is only for ONNX files without clfkit metadata. Drop --spec.")
    return own


class Engine:
    """An ONNX classifier with the spec that says how to feed it.  Build it with :meth:`from_onnx`."""

    def __init__(self, backend: Backend, meta: OnnxMetadata, path: Path, choice: Choice | None = None) -> None:
        self.backend = backend
        # Why this runtime, precision and file run the model (--runtime/--precision auto), for logs and reports.
        self.choice = choice or Choice(Path(path), backend.runtime, backend.precision, "given")
        self.spec: ModelSpec = meta.spec
        self.input_format: str = meta.input_format
        self.precision: str = meta.precision  # the file's precision (fp32, int8, fp16 variant)
        self.path = Path(path)
        self.input_name: str = backend.input_name
        in_shape, out_shape = list(backend.input_shape), list(backend.output_shape)
        # A foreign graph may have a fixed batch size (often 1): run() then splits bigger batches.
        self.fixed_batch: int | None = in_shape[0] if in_shape and isinstance(in_shape[0], int) and in_shape[0] > 0 \
            else None
        self._check_shapes(in_shape, out_shape)

    @property
    def provider(self) -> str:
        """What really runs the model (onnxruntime's execution provider, …): written into every output."""
        return self.backend.provider

    @property
    def device(self) -> str:
        return self.backend.device

    @property
    def runtime(self) -> str:
        return self.backend.runtime

    @property
    def precision_run(self) -> str:
        """The arithmetic the runtime really computes in (fp32, bf16, int8, …)."""
        return self.backend.precision

    @classmethod
    def from_onnx(cls, path: str | os.PathLike, device: str = "auto", threads: int | None = None, *,
                  spec: ModelSpec | str | os.PathLike | None = None, runtime: str = "auto",
                  precision: str = "auto", log: Log | None = None) -> "Engine":
        """Open ``path`` with ``runtime`` on ``device`` ("auto", "cpu" or "cuda") with ``threads`` threads.

        ``runtime`` and ``precision`` "auto" pick what was verified fastest on this machine (see
        :mod:`clfkit.runtime.select`; the engine may then run a verified variant beside ``path``, e.g.
        ``model.int8.onnx``: ``engine.path`` and ``engine.choice`` say so).  The spec comes from the file's
        clfkit metadata; ``spec`` (a ModelSpec or a spec.json path) is only for ONNX classifiers exported
        elsewhere.  ``log`` receives the one-line CPU-fallback notice of device "auto" and, for a model without
        a fitted temperature (spec version 1), :attr:`calibration_note`; without ``log`` that note is not said
        (a cluster's actors open the model once each: the driver says it once)."""
        path = Path(path)
        if not path.exists():
            raise ModelError(f"{path}: model not found; pass --model PATH.onnx (default: model.onnx here)")
        if path.is_dir():
            raise ModelError(f"{path}: is a folder; pass the .onnx file inside it with --model")
        if threads is not None and threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {threads}")
        choice = choose(path, runtime, device, precision)
        backend = open_backend(choice.path, choice.runtime, device, threads, log=log, precision=choice.precision)
        engine = cls(backend, _resolve_metadata(backend, str(choice.path), spec), choice.path, choice)
        if log is not None and engine.calibration_note:
            log(engine.calibration_note)
        return engine

    def _check_shapes(self, in_shape: Sequence, out_shape: Sequence) -> None:
        size = self.spec.input_size
        if self.input_format == "uint8_image":  # one RGB photo (1, H, W, 3) of any size: the graph resizes it
            fixed = ((0, 1), (3, 3))  # (axis, the only size it may have)
            if len(in_shape) != 4 or any(isinstance(in_shape[a], int) and in_shape[a] != n for a, n in fixed):
                raise ModelError(f"{self.path}: input {self.input_name!r} has shape {list(in_shape)}; a "
                                 "uint8_image model takes one RGB photo (1, H, W, 3)")
        else:
            spatial = in_shape[2:4] if self.input_format == "float32_nchw" else in_shape[1:3]
            if len(in_shape) != 4 or any(isinstance(d, int) and d != size for d in spatial):
                raise ModelError(f"{self.path}: input {self.input_name!r} has shape {list(in_shape)} but the spec "
                                 f"says {size}x{size} images in {self.input_format}")
        classes = out_shape[-1] if out_shape else None
        if isinstance(classes, int) and classes != self.spec.num_classes:
            raise ModelError(f"{self.path}: output {self.backend.output_name!r} has {classes} classes but the spec "
                             f"names {self.spec.num_classes}")

    @property
    def calibration_note(self) -> str | None:
        """The one line said when the model has no fitted temperature (a version-1 spec), else None."""
        if self.spec.calibrated:
            return None
        return (f"{self.path}: uncalibrated (spec version {self.spec.schema_version}, no temperature): "
                "probabilities are the raw softmax; train and export it again with this clfkit to calibrate them")

    def describe(self) -> str:
        """One line for logs and reports: what runs where."""
        spec = self.spec
        return (f"{self.path} ({spec.num_classes} classes, {spec.input_size} px, {self.input_format}, "
                f"{self.precision}) on {self.provider}")

    def describe_choice(self) -> str:
        """One line: which runtime and precision run, and why (the --runtime/--precision auto decision)."""
        return f"runtime {self.runtime}, {self.precision_run} on {self.device}: {self.choice.reason}"

    # --- arrays ------------------------------------------------------------------------------------------
    def prepare(self, views: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) crops → this model's input: normalized float32 (N, 3, H, W), or the pixels as they
        are for the ``uint8_nhwc`` (``--embed-preprocess``) variant, which normalizes inside the graph, and for
        the ``uint8_image`` one (``--embed-preprocess full``), which takes one whole photo (1, H, W, 3)."""
        if self.input_format in ("uint8_nhwc", "uint8_image"):
            return np.ascontiguousarray(views, dtype=np.uint8)
        return normalize_batch(views, self.spec)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Prepared input (see :meth:`prepare`) → float32 logits (N, num_classes)."""
        if len(batch) == 0:
            return np.zeros((0, self.spec.num_classes), np.float32)
        step = self.fixed_batch or len(batch)
        outs = [self.backend.run(batch[i:i + step]) for i in range(0, len(batch), step)]
        logits = np.asarray(np.concatenate(outs) if len(outs) > 1 else outs[0], dtype=np.float32)
        # A graph with a symbolic class dimension passes the check at load time; its real output is checked here.
        if logits.shape != (len(batch), self.spec.num_classes):
            raise ModelError(f"{self.path}: output {self.backend.output_name!r} has shape {list(logits.shape)} for "
                             f"{len(batch)} inputs, but the spec names {self.spec.num_classes} classes; this "
                             "model does not belong to these class names")
        return logits

    def predict(self, items: Iterable, *, tta: int = 0, batch_size: int = 32, topk: int = 5,
                workers: int | None = None, fast_decode: bool = False, keep_probs: bool = False,
                seed: int = 0, reject_below: float | None = None) -> Iterator:
        """Predictions for paths or images, in input order; see :func:`clfkit.runtime.pipeline.predict`
        (``reject_below`` P: "unknown" below top probability P)."""
        from clfkit.runtime.pipeline import predict

        return predict(self, items, tta=tta, batch_size=batch_size, topk=topk, workers=workers,
                       fast_decode=fast_decode, keep_probs=keep_probs, seed=seed, reject_below=reject_below)
