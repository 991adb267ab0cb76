"""The GPU path, checked without a GPU: worker placement, thread limits, device-resident batches,
no per-step host synchronisation, CUDA-aware timing, the SLURM script's per-node folders and
scripts/gpu_check.py's verdict."""

import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch
from helpers import fcn_objective, load

from hybridsearch import workers
from hybridsearch.errors import ConfigError
from hybridsearch.workers import plan

ROOT = Path(__file__).parents[1]


def gpus(monkeypatch, count: int, parent: str | None) -> None:
    """A machine where torch sees ``count`` GPUs, under the parent's ``CUDA_VISIBLE_DEVICES``."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    if parent is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", parent)


def test_workers_get_the_gpus_torch_sees_by_index(monkeypatch) -> None:
    gpus(monkeypatch, 2, None)
    assert plan(None, None) == ["0", "1"]
    assert plan(None, None, per_gpu=2) == ["0", "0", "1", "1"]
    assert plan(3, [1]) == ["1", "1", "1"]


def test_workers_keep_the_parents_device_list(monkeypatch) -> None:
    gpus(monkeypatch, 2, "2,3")  # a scheduler gave this job physical GPUs 2 and 3
    assert plan(None, None) == ["2", "3"]
    assert plan(None, [1]) == ["3"]  # study.gpus counts the GPUs this command sees
    with pytest.raises(ConfigError, match=r"study\.gpus: GPU\(s\) \[2\] not visible; visible: \[0, 1\]"):
        plan(None, [2])


def test_workers_keep_gpu_uuids_and_mig_names(monkeypatch) -> None:
    uuids = "GPU-5f3c2b1a-0000-1111-2222-333344445555,GPU-9a8b7c6d-0000-1111-2222-333344445555"
    gpus(monkeypatch, 2, uuids)
    assert plan(None, None) == uuids.split(",")
    gpus(monkeypatch, 1, "MIG-2f1e0d9c-aaaa-bbbb-cccc-ddddeeeeffff")
    assert plan(None, None, per_gpu=2) == ["MIG-2f1e0d9c-aaaa-bbbb-cccc-ddddeeeeffff"] * 2


@pytest.mark.parametrize(("cores", "n_gpus", "per_gpu"), [(16, 1, 8), (64, 1, 8), (16, 2, 4), (4, 1, 2), (2, 2, 1)])
def test_auto_packs_up_to_8_workers_a_gpu_with_2_cores_each(monkeypatch, cores, n_gpus, per_gpu) -> None:
    gpus(monkeypatch, n_gpus, None)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert plan(None, None, "auto") == [str(g) for g in range(n_gpus) for _ in range(per_gpu)]


@pytest.mark.parametrize("bad", [0, "many", True, 1.5])
def test_workers_per_gpu_must_be_auto_or_a_count(monkeypatch, bad) -> None:
    gpus(monkeypatch, 1, None)
    with pytest.raises(ConfigError, match=r"^study\.workers_per_gpu: must be auto or 1 or more, got "):
        plan(None, None, bad)


def test_no_gpu_means_cpu_workers(monkeypatch) -> None:
    gpus(monkeypatch, 0, "")
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert plan(None, None) == [None] and plan(2, None) == [None, None]
    assert plan(None, None, "auto") == [None]  # workers_per_gpu counts only where there are GPUs
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert plan(None, None, "auto") == [None] * 4  # a worker per core, not per GPU


def test_gpu_workers_get_a_share_of_the_cores(monkeypatch, tmp_path) -> None:
    gpus(monkeypatch, 2, None)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    started = []

    class Popen:
        def __init__(self, cmd, env):
            started.append(env)
            self.pid, self.returncode = 1000 + len(started), 0

        def poll(self):
            return 0

    monkeypatch.setattr(workers.subprocess, "Popen", Popen)
    monkeypatch.setattr(workers, "_watch", lambda study, procs, progress, interrupted: None)
    layout = SimpleNamespace(worker_config=tmp_path / "worker.yaml")
    from omegaconf import OmegaConf

    session = SimpleNamespace(
        layout=layout,
        cfg=OmegaConf.create({"study": {}}),
        invocation="x",
        tracker=SimpleNamespace(parent_run_id=None),
        study=None,
    )
    workers.launch(session, plan(None, None, per_gpu=2), deadline=None, progress=None)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in started] == ["0", "0", "1", "1"]
    assert {e["OMP_NUM_THREADS"] for e in started} == {"4"}  # 16 cores over 4 workers


def test_batches_live_on_the_device_and_skip_masks_when_nothing_is_padded() -> None:
    data = load("ItalyPowerDemand")
    batches = data.batches("train", 16, shuffle=True, seed=0)
    seen = []
    for x, lengths, y in batches:
        assert lengths is None  # no padded series: the unmasked fast path
        assert x.device.type == "cpu" and x.shape[1:] == (1, 24)
        seen += y.tolist()
    assert len(seen) == len(data.train) and sorted(seen) == sorted(data.train.y.tolist())
    first = [y.tolist() for _, _, y in data.batches("train", 16, shuffle=True, seed=0)]
    assert first == [y.tolist() for _, _, y in data.batches("train", 16, shuffle=True, seed=0)]  # seeded
    # A padded series makes its batch carry the lengths.
    from dataclasses import replace

    lengths = data.train.lengths.copy()
    lengths[0] = 10
    padded = replace(data, train=replace(data.train, lengths=lengths))
    carried = [lens for _, lens, _ in padded.batches("train", 8)]
    assert carried[0] is not None and carried[0][0] == 10 and all(c is None for c in carried[1:])


def count_host_syncs(monkeypatch, batch_size: int) -> int:
    """Host synchronisations (``.item()``, ``bool(tensor)``, ``.tolist()``, ``.cpu()``) while one
    trial trains 3 epochs."""
    from hybridsearch.module import HybridModule

    calls = []
    for name in ("item", "__bool__", "tolist", "cpu"):
        real = getattr(torch.Tensor, name)

        def spy(self, *a, _real=real, _name=name, **k):
            # Adam reads its step counter, a host scalar by design (never on the GPU): not a sync.
            if "torch/optim/" not in sys._getframe(1).f_code.co_filename:
                calls.append(_name)
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, spy)
    import lightning as L

    data = load("GunPoint")
    module = HybridModule(
        {"topology": "fcn", "conv_layers": 1, "conv_channels_1": 8, "conv_kernel_1": 3, "lr": 1e-3},
        in_channels=1,
        n_outputs=2,
        seq_len=data.seq_len,
        classes=data.classes,
    )
    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    calls.clear()
    trainer.fit(module, data.batches("train", batch_size, shuffle=True), data.batches("val", 256))
    monkeypatch.undo()
    return len(calls)


def test_training_waits_on_the_device_once_an_epoch_not_once_a_step(monkeypatch) -> None:
    few_steps = count_host_syncs(monkeypatch, 40)  # 1 step an epoch
    many_steps = count_host_syncs(monkeypatch, 4)  # 10 steps an epoch
    assert many_steps == few_steps, (few_steps, many_steps)


def test_timing_waits_for_cuda_kernels(monkeypatch) -> None:
    from hybridsearch.objective import synchronize

    waited = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append(device))
    synchronize(torch.device("cpu"))
    assert waited == []
    synchronize(torch.device("cuda", 0))
    assert waited == [torch.device("cuda", 0)]


def test_a_pruned_trial_says_where_it_ran(tmp_path) -> None:
    objective = fcn_objective(tmp_path, max_epochs=3)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(upper=-1.0))
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state.name == "PRUNED" and trial.user_attrs["device"] == "cpu"


def test_the_slurm_script_gives_each_node_its_own_folder(tmp_path) -> None:
    """Rendered for two nodes: a stand-in srun runs the step once per node id, a stand-in python
    prints its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fakes = {
        "srun": '#!/bin/bash\nfor id in 0 1; do SLURM_NODEID=$id "$@"; done\n',
        "python": '#!/bin/bash\necho "$@"\n',
    }
    for name, text in fakes.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STORAGE": "postgresql://db/optuna",
        "TRACKING": "http://mlflow:5000",
        "SLURM_NODEID": "0",  # the batch step runs on the first node
    }
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "slurm_workers.sbatch")], env=env, capture_output=True, text=True, check=True
    ).stdout
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert "study.root=studies-node-0" in lines[0] and "study.root=studies-node-1" in lines[1]
    assert all("study.storage=postgresql://db/optuna" in line for line in lines)


def gpu_check():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gpu_check

        return gpu_check
    finally:
        sys.path.pop(0)


def frozen(state: str, **attrs) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(
        state=optuna.trial.TrialState[state], value=0.5 if state == "COMPLETE" else None, user_attrs=attrs
    )


def test_gpu_check_counts_pruned_trials_by_where_they_started() -> None:
    check = gpu_check()
    trials = [
        frozen("COMPLETE", device="cuda:0", gpu="0"),
        frozen("PRUNED", device="cuda:0", gpu="1"),  # pruned after its first epoch: it says where it ran
        frozen("FAIL", fail_reason="x"),  # failed before training: says nothing, and is no misplacement
    ]
    placement = check.placement(trials)
    assert placement.per_gpu == {"0": 1, "1": 1} and placement.on_cpu == [] and placement.unknown == 1
    misplaced = check.placement([*trials, frozen("PRUNED", device="cpu", gpu="1")])
    assert len(misplaced.on_cpu) == 1


def test_gpu_check_utilisation_while_trials_ran_leaves_out_start_up() -> None:
    sampler = gpu_check().NvmlSampler.__new__(gpu_check().NvmlSampler)  # no NVML here: samples by hand
    sampler.times, sampler.util = [0.0, 10.0, 20.0, 30.0], {0: [0, 90, 100, 0]}  # start-up, 2 busy, the end
    assert sampler.between(0, 10.0, 20.0) == [90, 100]
    assert sampler.between(0, 40.0, 50.0) == [0]  # no sample in the window: reads as idle, not as an error
