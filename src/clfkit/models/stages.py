"""A backbone as a chain of blocks, so training can freeze a prefix and train the rest.

Partial fine-tuning runs the frozen early blocks once per image view and trains the last blocks on their cached
output; that needs the backbone as ``stem → block 1 → … → block n → pool`` whose composition is exactly the
backbone's forward.  Architectures are recognised by structure (timm EfficientNet/MobileNet and ResNet,
torchvision models with ``features`` or ``layer1..4``), and every decomposition is checked against the
backbone's own forward on a random input before it is trusted: a model we do not recognise, or one whose
forward does more than its parts, gets ``None`` and training keeps to the paths that do not cut it.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["backbone_blocks", "Prefix", "Tail"]


def _flatten_stages(stages: nn.Module) -> list[nn.Module]:
    """Blocks of a Sequential of stages (each a Sequential of blocks), in order."""
    out: list[nn.Module] = []
    for stage in stages.children():
        out.extend(stage.children() if isinstance(stage, nn.Sequential) else [stage])
    return out


def _candidate(backbone: nn.Module) -> list[nn.Module] | None:
    names = dict(backbone.named_children())
    # timm EfficientNet / MobileNetV2-style: conv_stem, bn1, blocks, conv_head, bn2, global_pool
    if {"conv_stem", "bn1", "blocks", "global_pool"} <= names.keys():
        end = [m for m in (names.get("conv_head"), names.get("bn2")) if m is not None]
        if type(backbone).__name__ == "MobileNetV3":  # pools BEFORE its conv_head
            end = [names["global_pool"], *end, *(m for k in ("act2", "norm_head", "flatten") if (m := names.get(k)))]
        else:
            end = [*end, names["global_pool"]]
        return [nn.Sequential(names["conv_stem"], names["bn1"]), *_flatten_stages(names["blocks"]),
                nn.Sequential(*end, nn.Flatten(1))]
    layers = [names.get(f"layer{i}") for i in range(1, 5)]
    if all(layers) and "conv1" in names:  # timm and torchvision ResNets
        stem = [names[k] for k in ("conv1", "bn1", "act1", "relu", "maxpool") if k in names]
        pool = names.get("global_pool") or names.get("avgpool")
        if pool is None:
            return None
        return [nn.Sequential(*stem), *(b for layer in layers for b in layer.children()),  # type: ignore[union-attr]
                nn.Sequential(pool, nn.Flatten(1))]
    if isinstance(names.get("features"), nn.Sequential) and "avgpool" in names:  # torchvision efficientnet, …
        return [*names["features"].children(), nn.Sequential(names["avgpool"], nn.Flatten(1))]
    return None


def backbone_blocks(backbone: nn.Module, input_size: int = 64) -> list[nn.Module] | None:
    """``[stem, block_1, …, block_n, pool]`` (modules shared with ``backbone``, not copies) whose composition
    equals ``backbone(x)``, or None when the backbone cannot be cut that way."""
    blocks = _candidate(backbone)
    if blocks is None or len(blocks) < 3:
        return None
    was_training = backbone.training
    backbone.eval()
    try:
        x = torch.randn(2, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            ref = backbone(x)
            h = x
            for block in blocks:
                h = block(h)
        same = h.shape == ref.shape and torch.allclose(h, ref, rtol=1e-4, atol=1e-5)
    except Exception:  # noqa: BLE001 - any failure means "cannot be cut", never a crash
        same = False
    finally:
        backbone.train(was_training)
    return blocks if same else None


class Prefix(nn.Module):
    """The frozen part: pixels (B, 3, S, S) → activations after ``blocks[:cut]``."""

    def __init__(self, blocks: Sequence[nn.Module], cut: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks[:cut])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class Tail(nn.Module):
    """The trained part: activations → pooled features (B, F) → logits through ``head``."""

    def __init__(self, blocks: Sequence[nn.Module], cut: int, head: nn.Module, dropout: float = 0.0) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks[cut:])
        self.head = head
        self.dropout = dropout  # on the pooled features, in training only (the assembled model has none)

    def features(self, h: torch.Tensor) -> torch.Tensor:
        return self.blocks(h)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        f = self.blocks(h)
        return self.head(nn.functional.dropout(f, self.dropout, self.training) if self.dropout else f)
