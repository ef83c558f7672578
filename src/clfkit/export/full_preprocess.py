"""The ``--embed-preprocess full`` graph: a decoded photo (uint8 [1, H, W, 3], any H and W) → the model's input.

Why a port of Pillow and not ONNX ``Resize``: the host preprocessing (:mod:`clfkit.vision.preprocess`) resizes
with Pillow, whose antialiased filters work in fixed point (libImaging/Resample.c).  ``Resize(antialias=1)``
computes a similar filter in floating point and rounds differently, so some values come out a level off (each
runtime implements ``antialias`` its own way, and OpenVINO's differs from onnxruntime's).  This graph computes
what Pillow computes, pixel for pixel, so the self-contained model predicts exactly what the float32 model
predicts after host preprocessing.

What Pillow does (``ImagingResampleInner``: two separable passes with a uint8 image between them, horizontal
first, except that Pillow >= 13 goes vertical first when the height shrinks by more than twice as many pixels as
the width), for each output pixel ``i`` of an axis resized from ``n`` to ``m`` pixels:

* ``scale = n / m``, ``support = filter_support * max(scale, 1)``, ``center = (i + 0.5) * scale``;
  taps ``xmin = max(int(center - support + 0.5), 0)`` … ``xmax = min(int(center + support + 0.5), n)``;
* weights ``filter((j - center + 0.5) / max(scale, 1))`` normalized by their sum, then fixed point:
  ``round_half_away(w * 2**22)``;
* ``out = clip((2**21 + sum(pixel_j * weight_j)) >> 22, 0, 255)``.

Only the centre crop's output rows and columns are computed (``crop_box`` offsets, Python's round half to even),
and the first pass only runs over the source rows (or columns) the second pass reads.  The host switches to
resampling only the crop's box for aspect ratios past ``_MAX_RESIZE_WASTE`` (about 1:50 strips); there the graph,
which always follows the full resize, may differ from it by a level on some pixels.

Exactness on both runtimes we support.  OpenVINO's CPU plugin runs float64 as float32 and int64 as int32, and
its integer Div, ReduceSum and MatMul go through float32, so the graph relies only on what stays exact there:

* Positions are integers: with ``D = max(n, m)`` every tap's filter argument is ``t / (2 D)`` with the integer
  ``t = (2 j + 1) m - (2 i + 1) n``, and the tap bounds are integer floor divisions, each checked by its exact
  integer remainder (:meth:`_Graph.floordiv`), which puts OpenVINO's float32 rounding right.
* ``bilinear`` weights are the integers ``max(2 D - |t|, 0)``; the fixed-point weight
  ``round(2**22 * a / sum(a))`` is an exact integer long division.  ``bicubic`` weights are a cubic in
  ``t / 2D``, computed in float64: exact on onnxruntime, float32 on OpenVINO (a weight may then be one unit
  of 2**-22 off, which moves a few pixels of a photo by a level or two).
* The weighted sums are uint8 x uint8 ``MatMulInteger`` products: each fixed-point weight is split into 8-bit
  limbs, so every limb sum stays below 2**24 (exact even in float32) for up to 258 taps per output pixel
  (downscaling by up to 128x bilinear, 64x bicubic), and the limbs are recombined in integer arithmetic.
  Integers stay below 2**31 for photos up to about 1:100 (OpenVINO's int32); onnxruntime computes in int64.
* /255 and (x - mean) / std is a lookup in the host's own float32 table (:func:`normalize_batch` of every level).

Not covered: OpenVINO in bf16 (CPUs with AMX or AVX-512 BF16) may run the float32 MatMul it makes of
``MatMulInteger`` in bf16, which would round the sums; export verification on such a machine shows it.

Pure graph building with ``onnx.helper``: no torch, no runtime.
"""
from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import onnx
import PIL
from onnx import TensorProto, helper, numpy_helper

from clfkit.artifacts.onnx_meta import INPUT_NAME
from clfkit.errors import ConfigError
from clfkit.spec import ModelSpec
from clfkit.vision.preprocess import normalize_batch

__all__ = ["CROP_OUTPUT", "FULL_INTERPOLATIONS", "FULL_MIN_OPSET", "check_full_spec", "crop_model",
           "pillow_may_resize_vertically_first", "prepend_preprocess"]

FULL_MIN_OPSET = 18  # ReduceMax with axes as an input; the opset of the --embed-preprocess full graph
CROP_OUTPUT = "crop"  # the debug model's output: uint8 (1, S, S, 3), what resize_crop gives on the host
PRECISION_BITS = 22  # Pillow's 8-bit resampler: 32 - 8 - 2
_LIMB = 256  # fixed-point weights are split into limbs of 8 bits (lo, mid, hi)
_PREFIX = "preprocess/"

# Pillow's filter support per interpolation the graph implements (Resample.c: BILINEAR 1.0, BICUBIC 2.0).
FULL_INTERPOLATIONS = {"bilinear": 1, "bicubic": 2}


def check_full_spec(spec: ModelSpec) -> None:
    """Refuse specs whose interpolation the graph does not implement (one line naming the flag)."""
    if spec.interpolation not in FULL_INTERPOLATIONS:
        raise ConfigError(f"--embed-preprocess full resizes with bilinear or bicubic interpolation; this model's "
                          f"spec uses {spec.interpolation!r}. Use --embed-preprocess pixels or a float32 export.")


class _Graph:
    """Nodes and initializers with unique names under one prefix (no clash with the model's own names)."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._counter = itertools.count(1)
        self._consts: dict[tuple, str] = {}

    def branch(self) -> _Graph:
        """A graph for an If branch: its own nodes, the same names, constants and initializers (outer scope)."""
        child = copy.copy(self)
        child.nodes = []
        return child

    def _name(self, hint: str) -> str:
        return f"{_PREFIX}{hint}_{next(self._counter)}"

    def const(self, value: object, dtype: type = np.int64) -> str:
        arr = np.asarray(value, dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            name = self._name("const")
            self.inits.append(numpy_helper.from_array(arr, name))
            self._consts[key] = name
        return self._consts[key]

    def op(self, op_type: str, *inputs: str, hint: str = "", **attrs: object) -> str:
        out = self._name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    # --- int64 arithmetic that stays exact where int64 runs as int32 and integer division as float32 ----------
    def add(self, a: str, b: str) -> str:
        return self.op("Add", a, b)

    def sub(self, a: str, b: str) -> str:
        return self.op("Sub", a, b)

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", a, b)

    def i(self, value: int) -> str:
        return self.const(value, np.int64)

    def floordiv(self, num: str, den: str) -> str:
        """floor(num / den) for int64 tensors, num >= 0, den > 0.  Integer Div is exact on onnxruntime; OpenVINO
        divides integers through float32, which can be one off for the magnitudes here: the exact remainder
        test puts that right."""
        q = self.op("Div", num, den)
        rem = self.sub(num, self.mul(q, den))
        low = self.op("Cast", self.op("Less", rem, self.i(0)), to=TensorProto.INT64)
        high = self.op("Cast", self.op("GreaterOrEqual", rem, den), to=TensorProto.INT64)
        return self.add(self.sub(q, low), high)


def _round_half_even_half(g: _Graph, d: str) -> str:
    """round(d / 2) with Python's round half to even, d >= 0 an integer (crop_box's centre offset)."""
    half = g.floordiv(d, g.i(2))
    odd_half = g.sub(half, g.mul(g.floordiv(half, g.i(2)), g.i(2)))  # 1 when d // 2 is odd
    return g.floordiv(g.add(d, odd_half), g.i(2))


def _bilinear_weights(g: _Graph, t: str, two_d: str, valid: str) -> str:
    """Fixed-point bilinear weights, exact: round_half_away(2**22 * a / sum(a)) with a = max(2D - |t|, 0)."""
    a = g.op("Where", valid, g.op("Max", g.sub(two_d, g.op("Abs", t)), g.i(0)), g.i(0))  # (S, K)
    total = g.op("Max", g.op("ReduceSum", a, g.i([1]), keepdims=1), g.i(1))  # (S, 1), < 2**22 for photos
    # Long division a * 2**23 / total in chunks of 8, 8 and 7 bits: every numerator stays below 2**30.
    quotient, rem = g.i(0), a
    for bits in (8, 8, 7):
        num = g.mul(rem, g.i(1 << bits))
        q = g.floordiv(num, total)
        rem = g.sub(num, g.mul(q, total))
        quotient = g.add(g.mul(quotient, g.i(1 << bits)), q)
    # round_half_away(x) = floor((floor(2x) + 1) / 2) for x >= 0.
    return g.floordiv(g.add(quotient, g.i(1)), g.i(2))


def _bicubic_weights(g: _Graph, t: str, two_d: str, valid: str) -> str:
    """Fixed-point bicubic weights (Pillow's a = -0.5 cubic, same operation order), normalized in float64."""
    d = TensorProto.DOUBLE

    def c(v: float) -> str:
        return g.const(v, np.float64)

    x = g.op("Div", g.op("Cast", g.op("Abs", t), to=d), g.op("Cast", two_d, to=d))  # (S, K) >= 0
    inner = g.add(g.mul(g.mul(g.sub(g.mul(c(1.5), x), c(2.5)), x), x), c(1.0))  # ((a+2)x - (a+3)) x x + 1
    outer = g.mul(g.sub(g.mul(g.add(g.mul(g.sub(x, c(5.0)), x), c(8.0)), x), c(4.0)), c(-0.5))
    w = g.op("Where", g.op("Less", x, c(1.0)), inner, g.op("Where", g.op("Less", x, c(2.0)), outer, c(0.0)))
    w = g.op("Where", valid, w, c(0.0))
    total = g.op("ReduceSum", w, g.i([1]), keepdims=1)
    total = g.op("Where", g.op("Equal", total, c(0.0)), c(1.0), total)
    k = g.op("Div", w, total)
    # Pillow: (int)(k * 2**22 + 0.5) for k >= 0, (int)(k * 2**22 - 0.5) for k < 0 (round half away from zero).
    scaled = g.op("Floor", g.add(g.mul(g.op("Abs", k), c(float(1 << PRECISION_BITS))), c(0.5)))
    return g.op("Cast", g.mul(g.op("Sign", k), scaled), to=TensorProto.INT64)


_WEIGHTS: dict[str, Callable[[_Graph, str, str, str], str]] = {
    "bilinear": _bilinear_weights, "bicubic": _bicubic_weights}


def _limbs(g: _Graph, fixed: str) -> str:
    """int64 fixed-point weights (S, K) → uint8 (S, 4, K): the 8-bit limbs lo, mid and hi + 128 of each weight
    (weight = (hi * 256 + mid) * 256 + lo), and ones, whose sum takes the + 128 back out of the hi limb's sum."""
    offset = 1 << (PRECISION_BITS + 1)  # |weight| < 2**23: shifted non-negative for the floor divisions
    shifted = g.add(fixed, g.i(offset))
    q1 = g.floordiv(shifted, g.i(_LIMB))
    lo = g.sub(shifted, g.mul(q1, g.i(_LIMB)))
    hi = g.floordiv(q1, g.i(_LIMB))  # hi + 128
    mid = g.sub(q1, g.mul(hi, g.i(_LIMB)))
    ones = g.op("Expand", g.i(1), g.op("Shape", fixed))
    limbs = g.op("Concat", *[g.op("Unsqueeze", part, g.i([1])) for part in (lo, mid, hi, ones)], axis=1)
    return g.op("Cast", limbs, to=TensorProto.UINT8)


class _Taps(NamedTuple):
    """One axis' resampling coefficients for the crop's S output pixels (names of graph values)."""

    index: str  # (S, K) int64 source pixel of each tap
    weights: str  # (S, 4, K) uint8 fixed-point weight limbs (0 for padding taps), see _limbs
    first: str  # (1,) int64 first source pixel any tap reads
    end: str  # (1,) int64 one past the last


def _axis(g: _Graph, n: str, m: str, offset: str, size: int, support: int, interpolation: str) -> _Taps:
    """Pillow's coefficients for output pixels offset .. offset + size - 1 of an axis resized n → m."""
    out = g.add(offset, g.const(np.arange(size), np.int64))  # (S,) output positions in the resized image
    two_m = g.mul(g.i(2), m)
    # Everything in units of 1 / (2m): 2m * center = (2i + 1) n, 2m * support = support * 2 max(n, m), and a tap's
    # filter argument (j + 0.5 - center) / max(scale, 1) is t / (2 max(n, m)).
    two_d = g.mul(g.i(2), g.op("Max", n, m))
    centre = g.mul(g.add(g.mul(g.i(2), out), g.i(1)), n)  # 2m * center
    reach = g.mul(g.i(support), two_d)  # 2m * support
    low = g.op("Max", g.add(g.sub(centre, reach), m), g.i(0))  # a tap left of pixel 0 reads pixel 0 anyway
    xmin = g.floordiv(low, two_m)  # int(center - support + 0.5), at least 0
    xmax = g.op("Min", g.floordiv(g.add(g.add(centre, reach), m), two_m), n)  # int(center + support + .5)
    taps = g.op("ReduceMax", g.sub(xmax, xmin), g.i([0]), keepdims=0)  # K: the most taps of any output pixel
    j = g.add(g.op("Unsqueeze", xmin, g.i([1])), g.op("Range", g.i(0), taps, g.i(1)))  # (S, K) source pixels
    valid = g.op("Less", j, g.op("Unsqueeze", xmax, g.i([1])))
    t = g.sub(g.mul(g.add(g.mul(g.i(2), j), g.i(1)), m), g.op("Unsqueeze", centre, g.i([1])))  # (2j+1)m - (2i+1)n
    weights = _limbs(g, _WEIGHTS[interpolation](g, t, two_d, valid))
    first = g.op("ReduceMin", xmin, g.i([0]), keepdims=1)  # (1,)
    end = g.op("ReduceMax", xmax, g.i([0]), keepdims=1)  # (1,)
    index = g.op("Min", j, g.sub(end, g.i(1)))  # padding taps (weight 0) read a pixel inside the range
    return _Taps(index, weights, first, end)


def _resample(g: _Graph, planes: str, index: str, weights: str) -> str:
    """One pass: rows of ``planes`` (N, M) uint8 picked by ``index`` (S, K) or (S, K, 3), weighted by the limbs
    (S, 4, K) → uint8-valued int64 (S, M) or (S, 3 * M)."""
    gathered = g.op("Reshape", g.op("Gather", planes, index, axis=0), g.i([0, 0, -1]))  # (S, K, M')
    # uint8 x uint8 with int32 sums: every limb sum is below 2**24, exact even where it runs in float32.
    sums = g.op("Cast", g.op("MatMulInteger", weights, gathered), to=TensorProto.INT64)  # (S, 4, M')
    lo, mid, hi, pixels = (g.op("Gather", sums, g.i(k), axis=1) for k in range(4))  # (S, M') each
    hi = g.sub(hi, g.mul(pixels, g.i(128)))
    total = g.add(g.mul(g.add(g.mul(hi, g.i(_LIMB)), mid), g.i(_LIMB)), lo)  # sum of pixel * weight, exact
    total = g.op("Max", g.add(total, g.i(1 << (PRECISION_BITS - 1))), g.i(0))
    return g.op("Min", g.floordiv(total, g.i(1 << PRECISION_BITS)), g.i(255))  # clip8(ss >> 22)


def _channels(g: _Graph, index: str) -> str:
    """Source pixel index (S, K) → row index (S, K, 3) of its R, G, B in planes laid out (pixel * 3 + channel,
    …)."""
    return g.add(g.op("Unsqueeze", g.mul(index, g.i(3)), g.i([2])), g.const([0, 1, 2], np.int64))


def _transpose(g: _Graph, value: str) -> str:
    # Only 2-D transposes: onnxruntime's (B, A, 3) uint8 transpose copies 3 bytes at a time, ~10x slower.
    return g.op("Transpose", value, perm=[1, 0])


def _horizontal_first(g: _Graph, image: str, x: _Taps, y: _Taps, size: int) -> str:
    """Pillow's usual order: columns of the rows the vertical pass reads, then rows → int64 (S, S, 3)."""
    rows = g.op("Slice", image, y.first, y.end, g.i([0]))  # (Hr, W, 3)
    planes = _transpose(g, g.op("Reshape", rows, g.i([0, -1])))  # (W * 3, Hr)
    across = g.op("Cast", _resample(g, planes, _channels(g, x.index), x.weights), to=TensorProto.UINT8)
    planes = _transpose(g, g.op("Reshape", across, g.i([size * 3, -1])))  # (S, 3 * Hr) → (Hr, S * 3)
    down = _resample(g, planes, g.sub(y.index, y.first), y.weights)  # (S, S * 3)
    return g.op("Reshape", down, g.i([size, size, 3]))


def _vertical_first(g: _Graph, image: str, x: _Taps, y: _Taps, size: int) -> str:
    """Rows of the columns the horizontal pass reads, then columns → int64 (S, S, 3)."""
    columns = g.op("Slice", image, x.first, x.end, g.i([1]))  # (H, Wc, 3)
    planes = g.op("Reshape", columns, g.i([0, -1]))  # (H, Wc * 3)
    down = g.op("Cast", _resample(g, planes, y.index, y.weights), to=TensorProto.UINT8)  # (S, Wc * 3)
    across = _resample(g, _transpose(g, down), _channels(g, g.sub(x.index, x.first)), x.weights)  # (S, 3 * S)
    return g.op("Transpose", g.op("Reshape", across, g.i([size, 3, size])), perm=[2, 0, 1])  # (S, S, 3)


def pillow_may_resize_vertically_first() -> bool:
    """Pillow 13 runs the vertical pass first when the height shrinks by more than twice as many pixels as the
    width (Resample.c ``horizontal_first``); older Pillow always goes horizontal first.  The pass order changes
    the uint8 intermediate, so the graph follows the Pillow installed where it is exported (and verified)."""
    return int(PIL.__version__.split(".")[0]) >= 13


def _crop(g: _Graph, spec: ModelSpec) -> str:
    """images uint8 (1, H, W, 3) → int64 (S, S, 3): resize_crop's pixels."""
    check_full_spec(spec)
    size, shorter = spec.input_size, spec.resize_size
    support = FULL_INTERPOLATIONS[spec.interpolation]
    shape = g.op("Shape", INPUT_NAME)
    height, width = g.op("Gather", shape, g.i(1), axis=0), g.op("Gather", shape, g.i(2), axis=0)
    portrait = g.op("LessOrEqual", width, height)  # resized_size: the shorter side becomes resize_size
    resized_w = g.op("Where", portrait, g.i(shorter), g.floordiv(g.mul(g.i(shorter), width), height))
    resized_h = g.op("Where", portrait, g.floordiv(g.mul(g.i(shorter), height), width), g.i(shorter))
    left = _round_half_even_half(g, g.sub(resized_w, g.i(size)))
    top = _round_half_even_half(g, g.sub(resized_h, g.i(size)))
    x = _axis(g, width, resized_w, left, size, support, spec.interpolation)
    y = _axis(g, height, resized_h, top, size, support, spec.interpolation)
    image = g.op("Squeeze", INPUT_NAME, g.i([0]))  # (H, W, 3)
    if not pillow_may_resize_vertically_first():
        return _horizontal_first(g, image, x, y, size)
    shrink_h, shrink_w = g.sub(height, resized_h), g.sub(width, resized_w)
    vertical = g.op("And", g.op("Greater", shrink_h, g.i(0)),
                    g.op("Greater", shrink_h, g.mul(shrink_w, g.i(2))))
    branches = {}
    for key, passes in (("then_branch", _vertical_first), ("else_branch", _horizontal_first)):
        sub = g.branch()
        out = passes(sub, image, x, y, size)
        branches[key] = helper.make_graph(sub.nodes, key, [], [helper.make_tensor_value_info(
            out, TensorProto.INT64, [size, size, 3])])
    return g.op("If", vertical, **branches)


def _normalized(g: _Graph, crop: str, spec: ModelSpec) -> str:
    """int64 (S, S, 3) pixels → float32 (1, 3, S, S) through the host's own table of normalized levels."""
    levels = np.repeat(np.arange(256, dtype=np.uint8)[None, None, :, None], 3, axis=3)  # (1, 1, 256, 3)
    table = normalize_batch(levels, spec)[0, :, 0, :].reshape(-1)  # (3 * 256,) channel-major, float32
    index = g.add(crop, g.const([0, 256, 512], np.int64))
    values = g.op("Gather", g.const(table, np.float32), index, axis=0)  # (S, S, 3)
    return g.op("Unsqueeze", g.op("Transpose", values, perm=[2, 0, 1]), g.i([0]))


def _input() -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, [1, "height", "width", 3])


def crop_model(spec: ModelSpec, *, opset: int = FULL_MIN_OPSET) -> onnx.ModelProto:
    """A model with only the preprocessing: images uint8 (1, H, W, 3) → ``crop`` uint8 (1, S, S, 3).

    For tests and debugging: its output must equal :func:`clfkit.vision.preprocess.resize_crop` pixel for pixel."""
    g = _Graph()
    crop = g.op("Unsqueeze", g.op("Cast", _crop(g, spec), to=TensorProto.UINT8), g.i([0]))
    g.nodes.append(helper.make_node("Identity", [crop], [CROP_OUTPUT], name=f"{_PREFIX}output"))
    size = spec.input_size
    graph = helper.make_graph(g.nodes, "clfkit_preprocess", [_input()],
                              [helper.make_tensor_value_info(CROP_OUTPUT, TensorProto.UINT8, [1, size, size, 3])],
                              initializer=g.inits)
    opsets = [helper.make_opsetid("", max(opset, FULL_MIN_OPSET))]
    # The oldest IR version for the opset: what onnxruntime releases of the same era still load.
    return helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))


def prepend_preprocess(model: onnx.ModelProto, spec: ModelSpec) -> onnx.ModelProto:
    """``model`` (float32 (B, 3, S, S) input ``images``) with the preprocessing grafted in front, in place.

    The new input ``images`` is uint8 (1, H, W, 3); the old input becomes the preprocessing's output."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < FULL_MIN_OPSET:
        raise ValueError(f"the model graph is opset {opset}; --embed-preprocess full needs >= {FULL_MIN_OPSET}")
    graph = model.graph
    [old_input] = [i for i in graph.input if i.name == INPUT_NAME]
    g = _Graph()
    normalized = _normalized(g, _crop(g, spec), spec)
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name == INPUT_NAME:
                node.input[k] = normalized
    nodes = g.nodes + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(g.inits)
    graph.input.remove(old_input)
    graph.input.insert(0, _input())
    for output in graph.output:  # one photo per call: the batch axis is 1
        output.type.tensor_type.shape.dim[0].Clear()
        output.type.tensor_type.shape.dim[0].dim_value = 1
    return model
