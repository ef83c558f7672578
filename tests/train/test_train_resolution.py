"""The input size clf-train picks: 1.3x the backbone's own in head mode (the backbone frozen), its own size in
partial and finetune, --input-size when given."""
from __future__ import annotations

import json

import pytest
from train_helpers import finetune_config, head_config, quiet

from clfkit.train.resolution import FROZEN_SCALE, MULTIPLE, default_input_size, resize_for
from clfkit.train.trainer import fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("native, frozen", [(224, 288), (240, 320), (260, 336), (32, 48), (8, 16)])
def test_frozen_modes_scale_the_native_size(native: int, frozen: int) -> None:
    size, why = default_input_size(native, "head")
    assert size == frozen and size % MULTIPLE == 0 and f"{native} px" in why
    assert abs(size / native - FROZEN_SCALE) <= MULTIPLE / 2 / native + 1e-9 or native < MULTIPLE


@pytest.mark.parametrize("mode", ["partial", "finetune"])
def test_modes_that_train_blocks_keep_the_native_size(mode: str) -> None:
    size, why = default_input_size(260, mode)
    assert size == 260 and mode in why


def test_resize_keeps_the_backbones_crop_ratio() -> None:
    assert resize_for(336, 260, 292) == 377  # lite2: 292/260
    assert resize_for(288, 224, 256) == 329
    assert resize_for(32, 32, 32) == 32 and resize_for(40, 32, 30) == 40  # never below the crop


def test_head_run_without_input_size_trains_at_the_frozen_size(tmp_path, tiny_data, tiny_weights) -> None:
    log: list[str] = []
    result = fit(head_config(tiny_data, tmp_path / "run", tiny_weights, input_size=None, epochs=1),
                 progress=False, log=log.append)
    # timm's resnet10t.c3_in1k evaluates at 176 px after a 201-px resize
    assert result.spec.input_size == default_input_size(176, "head")[0] == 224
    assert result.spec.resize_size == resize_for(224, 176, 201) == 255
    saved = json.loads((result.run_dir / "spec.json").read_text())
    assert saved["input_size"] == 224 and result.metrics["input_size"] == 224
    assert any(m.startswith("input 224 px (resize 255)") and "1.3x" in m for m in log)


def test_finetune_run_and_explicit_size(tmp_path, tiny_data, tiny_weights) -> None:
    tuned = fit(finetune_config(tiny_data, tmp_path / "ft", input_size=None, epochs=1), progress=False, log=quiet)
    assert tuned.spec.input_size == 176 and "own size" in tuned.metrics["input_size_reason"]
    given = fit(head_config(tiny_data, tmp_path / "given", tiny_weights, input_size=40, epochs=1), progress=False,
                log=quiet)
    assert given.spec.input_size == 40 and given.metrics["input_size_reason"] == "--input-size"


def test_a_backbone_that_only_runs_at_its_own_size_keeps_it(tmp_path, tiny_data) -> None:
    """A ViT's fixed position embedding fails at 1.3x its size: the run keeps the backbone's own size."""
    import torch

    from clfkit.models.registry import create_backbone

    vit = "timm:vit_tiny_patch16_224"
    torch.manual_seed(0)
    backbone, _, _ = create_backbone(vit, pretrained=False)
    weights = tmp_path / "vit.pth"
    torch.save(backbone.state_dict(), weights)
    result = fit(head_config(tiny_data, tmp_path / "run", weights, backbone=vit, input_size=None, epochs=1,
                             cache_views=1), progress=False, log=quiet)
    assert result.spec.input_size == 224 and "does not run at 288 px" in result.metrics["input_size_reason"]
