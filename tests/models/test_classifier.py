"""Classifier: logits of the right shape for both heads, and head-only training sees the same head.

Uses ``tv:mobilenet_v3_small`` with ``pretrained=False`` (random init, no network, F = 1024) on 64 px inputs.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from clfkit.errors import ConfigError
from clfkit.models.registry import BackboneDefaults
from clfkit.models.classifier import HEADS, Classifier, build_classifier, create_head

TINY = "tv:mobilenet_v3_small"


@pytest.fixture(scope="module")
def built() -> dict[str, tuple[Classifier, BackboneDefaults]]:
    torch.manual_seed(0)
    return {head: build_classifier(TINY, 5, head, pretrained=False) for head in HEADS}


@pytest.mark.parametrize("head", HEADS)
@torch.no_grad()
def test_logits_and_feature_path_agree(head: str, built) -> None:
    model, defaults = built[head]
    model.eval()
    x = torch.randn(3, 3, 64, 64)
    logits = model(x)
    assert logits.shape == (3, 5)
    assert not torch.allclose(logits.exp().sum(1), torch.ones(3))  # raw logits, not probabilities
    features = model.features(x)
    assert features.shape == (3, model.num_features) == (3, 1024)
    torch.testing.assert_close(model.classify(features), logits)
    assert defaults.input_size == 224


def test_records_how_to_rebuild(built) -> None:
    model, _ = built["mlp"]
    assert (model.backbone_name, model.head_kind, model.num_features, model.num_classes) == (TINY, "mlp", 1024, 5)
    rebuilt, _ = build_classifier(model.backbone_name, model.num_classes, model.head_kind, pretrained=False)
    rebuilt.load_state_dict(model.state_dict())  # same keys and shapes: a checkpoint round trip works
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), model.eval()(x))


def test_mlp_head_is_the_original_pipeline_head() -> None:
    head = create_head("mlp", 1280, 7)
    assert [type(m) for m in head] == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert (head[0].in_features, head[0].out_features, head[2].p, head[3].out_features) == (1280, 256, 0.4, 7)
    linear = create_head("linear", 1280, 7)
    assert isinstance(linear, nn.Linear) and (linear.in_features, linear.out_features) == (1280, 7)


def test_head_only_training_moves_the_assembled_model() -> None:
    """Training ``classify`` on cached features updates exactly the parameters ``forward`` uses."""
    model = Classifier(nn.Flatten(), 12, 3, "linear", backbone_name="fake")
    feats = torch.randn(8, 12)
    before = model(feats.view(8, 12)).detach()
    optimizer = torch.optim.SGD(model.head.parameters(), lr=0.5)
    loss = nn.functional.cross_entropy(model.classify(feats), torch.arange(8) % 3)
    loss.backward()
    optimizer.step()
    assert not torch.allclose(model(feats), before)


def test_bad_head_and_class_count() -> None:
    with pytest.raises(ConfigError, match="unknown --head 'mpl'.*Did you mean 'mlp'"):
        build_classifier(TINY, 3, "mpl", pretrained=False)
    with pytest.raises(ConfigError, match="number of classes"):
        build_classifier(TINY, 0, pretrained=False)
