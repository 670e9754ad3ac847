"""Checkers for notebook 09 (BERT): 80/10/10 masking, next-sentence pairs, segment ids, the masked-only loss.

Masking and pair building are random, so their checkers look at proportions over many tokens and
pairs (tens of thousands), with bounds several standard deviations wide: a right answer passes
whatever random numbers it draws, a wrong proportion fails. The random generators are seeded inside
the checker and restored afterwards, so a verdict is the same on every run.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.checks.core import Mistake, Verdict, expect_tensor, run_checker

__all__ = ["mask_tokens", "nsp_pairs", "segment_ids", "masked_lm_loss"]

IGNORE = -100


@contextlib.contextmanager
def _seeded(seed: int = 0):
    """Seed torch, numpy and random for the learner's code, and put their states back afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)



# ---- 1. masking ---------------------------------------------------------------------------------
PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIAL = (PAD, UNK, CLS, SEP, MASK)


def _masking_batch(vocab_size: int = 1000, rows: int = 400, seq: int = 128) -> torch.Tensor:
    """[CLS] A [SEP] B [SEP] [PAD]... rows with a few [UNK], every special token present."""
    gen = torch.Generator().manual_seed(1234)
    ids = torch.randint(5, vocab_size, (rows, seq), generator=gen)
    ids[torch.rand(rows, seq, generator=gen) < 0.01] = UNK
    lengths = torch.randint(seq // 2, seq + 1, (rows,), generator=gen)
    for r, length in enumerate(lengths.tolist()):
        middle = int(torch.randint(2, length - 2, (1,), generator=gen))
        ids[r, 0] = CLS
        ids[r, middle] = SEP
        ids[r, length - 1] = SEP
        ids[r, length:] = PAD
    return ids


def mask_tokens(fn: Callable) -> Verdict:
    """Check ``fn(input_ids, mask_token_id, vocab_size, special_ids) -> (masked_ids, labels)``.

    The right answer selects 15% of the non-special tokens; labels hold the original id there and
    -100 elsewhere; of the selected, 80% become [MASK], 10% a random ordinary token, 10% stay.
    """

    def check() -> str:
        vocab = 1000
        ids = _masking_batch(vocab)
        original = ids.clone()
        with _seeded(0):
            out = fn(ids, MASK, vocab, list(SPECIAL))
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise Mistake("return a pair (masked_ids, labels).")
        masked, labels = (expect_tensor(t, name) for t, name in zip(out, ("masked_ids", "labels")))
        if not torch.equal(ids, original):
            raise Mistake(
                "your function changed input_ids in place: work on a copy (input_ids.clone()), the "
                "caller still needs the original ids."
            )
        for t, name in ((masked, "masked_ids"), (labels, "labels")):
            if t.shape != ids.shape:
                raise Mistake(f"{name} should have the shape of input_ids {tuple(ids.shape)}, got {tuple(t.shape)}.")
        selected = labels != IGNORE
        special = torch.isin(original, torch.tensor(SPECIAL))
        if bool(selected.all()) or bool((labels == original).all()):
            raise Mistake(
                "every position got a label: only the selected positions (about 15%) carry the original id; "
                "all others get -100 so the loss ignores them."
            )
        if float(selected.float().mean()) > 0.5:
            raise Mistake(
                f"{float(selected.float().mean()):.0%} of the positions carry a label: only the selected "
                "~15% get their original id, every other position gets -100 (are the two cases of "
                "torch.where swapped?)."
            )
        if not bool(selected.any()):
            raise Mistake("no position was selected: labels are all -100. Select each ordinary token with probability 15%.")
        if bool((selected & special).any()):
            kinds = sorted({int(t) for t in original[selected & special].tolist()})
            raise Mistake(
                f"special tokens were selected (ids {kinds}: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3): "
                "never select [CLS], [SEP], [PAD] or [UNK]; exclude every id in special_ids."
            )
        if not torch.equal(labels[selected], original[selected]):
            if torch.equal(labels[selected], masked[selected]):
                raise Mistake(
                    "labels hold the corrupted tokens ([MASK] or the random ones): they must hold "
                    "the ORIGINAL ids, which the model has to recover."
                )
            raise Mistake("at a selected position the label must be the original id from input_ids.")
        changed_unlabelled = (masked != original) & ~selected
        if bool(changed_unlabelled.any()) and bool((masked[selected] == MASK).all()):
            raise Mistake(
                "only the [MASK] positions carry a label, yet other tokens changed: label ALL selected "
                "positions (select 15% first; then replace 80% of them by [MASK], 10% by a random token "
                "and leave 10% unchanged; all of them keep their original id as label)."
            )
        if bool(changed_unlabelled.any()):
            raise Mistake(
                "tokens that were not selected changed: only selected positions (label != -100) may be "
                "replaced by [MASK] or a random token."
            )
        rate = float(selected.sum()) / float((~special).sum())
        n = int(selected.sum())
        shown = masked[selected]
        is_mask = shown == MASK
        is_same = shown == original[selected]
        is_random = ~is_mask & ~is_same
        fractions = [float(x.float().mean()) for x in (is_mask, is_random, is_same)]
        if not 0.135 <= rate <= 0.165:
            raise Mistake(
                f"{rate:.1%} of the ordinary tokens were selected; BERT selects 15% (each non-special "
                "token with probability mlm_probability = 0.15)."
            )
        if fractions[2] < 0.03 and abs(fractions[1] - 0.2) < 0.04:
            raise Mistake(
                f"of the selected tokens {fractions[0]:.0%} became [MASK] and {fractions[1]:.0%} random, none "
                "stayed: that is 80/20. Leave 10% unchanged (80/10/10), so the model cannot assume "
                "that a visible token is always right."
            )
        if fractions[0] > 0.97:
            raise Mistake(
                "every selected token became [MASK]: replace 80% by [MASK], 10% by a random token, "
                "and leave 10% unchanged."
            )
        randoms = shown[is_random]
        if bool(torch.isin(randoms, torch.tensor(SPECIAL)).any()):
            raise Mistake(
                "some random replacements are special tokens ([PAD], [CLS], [SEP]...): draw random "
                "tokens from the ordinary ids only."
            )
        bounds = [(0.77, 0.83), (0.075, 0.125), (0.075, 0.125)]
        if any(not lo <= f <= hi for f, (lo, hi) in zip(fractions, bounds)):
            raise Mistake(
                f"of the {n} selected tokens {fractions[0]:.1%} became [MASK], {fractions[1]:.1%} a random "
                f"token and {fractions[2]:.1%} stayed unchanged; expected about 80% / 10% / 10%. "
                "Draw one uniform number per selected token: < 0.8 -> [MASK], 0.8-0.9 -> random, else keep."
            )
        if randoms.numel() and int(randoms.unique().numel()) < 100:
            raise Mistake(
                f"the random replacements use only {int(randoms.unique().numel())} different ids: draw "
                "them uniformly from the whole vocabulary of ordinary tokens."
            )
        return (
            f"{rate:.1%} of ordinary tokens selected, {fractions[0]:.0%} / {fractions[1]:.0%} / "
            f"{fractions[2]:.0%} masked / random / unchanged, no special token touched."
        )

    return run_checker("mask_tokens", check)


# ---- 2. next-sentence pairs -------------------------------------------------------------------
def _pair_documents() -> list[list[str]]:
    sizes = [40, 25, 60, 33, 48, 12, 55, 30, 41, 27, 36, 50]
    return [[f"Document {d} sentence {s}." for s in range(n)] for d, n in enumerate(sizes)]


def nsp_pairs(fn: Callable) -> Verdict:
    """Check ``fn(documents, seed=0) -> [(sentence_a, sentence_b, label), ...]``.

    Label 0: B is the sentence right after A in A's document; label 1: B is a sentence of another
    document; about half of each; the same pairs for the same seed.
    """

    def check() -> str:
        documents = _pair_documents()
        frozen = [list(d) for d in documents]
        where = {s: (d, i) for d, doc in enumerate(documents) for i, s in enumerate(doc)}
        with _seeded(0):
            pairs = fn(documents, seed=0)
        if documents != frozen:
            raise Mistake("your function changed the documents: build the pairs without modifying them.")
        if not isinstance(pairs, (list, tuple)) or not pairs:
            raise Mistake(f"return a non-empty list of (sentence_a, sentence_b, label), got {type(pairs).__name__}.")
        for pair in pairs[:5] + pairs[-5:]:
            if not isinstance(pair, (tuple, list)) or len(pair) != 3:
                raise Mistake(f"each pair should be a tuple (sentence_a, sentence_b, label), got {pair!r}.")
        adjacent = sum(len(d) - 1 for d in documents)
        if len(pairs) < adjacent // 2:
            raise Mistake(
                f"only {len(pairs)} pairs from {adjacent} consecutive sentence pairs: make one pair per "
                "sentence that has a next sentence."
            )
        counts = {(label, kind): 0 for label in (0, 1) for kind in ("next", "previous", "same", "other")}
        for a, b, label in pairs:
            if isinstance(label, torch.Tensor):
                label = int(label)
            if label not in (0, 1) or isinstance(label, bool):
                raise Mistake(f"labels must be the ints 0 (B follows A) or 1 (B is random), got {label!r}.")
            if a not in where or b not in where:
                raise Mistake(f"every A and B must be a sentence of the documents, got {(a if a not in where else b)!r}.")
            (da, ia), (db, ib) = where[a], where[b]
            kind = "other" if da != db else "next" if ib == ia + 1 else "previous" if ib == ia - 1 else "same"
            counts[(label, kind)] += 1
        zeros = sum(v for (label, _), v in counts.items() if label == 0)
        ones = len(pairs) - zeros
        if counts[(1, "next")] > 0.8 * max(ones, 1) and counts[(0, "other")] > 0.8 * max(zeros, 1):
            raise Mistake(
                "the labels are backwards: label 0 means IsNext (B is the real next sentence) and 1 "
                "means NotNext (B is random), as in Hugging Face's next_sentence_label."
            )
        if counts[(0, "previous")]:
            raise Mistake("with label 0, B is the sentence AFTER A (index i + 1), not the one before.")
        if counts[(0, "same")] or counts[(0, "other")]:
            raise Mistake("with label 0, B must be the sentence right after A in the same document.")
        if counts[(1, "same")] + counts[(1, "next")] + counts[(1, "previous")]:
            raise Mistake(
                "some random B come from A's own document: draw the random sentence from a DIFFERENT "
                "document (from the same one it could even be the true next sentence)."
            )
        share = ones / len(pairs)
        if share in (0.0, 1.0):
            raise Mistake(f"every pair has label {int(share)}: about half should be random (1) and half real (0).")
        sd = math.sqrt(0.25 / len(pairs))
        if abs(share - 0.5) > max(0.08, 5 * sd):
            raise Mistake(f"{share:.0%} of the pairs are random (label 1); aim for about 50%.")
        with _seeded(1):  # another global random state: the pairs must depend on the seed only
            again = fn(documents, seed=0)
        if [tuple(p) for p in again] != [tuple(p) for p in pairs]:
            raise Mistake(
                "two calls with seed=0 gave different pairs: draw from random.Random(seed), not from "
                "the global random module, so the pairs are reproducible."
            )
        return f"{len(pairs)} pairs, {share:.0%} random from other documents, the rest true next sentences."

    return run_checker("nsp_pairs", check)


# ---- 3. segment ids ---------------------------------------------------------------------------
def segment_ids(fn: Callable) -> Verdict:
    """Check ``fn(input_ids, sep_token_id, pad_token_id) -> token_type_ids`` for ``[CLS] A [SEP] B [SEP] [PAD]...``.

    0 for [CLS], A and the first [SEP]; 1 for B and the second [SEP]; 0 for padding.
    """

    def check() -> str:
        rows = [
            ([CLS, 10, 11, SEP, 12, 13, 14, SEP], 3),
            ([CLS, 20, SEP, 21, SEP, PAD, PAD, PAD], 2),
            ([CLS, 30, 31, 32, 33, SEP, 34, SEP], 5),
        ]
        ids = torch.tensor([r for r, _ in rows])
        expected = torch.zeros_like(ids)
        for r, (row, first) in enumerate(rows):
            second = row.index(SEP, first + 1)
            expected[r, first + 1: second + 1] = 1
        out = expect_tensor(fn(ids.clone(), SEP, PAD), "token_type_ids")
        if out.shape != ids.shape:
            raise Mistake(f"token_type_ids should have the shape of input_ids {tuple(ids.shape)}, got {tuple(out.shape)}.")
        if out.is_floating_point() or out.dtype == torch.bool:
            raise Mistake(f"return integer ids (torch.long), got dtype {out.dtype}: they index an embedding table.")
        out = out.long()
        if torch.equal(out, torch.zeros_like(out)):
            raise Mistake("every id is 0: the tokens of sentence B (after the first [SEP]) get segment 1.")
        first_sep = torch.tensor([first for _, first in rows])
        if bool((out[torch.arange(len(rows)), first_sep] == 1).all()):
            raise Mistake("the first [SEP] closes sentence A: it belongs to segment 0, not 1.")
        if bool((out[ids == PAD] != 0).any()):
            raise Mistake("padding got segment 1: give [PAD] positions 0 (as Hugging Face tokenizers do).")
        if not torch.equal(out, expected):
            raise Mistake(
                "0 for [CLS], sentence A and the first [SEP]; 1 for sentence B and the second [SEP]; "
                "0 for padding. Hint: a running count of the [SEP] seen BEFORE each position "
                "(cumsum) tells which sentence it is in."
            )
        single = torch.tensor([[CLS, 40, 41, SEP, PAD]])
        if not torch.equal(fn(single.clone(), SEP, PAD).long(), torch.zeros_like(single)):
            raise Mistake("a single sentence [CLS] A [SEP] is all segment 0.")
        return "0 for [CLS] A [SEP], 1 for B [SEP], 0 for padding, for any lengths."

    return run_checker("segment_ids", check)


# ---- 4. the masked-only loss --------------------------------------------------------------------
def masked_lm_loss(fn: Callable) -> Verdict:
    """Check ``fn(logits (batch, seq, vocab), labels (batch, seq)) -> mean loss over labels != -100``.

    With no selected position the answer is 0 (``F.cross_entropy`` would give nan).
    """

    def check() -> str:
        gen = torch.Generator().manual_seed(7)
        logits = torch.randn(3, 10, 13, generator=gen) * 2
        targets = torch.randint(0, 13, (3, 10), generator=gen)
        selected = torch.rand(3, 10, generator=gen) < 0.3
        selected[0, 0] = True
        labels = torch.where(selected, targets, torch.full_like(targets, IGNORE))
        leaf = logits.clone().requires_grad_(True)
        loss = expect_tensor(fn(leaf, labels.clone()), "the loss")
        if loss.numel() != 1:
            raise Mistake(f"return one number (a 0-dim tensor), got shape {tuple(loss.shape)}: take the mean.")
        per_position = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(3, 10)
        right = per_position[selected].mean()
        n_sel, n_all = int(selected.sum()), selected.numel()
        value = float(loss.detach())
        close = lambda x: math.isclose(value, float(x), rel_tol=1e-4, abs_tol=1e-5)  # noqa: E731
        if close(per_position[selected].sum() / n_all):
            raise Mistake(
                f"the loss is averaged over all {n_all} positions; divide by the {n_sel} selected positions "
                "only (F.cross_entropy with ignore_index=-100 does this)."
            )
        if close(per_position[selected].sum()):
            raise Mistake("that is the sum over selected positions: take the mean.")
        clamped = F.cross_entropy(logits.flatten(0, 1), targets.masked_fill(~selected, 0).flatten())
        if close(clamped) or close(per_position.mean()):
            raise Mistake("positions with label -100 were counted: the loss covers selected positions only.")
        if not close(right):
            raise Mistake(
                f"expected the mean cross-entropy over the selected positions, {float(right):.4f}, got {value:.4f}."
            )
        if not loss.requires_grad:
            raise Mistake("the loss has no gradient: keep it a torch computation (no .item(), no numpy).")
        loss.backward()
        if leaf.grad is None or bool(leaf.grad[~selected].abs().max() > 0):
            raise Mistake("the gradient reaches unselected positions: only label != -100 may count.")
        empty = torch.full_like(labels, IGNORE)
        nothing = fn(logits.clone(), empty)
        nothing = float(nothing) if isinstance(nothing, torch.Tensor) else nothing
        if not isinstance(nothing, float) or math.isnan(nothing) or nothing != 0.0:
            raise Mistake(
                f"with no selected position the loss should be 0, got {nothing}. A batch can have no "
                "masked token; F.cross_entropy then returns nan (0 / 0), which would ruin training."
            )
        return f"mean over the {n_sel} selected positions, gradient only there, 0 when nothing is selected."

    return run_checker("masked_lm_loss", check)
