"""The PyTorch baseline, run the way the original pipeline ran it: torchvision transforms, a DataLoader with
worker processes, the eager model in ``eval()`` under ``no_grad`` in fp32; plus bf16 autocast (CPU) or fp16
AMP (GPU) as the cheapest PyTorch speed-up a user could switch on.

Choices that keep the comparison with onnxruntime fair:

* Images are decoded with :func:`clfkit.images.load_rgb` (what every clfkit path uses: EXIF rotation applied,
  RGB), so both sides start from the same pixels; torchvision's own ``pil_loader`` differs only for
  rotated or non-RGB photos.
* The eval transform is torchvision's ``Resize(resize_size) → CenterCrop(input_size) → ToTensor → Normalize``
  built from the checkpoint's spec, i.e. the transform clfkit's numpy preprocessing reproduces.
* TTA cannot be expressed with those transforms, so with ``tta > 1`` the dataset returns the views of
  :func:`clfkit.preprocess.tta_views` (view 0 = the eval view); both backends then average the same views.
* ``num_workers`` defaults to the thread count ``N`` (one loader process per compute thread, the usual
  ``num_workers=os.cpu_count()`` of tutorials); ``torch.set_num_threads(N)`` is set by the caller.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from clfkit.bench.backends import FolderRun, describe_backend, timed_folder_run
from clfkit.spec import ModelSpec
from clfkit.vision.images import load_rgb
from clfkit.vision.preprocess import normalize_batch, stack_views
from clfkit.vision.tta import tta_views

__all__ = ["TORCH_PRECISIONS", "build_transform", "FolderDataset", "TorchModel", "torch_folder_run", "TorchBackend",
           "torch_backend"]

TORCH_PRECISIONS = ("fp32", "bf16", "fp16")


def build_transform(spec: ModelSpec) -> transforms.Compose:
    """The original pipeline's torchvision eval transform, from the checkpoint's spec."""
    return transforms.Compose([
        transforms.Resize(spec.resize_size, interpolation=InterpolationMode(spec.interpolation)),
        transforms.CenterCrop(spec.input_size),
        transforms.ToTensor(),
        transforms.Normalize(spec.mean, spec.std),
    ])


class FolderDataset(Dataset):
    """Image paths → (3, H, W) tensors through ``transform``, or (V, 3, H, W) TTA views when ``tta > 1``."""

    def __init__(self, paths: Sequence[Path], spec: ModelSpec, tta: int = 0, seed: int = 0) -> None:
        self.paths = [Path(p) for p in paths]
        self.spec = spec
        self.tta = tta
        self.seed = seed
        self.transform = build_transform(spec)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = load_rgb(self.paths[index])
        if self.tta > 1:
            return torch.from_numpy(stack_views(tta_views(image, self.spec, self.tta, self.seed), self.spec))
        return self.transform(image)


class TorchModel:
    """The eager model on ``device`` at ``precision``; call it on a (B, 3, H, W) float32 tensor.

    fp32 is plain eager; bf16 / fp16 wrap the call in ``torch.autocast`` (weights stay fp32, matmuls and
    convolutions run in the lower precision), which is what a PyTorch user switches on first.
    """

    def __init__(self, model: torch.nn.Module, precision: str = "fp32", device: str = "cpu") -> None:
        if precision not in TORCH_PRECISIONS:
            raise ValueError(f"precision must be one of {TORCH_PRECISIONS}, got {precision!r}")
        if precision == "fp16" and device != "cuda":
            raise ValueError("fp16 autocast is for CUDA; on the CPU use bf16")
        self.model = model.to(device).eval()
        self.precision = precision
        self.device = torch.device(device)
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def _autocast(self) -> Any:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → float32 logits (B, C) on the model's device."""
        with torch.no_grad(), self._autocast():
            return self.model(batch.to(self.device, non_blocking=True)).float()

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @property
    def sync_fn(self) -> Any:
        return self.sync if self.device.type == "cuda" else None


def torch_folder_run(runner: TorchModel, paths: Sequence[Path], spec: ModelSpec, *, batch_size: int,
                     tta: int = 0, workers: int = 0, seed: int = 0) -> FolderRun:
    """Decode → transform → model → softmax for every path, timed from the first DataLoader call to the last
    probability (worker start-up included, as a user running the original script pays it)."""
    views = max(1, tta)
    dataset = FolderDataset(paths, spec, tta=tta, seed=seed)
    start = time.perf_counter()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        pin_memory=runner.device.type == "cuda")

    def logits() -> Iterator[np.ndarray]:
        for batch in loader:
            if views > 1:  # (B, V, 3, H, W) → (B × V, 3, H, W), views of one image adjacent as in the engine
                batch = batch.reshape(-1, *batch.shape[2:])
            yield runner(batch).cpu().numpy()

    return timed_folder_run(logits(), views, spec.num_classes, start, spec.temperature)


@dataclass
class TorchBackend:
    """A PyTorch way of running the checkpoint, as a :class:`~clfkit.bench.backends.BenchBackend`."""

    name: str
    runner: TorchModel
    file: Path  # the checkpoint
    kind: str = "pytorch"
    input_format: str = "float32_nchw"

    @property
    def precision(self) -> str:
        return self.runner.precision

    @property
    def provider(self) -> str:
        return f"torch {self.runner.device.type}"

    def describe(self) -> dict[str, Any]:
        return describe_backend(self, providers=[self.provider])

    def prepare(self, batch_sizes: Sequence[int], spec: ModelSpec) -> None:
        """Nothing to do: eager PyTorch runs any batch size as it comes."""

    def model_call(self, views: np.ndarray, spec: ModelSpec) -> tuple[Any, Any]:
        batch = torch.from_numpy(normalize_batch(views, spec)).to(self.runner.device)
        return (lambda: self.runner(batch)), self.runner.sync_fn

    def folder_run(self, paths: Sequence[Path], spec: ModelSpec, *, batch_size: int, tta: int,
                   decode_workers: int | None, loader_workers: int, seed: int = 0) -> FolderRun:
        return torch_folder_run(self.runner, paths, spec, batch_size=batch_size, tta=tta, workers=loader_workers,
                                seed=seed)

    def memory_job(self) -> dict[str, Any]:
        return {"kind": self.kind, "file": str(self.file), "precision": self.precision,
                "device": self.runner.device.type}


def torch_backend(model: torch.nn.Module, checkpoint: Path, precision: str, device: str) -> TorchBackend:
    label = {"fp32": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 amp"}[precision]
    return TorchBackend(name=f"pytorch {label}", runner=TorchModel(model, precision, device), file=Path(checkpoint))
