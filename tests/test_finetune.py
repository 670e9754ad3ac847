"""Notebook 11's library: the topic task, batches, the classifier (= HF), evaluation, export, probes.

The Hugging Face paths run offline: models are written with ``save_pretrained`` to a temporary
folder and read back with ``HF_HUB_OFFLINE=1`` and every socket connection refused.
"""

import random
import socket

import pytest
import torch
from transformers import BertForSequenceClassification

from course_lib import bert, checkpoint, data, finetune, gpt, hub, metrics, probes, train, viz
from course_lib.tokenizers import train_hf_wordpiece


def empty_hf_cache(monkeypatch, tmp_path):
    """As on a machine that never downloaded anything (huggingface_hub reads its cache path at import)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    empty_hf_cache(monkeypatch, tmp_path)

    def refuse(*args, **kwargs):
        raise OSError("tests never touch the network")

    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def wordpiece():
    return train_hf_wordpiece([d.text for d in data.load_corpus("wiki").train[:20]], 600)


def tiny_config(vocab_size, **overrides):
    values = dict(vocab_size=vocab_size, d_model=32, num_layers=2, num_heads=4, max_len=48, dropout=0.0,
                  attention_dropout=0.0, initializer_range=0.2)
    return bert.BertConfig(**{**values, **overrides})


# ---- the task and the batches -----------------------------------------------------------------
def test_topic_task_keeps_paragraphs_whole_and_uses_articles_unseen_in_pretraining():
    corpus = data.load_corpus("wiki")
    task = finetune.article_topic_task()
    assert len(task.test) >= 500 and len(task.labels) >= 5
    held_out_titles = {d.title for d in list(corpus.validation) + list(corpus.test)}
    assert set(task.labels) <= held_out_titles and not set(task.labels) & {d.title for d in corpus.train}
    side_of = {}
    for side in ("train", "validation", "test"):
        for text, _ in getattr(task, side):
            side_of[text] = side
    for document in corpus.validation + corpus.test:
        if document.title not in task.labels:
            continue
        for paragraph in document.paragraphs:
            sides = {side_of[s] for s in paragraph.sentences if s in side_of}
            assert len(sides) <= 1, (document.title, sides)
    # every class on every side, the shares near the fractions asked for
    for side in ("train", "validation", "test"):
        assert {y for _, y in getattr(task, side)} == set(range(len(task.labels)))
    total = sum(task.sizes().values())
    assert abs(len(task.train) / total - 0.5) < 0.05 and abs(len(task.validation) / total - 0.1) < 0.04
    assert finetune.article_topic_task() == task  # deterministic


def test_topic_task_rejects_bad_settings():
    with pytest.raises(ValueError, match="fractions"):
        finetune.article_topic_task(fractions=(0.7, 0.4))
    with pytest.raises(ValueError, match="min_sentences"):
        finetune.article_topic_task(min_sentences=10_000)


@pytest.mark.parametrize("k", [2, 5])
def test_stratified_folds_partition_the_examples_with_balanced_labels(k):
    labels = [0] * 50 + [1] * 30 + [2] * 20
    folds = finetune.stratified_folds(labels, k, seed=3)
    assert sorted(i for fold in folds for i in fold) == list(range(100))
    for fold in folds:
        assert len(fold) == 100 // k
        for label, count in ((0, 50), (1, 30), (2, 20)):
            assert abs(sum(labels[i] == label for i in fold) - count / k) <= 1
    with pytest.raises(ValueError, match="k to be an int >= 2"):
        finetune.stratified_folds(labels, 1)


def test_classification_batches_pad_mask_and_reshuffle(wordpiece):
    examples = [(" ".join(["word"] * n), n % 3) for n in range(1, 41)]
    batches = finetune.ClassificationBatches(examples, wordpiece, batch_size=8, max_len=16, shuffle=True)
    assert len(batches) == 5
    seen = []
    for batch in batches:
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        assert ids.shape == mask.shape and ids.shape[0] == labels.shape[0] and ids.shape[1] <= 16
        assert ((ids == wordpiece.pad_token_id) == (mask == 0)).all()  # padding exactly where the mask is 0
        seen.extend(int(mask[i].sum()) for i in range(len(labels)))
    assert len(seen) == 40
    first, second = batches.batch_indices(), batches.batch_indices()
    assert sorted(sum(first, [])) == list(range(40)) and first != second  # each pass reshuffles
    fixed = finetune.ClassificationBatches(examples, wordpiece, batch_size=8)
    assert fixed.batch_indices() == fixed.batch_indices()
    with pytest.raises(TypeError, match="text, label"):
        finetune.ClassificationBatches([("text", "positive")], wordpiece)
    with pytest.raises(ValueError, match="no examples"):
        finetune.ClassificationBatches([], wordpiece)


# ---- the classifier equals BertForSequenceClassification --------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classifier_equals_hf_sequence_classification_and_back(seed):
    rng = random.Random(seed)
    config = bert.BertConfig(vocab_size=rng.randint(50, 300), d_model=rng.choice([16, 32, 48]),
                             num_layers=rng.randint(1, 3), num_heads=rng.choice([2, 4]), max_len=40,
                             dropout=0.0, attention_dropout=0.0, initializer_range=0.3,
                             activation=rng.choice(["gelu", "relu"]))
    model = finetune.BertClassifier.from_scratch(config, rng.randint(2, 6), seed=seed).eval()
    torch.nn.init.normal_(model.head.classifier.bias)
    ids = torch.randint(1, config.vocab_size, (3, 17), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids)
    mask[1, 11:] = 0
    mask[2, 5:] = 0
    ours = model(ids, mask)
    hf_model = model.to_hf().eval()
    assert isinstance(hf_model, BertForSequenceClassification)
    theirs = hf_model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-4)
    back = finetune.BertClassifier.from_hf(hf_model).eval()
    torch.testing.assert_close(back(ids, mask), ours, atol=1e-6, rtol=1e-5)
    assert back.labels == model.labels and back.head.dropout.p == model.head.dropout.p
    # padding changes nothing of the real tokens' result
    torch.testing.assert_close(model(ids[2:, :5], mask[2:, :5]), ours[2:], atol=1e-5, rtol=1e-4)


def test_classifier_rejects_bad_arguments():
    encoder = bert.Bert(tiny_config(100))
    with pytest.raises(ValueError, match="num_labels to be an int >= 2"):
        finetune.BertClassifier(encoder, 1)
    with pytest.raises(ValueError, match="label names"):
        finetune.BertClassifier(encoder, 3, labels=["a", "b"])
    with pytest.raises(TypeError, match="Bert encoder"):
        finetune.BertClassifier(torch.nn.Linear(2, 2), 2)
    with pytest.raises(TypeError, match="BertForSequenceClassification"):
        finetune.BertClassifier.from_hf(encoder.to_hf())


def test_fine_tuning_learns_a_separable_task_and_evaluation_counts_right(wordpiece):
    words = {0: ["the", "history", "war"], 1: ["of", "city", "and"]}
    rng = random.Random(0)
    examples = [(" ".join(rng.choice(words[y]) for _ in range(6)), y) for y in (0, 1) for _ in range(40)]
    rng.shuffle(examples)
    model = finetune.BertClassifier.from_scratch(tiny_config(len(wordpiece), dropout=0.1), 2, seed=0)
    train_batches = finetune.ClassificationBatches(examples[:60], wordpiece, batch_size=8, shuffle=True)
    val_batches = finetune.ClassificationBatches(examples[60:], wordpiece, batch_size=8)
    history = finetune.fine_tune(model, train_batches, val_batches, epochs=6, lr=3e-3, early_stopping_patience=2)
    result = finetune.evaluate_classifier(model, val_batches)
    assert result["accuracy"] == 1.0 and result["examples"] == 20
    assert result["confusion"].sum() == 20 and result["confusion"].trace() == 20
    # the model ends with its best epoch's weights, also when patience was not used up
    assert abs(finetune.evaluate_classifier(model, val_batches)["loss"] - history.best_eval_loss) < 1e-4
    cv = finetune.cross_validate(lambda: finetune.BertClassifier.from_scratch(tiny_config(len(wordpiece)), 2),
                                 examples, wordpiece, folds=4, epochs=4, lr=3e-3)
    assert len(cv["fold_accuracies"]) == 4 and cv["mean"] > 0.9


# ---- metrics and the early-stopping rule ----------------------------------------------------
def test_confusion_matrix_and_f1_by_hand():
    targets = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    predictions = torch.tensor([0, 0, 1, 1, 2, 2, 2, 2, 0, 2])
    confusion = metrics.confusion_matrix(targets, predictions, 5)
    assert confusion.shape == (5, 5) and confusion[0, 0] == 2 and confusion[0, 1] == 1 and confusion[3, 2] == 1
    scores = metrics.f1_scores(confusion)
    # class 0: P 2/3, R 2/3; class 1: P 1/2, R 1/2; class 2: P 3/5, R 3/4; classes 3 and 4: 0
    expected = [2 / 3, 1 / 2, 2 * 0.6 * 0.75 / 1.35, 0.0, 0.0]
    torch.testing.assert_close(scores["f1"], torch.tensor(expected))
    assert abs(scores["macro_f1"] - sum(expected) / 5) < 1e-6
    with pytest.raises(ValueError, match="outside"):
        metrics.confusion_matrix(targets, predictions, 3)
    with pytest.raises(TypeError, match="integer"):
        metrics.confusion_matrix(targets.float(), predictions, 5)


@pytest.mark.parametrize("losses,patience,min_delta,stop", [
    ([3, 2, 1], 1, 0.0, None),
    ([3, 2, 2.5, 1], 1, 0.0, 2),
    ([3, 2, 2.5, 1, 0.5], 2, 0.0, None),
    ([3, 2, 2.5, 2.4, 1], 2, 0.0, 3),       # 2.4 is worse than the best (2), not than the previous
    ([3, 2, 1.95, 1.92], 2, 0.1, 3),        # improvements smaller than min_delta do not count
    ([1, 1, 1], 2, 0.0, 2),                 # equal is not better
])
def test_early_stopping_point_follows_the_trainer(losses, patience, min_delta, stop):
    assert train.early_stopping_point(losses, patience, min_delta) == stop
    # the Trainer, fed the same validation losses, stops at the same evaluation
    scripted = iter(losses)
    model = torch.nn.Linear(1, 1)

    def loss_fn(m, batch):
        if m.training:
            return (m(batch) ** 2).mean()
        return torch.tensor(float(next(scripted)))

    batches = [torch.ones(1, 1)] * 3
    trainer = train.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), loss_fn, batches,
                            eval_data=[torch.ones(1, 1)], eval_every=1, early_stopping_patience=patience,
                            min_delta=min_delta, progress=False, live_plot=False)
    history = trainer.fit(steps=len(losses))
    assert history.stopped_early == (stop is not None)
    assert len(history.eval_loss) == (stop + 1 if stop is not None else len(losses))


# ---- Hugging Face: export, pipelines, offline loading -----------------------------------------
def test_exported_classifier_loads_offline_and_the_pipeline_predicts_like_ours(offline, tmp_path, wordpiece):
    from transformers import pipeline

    model = finetune.BertClassifier.from_scratch(tiny_config(len(wordpiece)), 3, labels=("war", "city", "sport"),
                                                 seed=4).eval()
    folder = hub.export_classifier(model, wordpiece, tmp_path / "classifier")
    assert wordpiece.model_max_length != 48  # exporting does not change the caller's tokenizer
    loaded = hub.load_pipeline("text-classification", str(folder), top_k=None)
    assert loaded.is_fallback is False
    same = pipeline("text-classification", model=str(folder), top_k=None)
    for text in ["the history of the city", "a war and a city"]:
        enc = wordpiece([text], return_tensors="pt")
        with torch.no_grad():
            ours = model(enc["input_ids"], enc["attention_mask"]).softmax(-1)[0]
        for result in (loaded.pipeline(text), same(text)):
            scores = {r["label"]: r["score"] for r in (result[0] if isinstance(result[0], list) else result)}
            for i, name in enumerate(model.labels):
                assert abs(scores[name] - float(ours[i])) < 1e-5


def test_load_pipeline_falls_back_offline_with_a_message(offline, tmp_path, capsys, wordpiece):
    model = finetune.BertClassifier.from_scratch(tiny_config(len(wordpiece)), 2, labels=("NEG", "POS")).eval()
    folder = hub.export_classifier(model, wordpiece, tmp_path / "sentiment")
    loaded = hub.load_pipeline("text-classification", "distilbert-base-uncased-finetuned-sst-2-english",
                               fallback_folder=folder, timeout=0.1)
    assert loaded.is_fallback and "sentiment" in loaded.source
    assert "not available" in capsys.readouterr().out
    assert loaded.pipeline("the history of the city")[0]["label"] in ("NEG", "POS")
    none = hub.load_pipeline("translation_en_to_fr", "t5-small", timeout=0.1)
    assert none.pipeline is None and "no course model" in capsys.readouterr().out
    with pytest.raises(ValueError, match="hub name or a folder"):
        hub.load_pipeline("fill-mask", "")


def test_load_pipeline_reports_a_failed_download(monkeypatch, tmp_path, capsys, wordpiece):
    empty_hf_cache(monkeypatch, tmp_path)
    monkeypatch.setattr(viz, "_hub_reachable", lambda timeout: True)  # the hub "answers"...
    import transformers

    def broken(*args, **kwargs):
        raise OSError("connection reset")  # ...but the download breaks

    monkeypatch.setattr(transformers, "pipeline", broken)
    loaded = hub.load_pipeline("fill-mask", "bert-base-uncased", timeout=0.1)
    assert loaded.pipeline is None and "loading it failed (OSError)" in capsys.readouterr().out


def test_exported_gpt_and_masked_lm_work_in_pipelines_like_the_course_models(offline, tmp_path):
    from transformers import pipeline

    gpt_model, gpt_tokenizer, _ = checkpoint.load_pretrained("gpt")
    folder = hub.export_gpt(gpt_model, gpt_tokenizer, tmp_path / "gpt")
    prompt = "The river flows through the"
    text = pipeline("text-generation", model=str(folder))(prompt, max_new_tokens=12, do_sample=False)[0]["generated_text"]
    ids = torch.tensor(gpt_tokenizer(prompt)["input_ids"])
    assert text == gpt_tokenizer.decode(gpt.generate(gpt_model, ids, 12))

    bert_model, bert_tokenizer, _ = checkpoint.load_pretrained("bert")
    folder = hub.export_fill_mask(bert_model, bert_tokenizer, tmp_path / "mlm")
    masked = "the city is the capital of the [MASK] ."
    theirs = pipeline("fill-mask", model=str(folder))(masked)
    ours = bert.fill_mask(bert_model, bert_tokenizer, masked, top_k=5)[0]
    assert [r["token_str"] for r in theirs] == [t for t, _ in ours]
    for r, (_, p) in zip(theirs, ours):
        assert abs(r["score"] - p) < 1e-5


# ---- probes -------------------------------------------------------------------------------------
def test_memorisation_probe_counts_matched_tokens():
    model, tokenizer, _ = checkpoint.load_pretrained("gpt")
    prefix = tokenizer("The history of the city of")["input_ids"][:6]
    own = gpt.generate(model, torch.tensor(prefix), 8).tolist()  # what the model itself continues with
    changed = own[:9] + [(own[9] + 1) % model.config.vocab_size] + own[10:]
    text_own, text_changed = tokenizer.decode(own), tokenizer.decode(changed)
    assert tokenizer(text_own)["input_ids"] == own and tokenizer(text_changed)["input_ids"] == changed
    result = probes.memorisation_probe(model, tokenizer, [text_own, text_changed, "too short"],
                                       prefix_tokens=6, continuation_tokens=8)
    assert result["texts"] == 2 and result["matched"] == [8, 3] and result["exact_fraction"] == 0.5
    with pytest.raises(ValueError, match="no text"):
        probes.memorisation_probe(model, tokenizer, ["short"], prefix_tokens=6, continuation_tokens=8)
    with pytest.raises(ValueError, match="context"):
        probes.memorisation_probe(model, tokenizer, [text_own], prefix_tokens=100, continuation_tokens=100)


def test_mask_probabilities_reads_the_mlm_distribution():
    model, tokenizer, _ = checkpoint.load_pretrained("bert")
    text = "[MASK] was born in the city ."
    p = probes.mask_probabilities(model, tokenizer, text, ["he", "she"])
    top = dict(bert.fill_mask(model, tokenizer, text, top_k=50)[0])
    for word in ("he", "she"):
        if word in top:
            assert abs(p[word] - top[word]) < 1e-6
    assert 0 < p["she"] < p["he"] < 1
    with pytest.raises(ValueError, match="exactly one"):
        probes.mask_probabilities(model, tokenizer, "[MASK] and [MASK] .", ["he"])
    with pytest.raises(ValueError, match="single tokens"):
        probes.mask_probabilities(model, tokenizer, text, ["xqzv"])
