"""The input resolution clf-train trains (and so deploys) at when ``--input-size`` is not given.  Pure.

A pretrained backbone learned its features on random-resized crops: a training crop covers a random part of
the photo and is scaled up to the input size, so objects looked larger during pretraining than in the
backbone's own evaluation transform (resize + center crop at the native size).  Where the backbone stays
frozen, the features are best when objects appear at the size it trained on, which means feeding it a larger
input than its native evaluation size: the train-test resolution discrepancy of Touvron et al., "Fixing the
train-test resolution discrepancy" (NeurIPS 2019), whose ResNet-50 trained at 224 px tests best at 288 px
(1.29x; timm publishes the same 288 as ``test_input_size`` for its 224-px ResNets).  So ``--mode head`` (the
whole backbone frozen) trains and deploys at 1.3x the native size.

``--mode partial`` and ``--mode finetune`` keep the native size: the blocks that train adapt to the input, and
under partial's time budget the 1.7x dearer pixels buy a shallower cut.  Measured on both shared sets
(``benchmarks/results/resolution.md``, EfficientNet-Lite2, seed-0 splits, 2 cores):

* frozen center features, logistic-regression probe, 260 → 336 px: boats val/test 90.83/90.37 → 91.28/90.83 %,
  trashnet 88.89/76.02 → 90.64/85.96 % (400 px: 91.74/91.28 %, 91.23/83.63 %, for 1.4x the pixels of 336);
* ``--mode head`` end to end, 260 px (the earlier results, PyTorch fp32 features) → 336 px: boats test
  90.83 → 92.66 %, trashnet 78.95 → 83.63 %;
* the default partial run, 260 → 336 px: the planner cuts at block 16 → 19 (boats) and 16 → 17 (trashnet);
  boats test 93.58 → 92.20 %, trashnet 83.63 → 85.96 %; with ``--tta 5`` 94.04 → 92.20 % and 84.80 → 85.38 %.
  Summed over the two sets that is a wash (+0.95 points without TTA, -1.26 with), so the cheaper model wins.
"""
from __future__ import annotations

import math

__all__ = ["FROZEN_SCALE", "MULTIPLE", "default_input_size", "resize_for"]

FROZEN_SCALE = 1.3  # frozen features: input size / the backbone's native evaluation size
MULTIPLE = 16  # sizes are rounded to a multiple of this (feature maps of stride-16/32 networks stay aligned)
FROZEN_MODES = ("head",)  # the modes in which no block of the backbone trains


def default_input_size(native: int, mode: str) -> tuple[int, str]:
    """The input size for ``mode`` (a resolved --mode) on a backbone whose evaluation size is ``native``, and
    why, in words for the summary."""
    if mode not in FROZEN_MODES:
        return native, f"the backbone's own size (the blocks that train in {mode} mode adapt to it)"
    size = max(MULTIPLE, MULTIPLE * round(native * FROZEN_SCALE / MULTIPLE))
    return size, (f"{FROZEN_SCALE:g}x the backbone's {native} px: frozen features see objects at the size they "
                  "were trained on")


def resize_for(input_size: int, native_input: int, native_resize: int) -> int:
    """The shorter-side resize for ``input_size`` that keeps the backbone's own crop ratio."""
    return max(input_size, int(math.floor(input_size * (native_resize / native_input))))
