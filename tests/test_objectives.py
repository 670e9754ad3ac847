import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.objectives import (
    IGNORE_INDEX,
    causal_lm_loss,
    make_nsp_pairs,
    mask_tokens,
    mlm_loss,
    nsp_loss,
)

VOCAB = 50
SPECIAL = [0, 1, 2, 3, 4]  # [PAD] [UNK] [CLS] [SEP] [MASK]
MASK_ID = 4


# ---- causal LM ------------------------------------------------------------------------------
def test_causal_lm_loss_matches_a_hand_computation():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    ids = torch.randint(0, 7, (2, 5))
    log_probs = logits.log_softmax(-1)
    by_hand = -sum(
        log_probs[b, t, ids[b, t + 1]] for b in range(2) for t in range(4)
    ) / 8
    torch.testing.assert_close(causal_lm_loss(logits, ids), by_hand)


def test_causal_lm_loss_of_uniform_model_is_log_vocab():
    logits = torch.zeros(3, 6, 11)
    ids = torch.randint(0, 11, (3, 6))
    assert causal_lm_loss(logits, ids).item() == pytest.approx(math.log(11))


def test_causal_lm_loss_skips_padding_targets():
    torch.manual_seed(1)
    logits = torch.randn(1, 6, 9)
    ids = torch.tensor([[5, 6, 7, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0, 0, 0]])
    short = causal_lm_loss(logits[:, :3], ids[:, :3])
    torch.testing.assert_close(causal_lm_loss(logits, ids, attention_mask=mask), short)


def test_causal_lm_loss_errors():
    with pytest.raises(ValueError, match="at least 2 tokens"):
        causal_lm_loss(torch.zeros(1, 1, 5), torch.zeros(1, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(2, 4, 'vocab'\)"):
        causal_lm_loss(torch.zeros(2, 5, 5), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer token ids"):
        causal_lm_loss(torch.zeros(2, 4, 5), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="attention_mask"):
        causal_lm_loss(torch.zeros(2, 4, 5), torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 3))


# ---- masked LM ------------------------------------------------------------------------------
def corpus_ids(n=400, seq=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (n, seq), generator=g)
    ids[:, 0] = 2  # [CLS]
    ids[:, seq // 2] = 3  # [SEP]
    ids[:, -8:] = 0  # [PAD]
    return ids


def test_mask_tokens_proportions_15_and_80_10_10():
    ids = corpus_ids()
    masked, labels = mask_tokens(
        ids, mask_token_id=MASK_ID, vocab_size=VOCAB, special_token_ids=SPECIAL,
        generator=torch.Generator().manual_seed(0),
    )
    ordinary = ~torch.isin(ids, torch.tensor(SPECIAL))
    selected = labels != IGNORE_INDEX
    n = int(ordinary.sum())
    rate = selected.sum().item() / n
    assert abs(rate - 0.15) < 4 * math.sqrt(0.15 * 0.85 / n)  # within 4 standard errors
    k = int(selected.sum())
    to_mask = (masked == MASK_ID) & selected
    unchanged = (masked == ids) & selected
    to_random = selected & ~to_mask & ~unchanged
    for part, p in [(to_mask, 0.8), (to_random, 0.1)]:
        assert abs(part.sum().item() / k - p) < 4 * math.sqrt(p * (1 - p) / k)
    # a random replacement can by chance equal the original: 10% stay + 10%/45 of the random ones
    assert abs(unchanged.sum().item() / k - (0.1 + 0.1 / (VOCAB - 5))) < 4 * math.sqrt(0.1 * 0.9 / k)


def test_mask_tokens_never_selects_or_draws_special_tokens_and_keeps_input():
    ids = corpus_ids(seed=1)
    before = ids.clone()
    masked, labels = mask_tokens(
        ids, mask_token_id=MASK_ID, vocab_size=VOCAB, special_token_ids=SPECIAL, mlm_probability=0.5,
    )
    assert torch.equal(ids, before)  # input untouched
    special = torch.isin(ids, torch.tensor(SPECIAL))
    assert (labels[special] == IGNORE_INDEX).all()
    assert torch.equal(masked[special], ids[special])
    replaced = (masked != ids) & (masked != MASK_ID)
    assert replaced.any() and not torch.isin(masked[replaced], torch.tensor(SPECIAL)).any()
    selected = labels != IGNORE_INDEX
    assert torch.equal(labels[selected], ids[selected])  # labels hold the originals


def test_mask_tokens_is_reproducible_with_a_generator():
    ids = corpus_ids(n=4)
    a = mask_tokens(ids, mask_token_id=4, vocab_size=VOCAB, special_token_ids=SPECIAL,
                    generator=torch.Generator().manual_seed(7))
    b = mask_tokens(ids, mask_token_id=4, vocab_size=VOCAB, special_token_ids=SPECIAL,
                    generator=torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"mlm_probability": 0.0}, "mlm_probability"),
        ({"mlm_probability": 1.5}, "mlm_probability"),
        ({"mask_token_id": 99}, "outside the vocabulary"),
        ({"vocab_size": 10}, r"\[0, 10\)"),
    ],
)
def test_mask_tokens_errors(kwargs, match):
    args = {"mask_token_id": MASK_ID, "vocab_size": VOCAB, "special_token_ids": SPECIAL} | kwargs
    with pytest.raises(ValueError, match=match):
        mask_tokens(corpus_ids(n=2), **args)
    with pytest.raises(TypeError):
        mask_tokens(torch.zeros(2, 3), mask_token_id=4, vocab_size=VOCAB, special_token_ids=SPECIAL)


def test_mlm_loss_counts_only_selected_positions():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 10, requires_grad=True)
    labels = torch.full((2, 6), IGNORE_INDEX)
    labels[0, 2], labels[1, 4] = 3, 7
    loss = mlm_loss(logits, labels)
    by_hand = -(logits.log_softmax(-1)[0, 2, 3] + logits.log_softmax(-1)[1, 4, 7]) / 2
    torch.testing.assert_close(loss, by_hand)
    loss.backward()
    unselected = torch.ones(2, 6, dtype=torch.bool)
    unselected[0, 2] = unselected[1, 4] = False
    assert (logits.grad[unselected] == 0).all()  # unselected positions contribute nothing
    # changing the logits at unselected positions leaves the loss unchanged
    other = logits.detach().clone()
    other[unselected] = torch.randn_like(other[unselected]) * 10
    torch.testing.assert_close(mlm_loss(other, labels), loss.detach())


def test_mlm_loss_with_nothing_selected_is_zero_not_nan():
    logits = torch.randn(1, 4, 5, requires_grad=True)
    loss = mlm_loss(logits, torch.full((1, 4), IGNORE_INDEX))
    assert loss.item() == 0.0
    loss.backward()
    assert (logits.grad == 0).all()


def test_nsp_loss():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 1])
    torch.testing.assert_close(nsp_loss(logits, labels), F.cross_entropy(logits, labels))
    with pytest.raises(ValueError, match="2 scores"):
        nsp_loss(torch.zeros(2, 3), labels)


# ---- next-sentence pairs --------------------------------------------------------------------
def make_documents(n_docs=30, n_sentences=12):
    return [[f"d{d} s{s}" for s in range(n_sentences)] for d in range(n_docs)]


def test_nsp_pairs_are_consecutive_or_from_another_document_about_half_each():
    docs = make_documents()
    pairs = make_nsp_pairs(docs, seed=0)
    assert len(pairs) == 30 * 11
    for a, b, label in pairs:
        da, sa = (int(x[1:]) for x in a.split())
        db, sb = (int(x[1:]) for x in b.split())
        if label == 0:
            assert db == da and sb == sa + 1
        else:
            assert label == 1 and db != da
    share = sum(label for *_, label in pairs) / len(pairs)
    assert abs(share - 0.5) < 4 * math.sqrt(0.25 / len(pairs))


def test_nsp_pairs_are_deterministic_per_seed():
    docs = make_documents(5, 4)
    assert make_nsp_pairs(docs, seed=3) == make_nsp_pairs(docs, seed=3)
    assert make_nsp_pairs(docs, seed=3) != make_nsp_pairs(docs, seed=4)


def test_nsp_pairs_bad_input():
    with pytest.raises(ValueError, match="two documents"):
        make_nsp_pairs([["a", "b", "c"]])
    with pytest.raises(ValueError, match="two sentences"):
        make_nsp_pairs([["a"], ["b"]])
    with pytest.raises(TypeError, match="list of sentences"):
        make_nsp_pairs(["one document as a string", "another"])
    with pytest.raises(TypeError):
        make_nsp_pairs("text")
