"""The stop button of a notebook (a kernel interrupt) stops training cleanly, in a real Jupyter kernel."""

import time

import pytest

jupyter_client = pytest.importorskip("jupyter_client")

TRAINING_CELL = """
import torch
from torch import nn
from course_lib.train import Trainer

torch.manual_seed(0)
model = nn.Linear(8, 1)
batches = [(torch.randn(32, 8), torch.randn(32, 1))] * 4

def slow_loss(model, batch):
    import time
    time.sleep(0.02)
    x, y = batch
    return nn.functional.mse_loss(model(x), y)

trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), slow_loss, batches, live_plot=False)
history = trainer.fit(steps=100_000)
"""


def run_cell(client, code, timeout=60):
    """Execute code; return (status, text printed)."""
    msg_id = client.execute(code)
    texts, status = [], None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = client.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            texts.append(content["text"])
        elif kind == "error":
            status = "error"
            texts.append(content["ename"])
        elif kind == "status" and content["execution_state"] == "idle":
            break
    return status or "ok", "".join(texts)


def test_interrupting_a_training_cell_keeps_the_model_and_history():
    manager, client = jupyter_client.manager.start_new_kernel(kernel_name="python3")
    try:
        msg_id = client.execute(TRAINING_CELL)
        time.sleep(4)  # let it import and take some steps
        manager.interrupt_kernel()
        texts = []
        while True:
            msg = client.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "error":
                pytest.fail(f"the cell raised {msg['content']['ename']} instead of stopping cleanly")
            if msg["msg_type"] == "stream":
                texts.append(msg["content"]["text"])
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        assert "Interrupted at step" in "".join(texts)
        status, out = run_cell(
            client,
            "print(history.interrupted, history.step == len(history.train_loss) > 0, "
            "trainer.history is history)",
        )
        assert status == "ok" and out.strip() == "True True True"
        status, out = run_cell(
            client,
            "before = history.step\n"
            "h = trainer.fit(steps=before + 3)\n"
            "print(h.step == before + 3, h.interrupted)",
        )
        assert status == "ok" and "True False" in out  # fit carries on from where it stopped
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
