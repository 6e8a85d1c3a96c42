"""2-process DDP on CPU (gloo) through `lightning-gen fit`: ranks end identical, one set of output files.

Lightning's DDP launcher re-executes the command for rank 1, so each run is a subprocess.
"""

import glob
import json
import os
import subprocess
import sys
import time

import pytest
import torch
import yaml

from lightning_gen.cli import run_lightning_cli
from tests.conftest import REPO
from tests.robust_helpers import DEFAULT_DDP_FAMILIES, FAMILIES, assert_same_tensors, family_args, family_params

STEPS = 4


def _run_ddp(family: str, root, probe_dir) -> subprocess.CompletedProcess:
    args = family_args(family, root, f"--trainer.max_steps={STEPS}")
    args.remove("--trainer.callbacks=[]")  # keep the config's own callbacks: their files must be written once
    args.remove("--loss_curves.enabled=false")  # and the loss-curve picture, drawn by rank 0 only
    probe = {"class_path": "tests.robust_helpers.RankStateDump", "init_args": {"dirpath": str(probe_dir)}}
    args += [
        "--trainer.devices=2",
        "--trainer.strategy=ddp_find_unused_parameters_true",
        f"--trainer.callbacks+={json.dumps(probe)}",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", WANDB_MODE="offline")
    return subprocess.run(
        [sys.executable, "-m", "lightning_gen.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("family", family_params(DEFAULT_DDP_FAMILIES))
def test_ddp_two_processes(family, tmp_path):
    start = time.perf_counter()
    proc = _run_ddp(family, tmp_path / "run", tmp_path / "probe")
    print(f"{family}: 2-process DDP run took {time.perf_counter() - start:.1f} s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Effective batch size: 8 = 4 per device x 2 device(s)" in proc.stderr + proc.stdout

    ranks = [torch.load(tmp_path / "probe" / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert all(r["world_size"] == 2 for r in ranks)
    # Gradients are averaged, so weights (and their EMA) are bit-identical. Batch-norm running statistics are
    # each rank's own after the last batch (DDP broadcasts rank 0's at the next forward; sync_batchnorm syncs).
    assert assert_same_tensors(ranks[0]["params"], ranks[1]["params"], "rank0 vs rank1") > 0
    assert len(ranks[0]["batch_sums"]) == len(ranks[1]["batch_sums"]) == STEPS  # a step per batch
    assert ranks[0]["batch_sums"] != ranks[1]["batch_sums"]  # each rank trained on its own shard

    # one set of output files: one version folder, one last.ckpt, the sample pictures written once
    versions = glob.glob(str(tmp_path / "run" / "lightning_logs" / "*"))
    assert [os.path.basename(v) for v in versions] == ["version_0"], versions
    ckpt = torch.load(os.path.join(versions[0], "checkpoints", "last.ckpt"), weights_only=True)
    assert ckpt["global_step"] == STEPS
    assert_same_tensors(ranks[0]["state_dict"], ckpt["state_dict"], "checkpoint vs rank0")
    files = [os.path.relpath(p, versions[0]) for p in glob.glob(os.path.join(versions[0], "**", "*"), recursive=True)]
    assert len(files) == len(set(files))
    assert not [f for f in files if "rank" in f or "version_1" in f]


def test_presets_compose(capsys):
    for preset in ("ddp", "multinode"):
        with pytest.raises(SystemExit) as exit_:
            run_lightning_cli(
                [
                    "fit",
                    "--config",
                    os.path.join(REPO, FAMILIES["gan"][0]),
                    "--config",
                    os.path.join(REPO, f"configs/trainer/{preset}.yaml"),
                    "--print_config",
                ]
            )
        assert exit_.value.code == 0
        printed = yaml.safe_load(capsys.readouterr().out)
        assert printed["trainer"]["strategy"] == "ddp_find_unused_parameters_true"
        assert printed["guard"]["max_grad_norm"] > 0 and printed["resume"]["count_batches"] is True
        assert printed["trainer"]["num_nodes"] == (2 if preset == "multinode" else 1)
