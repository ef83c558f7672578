"""A tiny clf-train-style run (data split + model.pt) for the export, clf-export and ONNX-metadata tests.

The session fixtures ``tiny_run`` and ``exported`` (tests/conftest.py) build it once with
:func:`build_tiny_run` and :func:`export_variants`; tests import the constants, :func:`fit_head` and
:func:`make_model` from here by name.  The model is a real registry backbone (timm's 100k-parameter
test_efficientnet, random init, 48 px) so ``load_checkpoint`` rebuilds it; its linear head is fitted in closed
form (ridge regression on the backbone's features of the generated class images), so logits are decisive and
int8 rounding does not flip near-ties.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from helpers import draw_image, make_labelled_folder

from clfkit.vision.images import load_rgb
from clfkit.vision.preprocess import preprocess_batch
from clfkit.spec import ModelSpec
from clfkit.artifacts.checkpoint import save_checkpoint
from clfkit.models.classifier import Classifier, build_classifier

BACKBONE = "timm:test_efficientnet"  # 100k parameters, EfficientNet ops (depthwise, SE, SiLU)
CLASSES = ("cat", "dog", "owl")  # make_labelled_folder draws class k with colour channel k strongest
SPEC = ModelSpec(class_names=CLASSES, input_size=48, resize_size=56, backbone=BACKBONE)
IMAGE_SIZE = (64, 56)


@dataclass
class TinyRun:
    root: Path
    data: Path  # data/{train,val}/<class>/*.jpg
    checkpoint: Path  # run/model.pt
    model: Classifier
    spec: ModelSpec


def fit_head(model: Classifier, spec: ModelSpec, per_class: int = 12, ridge: float = 1e-3, *,
             images: list | None = None, labels: list[int] | None = None) -> None:
    """Closed-form linear head on the frozen backbone: logits ≈ 6 * (one-hot - 1/C).

    Fitted on ``images`` (paths or PIL images) with ``labels``, or by default on generated class images.
    """
    if images is None:
        images = [draw_image(100 + i, IMAGE_SIZE, kind=k) for k in range(spec.num_classes) for i in range(per_class)]
        labels = [k for k in range(spec.num_classes) for _ in range(per_class)]
    images = [load_rgb(im) if isinstance(im, (str, Path)) else im for im in images]
    y = torch.as_tensor(labels)
    with torch.no_grad():
        feats = model.features(torch.from_numpy(preprocess_batch(images, spec))).double()  # (N, F)
    mean = feats.mean(0, keepdim=True)
    centred = feats - mean
    target = torch.full((len(y), spec.num_classes), -6.0 / spec.num_classes, dtype=torch.float64)
    target[torch.arange(len(y)), y] += 6.0
    gram = centred @ centred.T  # dual form: N x N; random-init features are small, so scale the ridge to them
    gram += ridge * gram.trace() / len(y) * torch.eye(len(y), dtype=torch.float64)
    weight = (centred.T @ torch.linalg.solve(gram, target)).T  # (C, F)
    with torch.no_grad():
        model.head.weight.copy_(weight.float())
        model.head.bias.copy_((-(weight @ mean.T).squeeze(1)).float())


def make_model(spec: ModelSpec = SPEC, seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    model, _ = build_classifier(BACKBONE, spec.num_classes, "linear", pretrained=False)
    model.eval()
    fit_head(model, spec)
    return model


def build_tiny_run(root: Path) -> TinyRun:
    data = root / "data"
    counts = {"cat": 8, "dog": 8, "owl": 8}
    make_labelled_folder(data / "train", counts, size=IMAGE_SIZE, seed=1)
    make_labelled_folder(data / "val", counts, size=IMAGE_SIZE, seed=2)
    model = make_model()
    checkpoint = root / "run" / "model.pt"
    save_checkpoint(checkpoint, model, SPEC, config={"data": str(data)}, metrics={"val_acc": 1.0})
    return TinyRun(root=root, data=data, checkpoint=checkpoint, model=model, spec=SPEC)


def export_variants(run: TinyRun, out: Path):
    """``export_checkpoint`` with every variant: (ExportResult, ExportResult with embed-preprocess)."""
    from clfkit.export.api import export_checkpoint

    plain = export_checkpoint(run.checkpoint, out / "model.onnx", int8=True, fp16=True)
    embedded = export_checkpoint(run.checkpoint, out / "embedded.onnx", int8=True, fp16=True,
                                 embed_preprocess=True)
    return plain, embedded
