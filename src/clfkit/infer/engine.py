"""The onnxruntime session: providers chosen explicitly, the spec read from the file, arrays in, logits out.

No torch import.  The device rule is "never silently on the wrong device":

* ``cpu``  — CPUExecutionProvider only.
* ``cuda`` — ``onnxruntime.preload_dlls()`` (finds the CUDA 13 / cuDNN libraries of the ``nvidia-*`` wheels),
  then CUDAExecutionProvider with CPU behind it for the few ops CUDA lacks.  onnxruntime does not raise when
  the CUDA provider fails to load: it logs and quietly runs on CPU.  So after the session is created,
  ``session.get_providers()`` is checked and a :class:`ConfigError` names the reason when CUDA is not active.
* ``auto`` — CUDA when it really works (driver present, provider active, one warm-up run succeeds), else CPU
  with one line saying why.

``Engine.provider`` is the provider that actually runs the model; the command prints it and writes it into
every output.  TensorRT is never selected implicitly (its engines take minutes to build on first run).
"""
from __future__ import annotations

import ctypes
import logging
import os
import re
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from clfkit.errors import ConfigError, ModelError, SpecError, first_line
from clfkit.export.metadata import OnnxMetadata, parse_metadata
from clfkit.preprocess import normalize_batch
from clfkit.spec import ModelSpec

__all__ = ["DEVICES", "CPU", "CUDA", "Engine", "check_model_file", "create_session"]

DEVICES = ("auto", "cpu", "cuda")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"

_log = logging.getLogger(__name__)
Log = Callable[[str], None]


def _cuda_driver_missing() -> str | None:
    """Why CUDA cannot work on this machine, or None when a driver library loads (cheap, no session)."""
    if sys.platform == "darwin":
        return "CUDA does not exist on macOS"
    name = "nvcuda.dll" if os.name == "nt" else "libcuda.so.1"
    try:
        ctypes.CDLL(name)
    except OSError:
        return f"no NVIDIA driver ({name} not found)"
    return None


def _session_options(threads: int | None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads or 0)  # 0 = onnxruntime's default (physical cores)
    options.inter_op_num_threads = 1  # a classifier is one sequential chain; parallel branches gain nothing
    # Idle intra-op threads spin by default, burning the cores the decode threads need while the next batch
    # is being prepared; with decode and inference overlapped, blocking threads measured faster end to end.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


# --- the file, before onnxruntime reads it ---------------------------------------------------------------
# An ONNX tensor can keep its data in another file ("external data", for models over 2 GB).  The file is named
# by a path inside the model, so a downloaded model could name ../../secret, /etc/passwd or a symbolic link
# and have its bytes read as weights.  onnxruntime 1.31 refuses such paths itself, with a message naming C++
# internals and only for the versions that check; clfkit refuses them first, for every onnxruntime.
_CHUNK = 1 << 20
_LOCATION = b"location"  # the external_data key every reference must spell out, byte for byte


def _mentions_external_data(path: Path) -> bool:
    """True when the key ``location`` occurs anywhere in the file: a scan without parsing or holding the model
    in memory, and with no false negatives, since protobuf stores strings as their raw bytes."""
    tail = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            window = tail + chunk
            if _LOCATION in window:
                return True
            tail = window[-(len(_LOCATION) - 1):]
    return False


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        yield from _node_tensors(node)


def _node_tensors(node: onnx.NodeProto) -> Iterator[onnx.TensorProto]:
    """Tensors held by a node's attributes (Constant values, subgraphs of If/Loop/Scan)."""
    for attr in node.attribute:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        for sparse in (*([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []), *attr.sparse_tensors):
            yield from (sparse.values, sparse.indices)
        for graph in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
            yield from _graph_tensors(graph)


def _all_tensors(proto: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    yield from _graph_tensors(proto.graph)
    for function in proto.functions:
        for node in function.node:
            yield from _node_tensors(node)


def _external_data_problem(folder: Path, location: str) -> str | None:
    """What is wrong with reading external data from ``location`` (relative to the model's folder), or None."""
    outside = "; an ONNX model may only read data files kept in its own folder"
    if not location or "\0" in location:
        return f"{location!r}, which is not a file name{outside}"
    if os.path.isabs(location) or location.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", location):
        return f"the absolute path {location!r}{outside}"
    root, target = os.path.realpath(folder), os.path.realpath(folder / location)
    if os.path.commonpath([root, target]) != root:
        via = "a path" if ".." in re.split(r"[/\\]", location) else "a symbolic link"
        return f"{location!r}, {via} that leads outside the model's folder (to {target}){outside}"
    if not os.path.isfile(target):
        return (f"{location!r}, which is missing from {folder}; copy the model's data files next to it"
                if not os.path.exists(target) else f"{location!r}, which is not a regular file")
    return None


def check_model_file(path: Path) -> None:
    """Refuse, before onnxruntime opens ``path``, a file that is empty, a PyTorch checkpoint, or an ONNX model
    whose external data lies outside its own folder (see above).  Raises :class:`ModelError`."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
        if not head:
            raise ModelError(f"{path}: empty file (0 bytes), not an ONNX model; export one with clf-export")
        if head == b"PK\x03\x04":
            raise ModelError(f"{path}: is a zip archive (a PyTorch .pt checkpoint?), not an ONNX model; "
                             "convert a clf-train model.pt with clf-export")
        if not _mentions_external_data(path):
            return
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model file ({exc.strerror or exc})") from None
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several unrelated types for a non-ONNX file
        # Fail closed: external data that cannot be checked is not handed to onnxruntime either.
        raise ModelError(f"{path}: not a readable ONNX model ({first_line(exc, 200)}); pass a .onnx file "
                         "written by clf-export") from None
    for tensor in _all_tensors(proto):
        for entry in tensor.external_data:
            problem = _external_data_problem(path.parent, entry.value) if entry.key == "location" else None
            if problem:
                raise ModelError(f"{path}: refused: tensor {tensor.name!r} reads its data from {problem}")


def _ort_reason(exc: BaseException) -> str:
    """onnxruntime's message without its prefix, the model path again and C++ source positions."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"^Load model from .*? failed:\s*", "", text)
    text = re.sub(r"\S+\.(?:cc|cpp|h):\d+ (?:[\w:~<>]+::[\w~<>]+\([^)]*\) )?", "", text)
    return text.strip()[:300] or type(exc).__name__


def create_session(path: Path, device: str = "auto", threads: int | None = None,
                   log: Log | None = None) -> tuple[ort.InferenceSession, str]:
    """An InferenceSession on ``device`` and the provider that really runs it (see the module docstring)."""
    log = log or _log.warning
    if device not in DEVICES:
        raise ConfigError(f"--device {device!r} is not one of {', '.join(DEVICES)}")
    check_model_file(path)
    options = _session_options(threads)
    if device == "cpu":
        return _open(path, options, [CPU]), CPU

    available = ort.get_available_providers()
    if CUDA not in available:
        reason = (f"this onnxruntime ({ort.__version__}) has no CUDA provider (it offers "
                  f"{', '.join(available)}); install `onnxruntime-gpu` instead of `onnxruntime`")
    else:
        reason = _cuda_driver_missing()
    if reason is None:
        try:  # CUDA 13 + cuDNN from the nvidia-* wheels (torch installs the same ones)
            ort.preload_dlls()
        except Exception as exc:  # noqa: BLE001 - a failed preload shows up as an inactive provider below
            log(f"onnxruntime.preload_dlls() failed ({first_line(exc)}); relying on the system library path")
        session = _open(path, options, [CUDA, CPU])
        active = session.get_providers()
        if active and active[0] == CUDA:
            if device == "cuda":
                return session, CUDA
            failure = _warm_up(session)
            if failure is None:
                return session, CUDA
            reason = f"a test run on CUDA failed ({failure})"
        else:
            reason = (f"onnxruntime could not start the CUDA provider (active: {', '.join(active)}); its log "
                      "above names the missing library (CUDA 13 and cuDNN 9 are needed)")
    if device == "cuda":
        raise ConfigError(f"--device cuda: CUDA is not available: {reason}. Use --device cpu (or auto to "
                          "fall back to the CPU with a message).")
    log(f"device auto: CUDA not usable ({reason}); running on {CPU}")
    return _open(path, options, [CPU]), CPU


def _open(path: Path, options: ort.SessionOptions, providers: list[str]) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own pybind types (InvalidProtobuf, Fail, …)
        raise ModelError(f"{path}: onnxruntime cannot load this file as an ONNX model ({_ort_reason(exc)}); "
                         "pass a .onnx file written by clf-export") from None


def _warm_up(session: ort.InferenceSession) -> str | None:
    """Run one all-zero input; None when it works, else the error's first line."""
    inp = session.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    dtype = np.uint8 if "uint8" in inp.type else np.float32
    try:
        session.run(None, {inp.name: np.zeros(shape, dtype)})
    except Exception as exc:  # noqa: BLE001 - any failure means "do not use CUDA"
        return first_line(exc)
    return None


def _input_format_of(session: ort.InferenceSession, source: str) -> str:
    """Guess a foreign model's input format from its input tensor: float (B, 3, H, W) or uint8 (B, H, W, 3)."""
    inp = session.get_inputs()[0]
    shape = list(inp.shape)

    def is_3(dim: object) -> bool:  # a symbolic/unknown dimension could be 3
        return not isinstance(dim, int) or dim == 3

    if len(shape) == 4 and inp.type == "tensor(float)" and is_3(shape[1]):
        return "float32_nchw"
    if len(shape) == 4 and inp.type == "tensor(uint8)" and is_3(shape[3]):
        return "uint8_nhwc"
    raise ModelError(f"{source}: input {inp.name!r} is {inp.type} with shape {shape}; clfkit feeds float32 "
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


def _resolve_metadata(session: ort.InferenceSession, source: str,
                      spec: ModelSpec | str | os.PathLike | None) -> OnnxMetadata:
    props = dict(session.get_modelmeta().custom_metadata_map)
    if spec is None:
        return parse_metadata(props, source=source)  # ModelError for a foreign model: "was not exported by …"
    given = _load_spec(spec)
    try:
        own = parse_metadata(props, source=source)
    except ModelError:
        return OnnxMetadata(spec=given, input_format=_input_format_of(session, source),
                            precision="fp32", version="foreign")
    if own.spec != given:
        raise ConfigError(f"{source} carries its own spec (classes {list(own.spec.class_names)[:5]}…); "
                          "--spec is only for ONNX files without clfkit metadata. Drop --spec.")
    return own


class Engine:
    """An ONNX classifier with the spec that says how to feed it.  Build it with :meth:`from_onnx`."""

    def __init__(self, session: ort.InferenceSession, meta: OnnxMetadata, provider: str, path: Path) -> None:
        self.session = session
        self.spec: ModelSpec = meta.spec
        self.input_format: str = meta.input_format
        self.precision: str = meta.precision
        self.provider = provider
        self.path = Path(path)
        inp, out = session.get_inputs()[0], session.get_outputs()[0]
        self.input_name: str = inp.name
        self.output_name: str = out.name
        # A foreign graph may have a fixed batch size (often 1): run() then splits bigger batches.
        self.fixed_batch: int | None = inp.shape[0] if isinstance(inp.shape[0], int) and inp.shape[0] > 0 else None
        self._check_shapes(inp.shape, out.shape)

    @classmethod
    def from_onnx(cls, path: str | os.PathLike, device: str = "auto", threads: int | None = None, *,
                  spec: ModelSpec | str | os.PathLike | None = None, log: Log | None = None) -> "Engine":
        """Open ``path`` on ``device`` ("auto", "cpu" or "cuda") with ``threads`` intra-op threads.

        The spec comes from the file's clfkit metadata; ``spec`` (a ModelSpec or a spec.json path) is only for
        ONNX classifiers exported elsewhere.  ``log`` receives the one-line CPU-fallback notice of "auto"."""
        path = Path(path)
        if not path.exists():
            raise ModelError(f"{path}: model not found; pass --model PATH.onnx (default: model.onnx here)")
        if path.is_dir():
            raise ModelError(f"{path}: is a folder; pass the .onnx file inside it with --model")
        if threads is not None and threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {threads}")
        session, provider = create_session(path, device, threads, log=log)
        meta = _resolve_metadata(session, str(path), spec)
        return cls(session, meta, provider, path)

    def _check_shapes(self, in_shape: Sequence, out_shape: Sequence) -> None:
        size = self.spec.input_size
        spatial = in_shape[2:4] if self.input_format == "float32_nchw" else in_shape[1:3]
        if len(in_shape) != 4 or any(isinstance(d, int) and d != size for d in spatial):
            raise ModelError(f"{self.path}: input {self.input_name!r} has shape {list(in_shape)} but the spec "
                             f"says {size}x{size} images in {self.input_format}")
        classes = out_shape[-1] if out_shape else None
        if isinstance(classes, int) and classes != self.spec.num_classes:
            raise ModelError(f"{self.path}: output {self.output_name!r} has {classes} classes but the spec "
                             f"names {self.spec.num_classes}")

    @property
    def device(self) -> str:
        return "cuda" if self.provider == CUDA else "cpu"

    def describe(self) -> str:
        """One line for logs and reports: what runs where."""
        spec = self.spec
        return (f"{self.path} ({spec.num_classes} classes, {spec.input_size} px, {self.input_format}, "
                f"{self.precision}) on {self.provider}")

    # --- arrays ------------------------------------------------------------------------------------------
    def prepare(self, views: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) crops → this model's input: normalized float32 (N, 3, H, W), or the pixels as they
        are for the ``uint8_nhwc`` (``--embed-preprocess``) variant, which normalizes inside the graph."""
        if self.input_format == "uint8_nhwc":
            return np.ascontiguousarray(views, dtype=np.uint8)
        return normalize_batch(views, self.spec)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Prepared input (see :meth:`prepare`) → float32 logits (N, num_classes)."""
        if len(batch) == 0:
            return np.zeros((0, self.spec.num_classes), np.float32)
        step = self.fixed_batch or len(batch)
        try:
            outs = [self.session.run([self.output_name], {self.input_name: batch[i:i + step]})[0]
                    for i in range(0, len(batch), step)]
        except Exception as exc:  # noqa: BLE001 - onnxruntime's pybind errors (out of memory, bad shapes, …)
            raise ModelError(f"{self.path}: onnxruntime failed on a batch of {len(batch)} rows on {self.provider} "
                             f"({first_line(exc)}); a smaller --batch-size or --tta needs less memory") from None
        logits = np.asarray(np.concatenate(outs) if len(outs) > 1 else outs[0], dtype=np.float32)
        # A graph with a symbolic class dimension passes the check at load time; its real output is checked here.
        if logits.shape != (len(batch), self.spec.num_classes):
            raise ModelError(f"{self.path}: output {self.output_name!r} has shape {list(logits.shape)} for "
                             f"{len(batch)} inputs, but the spec names {self.spec.num_classes} classes; this "
                             "model does not belong to these class names")
        return logits

    def predict(self, items: Iterable, *, tta: int = 0, batch_size: int = 32, topk: int = 5,
                workers: int | None = None, fast_decode: bool = False, keep_probs: bool = False,
                seed: int = 0) -> Iterator:
        """Predictions for paths or images, in input order; see :func:`clfkit.infer.pipeline.predict`."""
        from clfkit.infer.pipeline import predict

        return predict(self, items, tta=tta, batch_size=batch_size, topk=topk, workers=workers,
                       fast_decode=fast_decode, keep_probs=keep_probs, seed=seed)
