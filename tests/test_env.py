import random

import numpy as np
import pytest
import torch

from course_lib import env


def test_get_device_falls_back_to_cpu(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(env, "_mps_available", lambda: False)
    assert env.get_device() == torch.device("cpu")


def test_get_device_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(env, "_mps_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert env.get_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert env.get_device() == torch.device("cuda")


def test_get_device_env_override_and_errors(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert env.get_device() == torch.device("cpu")
    monkeypatch.delenv("COURSE_DEVICE")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA"):
        env.get_device("cuda")
    with pytest.raises(ValueError, match="expected one of"):
        env.get_device("tpu")


def test_seed_everything_repeats_python_numpy_torch():
    def draw():
        return random.random(), np.random.rand(), torch.rand(3).tolist()

    assert env.seed_everything(123) == 123
    first = draw()
    env.seed_everything(123)
    assert draw() == first
    env.seed_everything(124)
    assert draw() != first


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "0", True])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises((TypeError, ValueError), match="seed"):
        env.seed_everything(bad)


def test_in_colab_and_in_notebook_outside_a_kernel(monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert env.in_colab() is False
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-x")
    assert env.in_colab() is True
    assert env.in_notebook() is False


def test_environment_report_has_versions_device_threads_and_no_host_name():
    import socket

    report = env.environment_report()
    assert report.packages["torch"] == torch.__version__.split("+")[0] or report.packages["torch"] == torch.__version__
    assert report.device == env.get_device().type
    assert report.torch_threads == torch.get_num_threads()
    text = str(report)
    for name in ("torch", "numpy", "transformers", "bertviz", "course_lib", "device", "torch threads"):
        assert name in text
    assert socket.gethostname() not in text
    markdown = report._repr_markdown_()
    assert markdown.startswith("| item | value |")
    assert len(markdown.splitlines()) == len(report.rows()) + 2
