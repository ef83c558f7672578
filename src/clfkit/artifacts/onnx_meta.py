"""The ONNX artifact's metadata: its keys, writing them on export, reading them back.  No torch import.

Every ``.onnx`` file clfkit writes carries, in ``ModelProto.metadata_props`` (string → string), the ModelSpec
JSON, a plain ``class_names`` list, the input format, the precision and the clfkit version.  Any ONNX runtime
can read them (onnxruntime: ``custom_metadata_map``), so the file alone is enough to preprocess a photo and
name the predicted class.

=========================  ==================================================================================
key                        value
=========================  ==================================================================================
``clfkit.spec``            the ModelSpec as JSON (``schema_version`` inside): class names, sizes, mean/std …,
                           and (version 2) the ``temperature``: probabilities are softmax(logits / temperature)
``class_names``            a plain JSON list of class names, index = logit position (for other tools)
``clfkit.input_format``    ``float32_nchw`` (normalized float input), ``uint8_nhwc`` (resized+cropped pixels;
                           /255, mean/std and the layout change happen inside the graph) or ``uint8_image``
                           (one decoded RGB photo (1, H, W, 3) of any size; resize and crop happen inside too)
``clfkit.precision``       ``fp32``, ``fp16`` or ``int8`` (inputs and outputs are float32 in every variant)
``clfkit.version``         the clfkit version that wrote the file
=========================  ==================================================================================
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import onnx

from clfkit.errors import ClfError, ModelError, SpecError, first_line
from clfkit.io import atomic_path
from clfkit.spec import ModelSpec
from clfkit.version import __version__

__all__ = ["META_SPEC", "META_CLASS_NAMES", "META_INPUT_FORMAT", "META_PRECISION", "META_VERSION", "INPUT_FORMATS",
           "INPUT_NAME", "OUTPUT_NAME", "PRECISIONS", "OnnxMetadata", "metadata_dict", "parse_metadata",
           "read_props", "read_metadata", "save_onnx"]

META_SPEC = "clfkit.spec"
META_CLASS_NAMES = "class_names"
META_INPUT_FORMAT = "clfkit.input_format"
META_PRECISION = "clfkit.precision"
META_VERSION = "clfkit.version"
INPUT_FORMATS = ("float32_nchw", "uint8_nhwc", "uint8_image")
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
PRECISIONS = ("fp32", "fp16", "int8")
PRODUCER_NAME = "clfkit"


@dataclass(frozen=True)
class OnnxMetadata:
    spec: ModelSpec
    input_format: str  # "float32_nchw", "uint8_nhwc" or "uint8_image" (INPUT_FORMATS)
    precision: str  # "fp32", "fp16" or "int8"
    version: str  # clfkit version that wrote the file


def metadata_dict(spec: ModelSpec, input_format: str, precision: str) -> dict[str, str]:
    """The metadata_props clfkit writes, as plain strings."""
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return {
        META_SPEC: spec.to_json(),
        META_CLASS_NAMES: json.dumps(list(spec.class_names), ensure_ascii=False),
        META_INPUT_FORMAT: input_format,
        META_PRECISION: precision,
        META_VERSION: __version__,
    }


def parse_metadata(props: Mapping[str, str], source: str = "model") -> OnnxMetadata:
    """Metadata from a key → value mapping (``onnx`` metadata_props or onnxruntime's custom_metadata_map)."""
    if META_SPEC not in props:
        raise ModelError(f"{source}: no `{META_SPEC}` metadata; this ONNX file was not exported by clf-export "
                         "(for a classifier exported elsewhere, give clf-infer its preprocessing with --spec "
                         "spec.json)")
    try:
        spec = ModelSpec.from_json(props[META_SPEC])
    except SpecError as exc:
        raise ModelError(f"{source}: invalid `{META_SPEC}` metadata: {exc}. Export the model again with "
                         "clf-export, or give clf-infer the run's spec with --spec spec.json") from None
    _check_class_names(props, spec, source)
    input_format = props.get(META_INPUT_FORMAT, "float32_nchw")
    if input_format not in INPUT_FORMATS:
        raise ModelError(f"{source}: unknown `{META_INPUT_FORMAT}` {input_format!r}; this clfkit reads "
                         f"{', '.join(INPUT_FORMATS)} (upgrade clfkit?)")
    precision = props.get(META_PRECISION, "fp32")
    if precision not in PRECISIONS:
        raise ModelError(f"{source}: unknown `{META_PRECISION}` {precision!r}; expected {', '.join(PRECISIONS)}")
    return OnnxMetadata(spec=spec, input_format=input_format, precision=precision,
                        version=props.get(META_VERSION, "unknown"))


def _check_class_names(props: Mapping[str, str], spec: ModelSpec, source: str) -> None:
    """The plain ``class_names`` list (for tools that do not read the spec) must be the spec's own names: a file
    where they differ was edited or damaged, and other tools would label its outputs differently."""
    text = props.get(META_CLASS_NAMES)
    if text is None:
        return
    try:
        names = json.loads(text)
    except json.JSONDecodeError:
        names = None
    if names != list(spec.class_names):
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise ModelError(f"{source}: `{META_CLASS_NAMES}` metadata {shown!r} is not the spec's class list "
                         f"({len(spec.class_names)} names: {', '.join(spec.class_names[:5])}"
                         f"{', ...' if len(spec.class_names) > 5 else ''}); the file was edited or damaged: "
                         "export the model again with clf-export")


def read_props(path: Path | str) -> dict[str, str]:
    """An ONNX file's ``metadata_props`` as a dict, without loading its weights' external data."""
    path = Path(path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several unrelated types for a non-ONNX file
        raise ModelError(f"{path}: not an ONNX model ({type(exc).__name__}: {str(exc)[:200]})") from None
    return {p.key: p.value for p in proto.metadata_props}


def read_metadata(path: Path | str) -> OnnxMetadata:
    """Read the clfkit metadata of an ONNX file without loading its weights."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: ONNX model not found")
    return parse_metadata(read_props(path), source=str(path))


def _check_io(proto: onnx.ModelProto, path: Path) -> None:
    inputs = [i.name for i in proto.graph.input]
    outputs = [o.name for o in proto.graph.output]
    if inputs != [INPUT_NAME] or outputs != [OUTPUT_NAME]:
        raise ModelError(f"{path}: graph has inputs {inputs} and outputs {outputs}; expected "
                         f"[{INPUT_NAME!r}] and [{OUTPUT_NAME!r}]")


def save_onnx(proto: onnx.ModelProto, path: Path, spec: ModelSpec, *, input_format: str, precision: str) -> Path:
    """Check, shape-infer, stamp metadata and write ``proto`` to ``path`` atomically (temp file + rename).

    The check runs before anything is written, so an invalid graph never reaches ``path``; an interrupted
    write leaves the previous file (or nothing) there.
    """
    path = Path(path)
    _check_io(proto, path)
    try:
        onnx.checker.check_model(proto)
        proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ModelError(f"{path}: the exported graph is not valid ONNX: {first_line(exc)}") from None
    del proto.metadata_props[:]
    for key, value in metadata_dict(spec, input_format, precision).items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = PRODUCER_NAME
    proto.producer_version = __version__
    try:
        with atomic_path(path) as tmp:
            onnx.save_model(proto, str(tmp))
    except PermissionError:
        raise ClfError(f"{path}: permission denied; choose an output path in a folder you can write to") from None
    except OSError as exc:
        raise ClfError(f"{path}: cannot write the ONNX file ({exc.strerror or exc}); choose another output "
                       "path") from None
    return path
