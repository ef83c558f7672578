"""Response shapes and request bodies for the OpenAPI document (/openapi.json, /docs).

The handlers build plain dicts and return them as JSON; these models only describe them, so a request pays no
validation cost for documentation.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["ClassProb", "PredictionOut", "FileResult", "BatchOut", "ErrorOut", "HealthOut", "ModelOut",
           "PREDICT_BODY", "BATCH_BODY", "ERRORS"]


class ClassProb(BaseModel):
    label: str = Field(description="Class name")
    prob: float = Field(description="Probability (softmax, averaged over the TTA views), 6 decimals")


class PredictionOut(BaseModel):
    pred: str = Field(description='The most likely class, or "unknown" when its probability is below '
                                  "--reject-below (GET /model: reject_below)")
    index: int = Field(description="The most likely class's position in the model's class list (also when pred "
                                   'is "unknown")')
    prob: float = Field(description='The most likely class\'s probability (also when pred is "unknown")')
    topk: list[ClassProb] = Field(description="The most likely classes, best first")
    tta: int = Field(description="TTA views averaged (0 = the center view only)")
    provider: str = Field(description="What ran the model: onnxruntime's execution provider, or OpenVINO and its precision")


class FileResult(BaseModel):
    file: str = Field(description="The multipart file name")
    pred: str | None = None
    index: int | None = None
    prob: float | None = None
    topk: list[ClassProb] | None = None
    tta: int | None = None
    provider: str | None = None
    error: str | None = Field(None, description="Why this file got no prediction (the others still did)")


class BatchOut(BaseModel):
    results: list[FileResult] = Field(description="One entry per file, in request order")


class ErrorOut(BaseModel):
    error: str = Field(description="What was wrong and what to send instead")


class HealthOut(BaseModel):
    status: str
    model_loaded: bool
    queued: int = Field(description="Images waiting for the next batch")
    running: int = Field(description="Images in the batch the model is running now")
    batching: dict[str, Any] = Field(description="batches, images, mean_batch_size, largest_batch, "
                                                 "batch_sizes (size → count) since the server started")


class ModelOut(BaseModel):
    name: str
    classes: list[str]
    num_classes: int
    spec: dict[str, Any] = Field(description="The preprocessing spec stored in the ONNX file")
    input_format: str
    precision: str
    provider: str
    device: str
    runtime: str = Field(description="What runs the model: onnxruntime or openvino")
    precision_run: str = Field(description="The arithmetic the runtime really computes in (fp32, bf16, int8, …)")
    chosen_by: str = Field(description="Why this runtime, precision and file (--runtime/--precision auto)")
    max_batch: int
    max_wait_ms: float
    tta: int
    tta_views: list[str]
    topk: int
    reject_below: float | None = Field(description='Predictions below this top probability say "unknown" '
                                                   "(null: never)")
    max_upload_mb: float
    decode_workers: int


_BINARY = {"type": "string", "format": "binary"}
PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {**_BINARY, "description": "One image"}}}},
    "image/*": {"schema": _BINARY},
    "application/octet-stream": {"schema": _BINARY},
}}}
BATCH_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["files"], "properties": {
        "files": {"type": "array", "items": _BINARY, "description": "Images: repeat the field for each"}}}},
}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Not a decodable image (empty, truncated, unknown format, over the "
                                            "120-megapixel decompression-bomb limit) or no image field"},
    413: {"model": ErrorOut, "description": "Upload over --max-upload-mb"},
    415: {"model": ErrorOut, "description": "A Content-Type the endpoint does not take"},
    503: {"model": ErrorOut, "description": "The server is shutting down"},
}
