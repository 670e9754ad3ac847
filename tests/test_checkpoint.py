import random

import numpy as np
import pytest
import torch
from safetensors.torch import save_model
from torch import nn

from course_lib import checkpoint


class Tied(nn.Module):
    def __init__(self, vocab=11, dim=6):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.mid = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight
        self.register_buffer("scale", torch.tensor(2.0))

    def forward(self, ids):
        return self.head(torch.tanh(self.mid(self.embed(ids))) * self.scale)


def test_weights_round_trip_with_tied_weights_and_metadata(tmp_path):
    torch.manual_seed(0)
    src, dst = Tied(), Tied()
    path = checkpoint.save_weights(src, tmp_path / "sub" / "w.safetensors", metadata={"d_model": 6})
    assert path.exists()
    meta = checkpoint.load_weights(dst, path)
    assert meta == {"d_model": 6}
    header = checkpoint.read_metadata(path)
    assert header["kind"] == "weights" and header["format"] == checkpoint.FORMAT
    for (name, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        assert torch.equal(a, b), name
    assert dst.head.weight is dst.embed.weight  # still tied after loading
    # stored once: the file holds one copy of the tied matrix
    sizes = {k: v.numel() for k, v in checkpoint._read(path)[0].items()}
    assert "head.weight" not in sizes and "embed.weight" in sizes


def test_load_weights_is_strict_and_says_what_does_not_fit(tmp_path):
    path = checkpoint.save_weights(Tied(vocab=11), tmp_path / "w.safetensors")
    with pytest.raises(checkpoint.CheckpointError, match="different shapes.*embed.weight"):
        checkpoint.load_weights(Tied(vocab=12), path)
    other = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(checkpoint.CheckpointError, match="missing from the checkpoint"):
        checkpoint.load_weights(other, path)


def test_load_weights_accepts_plain_safetensors_files(tmp_path):
    src, dst = Tied(), Tied()
    save_model(src, str(tmp_path / "plain.safetensors"))
    checkpoint.load_weights(dst, tmp_path / "plain.safetensors")
    assert torch.equal(src.mid.weight, dst.mid.weight)


def test_missing_and_damaged_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        checkpoint.load_weights(Tied(), tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(checkpoint.CheckpointError, match="not a readable"):
        checkpoint.load_weights(Tied(), bad)
    with pytest.raises(IsADirectoryError):
        checkpoint.save_weights(Tied(), tmp_path)


def test_interrupted_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    torch.manual_seed(0)
    old = Tied()
    path = checkpoint.save_weights(old, tmp_path / "w.safetensors")

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_weights(Tied(), path)
    restored = Tied()
    checkpoint.load_weights(restored, path)
    assert torch.equal(restored.mid.weight, old.mid.weight)
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temp file left


def _train(model, opt, sched, steps):
    for _ in range(steps):
        ids = torch.randint(0, 11, (4, 5))
        loss = model(ids).logsumexp(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def test_training_checkpoint_resumes_exactly(tmp_path):
    torch.manual_seed(0)
    model = Tied()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    _train(model, opt, sched, 3)
    path = checkpoint.save_checkpoint(
        tmp_path / "c.safetensors", model, optimizer=opt, scheduler=sched, state={"step": 3}
    )
    lr_at_save = opt.param_groups[0]["lr"]
    random.random(), np.random.rand()
    _train(model, opt, sched, 2)  # the reference continuation (same RNG as after the save)
    reference = {k: v.clone() for k, v in model.state_dict().items()}

    model2 = Tied()
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-2)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.5)
    torch.manual_seed(999)  # scrambled: the checkpoint must restore the generator
    state = checkpoint.load_checkpoint(path, model2, optimizer=opt2, scheduler=sched2)
    assert state == {"step": 3}
    assert opt2.param_groups[0]["lr"] == lr_at_save
    assert opt2.state_dict()["state"][0]["exp_avg"].abs().sum() > 0
    _train(model2, opt2, sched2, 2)
    for name, tensor in model2.state_dict().items():
        assert torch.allclose(tensor, reference[name], atol=1e-6), name
    assert sched2.get_last_lr() == sched.get_last_lr()


def test_load_checkpoint_rejects_weights_files_and_wrong_optimizers(tmp_path):
    model = Tied()
    w = checkpoint.save_weights(model, tmp_path / "w.safetensors")
    with pytest.raises(checkpoint.CheckpointError, match="not a training checkpoint"):
        checkpoint.load_checkpoint(w, model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _train(model, opt, torch.optim.lr_scheduler.StepLR(opt, 1), 1)
    c = checkpoint.save_checkpoint(tmp_path / "c.safetensors", model, optimizer=opt)
    small = torch.optim.SGD([model.mid.weight], lr=0.1)
    with pytest.raises(checkpoint.CheckpointError, match="other parameters"):
        checkpoint.load_checkpoint(c, model, optimizer=small)
    with pytest.raises(TypeError, match="JSON"):
        checkpoint.save_checkpoint(tmp_path / "d.safetensors", model, state={"f": object()})


def test_asset_path_finds_shipped_files_and_explains_missing_ones():
    assert checkpoint.asset_path("README.md").name == "README.md"
    with pytest.raises(FileNotFoundError, match="course_lib.pretrain"):
        checkpoint.asset_path("no-such-checkpoint.safetensors")


def test_pretrain_dispatcher_refuses_unknown_models(capsys):
    from course_lib.pretrain.__main__ import main

    assert main(["nope"]) == 2
    assert "usage" in capsys.readouterr().err


# ---- save_pretrained / load_pretrained: one pair for every course model ------------------------
def _tiny_models():
    from course_lib.bert import Bert, BertConfig
    from course_lib.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    return [GPT(GPTConfig(vocab_size=30, max_len=12, d_model=16, num_layers=2, num_heads=2)),
            Bert(BertConfig(vocab_size=30, d_model=16, num_layers=1, num_heads=2, max_len=12))]


@pytest.mark.parametrize("index, kind", [(0, "gpt"), (1, "bert")])
def test_save_and_load_pretrained_rebuild_either_model(tmp_path, index, kind):
    model = _tiny_models()[index]
    path = checkpoint.save_pretrained(model, None, tmp_path, settings={"steps": 3})
    assert path.name == "model.safetensors"
    loaded, tokenizer, meta = checkpoint.load_pretrained(tmp_path)
    assert type(loaded) is type(model) and loaded.config == model.config and not loaded.training
    assert meta["model"] == kind and meta["settings"] == {"steps": 3} and meta["dtype"] == "float16"
    assert tokenizer is None
    for name, value in model.state_dict().items():  # float16 on disk, float32 again in the model
        assert torch.equal(loaded.state_dict()[name], value.half().float()), name
    tied = [(a, b) for a, b in checkpoint._shared_names(model.state_dict()).items()]
    assert tied and all(loaded.state_dict()[a].data_ptr() == loaded.state_dict()[b].data_ptr() for a, b in tied)


def test_load_pretrained_names_the_shipped_models_and_refuses_other_files(tmp_path):
    with pytest.raises(TypeError, match="course's models"):
        checkpoint.save_pretrained(nn.Linear(2, 2), None, tmp_path)
    checkpoint.save_weights(nn.Linear(2, 2), tmp_path / "model.safetensors")
    with pytest.raises(checkpoint.CheckpointError, match="save_pretrained"):
        checkpoint.load_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        checkpoint.load_pretrained(tmp_path / "empty")
    with pytest.raises(TypeError, match='"gpt" / "bert"'):
        checkpoint.load_pretrained()
    model, tokenizer, meta = checkpoint.load_pretrained("gpt")
    assert meta["model"] == "gpt" and len(tokenizer) == model.config.vocab_size
