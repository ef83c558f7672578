"""Benchmark: which test-time-augmentation views pay, measured on several models and datasets at once.

    python benchmarks/tta_views.py --pair WORK/boats.onnx DATA/boats --pair WORK/trashnet.onnx DATA/trashnet
                                   [--out benchmarks/results/tta]

For every image of DATA/val and DATA/test, the logits of each candidate view (clfkit's deterministic TTA
views, whatever their order, plus the old order's views) are computed once on onnxruntime fp32; then every
``--tta N`` of the current order and of the previous order (center, hflip, wide, wide_hflip, four corners)
is scored as the gain in top-1 over the center view alone, per set and on average over all sets (each set
counts once, so a larger set does not outvote a smaller one).  A view set that pays must gain on average;
differences of one image per set (0.4-0.6 pt here) are noise.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from clfkit.runtime.engine import Engine
from clfkit.vision.images import load_rgb
from clfkit.vision.postprocess import mean_of_views, softmax
from clfkit.vision.tta import MAX_DETERMINISTIC_VIEWS, tta_view_names, tta_views

PREVIOUS_ORDER = ["center", "hflip", "wide", "wide_hflip", "top_left", "top_right", "bottom_left", "bottom_right"]


def view_probs(model: Path, data: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (probabilities (N, V, C) of every deterministic view, labels (N,))}."""
    engine = Engine.from_onnx(model, device="cpu", runtime="onnxruntime", precision="fp32")
    out = {}
    for split in ("val", "test"):
        probs, labels = [], []
        for label, name in enumerate(engine.spec.class_names):
            for path in sorted((data / split / name).iterdir()):
                views = tta_views(load_rgb(path), engine.spec, MAX_DETERMINISTIC_VIEWS)
                probs.append(softmax(engine.run(engine.prepare(np.stack(views)))))
                labels.append(label)
        out[split] = (np.stack(probs), np.array(labels))
    return out


def _label(data: Path) -> str:
    """The data folder's last two path parts (work-dir/data), so two runs' ``data`` folders stay apart."""
    parts = data.resolve().parts
    return "/".join(parts[-2:])


def gain(probs: np.ndarray, labels: np.ndarray, views: list[int]) -> float:
    center = (probs[:, 0].argmax(1) == labels).mean()
    return float((mean_of_views(probs[:, views]).argmax(1) == labels).mean() - center)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pair", nargs=2, action="append", metavar=("MODEL", "DATA"), required=True)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/tta"))
    args = parser.parse_args()
    names = tta_view_names(MAX_DETERMINISTIC_VIEWS)
    sets = {}
    for model, data in args.pair:
        for split, (probs, labels) in view_probs(Path(model), Path(data)).items():
            sets[f"{_label(Path(data))} {split}"] = (probs, labels)
    rows = []
    for order_name, order in (("current", names), ("previous", PREVIOUS_ORDER)):
        for n in range(2, len(order) + 1):
            idx = [names.index(v) for v in order[:n]]
            gains = {k: gain(p, y, idx) for k, (p, y) in sets.items()}
            rows.append({"order": order_name, "tta": n, "views": order[:n], "gains": gains,
                         "mean_gain": float(np.mean(list(gains.values())))})
    single = {k: {v: float((p[:, i].argmax(1) == y).mean()) for i, v in enumerate(names)}
              for k, (p, y) in sets.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"rows": rows, "single_view_top1": single}, indent=1))
    keys = list(sets)
    lines = ["| order | --tta | " + " | ".join(keys) + " | mean gain |", "|---" * (len(keys) + 3) + "|"]
    for r in rows:
        lines.append(f"| {r['order']} | {r['tta']} | " + " | ".join(f"{100 * r['gains'][k]:+.1f}" for k in keys)
                     + f" | **{100 * r['mean_gain']:+.2f}** |")
    lines += ["", "Single views, top-1 (%):", "", "| view | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for v in names:
        lines.append(f"| {v} | " + " | ".join(f"{100 * single[k][v]:.1f}" for k in keys) + " |")
    table = "\n".join(lines)
    args.out.with_suffix(".md").write_text("# TTA views: gain in top-1 over the center view (pt)\n\n"
                                           "`python benchmarks/tta_views.py "
                                           + " ".join(f"--pair {m} {d}" for m, d in args.pair) + "`\n\n"
                                           + table + "\n")
    print(table)


if __name__ == "__main__":
    main()
