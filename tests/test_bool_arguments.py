"""``True`` is an int in Python; every course function that wants a number must still refuse it.

Each case below accepted a bool (as 1 or 0) before the checks moved to ``course_lib._validate``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import embeddings as E
from course_lib import metrics, objectives, probes


def _skipgram_pair():
    corpus = E.EncodedCorpus(np.arange(12), np.array([0] * 5 + [1] * 7))
    batches = E.SkipGramBatches(corpus, np.ones(12), window=2, sample=0, pairs_per_batch=6, seed=0)
    return E.SkipGram(12, 4, E.noise_distribution(np.ones(12))), batches


def _mask_tokens(**kwargs):
    args = {"mask_token_id": 4, "vocab_size": 10, "special_token_ids": [0, 1, 2, 3, 4]} | kwargs
    return objectives.mask_tokens(torch.tensor([[5, 6, 7, 8]]), **args)


CASES = {
    "train_skipgram lr": (lambda: E.train_skipgram(*_skipgram_pair(), lr=True, progress=False), "lr"),
    "train_skipgram min_lr": (lambda: E.train_skipgram(*_skipgram_pair(), min_lr=False, progress=False), "min_lr"),
    "glove_weights x_max": (lambda: E.glove_weights(torch.ones(3), x_max=True), "x_max"),
    "glove_weights alpha": (lambda: E.glove_weights(torch.ones(3), alpha=True), "alpha"),
    "confusion_matrix num_classes": (
        lambda: metrics.confusion_matrix(torch.tensor([0, 0]), torch.tensor([0, 0]), True), "num_classes"
    ),
    "mask_tokens vocab_size": (lambda: _mask_tokens(mask_token_id=0, vocab_size=True), "vocab_size"),
    "mask_tokens mask_token_id": (lambda: _mask_tokens(mask_token_id=True), "mask_token_id"),
    "mask_tokens mlm_probability": (lambda: _mask_tokens(mlm_probability=True), "mlm_probability"),
    "make_nsp_pairs seed": (
        lambda: objectives.make_nsp_pairs([["a.", "b."], ["c.", "d."]], seed=True), "seed"
    ),
    # Checked before the model is touched, so no model is needed.
    "memorisation_probe prefix_tokens": (
        lambda: probes.memorisation_probe(None, None, ["text"], prefix_tokens=True), "prefix_tokens"
    ),
    "memorisation_probe continuation_tokens": (
        lambda: probes.memorisation_probe(None, None, ["text"], continuation_tokens=True), "continuation_tokens"
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bool_where_a_number_is_expected_is_refused(case):
    call, name = CASES[case]
    with pytest.raises(ValueError, match=rf"{name}.*got (True|False)"):
        call()


@pytest.mark.parametrize("value", [True, 0.5, 0])
def test_the_temperature_explorer_refuses_bools_and_out_of_range_temperatures(value):
    widgets = pytest.importorskip("course_lib.widgets")
    pytest.importorskip("ipywidgets")
    with pytest.raises(ValueError, match="temperature"):
        widgets.SoftmaxTemperatureExplorer([1.0, 2.0], ["a", "b"], temperature=value, min_temperature=0.75)
