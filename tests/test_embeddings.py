"""course_lib.embeddings: counting, PPMI/SVD, skip-gram with negative sampling, GloVe, evaluation."""

import math
import random

import numpy as np
import pytest
import scipy.sparse
import torch
from scipy.stats import spearmanr

from course_lib import embeddings as E
from course_lib import train

# ---- tokenising and the vocabulary ----------------------------------------------------------


def test_tokenize_keeps_lowercase_words_of_two_letters_or_more():
    assert E.tokenize("The King's 2 horses, e.g. Ōsaka!") == ["the", "king", "horses", "ōsaka"]
    assert E.tokenize("") == [] and E.tokenize("1999 - a") == []
    with pytest.raises(TypeError, match="str"):
        E.tokenize(["a", "list"])


SENTENCES = [["the", "cat", "sat"], ["the", "dog", "sat"], ["a", "cat", "ran"], ["the", "cat"]]


def test_vocabulary_orders_by_count_then_alphabet_and_applies_min_count():
    vocab = E.Vocabulary.from_sentences(SENTENCES, min_count=1)
    assert vocab.words == ("cat", "the", "sat", "a", "dog", "ran")
    assert vocab.counts.tolist() == [3, 3, 2, 1, 1, 1]
    assert vocab["sat"] == 2 and "dog" in vocab and len(vocab) == 6
    assert E.Vocabulary.from_sentences(SENTENCES, min_count=2).words == ("cat", "the", "sat")
    assert vocab.encode(["the", "unknown", "cat"]).tolist() == [1, 0]


def test_an_empty_corpus_gets_a_clear_error():
    with pytest.raises(ValueError, match="empty"):
        E.Vocabulary.from_sentences([])
    with pytest.raises(ValueError, match="empty"):
        E.Vocabulary.from_sentences([[], []])
    with pytest.raises(ValueError, match="min_count=5"):
        E.Vocabulary.from_sentences(SENTENCES, min_count=5)
    with pytest.raises(TypeError, match="tokenize"):
        E.Vocabulary.from_sentences(["a sentence that was not split"])
    vocab = E.Vocabulary.from_sentences(SENTENCES, min_count=1)
    with pytest.raises(ValueError, match="no in-vocabulary word"):
        E.encode_corpus([["zebra"]], vocab)


def test_an_unknown_word_gets_a_clear_error():
    vocab = E.Vocabulary.from_sentences(SENTENCES, min_count=1)
    with pytest.raises(E.UnknownWordError, match="'zebra' is not in the vocabulary of 6 words"):
        vocab["zebra"]
    with pytest.raises(KeyError, match="lower-case: try 'cat'"):  # UnknownWordError is a KeyError
        vocab["Cat"]
    wv = E.WordVectors(vocab, torch.randn(6, 3))
    with pytest.raises(E.UnknownWordError, match="zebra"):
        wv.nearest("zebra")
    with pytest.raises(E.UnknownWordError, match="zebra"):
        wv.analogy("cat", "dog", "zebra")


def test_encode_corpus_drops_unknown_words_and_remembers_sentences():
    vocab = E.Vocabulary.from_sentences(SENTENCES, min_count=2)  # cat, the, sat
    corpus = E.encode_corpus(SENTENCES, vocab)
    assert corpus.ids.tolist() == [1, 0, 2, 1, 2, 0, 1, 0]
    assert corpus.sentence_ids.tolist() == [0, 0, 0, 1, 1, 2, 3, 3]


# ---- co-occurrence, PPMI, SVD ---------------------------------------------------------------


def random_corpus(seed=0, sentences=40, vocab_size=12):
    rng = random.Random(seed)
    ids, sent = [], []
    for s in range(sentences):
        for _ in range(rng.randint(1, 9)):
            ids.append(rng.randrange(vocab_size))
            sent.append(s)
    return E.EncodedCorpus(np.array(ids), np.array(sent))


def test_cooccurrence_matches_a_plain_loop_and_stays_inside_sentences():
    corpus, window, size = random_corpus(), 3, 12
    expected = np.zeros((size, size))
    for i in range(len(corpus)):
        for j in range(max(0, i - window), min(len(corpus), i + window + 1)):
            if j != i and corpus.sentence_ids[i] == corpus.sentence_ids[j]:
                expected[corpus.ids[i], corpus.ids[j]] += 1
    counts = E.cooccurrence_matrix(corpus, size, window=window)
    assert scipy.sparse.issparse(counts) and counts.shape == (size, size)
    np.testing.assert_array_equal(counts.toarray(), expected)
    with pytest.raises(ValueError, match="vocab_size"):
        E.cooccurrence_matrix(corpus, 5)


def test_ppmi_of_a_small_matrix_by_hand():
    counts = torch.tensor([[2.0, 0.0], [1.0, 1.0]])  # N = 4, rows (2, 2), columns (3, 1)
    expected = torch.tensor(
        [[math.log(2 * 4 / (2 * 3)), 0.0], [0.0, math.log(1 * 4 / (2 * 1))]]  # log(2/3) < 0 -> 0
    )
    torch.testing.assert_close(E.ppmi(counts), expected.to(counts.dtype))


def test_ppmi_dense_and_sparse_agree_and_handle_zeros():
    counts = E.cooccurrence_matrix(random_corpus(1), 12, window=2)
    dense = torch.from_numpy(counts.toarray())
    for power in (1.0, 0.75):
        sparse_result = E.ppmi(counts, context_power=power)
        dense_result = E.ppmi(dense, context_power=power)
        assert torch.isfinite(dense_result).all() and (dense_result >= 0).all()
        np.testing.assert_allclose(sparse_result.toarray(), dense_result.numpy(), atol=1e-12)
    assert not np.allclose(E.ppmi(counts).toarray(), E.ppmi(counts, context_power=0.75).toarray())
    np.testing.assert_array_equal(counts.toarray(), dense.numpy())  # the input is left alone
    with pytest.raises(ValueError, match="no counts"):
        E.ppmi(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="non-negative"):
        E.ppmi(torch.tensor([[1.0, -1.0], [0.0, 1.0]]))


def test_svd_embeddings_recover_a_low_rank_matrix():
    gen = torch.Generator().manual_seed(0)
    left, right = torch.randn(30, 3, generator=gen), torch.randn(3, 20, generator=gen)
    matrix = (left @ right).double()
    vectors = E.svd_embeddings(matrix, dim=3, power=1.0)  # U S
    u, s, vh = torch.linalg.svd(matrix)
    torch.testing.assert_close(vectors.double().abs(), (u[:, :3] * s[:3]).abs(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(E.svd_embeddings(scipy.sparse.csr_matrix(matrix.numpy()), 3, power=1.0), vectors)
    with pytest.raises(ValueError, match="dim < min"):
        E.svd_embeddings(matrix, dim=20)


# ---- skip-gram with negative sampling -------------------------------------------------------


def test_keep_probabilities_are_gensims():
    from gensim.models import Word2Vec

    sentences = [["the"] * 50 + ["cat", "dog"] * 5 + [f"w{i}" for i in range(30)]] * 3
    model = Word2Vec(vector_size=4, min_count=1, sample=1e-2)
    model.build_vocab(sentences)
    words = model.wv.index_to_key
    counts = [model.wv.get_vecattr(w, "count") for w in words]
    ours = E.keep_probabilities(counts, sample=1e-2)
    theirs = [model.wv.get_vecattr(w, "sample_int") / 2**32 for w in words]
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert ours[words.index("the")] < 0.5 and ours[words.index("w0")] == 1.0
    np.testing.assert_array_equal(E.keep_probabilities(counts, sample=0), 1.0)


def test_noise_distribution_is_counts_to_the_three_quarters():
    noise = E.noise_distribution([16, 1, 81])
    torch.testing.assert_close(noise, torch.tensor([8.0, 1.0, 27.0]) / 36)


def test_sgns_loss_matches_a_hand_computation():
    center = torch.tensor([[1.0, 0.0]])
    context = torch.tensor([[2.0, 0.0]])  # u . v = 2
    negatives = torch.tensor([[[-1.0, 0.0], [0.5, 3.0]]])  # u . n = -1 and 0.5

    def sigmoid(x):
        return 1 / (1 + math.exp(-x))

    by_hand = -math.log(sigmoid(2)) - math.log(sigmoid(1)) - math.log(sigmoid(-0.5))
    assert E.sgns_loss(center, context, negatives).item() == pytest.approx(by_hand, rel=1e-6)
    # a batch is averaged: the same pair twice gives the same loss
    twice = E.sgns_loss(center.repeat(2, 1), context.repeat(2, 1), negatives.repeat(2, 1, 1))
    assert twice.item() == pytest.approx(by_hand, rel=1e-6)


def test_sgns_loss_bad_shapes_get_a_clear_error():
    with pytest.raises(ValueError, match=r"negatives of shape \(batch, K, dim\)"):
        E.sgns_loss(torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="same shape"):
        E.sgns_loss(torch.zeros(4, 3), torch.zeros(3, 3), torch.zeros(4, 2, 3))


def test_hand_derived_gradients_match_autograd():
    gen = torch.Generator().manual_seed(0)
    center, context = torch.randn(5, 4, generator=gen, dtype=torch.float64), torch.randn(5, 4, generator=gen, dtype=torch.float64)
    negatives = torch.randn(5, 3, 4, generator=gen, dtype=torch.float64)
    inputs = [t.clone().requires_grad_() for t in (center, context, negatives)]
    expected = torch.autograd.grad(E.sgns_loss(*inputs), inputs)
    for mine, theirs in zip(E.sgns_gradients(center, context, negatives), expected):
        torch.testing.assert_close(mine, theirs)


def tiny_model_and_batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    model = E.SkipGram(10, 4, E.noise_distribution(np.arange(1, 11)), negatives=3, seed=seed)
    with torch.no_grad():  # output vectors start at zero; make the test see real values
        model.output_vectors.weight.normal_(generator=gen)
    centres = torch.tensor([1, 4, 4])
    contexts = torch.tensor([[2, 3, 0, 0], [5, 4, 6, 1], [7, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    negatives = torch.tensor([[8, 9, 2], [0, 0, 7], [3, 5, 5]])
    return model, (centres, contexts, mask, negatives)


def test_skipgram_forward_is_sgns_loss_over_the_pairs_of_each_window():
    model, (centres, contexts, mask, negatives) = tiny_model_and_batch()
    g, c = torch.nonzero(mask, as_tuple=True)  # one (window, slot) per real pair
    win, wout = model.input_vectors.weight, model.output_vectors.weight
    expected = E.sgns_loss(win[contexts[g, c]], wout[centres[g]], wout[negatives[g]])
    torch.testing.assert_close(model(centres, contexts, mask, negatives), expected)


def test_sgd_step_is_sgd_on_the_autograd_gradient():
    model, batch = tiny_model_and_batch()
    reference, _ = tiny_model_and_batch()
    pairs = int(batch[2].sum())
    loss = reference(*batch) * pairs  # the sum over pairs: word2vec's learning rate is per pair
    loss.backward()
    lr = 0.1
    returned = model.sgd_step(*batch, lr=lr)
    torch.testing.assert_close(returned, loss.detach() / pairs)
    for mine, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(mine.detach(), (theirs - lr * theirs.grad).detach())


def test_skipgram_batches_windows_stay_in_sentences_and_within_reach():
    corpus = E.EncodedCorpus(np.arange(12), np.array([0] * 5 + [1] * 7))  # word i at position i
    batches = E.SkipGramBatches(corpus, np.ones(12), window=2, sample=0, pairs_per_batch=6, seed=0)
    # 12 centre words kept (no subsampling), half with window 1 (2 pairs each: 2 batches of 6 pairs),
    # half with window 2 (4 pairs each: 4 batches)
    assert batches.batches_per_size == [2, 4] and len(batches) == 6
    seen = set()
    for _ in range(20):
        centres, contexts, mask = batches.epoch()
        assert sorted(centres.tolist()) == list(range(12)) and contexts.shape == (12, 4)
        for centre, row, keep in zip(centres.tolist(), contexts.tolist(), mask.tolist()):
            for context, real in zip(row, keep):
                if real:
                    assert 1 <= abs(context - centre) <= 2
                    assert (context < 5) == (centre < 5), "a window crossed a sentence boundary"
                    seen.add((centre, context))
    expected = {(i, j) for i in range(12) for j in range(12) if 1 <= abs(i - j) <= 2 and (i < 5) == (j < 5)}
    assert seen == expected  # every pair within reach shows up over a few epochs
    # Batches group centre words by window size b: contexts are 2b wide, offsets -b..-1, 1..b.
    batch_list = list(batches)
    assert sum(len(b[0]) for b in batch_list) == 12 and len(batch_list) <= len(batches)
    for centres, contexts, mask in batch_list:
        reach = contexts.shape[1] // 2
        offsets = [o for o in range(-reach, reach + 1) if o != 0]
        for centre, row, keep in zip(centres.tolist(), contexts.tolist(), mask.tolist()):
            for offset, context, real in zip(offsets, row, keep):
                if real:
                    assert context - centre == offset


def test_reduced_windows_favour_near_words():
    corpus = E.EncodedCorpus(np.arange(200) % 50, np.zeros(200, dtype=np.int64))
    batches = E.SkipGramBatches(corpus, np.full(50, 4), window=5, sample=0, seed=0)
    _, _, mask = batches.epoch()
    per_slot = mask.float().mean(0)  # slots are offsets -5..-1, 1..5
    # P(offset d used) = P(window >= d) = (6 - d) / 5 for a uniform window in 1..5
    expected = torch.tensor([1, 2, 3, 4, 5, 5, 4, 3, 2, 1]) / 5
    torch.testing.assert_close(per_slot, expected, atol=0.08, rtol=0)


def test_subsampling_drops_frequent_words_at_gensims_rate():
    ids = np.array([0] * 9000 + list(range(1, 1001)))  # word 0 is 90% of the corpus
    np.random.default_rng(0).shuffle(ids)
    corpus = E.EncodedCorpus(ids, np.zeros(len(ids), dtype=np.int64))
    counts = np.bincount(ids)
    batches = E.SkipGramBatches(corpus, counts, sample=1e-3, seed=0)
    centres, _, _ = batches.epoch()
    kept_zero = (centres == 0).sum().item() / 9000
    assert kept_zero == pytest.approx(E.keep_probabilities(counts, 1e-3)[0], abs=0.01)
    assert (centres != 0).sum().item() == 1000  # rare words are always kept


def test_train_skipgram_learns_which_words_share_contexts():
    # Two topics: words 0-9 only ever appear among each other, words 10-19 likewise.
    rng = np.random.default_rng(0)
    sentences = [rng.integers(0, 10, 8) if s % 2 else rng.integers(10, 20, 8) for s in range(200)]
    corpus = E.EncodedCorpus(np.concatenate(sentences), np.repeat(np.arange(200), 8))
    counts = np.bincount(corpus.ids, minlength=20)
    model = E.SkipGram(20, 16, E.noise_distribution(counts), seed=0)
    # Plain SGD sums the updates of a batch: with only 20 words, small batches keep it stable.
    batches = E.SkipGramBatches(corpus, counts, sample=0, pairs_per_batch=128, seed=0)
    history = E.train_skipgram(model, batches, epochs=5, lr=0.025, progress=False, live_plot=False, log_every=10)
    assert isinstance(history, train.History) and history.step == 5 * len(batches)
    assert history.train_loss[-1] < history.train_loss[0]
    sims = E.cosine_similarity(model.vectors, model.vectors)
    same = (sims[:10, :10].sum() - 10) / 90
    across = sims[:10, 10:].mean()
    assert same > across + 0.5


def test_train_skipgram_rejects_mismatched_parts():
    corpus = E.EncodedCorpus(np.arange(6) % 3, np.zeros(6, dtype=np.int64))
    batches = E.SkipGramBatches(corpus, np.full(3, 2))
    model = E.SkipGram(4, 2, E.noise_distribution(np.ones(4)))
    with pytest.raises(ValueError, match="same vocabulary"):
        E.train_skipgram(model, batches, epochs=1, progress=False, live_plot=False)
    with pytest.raises(ValueError, match="noise probabilities of shape"):
        E.SkipGram(4, 2, E.noise_distribution(np.ones(3)))


# ---- GloVe ----------------------------------------------------------------------------------


def test_glove_weights_and_loss():
    torch.testing.assert_close(glove := E.glove_weights(torch.tensor([0.0, 50.0, 100.0, 500.0]), 100, 0.5), torch.tensor([0.0, 0.5**0.5, 1.0, 1.0]))
    assert glove.shape == (4,)
    model = E.GloVe(3, 2)
    batch = (torch.tensor([0, 1]), torch.tensor([2, 2]), torch.tensor([1.0, 2.0]), torch.tensor([1.0, 0.5]))
    prediction = model(batch[0], batch[1])
    expected = (1.0 * (prediction[0] - 1.0) ** 2 + 0.5 * (prediction[1] - 2.0) ** 2) / 2
    torch.testing.assert_close(E.glove_loss(model, batch), expected)


def test_glove_fits_log_counts_with_the_trainer():
    counts = E.cooccurrence_matrix(random_corpus(2, sentences=200), 12, window=3)
    batches = E.GloVeBatches(counts, batch_size=64, seed=0)
    model = E.GloVe(12, 8)
    trainer = train.Trainer(model, torch.optim.Adagrad(model.parameters(), lr=0.1), E.glove_loss, batches, progress=False, live_plot=False)
    history = trainer.fit(epochs=30)
    assert history.train_loss[-1] < 0.2 * history.train_loss[0]
    assert model.vectors.shape == (12, 8)
    with pytest.raises(ValueError, match="non-zero"):
        E.GloVeBatches(scipy.sparse.csr_matrix((3, 3)))


def test_glove_learns_which_words_share_contexts():
    # Words 0-9 co-occur only among themselves, words 10-19 likewise, with varied counts.
    rng = np.random.default_rng(0)
    counts = np.zeros((20, 20))
    for block in (slice(0, 10), slice(10, 20)):
        counts[block, block] = rng.integers(1, 50, (10, 10))
    counts = scipy.sparse.csr_matrix(counts + counts.T)
    model = E.GloVe(20, 8)
    trainer = train.Trainer(model, torch.optim.Adagrad(model.parameters(), lr=0.1), E.glove_loss,
                            E.GloVeBatches(counts, batch_size=50, x_max=10), progress=False, live_plot=False)
    trainer.fit(epochs=60)
    sims = E.cosine_similarity(model.vectors, model.vectors)
    assert (sims[:10, :10].sum() - 10) / 90 > sims[:10, 10:].mean() + 0.3


# ---- evaluation -----------------------------------------------------------------------------


def toy_vectors():
    words = ["man", "woman", "king", "queen", "apple", "pear"]
    vectors = torch.tensor(
        [
            [1.0, 0.0, 0.0, 0.1],
            [1.0, 1.0, 0.0, 0.1],
            [1.0, 0.0, 1.0, 0.1],
            [1.0, 1.0, 1.0, 0.1],
            [0.0, 0.0, 0.0, 1.0],
            [0.1, 0.0, 0.0, 1.0],
        ]
    )
    return E.WordVectors(E.Vocabulary(words, [6, 5, 4, 3, 2, 1]), vectors)


def test_similarity_evaluation_counts_and_skips_out_of_vocabulary_pairs():
    wv = toy_vectors()
    pairs = [
        ("King", "queen", 8.0),  # upper case: lower-cased like the tokenizer
        ("man", "woman", 7.0),
        ("apple", "pear", 9.0),
        ("king", "apple", 1.0),
        ("king", "unicorn", 5.0),  # out of vocabulary
        ("dragon", "unicorn", 4.0),  # out of vocabulary
    ]
    result = E.evaluate_similarity(wv, pairs)
    assert (result.pairs_used, result.pairs_oov) == (4, 2)
    cosines = [wv.similarity(a.lower(), b) for a, b, _ in pairs[:4]]
    assert result.spearman == pytest.approx(spearmanr(cosines, [8, 7, 9, 1]).statistic)
    with pytest.raises(ValueError, match="only 1 of 3 pairs"):
        E.evaluate_similarity(wv, [("king", "queen", 1.0), ("x", "y", 2.0), ("a", "b", 3.0)])


def test_analogies_are_solved_by_vector_arithmetic_and_oov_questions_skipped():
    wv = toy_vectors()
    assert wv.analogy("man", "king", "woman", k=1)[0][0] == "queen"
    result = E.evaluate_analogies(wv, {"royal": [("man", "king", "woman", "queen"), ("woman", "queen", "man", "king")], "x": [("man", "king", "cat", "dog")]})
    assert (result.correct, result.answered, result.skipped, result.accuracy) == (2, 2, 1, 1.0)
    wrong = E.evaluate_analogies(wv, [("man", "king", "woman", "apple")])
    assert wrong.accuracy == 0.0 and wrong.answered == 1


def test_nearest_neighbours_leave_out_the_query_and_use_cosine():
    vectors = torch.tensor([[1.0, 0.0], [10.0, 10.0], [0.9, 0.1], [2.0, 0.0]])
    ids, sims = E.nearest_neighbours(vectors, 0, k=2)
    assert ids.tolist() == [3, 2]  # same direction first; the long vector [10, 10] is 45 degrees off
    torch.testing.assert_close(sims[0], torch.tensor(1.0))
    wv = E.WordVectors(E.Vocabulary(["a", "b", "c", "d"], [1, 1, 1, 1]), vectors)
    assert [w for w, _ in wv.nearest("a", k=3)] == ["d", "c", "b"]
    with pytest.raises(ValueError, match="one row per word"):
        E.WordVectors(wv.vocab, torch.zeros(3, 2))


def test_gensim_vectors_are_evaluated_by_the_same_code():
    from gensim.models import Word2Vec

    model = Word2Vec([["king", "queen", "man", "woman"]] * 5, vector_size=4, min_count=1, seed=0, workers=1)
    wv = E.WordVectors.from_gensim(model.wv)
    assert len(wv) == 4
    assert wv.similarity("king", "queen") == pytest.approx(float(model.wv.similarity("king", "queen")), abs=1e-5)


def test_pca_2d_keeps_the_two_directions_of_most_variance():
    gen = torch.Generator().manual_seed(0)
    plane = torch.randn(50, 2, generator=gen) * torch.tensor([5.0, 1.0])
    basis = torch.linalg.qr(torch.randn(6, 6, generator=gen)).Q[:2]  # two orthonormal rows
    points = plane @ basis + 3.0
    projected = E.pca_2d(points)
    assert projected.shape == (50, 2)
    # Exact pairwise distances: cdist's default matmul path loses ~1e-3 in float32 on 50 rows.
    exact = dict(compute_mode="donot_use_mm_for_euclid_dist")
    torch.testing.assert_close(torch.cdist(projected, projected, **exact), torch.cdist(plane, plane, **exact),
                               atol=1e-4, rtol=1e-4)
    assert projected[:, 0].var() > projected[:, 1].var()
    with pytest.raises(ValueError, match="at least 2 vectors"):
        E.pca_2d(torch.zeros(1, 3))
