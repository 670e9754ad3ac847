"""DDP on 2 CPU processes (torchrun, gloo) computes what one process computes on the whole global batch."""

import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from course_lib import distributed

ARGS = ["--steps", "3", "--global-batch", "8", "--seq-len", "16", "--vocab-size", "128", "--d-model", "32",
        "--num-layers", "2", "--num-heads", "2", "--threads", "1"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(command, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("ddp")
    single, ddp = tmp_path / "single.safetensors", tmp_path / "ddp.safetensors"
    run([sys.executable, "-m", "course_lib.distributed", "--single", *ARGS, "--out", str(single)], tmp_path)
    out = run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}",
               "-m", "course_lib.distributed", *ARGS, "--out", str(ddp)], tmp_path)
    assert "DDP, 2 processes" in out.stdout
    return load_file(str(single)), load_file(str(ddp))


def test_the_losses_of_every_step_equal_single_process_training(results):
    single, ddp = results
    assert single["losses"].shape == (3,)
    torch.testing.assert_close(ddp["losses"], single["losses"], atol=1e-5, rtol=0)


def test_the_first_step_gradients_equal_single_process_training(results):
    single, ddp = results
    grads = [k for k in single if k.startswith("grad.")]
    assert grads and set(grads) == {k for k in ddp if k.startswith("grad.")}
    for k in grads:
        torch.testing.assert_close(ddp[k], single[k], atol=1e-5, rtol=1e-4, msg=k)


def test_the_parameters_after_three_steps_agree(results):
    single, ddp = results
    for k in (k for k in single if k.startswith("param.")):
        torch.testing.assert_close(ddp[k], single[k], atol=1e-4, rtol=1e-4, msg=k)


def test_shard_splits_a_global_batch_evenly_and_refuses_uneven_ones():
    batch = torch.arange(8)[:, None].repeat(1, 3)
    assert torch.equal(torch.cat([distributed.shard(batch, r, 2) for r in range(2)]), batch)
    assert distributed.shard(batch, 1, 4)[:, 0].tolist() == [2, 3]
    with pytest.raises(ValueError, match="equal shards"):
        distributed.shard(batch, 0, 3)
    with pytest.raises(ValueError, match="rank < world_size"):
        distributed.shard(batch, 2, 2)


def test_setup_without_torchrun_says_how_to_launch(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        distributed.setup()
