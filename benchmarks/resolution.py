"""Benchmark: accuracy of a frozen backbone's features against the input resolution they are computed at.

    python benchmarks/resolution.py --data DATA/boats --data DATA/trashnet [--backbone efficientnet_lite2]
                                    [--scales 1,1.3,1.54] [--out benchmarks/results/resolution]

DATA is a ``clf-split`` output (train/val/test class folders; use ``--seed 0``, near-duplicates grouped, as
clf-train does).  For every scale of the backbone's native evaluation size (rounded as clf-train rounds,
the backbone's crop ratio kept), the center-crop features of every image are computed once (onnxruntime fp32,
as clf-train's head mode computes them on a CPU),
then a multinomial logistic regression (clf-train's label-audit fit, balanced class weights, standardised
features) is fitted on train with its L2 chosen on val from a small grid, and scored on val and test.  This
is the probe behind clf-train's default input size for frozen backbones (:mod:`clfkit.train.resolution`).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from clfkit.models.classifier import build_classifier
from clfkit.spec import ModelSpec
from clfkit.train.audit import _fit_softmax
from clfkit.train.frozen_runtime import pooled_features_on_ort
from clfkit.train.resolution import MULTIPLE, resize_for
from clfkit.vision.images import load_rgb
from clfkit.vision.preprocess import preprocess

L2_GRID = (3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
BATCH = 32


def features(model: torch.nn.Module, spec: ModelSpec, data: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    forward = pooled_features_on_ort(model, spec.input_size, print, "resolution probe")
    out = {}
    for split in ("train", "val", "test"):
        paths, labels = [], []
        for label, name in enumerate(spec.class_names):
            for path in sorted((data / split / name).iterdir()):
                paths.append(path)
                labels.append(label)
        rows = []
        for start in range(0, len(paths), BATCH):
            batch = np.stack([preprocess(load_rgb(p), spec) for p in paths[start:start + BATCH]])
            if forward is not None:
                rows.append(forward(batch))
            else:
                with torch.inference_mode():
                    rows.append(model.features(torch.from_numpy(batch)).numpy())
        out[split] = (np.concatenate(rows).astype(np.float64), np.array(labels))
    return out


def probe(feats: dict[str, tuple[np.ndarray, np.ndarray]], num_classes: int) -> dict:
    x, y = (torch.from_numpy(a) for a in feats["train"])
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp(min=1e-6)

    def accuracy(w: torch.Tensor, b: torch.Tensor, split: str) -> float:
        xs, ys = feats[split]
        pred = (((torch.from_numpy(xs) - mean) / std) @ w + b).argmax(1).numpy()
        return float((pred == ys).mean())

    best = None
    with torch.enable_grad():
        for l2 in L2_GRID:
            w, b = _fit_softmax((x - mean) / std, y, num_classes, l2)
            row = {"l2": l2, "val": accuracy(w, b, "val"), "test": accuracy(w, b, "test")}
            if best is None or row["val"] > best["val"]:
                best = row
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, action="append", required=True, help="a clf-split output (repeat)")
    parser.add_argument("--backbone", default="efficientnet_lite2")
    parser.add_argument("--scales", default="1,1.3,1.54", help="input size / the backbone's native size")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "resolution")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = []
    for data in args.data:
        classes = tuple(sorted(p.name for p in (data / "train").iterdir() if p.is_dir()))
        model, defaults = build_classifier(args.backbone, len(classes))
        model.eval()
        for scale in (float(s) for s in args.scales.split(",")):
            size = max(MULTIPLE, MULTIPLE * round(defaults.input_size * scale / MULTIPLE))
            if scale == 1:
                size = defaults.input_size
            fields = {**defaults.spec_fields(), "input_size": size,
                      "resize_size": resize_for(size, defaults.input_size, defaults.resize_size)}
            spec = ModelSpec(class_names=classes, backbone=args.backbone, **fields)
            start = time.perf_counter()
            feats = features(model, spec, data)
            seconds = time.perf_counter() - start
            best = probe(feats, len(classes))
            rows.append({"data": data.name if data.name != "data" else data.parent.name, "scale": scale,
                         "input_size": size, "resize_size": spec.resize_size, "extract_s": seconds, **best,
                         "images": {k: int(len(v[1])) for k, v in feats.items()}})
            print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    env = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
           "torch": torch.__version__, "backbone": args.backbone}
    args.out.with_suffix(".json").write_text(json.dumps({"env": env, "rows": rows}, indent=2))
    lines = [f"# Frozen {args.backbone} features: accuracy against input resolution", "",
             f"Made by `python benchmarks/resolution.py {' '.join('--data ' + str(d) for d in args.data)}` "
             f"({env['threads']} threads, torch {env['torch']}). Center-crop features (onnxruntime fp32), multinomial "
             "logistic regression on train (L2 chosen on val), seed-0 splits with near-duplicates grouped. "
             "One test image is 0.46 pt on boats (218), 0.58 pt on trashnet (171).", "",
             "| data | input (resize) | x native | val | test | feature pass (s) |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['data']} | {r['input_size']} ({r['resize_size']}) | {r['scale']:g} | "
                     f"{100 * r['val']:.2f} % | {100 * r['test']:.2f} % | {r['extract_s']:.0f} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
