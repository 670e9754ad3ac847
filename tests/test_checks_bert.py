"""The notebook-07 checkers accept every right answer and name the mistake in each wrong one."""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib import objectives
from course_lib.checks import bert as check


def stub(*args, **kwargs):
    raise NotImplementedError


# ---- mask_tokens ------------------------------------------------------------------------------
def _select(ids, special, p=0.15):
    return (torch.rand(ids.shape) < p) & ~torch.isin(ids, torch.tensor(special))


def mask_loop(ids, mask_id, vocab, special):
    """Token by token with Python's random module."""
    masked, labels = ids.clone(), torch.full_like(ids, -100)
    ordinary = [i for i in range(vocab) if i not in special]
    for pos in range(ids.numel()):
        token = int(ids.view(-1)[pos])
        if token in special or random.random() >= 0.15:
            continue
        labels.view(-1)[pos] = token
        r = random.random()
        if r < 0.8:
            masked.view(-1)[pos] = mask_id
        elif r < 0.9:
            masked.view(-1)[pos] = random.choice(ordinary)
    return masked, labels


def mask_vectorised(ids, mask_id, vocab, special):
    """Three Bernoulli draws as in Hugging Face's DataCollatorForLanguageModeling."""
    labels = ids.clone()
    prob = torch.full(ids.shape, 0.15)
    prob[torch.isin(ids, torch.tensor(special))] = 0.0
    selected = torch.bernoulli(prob).bool()
    labels[~selected] = -100
    masked = ids.clone()
    replace = torch.bernoulli(torch.full(ids.shape, 0.8)).bool() & selected
    masked[replace] = mask_id
    rand = torch.bernoulli(torch.full(ids.shape, 0.5)).bool() & selected & ~replace
    ordinary = torch.tensor([i for i in range(vocab) if i not in special])
    masked[rand] = ordinary[torch.randint(len(ordinary), (int(rand.sum()),))]
    return masked, labels


def mask_numpy(ids, mask_id, vocab, special):
    rng = np.random.default_rng(3)
    x = ids.numpy().copy()
    sel = (rng.random(x.shape) < 0.15) & ~np.isin(x, special)
    labels = np.where(sel, x, -100)
    kind = rng.random(x.shape)
    x[sel & (kind < 0.8)] = mask_id
    rnd = sel & (kind >= 0.8) & (kind < 0.9)
    x[rnd] = rng.integers(len(special), vocab, rnd.sum())  # specials are the first ids here
    return torch.from_numpy(x), torch.from_numpy(labels)


def mask_library(ids, mask_id, vocab, special):
    return objectives.mask_tokens(ids, mask_token_id=mask_id, vocab_size=vocab, special_token_ids=special)


RIGHT_MASK = [mask_loop, mask_vectorised, mask_numpy, mask_library]


def mask_special_too(ids, mask_id, vocab, special):
    selected = torch.rand(ids.shape) < 0.15
    labels = torch.where(selected, ids, -100)
    masked = ids.clone()
    kind = torch.rand(ids.shape)
    masked[selected & (kind < 0.8)] = mask_id
    rnd = selected & (kind >= 0.8) & (kind < 0.9)
    masked[rnd] = torch.randint(5, vocab, (int(rnd.sum()),))
    return masked, labels


def mask_80_20(ids, mask_id, vocab, special):
    selected = _select(ids, special)
    masked = ids.clone()
    kind = torch.rand(ids.shape)
    masked[selected & (kind < 0.8)] = mask_id
    rnd = selected & (kind >= 0.8)
    masked[rnd] = torch.randint(5, vocab, (int(rnd.sum()),))
    return masked, torch.where(selected, ids, -100)


def mask_label_everything(ids, mask_id, vocab, special):
    masked, _ = mask_library(ids, mask_id, vocab, special)
    return masked, ids.clone()


def mask_only_mask(ids, mask_id, vocab, special):
    selected = _select(ids, special)
    return ids.masked_fill(selected, mask_id), torch.where(selected, ids, -100)


def mask_label_only_masked(ids, mask_id, vocab, special):
    masked, labels = mask_library(ids, mask_id, vocab, special)
    return masked, torch.where(masked == mask_id, labels, -100)


def mask_labels_corrupted(ids, mask_id, vocab, special):
    masked, labels = mask_library(ids, mask_id, vocab, special)
    return masked, torch.where(labels != -100, masked, labels)


def mask_in_place(ids, mask_id, vocab, special):
    masked, labels = mask_library(ids, mask_id, vocab, special)
    ids.copy_(masked)
    return ids, labels


def mask_random_any_id(ids, mask_id, vocab, special):
    selected = _select(ids, special)
    masked = ids.clone()
    kind = torch.rand(ids.shape)
    masked[selected & (kind < 0.8)] = mask_id
    rnd = selected & (kind >= 0.8) & (kind < 0.9)
    masked[rnd] = torch.randint(0, 5, (int(rnd.sum()),))  # only special ids: the mistake made visible
    return masked, torch.where(selected, ids, -100)


def mask_30_percent(ids, mask_id, vocab, special):
    return objectives.mask_tokens(
        ids, mask_token_id=mask_id, vocab_size=vocab, special_token_ids=special, mlm_probability=0.3
    )


def mask_inverted_labels(ids, mask_id, vocab, special):
    masked, labels = mask_library(ids, mask_id, vocab, special)
    return masked, torch.where(labels == -100, ids, -100)


def mask_touches_unselected(ids, mask_id, vocab, special):
    masked, labels = mask_library(ids, mask_id, vocab, special)
    masked[:, 1] = mask_id
    return masked, labels


def mask_half_half(ids, mask_id, vocab, special):
    selected = _select(ids, special)
    masked = ids.clone()
    masked[selected & (torch.rand(ids.shape) < 0.5)] = mask_id
    return masked, torch.where(selected, ids, -100)


WRONG_MASK = [
    (mask_special_too, "special tokens were selected"),
    (mask_80_20, "80/20"),
    (mask_label_everything, "every position got a label"),
    (mask_only_mask, "every selected token became [MASK]"),
    (mask_label_only_masked, "label ALL selected"),
    (mask_labels_corrupted, "ORIGINAL ids"),
    (mask_in_place, "in place"),
    (mask_random_any_id, "special tokens"),
    (mask_30_percent, "selects 15%"),
    (mask_inverted_labels, "torch.where swapped"),
    (mask_touches_unselected, "not selected changed"),
    (mask_half_half, "80% / 10% / 10%"),
    (lambda ids, m, v, s: mask_library(ids, m, v, s)[0], "pair"),
]


@pytest.mark.parametrize("fn", RIGHT_MASK)
def test_mask_tokens_accepts_right_answers(fn):
    verdict = check.mask_tokens(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_MASK)
def test_mask_tokens_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.mask_tokens(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


def test_mask_tokens_checker_restores_the_global_random_state():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    check.mask_tokens(mask_library)
    assert torch.equal(torch.rand(3), expected)


def test_mask_tokens_verdict_is_deterministic():
    assert repr(check.mask_tokens(mask_loop)) == repr(check.mask_tokens(mask_loop))


# ---- nsp_pairs --------------------------------------------------------------------------------
def pairs_loop(documents, seed=0):
    rng = random.Random(seed)
    pairs = []
    for d, doc in enumerate(documents):
        for i in range(len(doc) - 1):
            if rng.random() < 0.5:
                pairs.append((doc[i], doc[i + 1], 0))
            else:
                other = rng.choice([j for j in range(len(documents)) if j != d])
                pairs.append((doc[i], rng.choice(documents[other]), 1))
    return pairs


def pairs_sampled(documents, seed=0):
    """A drawn at random, a fixed number of pairs, numpy generator."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(300):
        d = int(rng.integers(len(documents)))
        i = int(rng.integers(len(documents[d]) - 1))
        if rng.random() < 0.5:
            pairs.append((documents[d][i], documents[d][i + 1], 0))
        else:
            o = int(rng.choice([j for j in range(len(documents)) if j != d]))
            pairs.append((documents[d][i], documents[o][int(rng.integers(len(documents[o])))], 1))
    return pairs


RIGHT_PAIRS = [pairs_loop, pairs_sampled, objectives.make_nsp_pairs]


def pairs_backwards(documents, seed=0):
    return [(a, b, 1 - label) for a, b, label in pairs_loop(documents, seed)]


def pairs_same_document(documents, seed=0):
    rng = random.Random(seed)
    pairs = []
    for doc in documents:
        for i in range(len(doc) - 1):
            if rng.random() < 0.5:
                pairs.append((doc[i], doc[i + 1], 0))
            else:
                pairs.append((doc[i], rng.choice(doc), 1))
    return pairs


def pairs_previous(documents, seed=0):
    return [(b, a, label) if label == 0 else (a, b, label) for a, b, label in pairs_loop(documents, seed)]


def pairs_all_next(documents, seed=0):
    return [(doc[i], doc[i + 1], 0) for doc in documents for i in range(len(doc) - 1)]


def pairs_mostly_random(documents, seed=0):
    rng = random.Random(seed)
    out = []
    for a, b, label in pairs_loop(documents, seed):
        if label == 0 and rng.random() < 0.6:
            continue
        out.append((a, b, label))
    return out


def pairs_global_random(documents, seed=0):
    pairs = []
    for d, doc in enumerate(documents):
        for i in range(len(doc) - 1):
            if random.random() < 0.5:
                pairs.append((doc[i], doc[i + 1], 0))
            else:
                other = random.choice([j for j in range(len(documents)) if j != d])
                pairs.append((doc[i], random.choice(documents[other]), 1))
    return pairs


def pairs_skip_one(documents, seed=0):
    out = []
    for a, b, label in pairs_loop(documents, seed):
        if label == 0:
            doc = next(doc for doc in documents if a in doc)
            i = doc.index(a)
            if i + 2 < len(doc):
                b = doc[i + 2]
        out.append((a, b, label))
    return out


WRONG_PAIRS = [
    (pairs_backwards, "backwards"),
    (pairs_same_document, "DIFFERENT"),
    (pairs_previous, "AFTER"),
    (pairs_all_next, "every pair has label 0"),
    (pairs_mostly_random, "about 50%"),
    (pairs_global_random, "random.Random(seed)"),
    (pairs_skip_one, "right after A"),
    (lambda documents, seed=0: pairs_loop(documents, seed)[:10], "only 10 pairs"),
    (lambda documents, seed=0: [(a, b, bool(label)) for a, b, label in pairs_loop(documents, seed)], "ints 0"),
    (lambda documents, seed=0: [(a.upper(), b, label) for a, b, label in pairs_loop(documents, seed)], "sentence of the documents"),
]


@pytest.mark.parametrize("fn", RIGHT_PAIRS)
def test_nsp_pairs_accepts_right_answers(fn):
    verdict = check.nsp_pairs(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_PAIRS)
def test_nsp_pairs_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.nsp_pairs(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


def test_nsp_pairs_rejects_a_function_that_edits_the_documents():
    def destructive(documents, seed=0):
        pairs = pairs_loop(documents, seed)
        documents[0].pop()
        return pairs

    verdict = check.nsp_pairs(destructive)
    assert verdict.status == "wrong" and "changed the documents" in verdict.message


# ---- segment_ids ------------------------------------------------------------------------------
def seg_cumsum(ids, sep, pad):
    is_sep = (ids == sep).long()
    return ((is_sep.cumsum(-1) - is_sep) >= 1).long() * (ids != pad).long()


def seg_loop(ids, sep, pad):
    out = torch.zeros_like(ids)
    for r in range(ids.shape[0]):
        segment = 0
        for c in range(ids.shape[1]):
            token = int(ids[r, c])
            out[r, c] = 0 if token == pad else segment
            if token == sep:
                segment = 1
    return out


def seg_first_sep_index(ids, sep, pad):
    first = (ids == sep).int().argmax(-1, keepdim=True)
    positions = torch.arange(ids.shape[1]).expand_as(ids)
    return ((positions > first) & (ids != pad)).to(torch.int64)


RIGHT_SEG = [seg_cumsum, seg_loop, seg_first_sep_index]
WRONG_SEG = [
    (lambda ids, sep, pad: torch.zeros_like(ids), "every id is 0"),
    (lambda ids, sep, pad: ((ids == sep).long().cumsum(-1) >= 1).long() * (ids != pad).long(), "first [SEP]"),
    (lambda ids, sep, pad: ((ids == sep).long().cumsum(-1) - (ids == sep).long() >= 1).long(), "padding"),
    (lambda ids, sep, pad: seg_cumsum(ids, sep, pad).float(), "integer ids"),
    (lambda ids, sep, pad: seg_cumsum(ids, sep, pad)[:, 1:], "shape"),
    (lambda ids, sep, pad: seg_cumsum(ids, sep, pad).masked_fill(ids == sep, 0), "second [SEP]"),
]


@pytest.mark.parametrize("fn", RIGHT_SEG)
def test_segment_ids_accepts_right_answers(fn):
    verdict = check.segment_ids(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_SEG)
def test_segment_ids_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.segment_ids(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- masked_lm_loss -----------------------------------------------------------------------------
def loss_ce(logits, labels):
    if not (labels != -100).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)


def loss_manual(logits, labels):
    selected = labels != -100
    if not selected.any():
        return torch.tensor(0.0)
    logp = logits[selected].log_softmax(-1)
    return -logp.gather(-1, labels[selected].unsqueeze(-1)).mean()


def loss_weighted(logits, labels):
    selected = (labels != -100).float()
    per = F.cross_entropy(logits.transpose(1, 2), labels.clamp(min=0), reduction="none")
    return (per * selected).sum() / selected.sum().clamp(min=1)


RIGHT_LOSS = [loss_ce, loss_manual, loss_weighted, objectives.mlm_loss]


def loss_all_positions(logits, labels):
    selected = (labels != -100).float()
    per = F.cross_entropy(logits.transpose(1, 2), labels.clamp(min=0), reduction="none")
    return (per * selected).mean()


WRONG_LOSS = [
    (loss_all_positions, "averaged over all"),
    (lambda lo, la: F.cross_entropy(lo.flatten(0, 1), la.flatten(), reduction="sum"), "sum"),
    (lambda lo, la: F.cross_entropy(lo.flatten(0, 1), la.clamp(min=0).flatten()), "-100 were counted"),
    (lambda lo, la: F.cross_entropy(lo.flatten(0, 1), la.flatten()), "should be 0"),
    (lambda lo, la: torch.tensor(loss_ce(lo, la).item()), "no gradient"),
    (lambda lo, la: F.cross_entropy(lo.transpose(1, 2), la, reduction="none"), "one number"),
    (lambda lo, la: loss_ce(lo, la) * 2, "expected the mean"),
]


@pytest.mark.parametrize("fn", RIGHT_LOSS)
def test_masked_lm_loss_accepts_right_answers(fn):
    verdict = check.masked_lm_loss(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_LOSS)
def test_masked_lm_loss_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.masked_lm_loss(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- shared -------------------------------------------------------------------------------------
@pytest.mark.parametrize("checker", [check.mask_tokens, check.nsp_pairs, check.segment_ids, check.masked_lm_loss])
def test_a_stub_is_not_done_yet(checker):
    verdict = checker(stub)
    assert verdict.status == "not done", verdict
