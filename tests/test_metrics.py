import json
import math

import pytest
import torch

from course_lib import metrics


def test_perplexity_is_exp_of_mean_nll():
    assert metrics.perplexity(0.0) == 1.0
    assert metrics.perplexity(math.log(50)) == pytest.approx(50)
    assert metrics.perplexity(torch.tensor(math.log(7.0))) == pytest.approx(7.0)
    assert metrics.perplexity(1e6) == math.inf


def test_perplexity_of_uniform_guess_is_vocabulary_size():
    vocab = 13
    logits = torch.zeros(4, 6, vocab)
    targets = torch.randint(0, vocab, (4, 6))
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    assert metrics.perplexity(loss) == pytest.approx(vocab, rel=1e-5)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), torch.ones(3), "1.0", None])
def test_perplexity_rejects_bad_input(bad):
    with pytest.raises((TypeError, ValueError)):
        metrics.perplexity(bad)


def test_accuracy_from_ids_and_from_logits_with_ignore_index():
    targets = torch.tensor([[1, 2, -100], [0, 0, 3]])
    ids = torch.tensor([[1, 0, 5], [0, 0, 2]])
    assert metrics.accuracy(ids, targets, ignore_index=-100) == pytest.approx(3 / 5)
    logits = torch.nn.functional.one_hot(ids.clamp(min=0), 6).float()
    assert metrics.accuracy(logits, targets, ignore_index=-100) == pytest.approx(3 / 5)
    assert metrics.accuracy(ids[0, :2], targets[0, :2]) == 0.5


def test_accuracy_errors_name_shapes():
    with pytest.raises(ValueError, match=r"\(4,\)"):
        metrics.accuracy(torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer class ids"):
        metrics.accuracy(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="no positions"):
        metrics.accuracy(torch.zeros(2, dtype=torch.long), torch.full((2,), -100), ignore_index=-100)
    with pytest.raises(TypeError):
        metrics.accuracy([1, 2], torch.tensor([1, 2]))


def test_record_appends_json_lines_when_env_set(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    monkeypatch.setenv(metrics.METRICS_FILE_ENV, str(path))
    assert metrics.record("gpt_val_perplexity", 12.5) == 12.5
    metrics.record("mlm_accuracy", torch.tensor(0.25))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [
        {"name": "gpt_val_perplexity", "value": 12.5},
        {"name": "mlm_accuracy", "value": 0.25},
    ]


def test_record_does_nothing_without_env(tmp_path, monkeypatch):
    monkeypatch.delenv(metrics.METRICS_FILE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert metrics.record("x", 1) == 1.0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name,value", [("", 1.0), ("has space", 1.0), ("ok", float("inf")), ("ok", "1"), ("ok", torch.ones(2))]
)
def test_record_rejects_bad_names_and_values(name, value, monkeypatch, tmp_path):
    monkeypatch.setenv(metrics.METRICS_FILE_ENV, str(tmp_path / "m.jsonl"))
    with pytest.raises((TypeError, ValueError)):
        metrics.record(name, value)
    assert not (tmp_path / "m.jsonl").exists()


def test_bleu_is_100_for_exact_matches_and_drops_with_errors():
    refs = ["the cat sat on the mat", "a dog ran in the park today"]
    assert metrics.bleu(refs, refs) == pytest.approx(100.0)
    worse = metrics.bleu(["the cat sat on a mat", "a dog ran in the park"], refs)
    assert 0 < worse < 100
    assert metrics.bleu(["xyz qqq", "zzz"], refs) < 5
    dates = ["2019-07-04", "1999-12-31"]
    assert metrics.bleu(dates, dates, tokenize="char") == pytest.approx(100.0)


def test_bleu_bad_input():
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        metrics.bleu(["a"], ["a", "b"])
    with pytest.raises(TypeError, match="list of strings"):
        metrics.bleu("a b", ["a b"])
    with pytest.raises(ValueError, match="at least one"):
        metrics.bleu([], [])


def test_show_prints_a_labelled_value_and_records_it(tmp_path, monkeypatch, capsys):
    path = tmp_path / "metrics.jsonl"
    monkeypatch.setenv(metrics.METRICS_FILE_ENV, str(path))
    assert metrics.show("validation perplexity", torch.tensor(231.456), name="gpt_val_ppl", fmt=".1f") == pytest.approx(231.456)
    assert metrics.show("test accuracy", 0.8125, name="acc", fmt=".1%") == 0.8125
    metrics.show("one training step", 0.25, name="step_s", fmt=".2f", unit="s")
    assert capsys.readouterr().out.splitlines() == [
        "validation perplexity: 231.5",
        "test accuracy: 81.2%",
        "one training step: 0.25 s",
    ]
    names = [json.loads(line)["name"] for line in path.read_text().splitlines()]
    assert names == ["gpt_val_ppl", "acc", "step_s"]


@pytest.mark.parametrize(
    "label,value,name,fmt",
    [("", 1.0, "ok", ".3f"), ("fine", 1.0, "bad name", ".3f"), ("fine", float("nan"), "ok", ".3f"),
     ("fine", 1.0, "ok", "%d"), ("fine", "1", "ok", ".3f")],
)
def test_show_rejects_bad_input_and_writes_nothing(label, value, name, fmt, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(metrics.METRICS_FILE_ENV, str(tmp_path / "m.jsonl"))
    with pytest.raises((TypeError, ValueError)):
        metrics.show(label, value, name=name, fmt=fmt)
    assert not (tmp_path / "m.jsonl").exists() and capsys.readouterr().out == ""
