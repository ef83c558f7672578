"""``clf-demo``: the whole flow in one command — split → train → export (verified) → infer with TTA → bench.

With no ``--data`` it first draws a small labelled photo folder (:mod:`clfkit.shapes`), so it runs on a fresh
machine with no downloads; with ``--data DIR`` it runs the same steps on a real class-per-folder directory.
Every step calls the same library function as its command, so the demo is the product, not a copy of it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from clfkit.devices import has_native_bf16
from clfkit.errors import ConfigError

__all__ = ["DemoResult", "run_demo"]

Log = Callable[[str], None]


@dataclass
class DemoResult:
    out: Path
    steps: dict[str, float] = field(default_factory=dict)  # step → seconds
    train_metrics: dict[str, Any] = field(default_factory=dict)
    infer_metrics: dict[str, Any] = field(default_factory=dict)
    onnx: Path | None = None
    report: Path | None = None
    predictions: Path | None = None
    bench: dict[str, Any] = field(default_factory=dict)  # results.json of the quick clf-bench


def run_demo(out: Path, *, data: Path | None = None, backbone: str = "efficientnet_lite0", per_class: int = 40,
             epochs: int = 60, tta: int = 5, bench: bool = True, progress: bool = True,
             log: Log = print) -> DemoResult:
    """Run every step into ``out`` (which must be new or empty) and return what each step produced."""
    from clfkit.data.layout import evaluation_folder
    from clfkit.data.make_split import format_summary, make_split
    from clfkit.data.synthetic import make_shapes_dataset
    from clfkit.export import export_checkpoint
    from clfkit.runtime import Engine
    from clfkit.runtime.infer import run_infer
    from clfkit.train.config import TrainConfig
    from clfkit.train.trainer import fit

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} is not empty; choose a new folder for the demo")
    result = DemoResult(out=out)

    def step(name: str, title: str) -> Callable[[], None]:
        log(f"\n== {title}")
        start = time.perf_counter()
        return lambda: result.steps.__setitem__(name, time.perf_counter() - start)

    images = data
    if images is None:
        done = step("images", f"1/6 drawing a labelled photo folder ({per_class} images per class) → {out / 'images'}")
        images = make_shapes_dataset(out / "images", per_class=per_class)
        done()
    done = step("split", f"2/6 clf-split {images} {out / 'data'}")
    split = make_split(images, out / "data", seed=0, progress=progress)
    log(format_summary(split))
    done()

    # The demo keeps its own budget (about a minute in all): the frozen-feature head trains in seconds, where the
    # default --mode auto would spend clf-train's 5-minute --time-budget fine-tuning.
    done = step("train", f"3/6 clf-train {out / 'data'} --out {out / 'run'} --backbone {backbone} --mode head")
    fitted = fit(TrainConfig(data=out / "data", out=out / "run", backbone=backbone, mode="head", epochs=epochs),
                 progress=progress, log=log)
    result.train_metrics = fitted.metrics
    test = fitted.metrics.get("test", {})
    log(f"validation accuracy {fitted.metrics['val_acc']:.1%}"
        + (f", test accuracy {test['accuracy']:.1%}" if test else ""))
    done()

    done = step("export", f"4/6 clf-export {out / 'run' / 'model.pt'} {out / 'model.onnx'}  (verified on real images)")
    # The demo keeps its own budget (about a minute on 2 cores): no int8 file, which the full flow makes.
    exported = export_checkpoint(out / "run" / "model.pt", out / "model.onnx", int8=False, log=log)
    for report in exported.reports:
        log(report.format_table())
    if not exported.passed:
        raise ConfigError("the exported model disagrees with PyTorch; see " + str(exported.verify_json))
    result.onnx = exported.files["fp32"]
    done()

    target, _ = evaluation_folder(out / "data")
    done = step("infer", f"5/6 clf-infer --model {result.onnx} --tta {tta} {target} --report {out / 'report'}")
    engine = Engine.from_onnx(result.onnx, device="auto", log=log)
    inferred = run_infer(engine, [target], out=out / "predictions.csv", report=out / "report", tta=tta,
                         visualize=4, progress=progress, log=log)
    result.infer_metrics = inferred.report or {}
    result.report, result.predictions = out / "report", out / "predictions.csv"
    done()

    if bench:
        from clfkit.bench.report import write_report
        from clfkit.bench.run import BenchConfig, run_bench

        # A quick look, not the published benchmark: fewer timed runs, one pass, no memory subprocesses.
        done = step("bench", f"6/6 clf-bench (quick) {out / 'run' / 'model.pt'} {result.onnx} {out / 'data'} "
                             f"--out {out / 'bench'}")
        config = BenchConfig(checkpoint=out / "run" / "model.pt", onnx=result.onnx, data=out / "data",
                             batch_sizes=(1, 8), tta=(0,), min_runs=10, min_seconds=0.5, e2e_repeats=1,
                             memory=False, peers=(), autocast=has_native_bf16(),  # no minutes of compiling,
                             command="clf-demo (quick bench)")  # nor of bf16 emulated on a CPU without it
        result.bench = run_bench(config, log=log)
        write_report(result.bench, out / "bench")
        done()
    return result
