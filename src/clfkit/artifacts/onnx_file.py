"""Checks on an ONNX file before any runtime opens it.  No torch import.

An ONNX tensor can keep its data in another file ("external data", for models over 2 GB).  The file is named
by a path inside the model, so a downloaded model could name ../../secret, /etc/passwd or a symbolic link and
have its bytes read as weights.  onnxruntime 1.31 refuses such paths itself, with a message naming C++
internals and only for the versions that check; clfkit refuses them first, for every runtime it drives.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

import onnx

from clfkit.errors import ModelError, first_line

__all__ = ["check_model_file"]

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
