"""``--mode partial``: fine-tune the last blocks of the backbone on cached activations of the frozen first ones.

Most of a convolutional backbone's FLOPs sit in its early, high-resolution blocks, and those are also the most
generic ones.  So they run ONCE per cached view of each training image, on the fast inference runtime
(onnxruntime on a CPU: 2.8x PyTorch bf16 on an AMX Xeon, ~6x PyTorch fp32 on a Zen 4 EPYC), and their output
is cached in float16; the last blocks and the head then train on the cache for several epochs, each costing
only the small tail's forward and backward pass.

Stages (timed separately in ``metrics.json``): plan (measure this machine's costs, pick the cut, views and
epochs that fit ``--time-budget``, :mod:`clfkit.train.plan`) → extract (cache the activations; val/test in
float32, the center view only, as deployed) → warm start (a linear head on the frozen tail's pooled features,
the fastai ``fine_tune`` pattern: the tail never sees gradients from a random head) → train (discriminative
learning rates, warm-up + cosine, label smoothing; BatchNorm keeps its ImageNet running statistics, its scale
and shift train) → evaluate.  The blocks are the model's own modules, so what trains IS the assembled network
that model.pt stores and clf-export verifies.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from clfkit.artifacts.checkpoint import read_cache, save_state
from clfkit.data.layout import Sample, SplitData
from clfkit.errors import ImageError
from clfkit.io import write_json
from clfkit.models.stages import Prefix, Tail, backbone_blocks
from clfkit.report.calibration import calibrate
from clfkit.spec import ModelSpec
from clfkit.train import loop
from clfkit.train.config import TrainConfig
from clfkit.train.device import autocast
from clfkit.train.distributed import DistInfo, all_reduce_sum, from_rank_order, gather_objects
from clfkit.train.features import extract_features, feature_cache_key
from clfkit.train.frozen_runtime import ort_session
from clfkit.train.plan import MIN_VIEWS, Costs, Plan, plan_partial
from clfkit.vision.augment import training_views
from clfkit.vision.images import load_rgb
from clfkit.vision.postprocess import mean_of_views, softmax
from clfkit.vision.tta import tta_view_names, tta_views

__all__ = ["run_partial", "can_cut", "TAIL_SHARE", "WARM_EPOCHS"]

Log = Callable[[str], None]
TAIL_SHARE = 0.5  # candidate cuts train at most this share of the backbone's forward time (more would not fit)
DROPOUT = 0.3  # on the pooled features while the tail trains (timm's EfficientNet-Lite2 training rate)
DROP_PATH = 0.2  # stochastic depth of the trained residual blocks (timm's default for EfficientNets)
TTA_CHECK_VIEWS = 5  # the --tta N whose worth on the validation split every partial run records
WARM_EPOCHS = 30  # linear head on the frozen tail's features: a few seconds, early-stopped on validation
SAVE_RESERVE_S = 8.0  # the budget left for the test report and model.pt after training
# The plan fills this share of the time left: the stages ran 2-16 % longer than the measured costs predicted on
# the shared sets (plan vs stages, benchmarks/results/train_*.md), and a plan that fills the budget exactly
# ends past it (boats 301 s, trashnet 300 s of 300).
PLAN_SHARE = 0.9
_MEASURE_BATCH = 32
_MEASURE_IMAGES = 8
_EXTRACT_BATCH = 32


def can_cut(model: nn.Module, input_size: int) -> bool:
    return backbone_blocks(model.backbone, min(input_size, 64)) is not None


def _bn_frozen_train(module: nn.Module) -> None:
    """Train mode, except BatchNorm layers, which keep their running statistics (eval mode)."""
    module.train()
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


class _DropPath(nn.Module):
    """Stochastic depth: in training, a residual branch is dropped for a random ``rate`` of the samples."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0:
            return x
        keep = (torch.rand(x.shape[0], *([1] * (x.ndim - 1)), device=x.device) >= self.rate).to(x.dtype)
        return x * keep / (1 - self.rate)


@contextmanager
def stochastic_depth(blocks: list[nn.Module], rate: float) -> Iterator[int]:
    """While training: residual blocks that have a ``drop_path`` slot (timm's) drop their branch with a rate
    rising linearly to ``rate`` at the last block, as timm trains EfficientNets; restored afterwards, so the
    model that is saved and exported is unchanged.  Yields how many blocks got it."""
    slots = [b for b in blocks
             if isinstance(getattr(b, "drop_path", None), nn.Module) and getattr(b, "has_skip", False)]
    saved = [b.drop_path for b in slots]
    try:
        for k, block in enumerate(slots):
            block.drop_path = _DropPath(rate * (k + 1) / len(slots))
        yield len(slots)
    finally:
        for block, original in zip(slots, saved):
            block.drop_path = original


# --------------------------------------------------------------------------------------- measuring costs
def _block_seconds(blocks: list[nn.Module], size: int, device: torch.device, batch: int = 8
                   ) -> tuple[list[float], list[tuple[int, ...]]]:
    """Seconds per sample of each block's forward pass (PyTorch, eval) on this machine, and the activation
    shape after each block.  Measured, not counted: per FLOP, the small late blocks run 2-3x faster than the
    wide early ones, so FLOPs mispredict the tail's cost by that much."""
    x = torch.randn(batch, 3, size, size, device=device)
    seconds, shapes = [], []
    with torch.inference_mode():
        h = x
        for block in blocks:  # warm-up: first calls allocate and pick kernels
            h = block(h)
        h = x
        for block in blocks:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            h = block(h)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds.append((time.perf_counter() - start) / batch)
            shapes.append(tuple(h.shape[1:]))
    return seconds, shapes


def _timed(fn: Callable[[], Any], repeats: int = 2) -> float:
    fn()  # warm-up: first calls allocate and pick kernels
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


class _PrefixRunner:
    """The frozen blocks on onnxruntime (CPU) or PyTorch (CUDA, or where the export fails)."""

    def __init__(self, blocks: list[nn.Module], cut: int, size: int, device: torch.device, precision: str,
                 log: Log) -> None:
        self.prefix = Prefix(blocks, cut).eval()
        self.device, self.precision, self.session = device, precision, None
        self.runtime = "torch"
        if device.type == "cpu":
            try:
                self.session = ort_session(self.prefix, size)
                self.runtime = "onnxruntime"
            except Exception as exc:  # noqa: BLE001 - PyTorch computes the same activations, only slower
                log(f"frozen blocks run in PyTorch: exporting them to onnxruntime failed ({type(exc).__name__})")

    def __call__(self, batch: np.ndarray, precision: str | None = None) -> np.ndarray:
        if self.session is not None:
            return self.session.run(None, {"input": batch})[0]
        with torch.inference_mode(), autocast(self.device, precision or self.precision):
            return self.prefix(torch.from_numpy(batch).to(self.device)).float().cpu().numpy()


def _decode_cost(samples: Sequence[Sample], spec: ModelSpec, seed: int) -> float:
    """Seconds to decode an image and cut one training view, over a few of the training images."""
    picked = list(samples[:: max(1, len(samples) // _MEASURE_IMAGES)])[:_MEASURE_IMAGES]
    start, views = time.perf_counter(), 0
    for sample in picked:
        try:
            image = load_rgb(sample.path)
        except ImageError:
            continue
        training_views(image, spec, MIN_VIEWS, f"{seed}:{sample.path.name}")
        views += MIN_VIEWS
    return (time.perf_counter() - start) / max(views, 1)


def _measure(blocks: list[nn.Module], head: nn.Module, size: int, device: torch.device, precision: str,
             log: Log, cut: int | None = None, batch: int = _MEASURE_BATCH) -> tuple[Costs, dict[int, int]]:
    """Per-sample costs of every candidate cut on this machine: each block's forward time, one timed training
    step and evaluation of a middle candidate's tail (the ratio to its forward time gives every other
    tail's cost; checked against timed steps at four cuts of EfficientNet-Lite2: within 15 %), and the
    frozen prefix on its runtime at the deepest and the shallowest candidate cut (the inference runtime's
    speed-up over PyTorch is not the same for every block; in between, interpolated on the prefix's
    PyTorch time)."""
    seconds, shapes = _block_seconds(blocks, size, device)
    total = sum(seconds)
    tail_s = [sum(seconds[c:]) for c in range(len(blocks))]
    head_s = [sum(seconds[:c]) for c in range(len(blocks))]
    trainable = [c for c in range(1, len(blocks)) if any(True for b in blocks[c:] for _ in b.parameters())]
    candidates = [c for c in trainable if tail_s[c] <= TAIL_SHARE * total] or trainable[-1:]
    if cut is not None:  # --cut: any block with weights after it, however much it costs
        if cut not in trainable:
            from clfkit.errors import ConfigError

            raise ConfigError(f"--cut {cut}: this backbone's blocks that can train start at {trainable[0]} and "
                              f"end at {trainable[-1]} (of {len(blocks)} blocks: stem, stages, head conv)")
        candidates = sorted({*candidates, cut})
    deepest, shallowest = candidates[0], candidates[-1]
    ref = candidates[len(candidates) // 2]  # a middle cut: its step is a few seconds to time, not tens
    train_s, eval_s = _tail_seconds(blocks, head, ref, shapes, device, precision, batch)
    prefix = {c: _prefix_seconds(blocks, c, size, device, precision, log) for c in {deepest, shallowest}}

    def prefix_at(c: int) -> float:
        if deepest == shallowest:
            return prefix[deepest]
        w = (head_s[c] - head_s[deepest]) / max(head_s[shallowest] - head_s[deepest], 1e-12)
        return (1 - w) * prefix[deepest] + w * prefix[shallowest]

    share = {c: tail_s[c] / max(tail_s[ref], 1e-12) for c in candidates}
    costs = Costs(prefix={c: prefix_at(c) for c in candidates}, train={c: train_s * share[c] for c in candidates},
                  tail_eval={c: eval_s * share[c] for c in candidates})
    bytes_per_view = {c: 2 * math.prod(shapes[c - 1]) for c in candidates}  # float16 activations
    return costs, bytes_per_view


def _tail_seconds(blocks: list[nn.Module], head: nn.Module, cut: int, shapes: list[tuple[int, ...]],
                  device: torch.device, precision: str, batch: int = _MEASURE_BATCH) -> tuple[float, float]:
    """Seconds per sample of one training step and of one evaluation of the blocks from ``cut`` + head, at
    the batch size training uses: per sample, a step of 64 took 1.45x one of 32 (Lite2, cut 16, 2 cores),
    and timing 32 for a batch-64 run planned boats' epochs 30 % short (150 s planned, 196 s ran)."""
    tail = Tail(blocks, cut, head).to(device)
    grads = {p: p.requires_grad for p in tail.parameters()}
    for p in grads:
        p.requires_grad_(True)  # timed as it will train: the backward pass is most of a step
    x = torch.randn(batch, *shapes[cut - 1], device=device)
    y = torch.zeros(batch, dtype=torch.long, device=device)
    state = copy.deepcopy(tail.state_dict())
    # the optimizer's update is part of a step (AdamW over every trained weight); lr 0 leaves the weights as
    # they are, and the state dict is restored anyway
    optimizer = torch.optim.AdamW([p for p in tail.parameters() if p.requires_grad], lr=0.0, weight_decay=0.0)

    def step() -> None:
        _bn_frozen_train(tail)
        with autocast(device, precision):
            loss = nn.functional.cross_entropy(tail(x).float(), y)
        loss.backward()
        optimizer.step()
        tail.zero_grad(set_to_none=True)

    def evaluate() -> None:
        tail.eval()
        with torch.inference_mode():
            tail(x)

    train_s, eval_s = _timed(step) / batch, _timed(evaluate) / batch
    tail.load_state_dict(state)  # the measurement must leave no trace (no optimizer step ran, but be sure)
    for p, flag in grads.items():
        p.requires_grad_(flag)
    return train_s, eval_s


def _timed_cut_plan(plan: Plan | None, costs: Costs, plan_args: dict[str, Any], blocks: list[nn.Module],
                    head: nn.Module, size: int, device: torch.device, precision: str, tries: int = 3,
                    batch: int = _MEASURE_BATCH) -> tuple[Plan | None, Costs]:
    """The plan again, with the chosen cut's training and evaluation cost timed at that cut itself rather than
    scaled from the middle cut: scaled, the tail's cost came out ~30 % low at cut 14 of Lite2 (trashnet: ~70 s
    epochs planned at ~50 s, and the budget stopped training after 2 of 3 passes, mid-schedule).  Repeats while the
    new plan picks a cut not timed yet (at most ``tries`` timings)."""
    timed: set[int] = set()
    shapes: list[tuple[int, ...]] | None = None
    while plan is not None and plan.cut not in timed and len(timed) < tries:
        if shapes is None:
            shapes = _block_seconds(blocks, size, device, batch=1)[1]
        train_s, eval_s = _tail_seconds(blocks, head, plan.cut, shapes, device, precision, batch)
        costs = dataclasses.replace(costs, train={**costs.train, plan.cut: train_s},
                                    tail_eval={**costs.tail_eval, plan.cut: eval_s})
        timed.add(plan.cut)
        plan = plan_partial(costs, **plan_args)
    return plan, costs


def _prefix_seconds(blocks: list[nn.Module], cut: int, size: int, device: torch.device, precision: str,
                    log: Log) -> float:
    runner = _PrefixRunner(blocks, cut, size, device, precision, log)
    pixels = np.random.default_rng(0).standard_normal((_MEASURE_BATCH, 3, size, size)).astype(np.float32)
    return _timed(lambda: runner(pixels), repeats=1) / _MEASURE_BATCH


# ------------------------------------------------------------------------------------------ the cache
def _activations(config: TrainConfig, runner: _PrefixRunner, spec: ModelSpec, data: SplitData, plan: Plan,
                 run_dir: Path, info: DistInfo, progress: bool, log: Log
                 ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{split: (activations (N, V, C, H, W), labels (N,))}: train = this rank's shard in float16 with
    plan.views views, val/test = every image's center view in float32 (gathered on every rank)."""
    key = feature_cache_key(spec, {"backbone": config.backbone, "weights": str(config.weights or ""),
                                   "cut": plan.cut, "runtime": runner.runtime, "world": info.world_size},
                            data.splits, plan.views, config.seed, "partial-fp16")
    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for split, samples in data.splits.items():
        cache = run_dir / "cache" / f"activations-{key[:24]}-{split}-r{info.rank}.pt"
        stored = read_cache(cache, key, log, "activation cache")
        if stored is not None:
            out[split] = (stored["x"], stored["y"])
            continue
        train = split == "train"
        views = plan.views if train else 1
        shard = samples[info.rank::info.world_size]
        x, ok = extract_features(
            None, shard, spec, views=views, seed=config.seed, batch_size=_EXTRACT_BATCH, workers=config.workers,
            desc=f"{split} activations ({views} view{'s' * (views > 1)})", progress=progress,
            forward=lambda b, t=train: runner(b, config.precision if t else "fp32"),
            dtype=np.float16 if train else np.float32)
        labels = np.array([s.label for s in shard], np.int64)
        if not train and info.enabled:  # every rank evaluates every image: the same numbers everywhere
            parts = gather_objects((x, np.asarray(ok), labels), info)
            x, ok, labels = (np.concatenate([p[k] for p in parts]) for k in range(3))
        ok = np.asarray(ok, bool)
        out[split] = (torch.from_numpy(np.ascontiguousarray(x[ok])), torch.from_numpy(labels[ok]))
        save_state({"key": key, "x": out[split][0], "y": out[split][1]}, cache)
    return out


def _tta_on_val(runner: _PrefixRunner, tail: Tail, samples: Sequence[Sample], spec: ModelSpec,
                device: torch.device, workers: int | None, views: int = TTA_CHECK_VIEWS) -> dict[str, Any]:
    """Whether ``--tta views`` helps the trained model on the validation split (recorded in metrics.json and
    said in the summary and report): every image through the assembled network, float32, as deployed."""
    x, ok = extract_features(None, samples, spec, views=views, workers=workers, progress=False,
                             forward=lambda b: runner(b, "fp32"), make_views=lambda im, n: tta_views(im, spec, n))
    ok = np.asarray(ok, bool)
    labels = np.array([s.label for s in samples])[ok]
    acts = torch.from_numpy(x[ok])
    logits = _tail_outputs(tail, acts.reshape(-1, *acts.shape[2:]), device).numpy().reshape(len(labels), views, -1)
    # clf-infer --tta averages the views' calibrated probabilities: the temperature fit() will store (fitted on
    # the same center view), so that "helps" is said of what deployment runs
    temperature = calibrate(logits[:, 0], labels).temperature
    probs = softmax(logits, temperature=temperature)
    center = float((probs[:, 0].argmax(1) == labels).mean())
    tta = float((mean_of_views(probs).argmax(1) == labels).mean())
    return {"views": views, "view_names": tta_view_names(views), "val_acc_center": center, "val_acc_tta": tta,
            "helps": tta > center, "temperature": temperature}


# -------------------------------------------------------------------------------------------- training
def _tail_outputs(tail: Tail, x: torch.Tensor, device: torch.device, precision: str = "fp32", *,
                  features: bool = False, batch: int = 128) -> torch.Tensor:
    """Float32 outputs of the tail in eval mode over cached activations (N, C, H, W): the logits (in fp32:
    what the assembled model outputs for these images), or with ``features`` the pooled features (N, F)."""
    tail.eval()
    forward = tail.features if features else tail
    out = []
    with torch.inference_mode(), autocast(device, precision):
        for i in range(0, len(x), batch):
            out.append(forward(x[i:i + batch].to(device).float()).float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


def _warm_start(tail: Tail, acts: dict[str, tuple[torch.Tensor, torch.Tensor]], config: TrainConfig,
                device: torch.device, precision: str, criterion: nn.Module, info: DistInfo,
                keep: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Train the head alone on the frozen tail's pooled features (every rank on the same gathered features).
    ``keep`` receives the center-view features ("train", "val"; in rank order), which the label audit reuses."""
    x, y = acts["train"]
    views = x.shape[1]
    feats = _tail_outputs(tail, x.reshape(-1, *x.shape[2:]), device, precision, features=True)
    labels = y.repeat_interleave(views)
    if info.enabled:
        parts = gather_objects((feats.numpy(), labels.numpy()), info)
        feats = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    val_f = _tail_outputs(tail, acts["val"][0][:, 0], device, features=True)
    if keep is not None:  # these ARE the pretrained backbone's features: the tail has not trained yet
        keep.update(train=feats.reshape(-1, views, feats.shape[-1])[:, 0].numpy(), val=val_f.numpy())
    return loop.warm_start_head(tail.head, feats.to(device), labels.to(device), val_f.to(device),
                                acts["val"][1].to(device), criterion, optimizer=config.optimizer, seed=config.seed,
                                epochs=WARM_EPOCHS)


def _epoch(net: nn.Module, tail: Tail, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
           criterion: nn.Module, *, steps: int, epoch: int, epochs: int, config: TrainConfig, device: torch.device,
           precision: str, info: DistInfo, progress: Callable[[int], None]) -> dict[str, float]:
    """One pass over this rank's cached views (N*V samples), ``steps`` batches on every rank."""
    _bn_frozen_train(tail)
    views = x.shape[1]
    n = x.shape[0] * views
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch * 31 + info.rank)
    order = torch.randperm(n, generator=generator)
    order = order.repeat(math.ceil(steps * config.batch_size / max(n, 1)))[:steps * config.batch_size]
    total_loss = correct = count = 0.0
    start = time.perf_counter()
    warmup = min(float(config.warmup_epochs), epochs / 5)  # few passes over many views: a fifth at most
    for step in range(steps):
        idx = order[step * config.batch_size:(step + 1) * config.batch_size]
        batch = x[idx // views, idx % views].to(device).float()
        labels = y[idx // views].to(device)
        loop.set_lr(optimizer, loop.lr_at(epoch + step / steps, config.lr, epochs, warmup))
        with autocast(device, precision):
            logits = net(batch)
            loss = criterion(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(idx)
        correct += (logits.argmax(1) == labels).sum().item()
        count += len(idx)
        progress(len(idx))
    total_loss, correct, count = all_reduce_sum([total_loss, correct, count], info, device)
    return {"train_loss": total_loss / max(count, 1), "train_acc": correct / max(count, 1),
            "seconds": time.perf_counter() - start, "lr": optimizer.param_groups[-1]["lr"]}


def run_partial(*, config: TrainConfig, model: nn.Module, spec: ModelSpec, data: SplitData, run_dir: Path,
                device: torch.device, precision: str, info: DistInfo, resume_state: dict | None, progress: bool,
                log: Log, started: float) -> Any:
    from torch.nn.parallel import DistributedDataParallel

    from clfkit.train.modes import Outcome, _end_epoch, _epoch_line, _history_row, _restore, _save_epoch

    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    blocks = backbone_blocks(model.backbone, spec.input_size)
    if blocks is None:  # auto mode checks this first; a forced --mode partial gets the reason
        from clfkit.errors import ConfigError

        raise ConfigError(f"--mode partial: the backbone {config.backbone} cannot be cut into blocks; "
                          "use --mode head or --mode finetune")
    model.eval()  # frozen everywhere until the tail is put in (BatchNorm-frozen) training mode
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    budget = config.budget_seconds()
    n_train = len(data.splits["train"])
    n_eval = sum(len(s) for k, s in data.splits.items() if k != "train")
    plan_file = run_dir / "plan.json"  # written before extracting: a run killed before its first epoch resumes it
    if resume_state is not None and "plan" in resume_state:
        plan = Plan(**resume_state["plan"])
    elif plan_file.is_file():
        plan = Plan(**json.loads(plan_file.read_text()))
    else:
        costs, bytes_per_view = _measure(blocks, model.head, spec.input_size, device, precision, log, config.cut,
                                         batch=config.batch_size)
        costs = dataclasses.replace(costs, decode=_decode_cost(data.splits["train"], spec, config.seed))
        left = (budget - (time.perf_counter() - started) - SAVE_RESERVE_S) * PLAN_SHARE
        # the TTA check on val (TTA_CHECK_VIEWS views each) is planned like extra evaluation images
        n_plan_eval = n_eval // info.world_size + 1 + TTA_CHECK_VIEWS * len(data.splits["val"])
        plan_args = dict(n_train=math.ceil(n_train / info.world_size), n_eval=n_plan_eval, budget_s=left,
                         epochs=config.epochs, bytes_per_view=bytes_per_view, cut=config.cut)
        plan, costs = _timed_cut_plan(plan_partial(costs, **plan_args), costs, plan_args, blocks, model.head,
                                      spec.input_size, device, precision, batch=config.batch_size)
        if plan is None:  # not even the last block fits: train it anyway, and say so
            last = max(costs.train)
            plan = Plan(cut=last, views=2, epochs=config.epochs, predicted_s={}, reason=(
                f"nothing fits the {left:.0f} s left: the last blocks (cut {last}) on 2 views; the budget "
                "stops training early"))
        plan = gather_objects(plan, info)[0]  # every rank runs rank 0's plan
        if info.is_main:
            write_json(plan.to_dict(), plan_file)
    timing["plan_s"] = time.perf_counter() - t0
    log(f"partial fine-tuning: {plan.reason}")

    t0 = time.perf_counter()
    runner = _PrefixRunner(blocks, plan.cut, spec.input_size, device, precision, log)
    acts = _activations(config, runner, spec, data, plan, run_dir, info, progress, log)
    prefix_runtime = runner.runtime
    timing["extract_s"] = time.perf_counter() - t0
    extracted = sum(a[0].shape[0] * a[0].shape[1] for a in acts.values())
    reserve = SAVE_RESERVE_S + timing["extract_s"] / max(extracted, 1) * TTA_CHECK_VIEWS * len(data.splits["val"])
    train_x, train_y = acts["train"]
    cache_mb = sum(a[0].numel() * a[0].element_size() for a in acts.values()) / 2**20

    tail = Tail(blocks, plan.cut, model.head).to(device)
    for p in tail.parameters():
        p.requires_grad_(True)
    counts = list(data.counts("train").values())
    criterion = loop.make_criterion(loop.class_weights(counts, config.class_weights), config.label_smoothing)
    criterion.to(device)
    t0 = time.perf_counter()
    warm = {}
    frozen: dict[str, np.ndarray] = {}
    if resume_state is None:
        warm = _warm_start(tail, acts, config, device, precision, criterion, info,
                           keep=frozen if config.label_audit else None)
        log(f"warm start: linear head on the frozen features, validation accuracy {warm['val_acc']:.1%}")
    timing["warm_start_s"] = time.perf_counter() - t0

    optimizer = loop.make_optimizer([(tail.blocks.parameters(), config.backbone_lr_scale),
                                     (tail.head.parameters(), 1.0)], config.optimizer, config.lr, config.weight_decay)
    net = DistributedDataParallel(tail) if info.enabled else tail
    if resume_state is not None:
        model.load_state_dict(resume_state["state_dict"])
    start_epoch, early, history = _restore(resume_state, optimizer, config.patience)
    best_state = copy.deepcopy(model.state_dict())
    val_x, val_y = acts["val"][0][:, 0], acts["val"][1]
    per_rank = max(gather_objects(train_x.shape[0] * train_x.shape[1], info))
    steps = max(1, math.ceil(per_rank / config.batch_size))
    stopped_by = "planned epochs"
    t0 = time.perf_counter()
    tail.dropout = DROPOUT
    with stochastic_depth(list(tail.blocks), DROP_PATH) as dropped:
        for epoch in range(start_epoch, min(plan.epochs, _end_epoch(config, early))):
            with tqdm(total=steps * config.batch_size, desc=f"epoch {epoch + 1}/{plan.epochs}", unit="view",
                      disable=None if progress else True, leave=False) as bar:
                stats = _epoch(net, tail, train_x, train_y, optimizer, criterion, steps=steps, epoch=epoch,
                               epochs=plan.epochs, config=config, device=device, precision=precision, info=info,
                               progress=bar.update)
            logits = _tail_outputs(tail, val_x, device)
            val_loss = nn.functional.cross_entropy(logits, val_y).item()
            val_acc = (logits.argmax(1) == val_y).float().mean().item()
            improved = early.update(val_loss, epoch + 1)
            history.append(_history_row(epoch, stats, val_loss, val_acc))
            log(_epoch_line(history[-1], plan.epochs))
            if improved:
                best_state = copy.deepcopy(model.state_dict())
            if info.is_main:
                _save_epoch(run_dir, model=model, scope_state=model.state_dict(), spec=spec, config=config,
                            optimizer=optimizer, early=early, history=history, improved=improved,
                            extra={"plan": plan.to_dict()})
            if early.should_stop:
                stopped_by = f"early stop: validation loss not improved for {config.patience} epochs"
                break
            elapsed = time.perf_counter() - started
            if epoch + 1 < plan.epochs and elapsed + stats["seconds"] + reserve > budget:
                stopped_by = f"time budget: another epoch would end past {budget:.0f} s"
                log(stopped_by)
                break
    tail.dropout = 0.0
    timing["train_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    model.load_state_dict(best_state)
    logits = _tail_outputs(tail, val_x, device)
    val_loss = nn.functional.cross_entropy(logits, val_y).item() if len(val_y) else float("nan")
    val_acc = (logits.argmax(1) == val_y).float().mean().item() if len(val_y) else float("nan")
    test = None
    if "test" in acts:
        test = (_tail_outputs(tail, acts["test"][0][:, 0], device).numpy(), acts["test"][1].numpy())
    tta_val = _tta_on_val(runner, tail, data.splits["val"], spec, device, config.workers) if len(val_y) else None
    del runner
    timing["evaluate_s"] = time.perf_counter() - t0
    model.eval()
    names = [type(b).__name__ for b in blocks]
    metrics = {
        "val_loss": val_loss, "val_acc": val_acc, "best_epoch": early.best_epoch, "precision": precision,
        "device": str(device), "mode": "partial", "world_size": info.world_size, "timing": timing,
        "partial": {
            "cut": plan.cut, "blocks": len(blocks), "trained_blocks": len(blocks) - plan.cut,
            "trained_kinds": sorted(set(names[plan.cut:])), "views": plan.views, "epochs_planned": plan.epochs,
            "epochs_run": len(history), "stopped_by": stopped_by, "reason": plan.reason,
            "budget_s": budget, "predicted_s": plan.predicted_s, "cache_mb": round(cache_mb, 1),
            "cache_shape": list(train_x.shape[2:]), "prefix_runtime": prefix_runtime,
            "batchnorm": "running statistics frozen (the backbone's pretrained ones); scale and shift trained",
            "warm_start": warm, "tta_val": tta_val, "dropout": DROPOUT, "drop_path": DROP_PATH if dropped else 0.0,
        },
    }
    frozen = {s: from_rank_order(f, len(data.splits[s]), info.world_size) for s, f in frozen.items()}
    return Outcome(history=history, best_epoch=early.best_epoch, metrics=metrics, test=test,
                   val=(logits.numpy(), val_y.numpy()), frozen=frozen)
