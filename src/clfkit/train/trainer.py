"""``fit(config)``: data → ModelSpec → model → epochs → RUN_DIR artifacts.  The library behind clf-train.

After training, one temperature is fitted on the validation split (:mod:`clfkit.report.calibration`) and stored in
the spec of model.pt and spec.json, so every artifact made from the run outputs calibrated probabilities.

RUN_DIR contract (every file written atomically): model.pt (best weights + spec + config + metrics),
last.pt (resume state after the last completed epoch), spec.json, config.json, metrics.json, history.csv, curves.png,
skipped.csv (when images were unreadable), report/ (when DATA has test/), data/ + manifest (with --auto-split),
cache/ (frozen-backbone features, keyed by file contents + spec), report/label_issues.csv/.png (the label audit,
:mod:`clfkit.train.audit`, unless --no-label-audit).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from clfkit.artifacts.checkpoint import RESUME_FORMAT, read_checkpoint, save_checkpoint
from clfkit.data.layout import SplitData, drop_unreadable, read_split_folders
from clfkit.errors import CheckpointError, ConfigError, printable
from clfkit.io import write_csv, write_json
from clfkit.models.classifier import build_classifier
from clfkit.report.calibration import TemperatureFit, calibrate
from clfkit.spec import ModelSpec
from clfkit.train.config import TrainConfig
from clfkit.train.device import resolve_device, resolve_precision
from clfkit.train.distributed import DistInfo, barrier, init_distributed, shutdown
from clfkit.train.report import write_history, write_test_report
from clfkit.train.resolution import default_input_size, resize_for

__all__ = ["fit", "FitResult"]

Log = Callable[[str], None]


@dataclass
class FitResult:
    run_dir: Path
    spec: ModelSpec
    model: torch.nn.Module  # best weights, eval mode, CPU
    best_epoch: int
    epochs_run: int
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    seconds: float
    files: dict[str, Path] = field(default_factory=dict)
    seen_train_indices: list[int] = field(default_factory=list)  # finetune: what this rank saw in epoch 1


def _new_run_dir(config: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{config.backbone.replace(':', '-')}-{stamp}"
    run_dir, k = base, 1
    while run_dir.exists():
        k += 1
        run_dir = base.with_name(f"{base.name}-{k}")
    return run_dir


def _make_spec(config: TrainConfig, class_names: tuple[str, ...], fields: dict[str, Any],
               saved: ModelSpec | None = None, accepts: Callable[[int], bool] = lambda _size: True
               ) -> tuple[ModelSpec, str]:
    """The spec is born here, once: the backbone's defaults at --input-size, or at the size the resolved mode
    trains best at (:mod:`clfkit.train.resolution`) where the backbone ``accepts`` it, keeping the backbone's
    crop ratio; and why that size.  A resumed run keeps the size it started with (``saved``: its spec)."""
    native = fields["input_size"]
    if saved is not None:
        size, why = saved.input_size, "the size the resumed run started with"
    elif config.input_size is not None:
        size, why = config.input_size, "--input-size"
    else:
        size, why = default_input_size(native, config.mode)
        if size != native and not accepts(size):
            size, why = native, f"the backbone's own size (it does not run at {size} px)"
    if size != native:
        fields = {**fields, "input_size": size, "resize_size": resize_for(size, native, fields["resize_size"])}
    return ModelSpec(class_names=class_names, backbone=config.backbone, **fields), why


def _runs_at(model: torch.nn.Module, size: int) -> bool:
    """Whether the backbone runs at ``size`` px (a ViT with a fixed position embedding does not)."""
    was_training = model.backbone.training
    try:
        with torch.inference_mode():
            model.backbone.eval()(torch.zeros(1, 3, size, size))
        return True
    except Exception:  # noqa: BLE001 - whatever the architecture raises, it means "not at this size"
        return False
    finally:
        model.backbone.train(was_training)


def _load_resume(config: TrainConfig) -> tuple[TrainConfig, Path, dict[str, Any] | None]:
    """(saved config, run dir, last.pt contents or None when no epoch had completed)."""
    target = Path(config.resume)  # type: ignore[arg-type]
    run_dir = target.parent if target.suffix == ".pt" else target
    if not (run_dir / "config.json").is_file():
        raise CheckpointError(f"--resume {target}: no clf-train run there (config.json missing)")
    try:
        saved = TrainConfig.from_dict({**json.loads((run_dir / "config.json").read_text()), "resume": None})
    except (json.JSONDecodeError, ConfigError) as exc:
        raise CheckpointError(f"--resume {target}: config.json is unreadable: {exc}") from None
    last = run_dir / "last.pt"
    state = read_checkpoint(last, RESUME_FORMAT) if last.exists() else None
    saved.out = run_dir
    return saved, run_dir, state


def _prepare_data(config: TrainConfig, run_dir: Path, info: DistInfo, log: Log) -> SplitData:
    data_root = config.data
    if config.auto_split:
        data_root = run_dir / "data"
        if info.is_main and not (data_root / "manifest.csv").exists():
            from clfkit.data.make_split import format_summary, make_split

            result = make_split(config.data, data_root, val=config.val_fraction, test=config.test_fraction,
                                seed=config.seed, overwrite=True, progress=False, log=log)
            log(format_summary(result))
        barrier(info)
    data = read_split_folders(data_root)
    data = drop_unreadable(data, workers=config.workers)
    if info.is_main and data.skipped:
        for split, path, reason in data.skipped:
            log(f"skipped {split} image {printable(path)}: {reason}")
        write_csv(run_dir / "skipped.csv", ("split", "path", "reason"), data.skipped)
        log(f"skipped {len(data.skipped)} unreadable image(s); listed in {run_dir / 'skipped.csv'}")
    return data


def resolve_mode(config: TrainConfig, device: torch.device, model: torch.nn.Module) -> tuple[TrainConfig, str]:
    """--mode auto → the mode that reaches the best accuracy here, and why (printed and kept in metrics.json)."""
    if config.mode != "auto":
        return config, "asked for"
    if not config.pretrained:
        return config.with_mode("finetune"), "a random-init backbone has no features worth freezing"
    if device.type == "cuda":
        return config.with_mode("finetune"), "on CUDA the whole network fine-tunes on images"
    from clfkit.train.partial import can_cut

    spec_size = config.input_size or 64
    if can_cut(model, spec_size):
        return config.with_mode("partial"), ("on a CPU the last blocks fine-tune on cached activations, "
                                             "planned to fit --time-budget")
    return config.with_mode("head"), f"the backbone {config.backbone} cannot be cut into blocks: frozen features"


def _calibrated_spec(spec: ModelSpec, outcome: Any, log: Log) -> tuple[ModelSpec, TemperatureFit]:
    """The spec with the temperature fitted on the final model's validation logits (center view, as deployed)."""
    if outcome.val is None or not len(outcome.val[1]):
        fitted = calibrate(np.zeros((0, spec.num_classes)), np.zeros(0, np.int64))
    else:
        fitted = calibrate(*outcome.val)
    if fitted.note:
        log(f"calibration: {fitted.note}")
    else:
        log(f"calibration: temperature {fitted.temperature:.3f} fitted on {fitted.num_samples} validation images "
            f"(NLL {fitted.nll_before:.4f} → {fitted.nll_after:.4f})")
    return spec.with_temperature(fitted.temperature), fitted


def _write_page(run_dir: Path, config: TrainConfig, spec: ModelSpec, data: SplitData,
                metrics: dict[str, Any]) -> Path:
    """RUN_DIR/report/report.html: the test report, the label audit and the model card in one page."""
    from clfkit.report.html import model_facts, write_report_html

    sizes = ", ".join(f"{split} {len(data.splits[split])}" for split in ("train", "val", "test")
                      if data.splits.get(split))
    facts = {**model_facts(spec), "mode": f"{config.mode} ({metrics.get('mode_reason', '')})", "images": sizes,
             "temperature": f"{spec.temperature:.3f}" if spec.temperature != 1.0 else "1 (uncalibrated)",
             "training time": f"{metrics.get('seconds_total', 0):.0f} s", "run folder": str(run_dir)}
    return write_report_html(run_dir / "report", title=f"clf-train report: {run_dir.name}", facts=facts,
                             train_counts=data.counts("train"))


def fit(config: TrainConfig, *, progress: bool = True, log: Log = print) -> FitResult:
    """Train a classifier as ``config`` says and write the RUN_DIR artifacts; returns the best model."""
    start = time.perf_counter()
    resume_state = None
    if config.resume is not None:
        config, run_dir, resume_state = _load_resume(config)
    else:
        run_dir = config.out or _new_run_dir(config)
        if (run_dir / "model.pt").exists() or (run_dir / "last.pt").exists():
            raise ConfigError(f"--out {run_dir} already holds a training run; continue it with "
                              f"`--resume {run_dir}` or choose another --out")
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    info = init_distributed(device.type)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    torch.manual_seed(config.seed)
    log_main: Log = log if info.is_main else (lambda _m: None)
    try:
        # RUN_DIR is created by its first write (atomic_path makes parents), so bad DATA leaves no empty folder.
        data = _prepare_data(config, run_dir, info, log_main)
        model, defaults = build_classifier(config.backbone, len(data.class_names), config.head,
                                           pretrained=config.pretrained and resume_state is None,
                                           weights=config.weights if resume_state is None else None)
        requested = config.mode
        config, mode_reason = resolve_mode(config, device, model)
        saved_spec = ModelSpec.from_dict(resume_state["spec"]) if resume_state is not None else None
        spec, size_reason = _make_spec(config, data.class_names, defaults.spec_fields(), saved_spec,
                                        accepts=lambda size: _runs_at(model, size))
        if saved_spec is not None:
            if saved_spec.with_temperature(1.0) != spec:  # a run started by an older clfkit has a version-1 spec
                raise CheckpointError(f"--resume {run_dir}: the data or backbone changed since the run started "
                                      f"(classes now {list(spec.class_names)}, then {list(saved_spec.class_names)})")
            # Best weights so far (model.pt); the mode runner then applies last.pt's latest state on top.
            model.load_state_dict(read_checkpoint(run_dir / "model.pt")["state_dict"], strict=True)
        if info.is_main:
            write_json(spec.to_dict(), run_dir / "spec.json")
            write_json(config.to_dict(), run_dir / "config.json")
        log_main(f"training {config.backbone} ({config.mode} mode, {precision}, {device}) on "
                 f"{sum(data.counts('train').values())} train / {len(data.splits['val'])} val images, "
                 f"{len(spec.class_names)} classes → {run_dir}")
        model.to(device)
        if requested == "auto":
            log_main(f"--mode auto → {config.mode}: {mode_reason}")
        log_main(f"input {spec.input_size} px (resize {spec.resize_size}): {size_reason}")
        from clfkit.train.modes import run_finetune, run_head
        from clfkit.train.partial import run_partial

        runner = {"head": run_head, "partial": run_partial, "finetune": run_finetune}[config.mode]
        outcome = runner(config=config, model=model, spec=spec, data=data, run_dir=run_dir, device=device,
                         precision=precision, info=info, resume_state=resume_state, progress=progress and info.is_main,
                         log=log_main, started=start)
        model.to("cpu").eval()
        audit = None
        if config.label_audit:  # every rank: a missing feature pass is sharded; rank 0 writes
            from clfkit.train.audit import run_label_audit

            audit = run_label_audit(config=config, data=data, spec=spec, frozen=outcome.frozen, run_dir=run_dir,
                                    device=device, precision=precision, info=info,
                                    progress=progress and info.is_main, log=log_main)
        metrics = dict(outcome.metrics)
        if audit is not None:
            metrics["label_audit"] = audit
        spec, fitted = _calibrated_spec(spec, outcome, log_main)
        metrics["temperature"], metrics["calibration"] = spec.temperature, fitted.to_dict()
        metrics["mode_requested"], metrics["mode_reason"] = requested, mode_reason
        metrics["input_size"], metrics["input_size_reason"] = spec.input_size, size_reason
        metrics["train_counts"] = data.counts("train")
        metrics["seconds_total"] = time.perf_counter() - start + (resume_state or {}).get("seconds", 0.0)
        files: dict[str, Path] = {}
        if audit is not None:
            files["label_issues"] = Path(audit["csv"])
        if info.is_main:
            if outcome.test is not None:
                logits, labels = outcome.test
                report = write_test_report(run_dir / "report", logits, labels, spec, data.counts("train"))
                metrics["test"] = {k: report[k] for k in ("accuracy", "macro_f1", "balanced_accuracy", "num_samples",
                                                          "ece", "ece_uncalibrated")}
                # the 95 % intervals of those numbers (clfkit.report.intervals), for the summary line
                metrics["test"].update({k: report[k] for k in ("accuracy_ci95", "macro_f1_ci95",
                                                               "balanced_accuracy_ci95")})
                files["report"] = run_dir / "report"
            save_checkpoint(run_dir / "model.pt", model, spec, config=config.to_dict(), metrics=metrics)
            write_json(spec.to_dict(), run_dir / "spec.json")  # now with the fitted temperature
            files["metrics"] = write_json(metrics, run_dir / "metrics.json", null_non_finite=True)
            files.update(write_history(run_dir, outcome.history))
            files["model"] = run_dir / "model.pt"
            if (run_dir / "report").is_dir():
                files["report_html"] = _write_page(run_dir, config, spec, data, metrics)
        barrier(info)
        return FitResult(run_dir=run_dir, spec=spec, model=model, best_epoch=outcome.best_epoch,
                         epochs_run=len(outcome.history), metrics=metrics, history=outcome.history,
                         seconds=time.perf_counter() - start, files=files,
                         seen_train_indices=outcome.seen_train_indices)
    finally:
        shutdown(info)
