"""PyTorch Classifier → ONNX graph with a dynamic batch and clfkit metadata.

The graph: input ``images`` float32 (batch, 3, H, W) normalized as the spec says (or, with
``embed_preprocess="pixels"``, uint8 (batch, H, W, 3) pixels already resized and cropped; with ``"full"``, one
decoded photo uint8 (1, H, W, 3) of any size, resized and cropped inside the graph: :mod:`.full_preprocess`);
output ``logits`` (batch, num_classes).  Exported with the TorchScript exporter (``dynamo=False``), which gives a
plain opset-17 graph that every ONNX runtime runs.  H and W are fixed by the spec, which lets run-time "SAME"
padding become constants folded into the Convs (faster fp32, and the reason int8 is fast:
benchmarks/results/design-choices.md).
"""
from __future__ import annotations

import copy
import io
import math
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn
from torch.nn import functional as F

from clfkit.artifacts.onnx_meta import INPUT_NAME, OUTPUT_NAME, save_onnx
from clfkit.errors import ClfError, ConfigError
from clfkit.export.full_preprocess import FULL_MIN_OPSET, check_full_spec, prepend_preprocess
from clfkit.export.simplify import simplify
from clfkit.spec import ModelSpec

__all__ = ["DEFAULT_OPSET", "EMBED_PREPROCESS", "EmbeddedPreprocess", "embed_mode", "StaticSamePadConv",
           "export_model", "static_same_padding", "to_onnx_proto"]

DEFAULT_OPSET = 17
MIN_OPSET, MAX_OPSET = 13, 20  # the TorchScript exporter's range that every target runtime we know reads
# --embed-preprocess value → the file's clfkit.input_format ("pixels": resized+cropped uint8, "full": the photo)
EMBED_PREPROCESS = {"pixels": "uint8_nhwc", "full": "uint8_image"}


def embed_mode(embed_preprocess: bool | str | None) -> str | None:
    """None (float32 input), "pixels" or "full"; ``True`` is "pixels" (the flag before it took a value)."""
    if embed_preprocess is None or embed_preprocess is False:
        return None
    if embed_preprocess is True:
        return "pixels"
    if embed_preprocess not in EMBED_PREPROCESS:
        raise ConfigError(f"--embed-preprocess {embed_preprocess!r} is not one of {', '.join(EMBED_PREPROCESS)}")
    return str(embed_preprocess)


class EmbeddedPreprocess(nn.Module):
    """uint8 (B, H, W, 3) resized+cropped pixels → the model's normalized float input, inside the graph.

    Same arithmetic as :func:`clfkit.preprocess.normalize`: x / 255, then (x - mean) / std, in float32.
    """

    def __init__(self, model: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W) in [0, 1]
        return self.model((x - self.mean) / self.std)


class StaticSamePadConv(nn.Module):
    """A Conv2d with TF "SAME" padding fixed for one input size (constant Pad, or the conv's own padding).

    timm's ``Conv2dSame`` (the TF-ported EfficientNet-Lite weights use it for stride-2 convs) computes its
    padding from the input shape at run time.  Traced, that becomes Shape → Slice → arithmetic → Pad per conv:
    runtime work that also stops onnxruntime from folding the Pad into the Conv.  The spec fixes the input
    size, so the padding is a constant.
    """

    def __init__(self, conv: nn.Conv2d, pad: tuple[int, int, int, int]) -> None:  # (left, right, top, bottom)
        super().__init__()
        self.conv = conv
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        if self.pad[0] == self.pad[1] and self.pad[2] == self.pad[3]:  # symmetric: the conv pads by itself
            return F.conv2d(x, c.weight, c.bias, c.stride, (self.pad[2], self.pad[0]), c.dilation, c.groups)
        return F.conv2d(F.pad(x, self.pad), c.weight, c.bias, c.stride, 0, c.dilation, c.groups)


def _same_pad(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF "SAME": output = ceil(size / stride); the extra pixel of an odd total goes at the end."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def static_same_padding(model: nn.Module, input_size: int) -> nn.Module:
    """A copy of ``model`` whose run-time-padded convs (timm ``Conv2dSame``) use constant padding.

    Returns ``model`` itself when it has none.  The copy computes exactly the same function at
    ``input_size`` x ``input_size`` (export verification compares it against the original).
    """
    if not any(type(m).__name__ == "Conv2dSame" and isinstance(m, nn.Conv2d) for m in model.modules()):
        return model
    model = copy.deepcopy(model)
    sizes: dict[str, tuple[int, int]] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: sizes.__setitem__(name, args[0].shape[-2:]))
             for name, m in model.named_modules() if type(m).__name__ == "Conv2dSame" and isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, input_size, input_size))
    for hook in hooks:
        hook.remove()
    for name, (h, w) in sizes.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        conv = getattr(parent, child)
        top, bottom = _same_pad(h, conv.kernel_size[0], conv.stride[0], conv.dilation[0])
        left, right = _same_pad(w, conv.kernel_size[1], conv.stride[1], conv.dilation[1])
        setattr(parent, child, StaticSamePadConv(conv, (left, right, top, bottom)))
    return model


def to_onnx_proto(model: nn.Module, spec: ModelSpec, *, opset: int = DEFAULT_OPSET,
                  embed_preprocess: bool | str | None = None) -> onnx.ModelProto:
    """Trace ``model`` (CPU, float32, eval mode) into an in-memory ONNX ModelProto, constants folded.

    ``embed_preprocess="full"`` is written at opset ``max(opset, 18)``: its resampling needs opset-18 ops."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ClfError(f"--opset {opset} is not supported; choose {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET})")
    mode = embed_mode(embed_preprocess)
    if mode == "full":
        check_full_spec(spec)  # before a minute of tracing
        opset = max(opset, FULL_MIN_OPSET)
    model = model.to("cpu", torch.float32).eval()
    size = spec.input_size
    model = static_same_padding(model, size)
    if mode == "pixels":
        module: nn.Module = EmbeddedPreprocess(model, spec).eval()
        example = torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8)  # (B, H, W, 3)
    else:
        module = model
        example = torch.randn(2, 3, size, size)  # (B, 3, H, W)
    buffer = io.BytesIO()  # in memory: nothing half-written on disk if tracing fails
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is deprecated upstream but is the one that gives plain opset-17 graphs.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            module, (example,), buffer, dynamo=False, opset_version=opset, do_constant_folding=True,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    proto = simplify(onnx.load_from_string(buffer.getvalue()))
    return prepend_preprocess(proto, spec) if mode == "full" else proto


def export_model(model: nn.Module, spec: ModelSpec, out: Path, *, opset: int = DEFAULT_OPSET,
                 embed_preprocess: bool | str | None = None) -> Path:
    """Export ``model`` to ``out`` (checked, shape-inferred, metadata stamped, written atomically).

    ``embed_preprocess``: None (float32 NCHW input), "pixels" (uint8 resized+cropped) or "full" (the photo)."""
    mode = embed_mode(embed_preprocess)
    proto = to_onnx_proto(model, spec, opset=opset, embed_preprocess=mode)
    return save_onnx(proto, Path(out), spec, input_format=EMBED_PREPROCESS.get(mode or "", "float32_nchw"),
                     precision="fp32")
