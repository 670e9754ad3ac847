"""``hub.load_model``: a model and its tokenizer from a local folder, the HF cache or the hub, offline too.

No network: a ``save_pretrained`` folder stands in for the hub, and the offline case has
``HF_HUB_OFFLINE=1``, an empty cache and every socket connection refused.
"""

import socket

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from course_lib import hub
from course_lib.tokenizers import train_hf_bpe


@pytest.fixture
def offline(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    # huggingface_hub reads its cache path at import: as on a machine that never downloaded anything
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))

    def refuse(*args, **kwargs):
        raise OSError("tests never touch the network")

    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def gpt2_folder(tmp_path):
    """A tiny random GPT2LMHeadModel and its byte-level BPE tokenizer, saved in one folder."""
    tokenizer = train_hf_bpe(["the river flows through the city", "the city is on the river"] * 3, 280)
    torch.manual_seed(0)
    config = GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=32, vocab_size=len(tokenizer),
                        bos_token_id=None, eos_token_id=None)
    model = GPT2LMHeadModel(config).eval()
    folder = tmp_path / "tiny-gpt2"
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder, model, tokenizer


def test_load_model_reads_a_local_folder(offline, gpt2_folder):
    folder, model, tokenizer = gpt2_folder
    loaded = hub.load_model(str(folder), "GPT2LMHeadModel")
    assert isinstance(loaded, hub.LoadedModel)
    assert isinstance(loaded.model, GPT2LMHeadModel) and not loaded.model.training
    assert "local folder" in loaded.source and "tiny-gpt2" in loaded.source
    theirs = loaded.model.state_dict()
    assert theirs.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(theirs[key], value), key
    text = "the river and the city"
    assert loaded.tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"]
    # the default class finds GPT-2 from the folder's config
    assert isinstance(hub.load_model(str(folder)).model, GPT2LMHeadModel)


def test_load_model_offline_says_so_in_one_line(offline, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)  # "openai-community/gpt2" is no local folder here
    loaded = hub.load_model("openai-community/gpt2", "GPT2LMHeadModel", timeout=0.1)
    assert loaded == hub.LoadedModel(None, None, "none")
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "is not available" in out and "'openai-community/gpt2'" in out


def test_load_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="hub name or a folder"):
        hub.load_model("")
    with pytest.raises(ValueError, match="transformers model class"):
        hub.load_model("gpt2", "NoSuchModel")


def test_a_loaded_gpt2_runs_in_the_course_gpt(offline, gpt2_folder):
    """Notebook 08's real-GPT-2 cell, on a folder standing in for the hub: same logits, same tokens."""
    from course_lib import gpt

    folder, _, _ = gpt2_folder
    real = hub.load_model(str(folder), "GPT2LMHeadModel")
    ours = gpt.GPT.from_hf(real.model)
    ids = torch.tensor([real.tokenizer("the river and the city")["input_ids"]])
    with torch.no_grad():
        assert (ours(ids) - real.model(ids).logits).abs().max().item() < 1e-5
    theirs = real.model.generate(ids, max_new_tokens=12, do_sample=False, repetition_penalty=1.2)
    assert torch.equal(gpt.generate(ours, ids, 12, repetition_penalty=1.2), theirs)
