"""torchrun on a CPU: two processes (gloo) train one model.

One ``torch.distributed.run --nproc-per-node 2`` launch runs a script that joins the gloo process group once
and calls ``fit`` three times in it, finetune, head and partial mode (fit must leave a group it did not create alone),
and has each rank write what it saw and a digest of its final weights.  The ranks must see
disjoint shards of the training set that together cover it, end with bit-identical weights (BatchNorm
statistics included), and only rank 0 may write the run folder.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import TINY

from clfkit.spec import ModelSpec
from clfkit.data.layout import read_split_folders
from clfkit.train.features import extract_features
from clfkit.models.classifier import build_classifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # trains on one PyTorch thread (conftest.py)

SCRIPT = textwrap.dedent('''
    import hashlib, json, os, sys
    from pathlib import Path

    import torch.distributed as dist

    from clfkit.train.config import TrainConfig
    from clfkit.train.trainer import fit

    data, weights, results = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    common = dict(data=data, backbone="{tiny}", input_size=32, epochs=2, batch_size=3, workers=0, device="cpu",
                  precision="fp32", patience=0)
    runs = {{
        "finetune": TrainConfig(out=results / "finetune", mode="finetune", pretrained=False, **common),
        "head": TrainConfig(out=results / "head", mode="head", weights=weights, cache_views=2, **common),
        "partial": TrainConfig(out=results / "partial", mode="partial", weights=weights, time_budget="10m",
                               **common),
    }}
    dist.init_process_group("gloo")
    for mode, config in runs.items():
        result = fit(config, progress=False, log=lambda msg: None)
        digest = hashlib.sha256()
        for key, value in result.model.state_dict().items():
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        report = {{"rank": int(os.environ["RANK"]), "world_size": int(os.environ["WORLD_SIZE"]),
                  "seen": result.seen_train_indices, "digest": digest.hexdigest(),
                  "files": sorted(result.files), "history": result.history, "metrics": result.metrics}}
        (results / f"{{mode}}-rank{{os.environ['RANK']}}.json").write_text(json.dumps(report, default=str))
    assert dist.is_initialized(), "fit() destroyed the caller's process group"
    dist.destroy_process_group()
''').format(tiny=TINY)


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path, tiny_weights: Path) -> Path:
    results = tmp_path_factory.mktemp("ddp")
    script = results / "train_two_ranks.py"
    script.write_text(SCRIPT)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
               str(script), str(tiny_data), str(tiny_weights), str(results)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Own session: on a hang, the launcher AND its two workers are killed, never left behind.
    proc = subprocess.Popen(command, cwd=results, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"torchrun did not finish in 300 s:\n{output[-6000:]}")
    assert proc.returncode == 0, output[-8000:]
    return results


def _ranks(results: Path, mode: str) -> list[dict]:
    return [json.loads((results / f"{mode}-rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.slow
def test_finetune_ranks_see_disjoint_shards_and_end_identical(ddp_results: Path, tiny_data: Path) -> None:
    rank0, rank1 = _ranks(ddp_results, "finetune")
    assert (rank0["rank"], rank1["rank"]) == (0, 1) and rank0["world_size"] == 2
    n_train = len(read_split_folders(tiny_data).splits["train"])  # 18: 9 a rank, 3 batches of 3, no padding
    seen0, seen1 = rank0["seen"], rank1["seen"]
    assert len(seen0) == len(seen1) == n_train // 2
    assert not set(seen0) & set(seen1)
    assert sorted(seen0 + seen1) == list(range(n_train))
    assert rank0["digest"] == rank1["digest"], "ranks ended with different weights"
    # metrics are all-reduced / gathered: both ranks log the same numbers
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in rank0["history"]]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in rank1["history"]]
    assert rank0["metrics"]["world_size"] == rank1["metrics"]["world_size"] == 2
    for key in ("val_loss", "val_acc", "best_epoch"):
        assert rank0["metrics"][key] == rank1["metrics"][key], key
    assert "test" in rank0["metrics"]  # the test report is rank 0's job


@pytest.mark.slow
def test_partial_ranks_run_one_plan_and_end_identical(ddp_results: Path) -> None:
    rank0, rank1 = _ranks(ddp_results, "partial")
    assert rank0["digest"] == rank1["digest"], "ranks ended with different weights"
    p0, p1 = rank0["metrics"]["partial"], rank1["metrics"]["partial"]
    assert (p0["cut"], p0["views"], p0["epochs_planned"]) == (p1["cut"], p1["views"], p1["epochs_planned"])
    assert rank0["metrics"]["world_size"] == 2 and rank0["metrics"]["mode"] == "partial"
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in rank0["history"]]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in rank1["history"]]
    # each rank cached only its own shard of the training views
    shards = sorted((ddp_results / "partial" / "cache").glob("activations-*-train-r*.pt"))
    sizes = [len(torch.load(f, map_location="cpu", weights_only=True)["y"]) for f in shards]
    assert len(shards) == 2 and sum(sizes) == 18


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["finetune", "head", "partial"])
def test_only_rank_0_writes_the_run(ddp_results: Path, mode: str) -> None:
    rank0, rank1 = _ranks(ddp_results, mode)
    assert {"curves", "history", "metrics", "model", "report"} <= set(rank0["files"])
    # finetune here is --no-pretrained: no frozen features to audit labels with
    assert ("label_issues" in rank0["files"]) == (mode != "finetune")
    assert rank1["files"] == [] and "label_audit" not in rank1["metrics"]
    run_dir = ddp_results / mode
    assert (run_dir / "model.pt").is_file() and (run_dir / "report" / "metrics.json").is_file()
    assert not list(run_dir.rglob(".*.tmp"))
    saved = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
    assert saved["metrics"]["best_epoch"] >= 1 and len((run_dir / "history.csv").read_text().splitlines()) == 3


@pytest.mark.slow
def test_head_features_are_sharded_then_gathered_in_order(ddp_results: Path, tiny_data: Path,
                                                          tiny_weights: Path) -> None:
    rank0, rank1 = _ranks(ddp_results, "head")
    assert rank0["digest"] == rank1["digest"]
    run_dir = ddp_results / "head"
    cache = torch.load(next((run_dir / "cache").glob("features-*.pt")), map_location="cpu", weights_only=True)
    spec = ModelSpec.from_json((run_dir / "spec.json").read_text())
    model, _ = build_classifier(TINY, spec.num_classes, weights=tiny_weights)
    model.eval()
    data = read_split_folders(tiny_data)
    for split, views in (("train", 2), ("val", 1)):
        expected, ok = extract_features(model, data.splits[split], spec, views=views, seed=0, workers=0,
                                        progress=False)
        assert all(ok)
        np.testing.assert_allclose(cache[split].numpy(), expected, rtol=0, atol=1e-4)
        assert cache[f"{split}_labels"].tolist() == [s.label for s in data.splits[split]]
