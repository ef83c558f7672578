"""``run_infer``: predict a folder of photos with a loaded model, stream the rows, and evaluate a labelled folder.

The library function behind ``clf-infer`` (engine + paths → rows written, report, summary).  No torch import.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from clfkit.errors import ConfigError
from clfkit.io import check_writable
from clfkit.runtime.engine import Engine
from clfkit.runtime.evaluate import Evaluation
from clfkit.runtime.explain import Occlusion, OcclusionConfig, check_explain
from clfkit.runtime.pipeline import check_views
from clfkit.runtime.records import UNKNOWN, check_reject_below
from clfkit.runtime.sources import detect_labelled, expand_paths
from clfkit.runtime.writers import WRITERS, finished_paths, open_writer, path_key
from clfkit.vision.tta import tta_view_names

__all__ = ["EXIT_SOME_FAILED", "InferResult", "check_options", "require_images", "run_infer", "format_report",
           "describe_accuracy", "describe_coverage"]

EXIT_SOME_FAILED = 3  # some files could not be read; every readable file was still predicted and written


@dataclass(frozen=True)
class InferResult:
    total: int
    failed: int
    seconds: float
    provider: str
    report: dict[str, Any] | None  # what went into metrics.json / summary.json, when --report was given
    reject_below: float | None = None  # --reject-below
    rejected: int | None = None  # predictions "unknown" for it (None: not counted, e.g. Parquet shards)

    @property
    def images_per_s(self) -> float:
        return (self.total - self.failed) / self.seconds if self.seconds > 0 else 0.0

    def describe_rejected(self) -> str | None:
        """"N of M predictions below 0.80: unknown" for a run with --reject-below, else None."""
        if self.reject_below is None or self.rejected is None:
            return None
        p = self.reject_below
        shown = f"{p:.2f}" if round(p, 2) == p else f"{p:g}"  # 0.8 → "0.80", 0.855 stays "0.855"
        return f"{self.rejected} of {self.total - self.failed} predictions below {shown}: {UNKNOWN}"


def check_options(out: str | Path | None, report: str | Path | None, visualize: int, skip_existing: bool) -> None:
    """Option combinations that cannot work, refused before the model is loaded."""
    if out is not None and str(out).endswith(("/", os.sep)):
        raise ConfigError(f"--out {out}: a folder of Parquet shards is written by a cluster run (--ray); "
                          "a local run writes .csv, .jsonl or .json")
    if visualize and report is None:
        raise ConfigError("--visualize needs --report DIR (the figures are written there)")
    if skip_existing and (out is None or str(out) == "-"):
        raise ConfigError("--skip-existing needs --out FILE.csv or FILE.jsonl (it reads the rows already there)")
    writer = WRITERS.get(Path(out).suffix.lower()) if skip_existing else None
    if writer is not None and not writer.streams:  # a whole-file format has no finished rows to continue from
        raise ConfigError(f"--skip-existing: --out {out} is a {writer.suffix} array, written only when a run "
                          "finishes; use .csv or .jsonl for runs you may need to continue")
    if skip_existing and report is not None:
        raise ConfigError("--skip-existing cannot be combined with --report: the report needs every file's "
                          "probabilities, which the rows of the earlier run do not hold; rerun the report in full")


def require_images(paths: Sequence[str | Path], recursive: bool) -> None:
    """ConfigError when ``paths`` hold no image file at all (reads only as far as the first one)."""
    if next(iter(expand_paths(paths, recursive)), None) is None:
        raise ConfigError(f"no image files found in {', '.join(map(str, paths))} (looked for .jpg, .jpeg, .png, "
                          ".bmp, .gif, .tif, .tiff, .webp" + ("" if recursive else "; --no-recursive is set") + ")")


def run_infer(engine: Engine, paths: Sequence[str | Path], *, out: str | Path | None = None,
              report: str | Path | None = None, tta: int = 0, batch_size: int = 32, topk: int = 5,
              recursive: bool = True, visualize: int = 0, fast_decode: bool = False,
              workers: int | None = None, progress: bool = False, skip_existing: bool = False,
              log: Callable[[str], None] = lambda msg: None, cluster: Any = None,
              reject_below: float | None = None, explain: bool = True) -> InferResult:
    """Predict every image under ``paths``, stream rows to ``out`` and, with ``report``, write the report.

    ``skip_existing`` continues an interrupted run: files that already have a prediction row in ``out`` (a
    .csv/.jsonl) are not predicted again, and the new rows are appended.  ``cluster`` (a
    :class:`clfkit.cluster.job.RayJob`) predicts on a Ray cluster instead of here; its rows come back in
    input order, so everything else (writers, report, continuing) is the same.  ``reject_below`` P writes
    ``pred = "unknown"`` for a prediction whose top probability is below P (counted in the result).
    ``explain`` (with ``visualize``) draws occlusion heat maps, computed with ``engine``, into the panels and
    the mistakes grid (:mod:`clfkit.runtime.explain`; False: ``--no-explain``)."""
    check_options(out, report, visualize, skip_existing)
    check_views(engine, tta)  # before any output file is opened
    check_explain(explain, visualize)
    reject_below = check_reject_below(reject_below, engine.spec.class_names)
    require_images(paths, recursive)
    if report is not None:
        check_writable(report, f"--report {report}")  # before the predictions, not after them
    labelled = detect_labelled(paths, engine.spec.class_names) if report is not None else None
    if labelled is not None:
        log(f"labelled folder {labelled.root}: {len(labelled.known)} class folders of {engine.spec.num_classes} "
            "model classes")
        for line in labelled.describe_unknown(engine.spec.class_names):
            log(line)
    elif report is not None:
        log("input is not a labelled folder (one folder with sub-folders named like the model's classes): the "
            "report has predictions and figures but no accuracy")
    # The heat maps' model rows per call: what one batch of the run holds (--batch-size x TTA views)
    explainer = Occlusion(engine, OcclusionConfig(batch_size=batch_size * max(1, tta))) \
        if explain and visualize and report is not None else None
    evaluation = Evaluation(engine.spec, labelled, visualize, reject_below=reject_below,
                            explainer=explainer) if report is not None else None
    k = min(topk, engine.spec.num_classes)
    done = finished_paths(out, k) if skip_existing and out is not None else set()

    def todo() -> Iterator[Path]:
        files = expand_paths(paths, recursive, log=log)
        return (f for f in files if path_key(f) not in done) if done else files

    if done:
        log(f"--skip-existing: {len(done)} file(s) already predicted in {out}; only the others are run")
    bar = _progress(sum(1 for _ in todo())) if progress else None  # a cheap listing pass for the total
    start = time.perf_counter()
    seen = failed = rejected = 0
    try:
        with open_writer(out, k, engine.provider, append=skip_existing) as writer:
            if cluster is not None:
                predictions = cluster.predict(todo(), tta=tta, batch_size=batch_size, topk=k,
                                              fast_decode=fast_decode, keep_probs=labelled is not None,
                                              reject_below=reject_below)
            else:
                predictions = engine.predict(todo(), tta=tta, batch_size=batch_size, topk=k, workers=workers,
                                             fast_decode=fast_decode, keep_probs=labelled is not None,
                                             reject_below=reject_below)
            for pred in predictions:
                writer.write(pred)
                seen += 1
                failed += not pred.ok
                rejected += pred.rejected
                if evaluation is not None:
                    evaluation.add(pred)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    written = None
    if evaluation is not None and report is not None:
        info = {"model": str(engine.path), "provider": engine.provider, "device": engine.device,
                "runtime": engine.runtime, "precision_run": engine.precision_run, "chosen_by": engine.choice.reason,
                "input_format": engine.input_format, "precision": engine.precision, "tta": tta,
                "tta_views": tta_view_names(tta), "fast_decode": fast_decode, "batch_size": batch_size,
                "seconds": round(seconds, 3)}
        written = evaluation.write(report, info, log=log)
    result = InferResult(total=seen, failed=failed, seconds=seconds,
                         provider=engine.provider, report=written, reject_below=reject_below,
                         rejected=rejected)
    if evaluation is not None and report is not None:
        _write_page(report, engine, info, result)
    return result


def _write_page(report: str | Path, engine: Engine, info: dict[str, Any], result: InferResult) -> None:
    """report.html beside the figures: the model card holds what ran and how fast (the summary line's speed)."""
    from clfkit.report.html import model_facts, write_report_html

    predicted = result.total - result.failed
    speed = f"{result.images_per_s:.1f} img/s end to end ({predicted} images)" if result.seconds > 0 else ""
    facts = {"model file": Path(engine.path).name, **model_facts(engine.spec, engine.input_format),
             "runtime": f"{engine.provider} ({engine.runtime}, {engine.precision_run})",
             "chosen because": info.get("chosen_by"), "speed": speed,
             "TTA views": ", ".join(info.get("tta_views") or []) or "center only"}
    write_report_html(report, title=f"clf-infer report: {Path(engine.path).name}", facts=facts)


def _progress(total: int) -> Any:
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (logs, CI), so no carriage-return noise there
    return tqdm(total=total, unit="img", desc="clf-infer", file=sys.stderr, disable=None, smoothing=0.1)


def describe_accuracy(report: dict[str, Any], tta: int) -> str:
    """"accuracy 0.9450 [0.9065, 0.9686] with TTA (4 views), 0.9404 [0.9007, 0.9651] without": the accuracy
    line of a labelled report, each number with its 95 % Wilson interval."""
    from clfkit.report.intervals import format_interval

    def acc(key: str) -> str:
        ci = report.get(f"{key}_ci95")
        return f"{report[key]:.4f}" + (f" {format_interval(ci)}" if ci else "")

    line = f"accuracy {acc('accuracy')}"
    if tta > 1:
        line += f" with TTA ({tta} views), {acc('accuracy_no_tta')} without"
    return line + (" (95 % intervals)" if report.get("accuracy_ci95") else "")


def format_report(report: dict[str, Any]) -> str:
    """Terminal summary of a labelled report: the metrics table and the TTA vs no-TTA comparison."""
    from clfkit.report.intervals import format_interval
    from clfkit.report.metrics import format_metrics_table

    if "per_class" not in report:
        return report.get("note", "")
    lines = [format_metrics_table(report)]
    if "ece" in report:
        with_tta = f", {100 * report['ece']:.2f} % with TTA" if report.get("tta", 0) > 1 else ""
        if report.get("calibrated", True):
            lines.append(f"\ncalibration: temperature {report['temperature']:.3f}; ECE of the center view "
                         f"{100 * report['ece_uncalibrated']:.2f} % raw softmax → {100 * report['ece_no_tta']:.2f} % "
                         f"with it{with_tta}")
        else:
            lines.append(f"\ncalibration: none (spec version 1, raw softmax); ECE of the center view "
                         f"{100 * report['ece_no_tta']:.2f} %{with_tta}")
    if report.get("tta", 0) > 1:
        lines.append(f"\nTTA ({report['tta']} views: {', '.join(report['tta_views'])}) vs the center view alone:")
        lines.append(f"{'class':<24} {'no TTA':>8} {'95 % CI':>16} {'TTA':>8} {'95 % CI':>16} {'delta':>8}")
        for row in report["per_class_tta_vs_no_tta"]:
            lines.append(f"{row['class'][:24]:<24} {row['no_tta']:>8.4f} {format_interval(row.get('no_tta_ci95')):>16} "
                         f"{row['tta']:>8.4f} {format_interval(row.get('tta_ci95')):>16} {row['delta']:>+8.4f}")
    return "\n".join(lines)


def describe_coverage(report: dict[str, Any]) -> list[str]:
    """The reject-threshold lines of a labelled report: the accuracy kept at --reject-below, and the thresholds
    that reach 95 % and 99 % accuracy on this folder (clfkit.report.coverage)."""
    lines = []
    at = report.get("kept_at_reject_below")
    if at is not None:
        accuracy = "none kept" if at["accuracy"] is None else f"accuracy {at['accuracy']:.4f} on them"
        lines.append(f"at --reject-below {at['threshold']:g}: {at['kept']} of {report['num_samples']} kept "
                     f"({at['coverage']:.1%}), {accuracy}")
    for key, value in report.items():
        if key.startswith("reject_below_for_"):
            target = f"{key.rsplit('_', 1)[1]} % accuracy"
            lines.append(f"for {target}: no threshold reaches it on this folder" if value is None else
                         f"for {target}: --reject-below {value['threshold']:g} keeps {value['kept']} of "
                         f"{report['num_samples']} ({value['coverage']:.1%}), accuracy {value['accuracy']:.4f}")
    return lines
