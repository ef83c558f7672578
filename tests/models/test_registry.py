"""Backbone registry: genuine packaged weights, offline behaviour, weights files and name errors.

The fast tiny backbone here is ``timm:resnet10t`` with ``pretrained=False`` (random init, no network): it
builds in well under a second and runs 64 px inputs.
"""
from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
from PIL import Image

from clfkit.errors import ConfigError
from clfkit.vision.preprocess import preprocess
from clfkit.spec import ModelSpec
from clfkit.models.registry import BackboneDefaults, create_backbone, create_imagenet_model, list_packaged
from clfkit.models.weights import load_state_dict_file, map_by_position

skimage_data = pytest.importorskip("skimage.data")

TINY = "timm:resnet10t"
ESPRESSO = 967


@pytest.fixture(scope="module")
def imagenet_classes() -> list[str]:
    from torchvision.models import ResNet50_Weights

    return ResNet50_Weights.IMAGENET1K_V2.meta["categories"]


def _coffee_batch(defaults: BackboneDefaults, classes: list[str]) -> torch.Tensor:
    spec = ModelSpec(class_names=classes, **defaults.spec_fields())
    return torch.from_numpy(preprocess(Image.fromarray(skimage_data.coffee()), spec))[None]  # (1, 3, S, S)


def test_packaged_names() -> None:
    assert list_packaged() == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


@pytest.mark.parametrize(
    "name, size, resize",
    [
        ("efficientnet_lite0", 224, 256),
        pytest.param("efficientnet_lite1", 240, 272, marks=pytest.mark.slow),
        pytest.param("efficientnet_lite2", 260, 292, marks=pytest.mark.slow),
    ],
)
@torch.no_grad()
def test_packaged_weights_are_genuine_imagenet(name: str, size: int, resize: int, imagenet_classes) -> None:
    """The shipped weights call scikit-image's coffee photo an espresso, through clfkit's own preprocessing,
    and the feature extractor is the same network: its features through the ImageNet classifier give the
    same logits."""
    model, defaults = create_imagenet_model(name)
    assert defaults == BackboneDefaults(size, resize, "bilinear", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    x = _coffee_batch(defaults, imagenet_classes)
    logits = model.eval()(x)
    assert logits.shape == (1, 1000)
    assert imagenet_classes[int(logits.argmax())] == "espresso"
    assert int(logits.argmax()) == ESPRESSO

    backbone, num_features, same_defaults = create_backbone(name)
    assert same_defaults == defaults and num_features == 1280
    features = backbone.eval()(x)
    assert features.shape == (1, num_features)
    torch.testing.assert_close(model.classifier(features), logits, rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_packaged_without_pretrained_is_random_init(imagenet_classes) -> None:
    pretrained, _, _ = create_backbone("efficientnet_lite0")
    random_init, _, _ = create_backbone("efficientnet_lite0", pretrained=False)
    a, b = pretrained.state_dict()["conv_stem.weight"], random_init.state_dict()["conv_stem.weight"]
    assert a.shape == b.shape and not torch.equal(a, b)


def test_map_by_position_renames_and_refuses_wrong_shapes() -> None:
    target = {"conv.weight": torch.zeros(8, 3, 3, 3), "bn.running_mean": torch.zeros(8), "fc.weight": torch.zeros(2, 8)}
    source = {"_conv.weight": torch.ones(8, 3, 3, 3), "_bn.running_mean": torch.ones(8), "_fc.weight": torch.ones(2, 8)}
    mapped = map_by_position(source, target)
    assert list(mapped) == list(target) and all(torch.equal(mapped[k], v) for k, v in zip(target, source.values()))

    source["_bn.running_mean"] = torch.ones(16)
    with pytest.raises(ConfigError, match=r"#1 '_bn.running_mean' is \(16,\).*'bn.running_mean' is \(8,\)"):
        map_by_position(source, target)
    with pytest.raises(ConfigError, match="has 2 tensors but the backbone has 3"):
        map_by_position(dict(list(source.items())[:2]), target)


def test_map_by_position_ignores_missing_batchnorm_counters() -> None:
    target = {"bn.weight": torch.zeros(4), "bn.num_batches_tracked": torch.tensor(0), "fc.weight": torch.zeros(2, 4)}
    source = {"a": torch.ones(4), "b": torch.ones(2, 4)}
    assert list(map_by_position(source, target)) == ["bn.weight", "fc.weight"]


@pytest.fixture(scope="module")
def tiny_full_state(tmp_path_factory) -> dict[str, torch.Tensor]:
    """The whole ImageNet-classifier state dict of the tiny backbone, with recognisable (non-init) values."""
    model, _ = create_imagenet_model(TINY, pretrained=False)
    torch.manual_seed(0)
    return {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in model.state_dict().items()}


def _assert_loaded(backbone: torch.nn.Module, full: dict[str, torch.Tensor]) -> None:
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, full[key]), key


@pytest.mark.parametrize("variant", ["whole", "features_only", "renamed", "wrapped"])
def test_weights_file_loads_into_backbone(variant: str, tiny_full_state, tmp_path: Path) -> None:
    """A user's --weights file loads by name, by position under foreign names, with or without the
    classifier, and inside a {"state_dict": ...} wrapper."""
    state: object = dict(tiny_full_state)
    if variant == "features_only":
        state = {k: v for k, v in tiny_full_state.items() if not k.startswith("fc.")}
    elif variant == "renamed":
        state = {f"layer_{i:03d}": v for i, v in enumerate(tiny_full_state.values())}
    elif variant == "wrapped":
        state = {"state_dict": {f"module.{k}": v for k, v in tiny_full_state.items()}, "epoch": 3}
    path = tmp_path / "w.pth"
    torch.save(state, path)
    backbone, num_features, _ = create_backbone(TINY, weights=path)  # pretrained=True ignored: no download
    assert num_features == 512
    _assert_loaded(backbone, tiny_full_state)
    with torch.no_grad():
        assert backbone.eval()(torch.zeros(2, 3, 64, 64)).shape == (2, 512)


def test_weights_file_for_imagenet_model_keeps_classifier(tiny_full_state, tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save({f"x{i}": v for i, v in enumerate(tiny_full_state.values())}, path)
    model, _ = create_imagenet_model(TINY, weights=path)
    assert torch.equal(model.state_dict()["fc.weight"], tiny_full_state["fc.weight"])


def test_weights_file_errors(tiny_full_state, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        create_backbone(TINY, weights=tmp_path / "missing.pth")

    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ConfigError, match="cannot read it as a PyTorch state dict"):
        create_backbone(TINY, weights=corrupt)

    bad_shape = dict(tiny_full_state)
    bad_shape["layer1.0.conv1.weight"] = torch.zeros(3, 3, 3, 3)
    wrong = tmp_path / "wrong.pth"
    torch.save(bad_shape, wrong)
    with pytest.raises(ConfigError, match=r"layer1\.0\.conv1\.weight.*nothing was loaded"):
        create_backbone(TINY, weights=wrong)

    other_arch, _ = create_imagenet_model("tv:mobilenet_v3_small", pretrained=False)
    foreign = tmp_path / "foreign.pth"
    torch.save(other_arch.state_dict(), foreign)
    with pytest.raises(ConfigError, match="different architecture"):
        create_backbone(TINY, weights=foreign)

    not_tensors = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_tensors)
    with pytest.raises(ConfigError, match="expected a non-empty state dict"):
        load_state_dict_file(not_tensors)


@pytest.mark.parametrize(
    "name, features", [("tv:resnet18", 512), ("timm:resnet18", 512), ("tv:mobilenet_v3_small", 1024)]
)
def test_random_init_builds_offline_with_weight_defaults(name: str, features: int) -> None:
    """Checkpoint loading builds tv:/timm: backbones without the network; defaults still come from the
    weights' metadata (torchvision transforms / timm pretrained_cfg)."""
    backbone, num_features, defaults = create_backbone(name, pretrained=False)
    assert num_features == features
    with torch.no_grad():
        assert backbone.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, features)
    if name.startswith("tv:"):
        assert defaults == BackboneDefaults(224, 256, "bilinear", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    else:  # timm resnet18.a1_in1k: crop_pct 0.95 → floor(224 / 0.95) = 235
        assert defaults == BackboneDefaults(224, 235, "bicubic", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def test_torchvision_model_without_linear_classifier_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a final nn.Linear"):
        create_backbone("tv:squeezenet1_0", pretrained=False)


def _fail(*args, **kwargs):
    raise urllib.error.URLError("[Errno -2] Name or service not known")


def _fail_hf(*args, **kwargs):
    from huggingface_hub.errors import LocalEntryNotFoundError

    raise LocalEntryNotFoundError("cannot find the requested files in the local cache")


@pytest.mark.parametrize("name", ["tv:resnet18", "timm:resnet10t"])
def test_failed_download_is_one_config_error(name: str, monkeypatch, tmp_path: Path) -> None:
    """No network (simulated, so the test never waits on real retries): one ConfigError naming the fix."""
    import timm.models._builder
    import timm.models._hub
    import torch.hub

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # nothing cached
    monkeypatch.setattr(torch.hub, "download_url_to_file", _fail)
    monkeypatch.setattr(timm.models._builder, "load_state_dict_from_url", _fail)
    monkeypatch.setattr(timm.models._hub, "hf_hub_download", _fail_hf)
    with pytest.raises(ConfigError) as info:
        create_backbone(name)
    message = str(info.value)
    assert "download" in message and "failed" in message
    assert "efficientnet_lite0, efficientnet_lite1, efficientnet_lite2" in message
    assert "--weights FILE" in message


@pytest.mark.parametrize(
    "name, suggestion",
    [
        ("efficientnet-lite0", "'efficientnet_lite0'"),
        ("resnet18", "'tv:resnet18'"),
        ("tv:resnet181", "'tv:resnet18'"),
        ("timm:resnett10t", "'timm:resnet10t'"),
        ("timm:resnet18.no_such_tag", "'timm:resnet18"),
    ],
)
def test_unknown_name_suggests(name: str, suggestion: str) -> None:
    with pytest.raises(ConfigError, match="unknown --backbone") as info:
        create_backbone(name, pretrained=False)
    assert f"Did you mean {suggestion}" in str(info.value)
