"""The code paths a GPU takes, exercised on a CPU: several pairs sharing one GPU, each with
its share of the GPU's memory and of the cores; the budget's trial timing them crowded and
alone; the gpu preset's scaled learning rate."""

import subprocess
import sys

import pytest

from kaggle_digits.machine import backend
from kaggle_digits.machine.backend import GPU_PAIRS_AT_ONCE, auto_workers, worker_variables
from kaggle_digits.options.config import CVConfig
from kaggle_digits.options.presets import preset_config, scaled_learning_rate
from kaggle_digits.training import local_pairs
from kaggle_digits.training.pairs import StepTiming


def test_workers_on_a_gpu_get_a_share_of_its_memory_and_one_thread_flags():
    shared = worker_variables(1, share_of_accelerator=4)
    assert shared["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.225"  # 90% over 4
    assert shared["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert shared["OMP_NUM_THREADS"] == "1"
    assert "intra_op_parallelism_threads=1" in shared["XLA_FLAGS"]
    alone = worker_variables(4)
    assert "XLA_PYTHON_CLIENT_MEM_FRACTION" not in alone and "XLA_FLAGS" not in alone
    assert alone["TF_NUM_INTRAOP_THREADS"] == "4"


def test_thread_limit_gives_the_variables_to_processes_started_inside_only(monkeypatch):
    monkeypatch.delenv("XLA_PYTHON_CLIENT_MEM_FRACTION", raising=False)
    ask = "import os; print(os.environ.get('XLA_PYTHON_CLIENT_MEM_FRACTION'))"
    with backend.thread_limit(2, share_of_accelerator=3):
        inside = subprocess.run([sys.executable, "-c", ask], capture_output=True, text=True)
    outside = subprocess.run([sys.executable, "-c", ask], capture_output=True, text=True)
    assert (inside.stdout.strip(), outside.stdout.strip()) == ("0.300", "None")


def test_the_automatic_workers_on_a_gpu_take_turns_on_it(monkeypatch):
    monkeypatch.setattr(backend, "cpu_count", lambda: 16)
    five_pairs = CVConfig(folds=5)
    assert auto_workers(five_pairs, accelerators=1) == GPU_PAIRS_AT_ONCE
    assert auto_workers(CVConfig(folds=2), accelerators=1) == 2  # never more than the pairs
    assert auto_workers(five_pairs, accelerators=0) == 5  # a CPU: one a core, 16 cores
    fifteen_pairs = CVConfig(folds=5, members=("strided-cnn",) * 3)
    assert auto_workers(fifteen_pairs, accelerators=2) == 2 * GPU_PAIRS_AT_ONCE  # two T4s


def test_on_two_gpus_the_workers_are_dealt_out_to_both(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert [local_pairs.gpu_of_worker(slot, 2) for slot in range(4)] == ["0", "1", "0", "1"]
    assert local_pairs.gpu_of_worker(3, 1) is None  # one GPU: nothing to choose
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # the GPUs this process was given
    assert [local_pairs.gpu_of_worker(slot, 2) for slot in range(3)] == ["2", "3", "2"]
    monkeypatch.setattr(local_pairs, "cpu_count", lambda: 4)
    monkeypatch.setattr(local_pairs, "gpu_name", lambda: "Tesla T4")
    on_two = local_pairs.LocalWorkers(8, accelerator=2)
    assert on_two.cores == 2 and on_two.describe()["gpus"] == 2
    assert on_two.started_line().endswith("dealt out to 2 GPUs")


def test_precision_auto_tries_float16_on_a_gpu_only():
    from kaggle_digits.options.config import AUTO_PRECISIONS

    assert "mixed_float16" in AUTO_PRECISIONS[True]
    assert AUTO_PRECISIONS[False] == ("float32", "mixed_bfloat16")


def test_pairs_sharing_a_gpu_count_it_as_one_core(monkeypatch):
    monkeypatch.setattr(local_pairs, "cpu_count", lambda: 16)
    monkeypatch.setattr(local_pairs, "gpu_name", lambda: "NVIDIA H200")
    on_gpu = local_pairs.LocalWorkers(4, accelerator=True)
    assert (on_gpu.cores, on_gpu.threads) == (1, 4)
    assert on_gpu.started_line().endswith("with 4 thread(s), sharing one GPU")
    assert on_gpu.describe()["gpu"] == "NVIDIA H200"
    on_cpu = local_pairs.LocalWorkers(4)
    assert on_cpu.cores == 4 and on_cpu.describe()["gpu"] is None


def test_a_trial_on_a_gpu_times_the_pairs_crowded_then_alone(monkeypatch):
    monkeypatch.setattr(local_pairs, "cpu_count", lambda: 16)
    busy = []

    def time_at_once(self, data, config, architecture, count):
        busy.append(count)
        step = {4: 0.004, 1: 0.0015}[count]  # four taking turns, then one with the GPU alone
        return [StepTiming(architecture, step, 1e-5, 20.0)] * count

    monkeypatch.setattr(local_pairs.LocalWorkers, "_time_at_once", time_at_once)
    on_gpu = local_pairs.LocalWorkers(4, accelerator=True)
    timing = on_gpu.time_steps(None, CVConfig(), "strided-cnn")
    assert busy == [4, 1]
    assert (timing.step_seconds, timing.uncrowded_step_seconds) == (0.004, 0.0015)


def test_the_gpu_preset_scales_the_learning_rate_with_the_batch():
    assert scaled_learning_rate(3e-3, 32, 128) == pytest.approx(6e-3)
    gpu = preset_config("gpu")
    assert gpu.batch_size == 128 and gpu.learning_rate == pytest.approx(6e-3)
    assert gpu.members == ("strided-cnn",) * 3 and gpu.folds == 5 and gpu.workers == 0
