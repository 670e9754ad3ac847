"""course_lib.tokenizers: round trips on any text, BPE on a worked example, equality with Hugging
Face's trainer, the cached course tokenizers, and errors that say what was expected."""

import json
import random
import re
from collections import Counter

import pytest
import torch

from course_lib import tokenizers as tok

# Characters from many scripts, plus whitespace of several kinds, punctuation and emoji.
ALPHABET = (
    "abcdefghijklmnopqrstuvwxyz ABCXYZ 0123456789 ,.;:!?'\"()-_ \n\t  "
    "éèçñüößæø ΑΒΓαβγ ДЖЯжя 日本語中文 한국어 العربية हिन्दी 😀🎉👍🏽 ½²€→∑"
)
CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away!",
    "Tokenizers turn text into numbers, and numbers back into text.",
    "low lower lowest newer newest wider widest slower slowest",
    "Byte-level BPE handles naïve café, Ελληνικά, 中文 and emoji 😀 without unknown tokens.",
] * 5


def random_texts(n=60, seed=0):
    rng = random.Random(seed)
    texts = ["", " ", "\n\n", "a", "😀", "  leading and trailing  ", "x\u0301y"]  # combining mark
    for _ in range(n):
        texts.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 60))))
    return texts


@pytest.fixture(scope="module")
def bpe():
    return tok.BPETokenizer.train(CORPUS, 400, special_tokens=[tok.END_OF_TEXT])


# ---- splitting ------------------------------------------------------------------------------


def test_split_words_keeps_words_and_punctuation_and_drops_spaces():
    assert tok.split_words("Don't panic, it's well-known!") == [
        "Don't", "panic", ",", "it's", "well-known", "!",
    ]  # fmt: skip
    assert tok.split_words("  ") == []


@pytest.mark.parametrize("text", random_texts())
def test_pretokenize_pieces_concatenate_back_to_the_text(text):
    assert "".join(tok.pretokenize(text)) == text


def test_pretokenize_attaches_a_space_to_the_next_word_as_gpt2():
    assert tok.pretokenize("Hello world, it's 2024!") == [
        "Hello", " world", ",", " it", "'s", " 2024", "!",
    ]  # fmt: skip
    assert tok.pretokenize("a  b") == ["a", " ", " b"]


# ---- the steps of BPE on the worked example -------------------------------------------------

TOY = {tuple("low"): 5, tuple("lower"): 2, tuple("newest"): 6, tuple("widest"): 3}


def test_count_pairs_on_the_worked_example():
    counts = tok.count_pairs(TOY)
    # ("e","s") and ("s","t") sit in "newest" (6) and "widest" (3); ("w","e") in "lower" and "newest".
    assert counts[("e", "s")] == 9 and counts[("s", "t")] == 9
    assert counts[("l", "o")] == 7 and counts[("w", "e")] == 8 and counts[("e", "r")] == 2
    assert sum(counts.values()) == sum((len(w) - 1) * f for w, f in TOY.items())
    assert tok.count_pairs({tuple("aaa"): 2})[("a", "a")] == 4  # every position counts
    assert ("w", "n") not in tok.count_pairs({tuple("low"): 1, tuple("new"): 1})  # not across words


def test_merge_pair_left_to_right_without_overlap():
    assert tok.merge_pair(tuple("aaa"), ("a", "a"), "aa") == ("aa", "a")
    assert tok.merge_pair(tuple("aaaa"), ("a", "a"), "aa") == ("aa", "aa")
    assert tok.merge_pair(tuple("abcab"), ("a", "b"), "ab") == ("ab", "c", "ab")
    assert tok.merge_pair(("x", "ab", "c"), ("b", "c"), "bc") == ("x", "ab", "c")
    assert tok.merge_pair((), ("a", "b"), "ab") == ()


def test_learn_merges_on_the_worked_example():
    # Worked by hand: "es" and "st" tie at 9, ties go to the smallest ids (alphabet order, then
    # the order tokens were made), so ("e","s") first; then "est" (9); "lo" and "ow" tie at 7 ->
    # "lo", then "low"; then "ew", "new", "newest" at 6 (("e","w") has the smallest ids).
    assert tok.learn_merges(TOY, 7) == [
        ("e", "s"), ("es", "t"), ("l", "o"), ("lo", "w"), ("e", "w"), ("n", "ew"), ("new", "est"),
    ]  # fmt: skip
    assert tok.bpe_encode_word("lowest", tok.learn_merges(TOY, 7)) == ("low", "est")
    assert tok.learn_merges(TOY, 0) == []
    assert len(tok.learn_merges(TOY, 1000, min_frequency=1)) < 1000  # stops when words are whole
    assert tok.learn_merges(TOY, 100, min_frequency=7) == [
        ("e", "s"),
        ("es", "t"),
        ("l", "o"),
        ("lo", "w"),
    ]


def naive_learn_merges(word_freqs, num_merges, min_frequency=2):
    """The textbook loop: recount every pair, merge the best, repeat (ties: smallest ids)."""
    ids = {s: i for i, s in enumerate(sorted({s for w in word_freqs for s in w}))}
    words = dict(word_freqs)
    merges = []
    for _ in range(num_merges):
        pairs = tok.count_pairs(words)
        pairs = {p: c for p, c in pairs.items() if c > 0}
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], ids[p[0]], ids[p[1]]))
        if pairs[best] < min_frequency:
            break
        merges.append(best)
        ids.setdefault(best[0] + best[1], len(ids))
        merged = Counter()
        for word, freq in words.items():
            merged[tok.merge_pair(word, best, best[0] + best[1])] += freq
        words = merged
    return merges


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("seed", range(8))
def test_learn_merges_equals_the_textbook_loop(seed, fast):
    rng = random.Random(seed)
    letters = "ab" if seed < 3 else "abcde"  # few letters: many ties and repeated pairs ("aaa")
    words = Counter()
    for _ in range(60):
        words[tuple(rng.choice(letters) for _ in range(rng.randint(1, 9)))] += rng.randint(1, 4)
    assert tok.learn_merges(words, 40, fast=fast) == naive_learn_merges(words, 40)
    rare_too = tok.learn_merges(words, 40, min_frequency=1, fast=fast)
    assert rare_too == naive_learn_merges(words, 40, 1)


def _module_docstring_words(as_bytes):
    """Real English text (this library's docstrings), pre-tokenized, as str or bytes symbols."""
    text = " ".join(f.__doc__ or "" for f in vars(tok).values() if callable(f))
    pieces = Counter(tok.pretokenize(text))
    if as_bytes:
        return {tuple(bytes([b]) for b in p.encode("utf-8")): c for p, c in pieces.items()}
    return {tuple(p): c for p, c in pieces.items()}


SLOW_FAST_CORPORA = {
    "toy": (TOY, {}),
    "ties": ({tuple("abcd"): 2, tuple("dcba"): 2, tuple("bdca"): 2}, {}),
    "repeats": ({tuple("aaaa"): 3, tuple("aaa"): 2, tuple("aa"): 1, tuple("aaaaaaa"): 1}, {}),
    "empty": ({}, {}),
    "empty word": ({(): 4}, {}),
    "one-char words": ({("a",): 3, ("b",): 1}, {}),
    "zero counts": ({tuple("abab"): 0, tuple("ab"): 2, tuple("cd"): 2}, {}),
    "two spellings": ({("a", "b", "c"): 2, ("ab", "c"): 3, ("a", "bc"): 1}, {}),
    "given alphabet": ({tuple("abcab"): 3, tuple("cab"): 2}, {"alphabet": list("cba")}),
    "bytes": ({tuple(bytes([b]) for b in "héllo wörld".encode()): 3}, {}),
}


@pytest.mark.parametrize("min_frequency", [1, 2, 5])
@pytest.mark.parametrize("name", SLOW_FAST_CORPORA)
def test_fast_learn_merges_equals_the_teaching_loop(name, min_frequency):
    words, kwargs = SLOW_FAST_CORPORA[name]
    for num_merges in (0, 1, 3, 50):
        slow = tok.learn_merges(words, num_merges, min_frequency=min_frequency, **kwargs)
        fast = tok.learn_merges(words, num_merges, min_frequency=min_frequency, fast=True, **kwargs)
        assert slow == fast, (name, num_merges)


@pytest.mark.parametrize("as_bytes", [False, True])
def test_fast_learn_merges_equals_the_teaching_loop_on_real_text(as_bytes):
    words = _module_docstring_words(as_bytes)
    slow = tok.learn_merges(words, 300)
    assert len(slow) == 300
    assert tok.learn_merges(words, 300, fast=True) == slow


@pytest.mark.parametrize("seed", range(5))
def test_bpe_encode_word_equals_applying_merges_in_order(seed):
    rng = random.Random(seed)
    merges = tok.learn_merges(
        Counter(tuple(rng.choice("abc") for _ in range(rng.randint(2, 8))) for _ in range(80)), 15
    )
    for _ in range(30):
        word = tuple(rng.choice("abc") for _ in range(rng.randint(0, 12)))
        sequential = word
        for left, right in merges:
            sequential = tok.merge_pair(sequential, (left, right), left + right)
        assert tok.bpe_encode_word(word, merges) == sequential


# ---- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", random_texts(seed=1))
def test_bpe_round_trips_any_text(bpe, text):
    ids = bpe.encode(text)
    assert all(isinstance(i, int) and 0 <= i < bpe.vocab_size for i in ids)
    assert bpe.decode(ids) == text
    assert "".join(bpe.tokenize(text)) == text or any("\\x" in t for t in bpe.tokenize(text))


def test_bpe_without_pretokenization_round_trips_and_merges_across_words():
    texts = ["of the cat. of the dog. of the end."] * 4
    plain = tok.BPETokenizer.train(texts, 270, pretokenize=False)
    for text in random_texts(10, seed=2) + texts:
        assert plain.decode(plain.encode(text)) == text
    assert any(b" " in t.strip(b" ") for pair in plain.merges for t in [pair[0] + pair[1]])


def test_bpe_merges_never_cross_a_word(bpe):
    for left, right in bpe.merges:
        token = (left + right).decode("utf-8", errors="ignore")
        assert not re.search(r"\S\s", token), token  # whitespace never follows a word's letters


def test_bpe_special_tokens_are_single_ids_and_never_learned(bpe):
    eot = bpe.special_tokens[tok.END_OF_TEXT]
    assert eot == 0  # special tokens first, as in Hugging Face's byte-level BPE
    ids = bpe.encode(f"one text{tok.END_OF_TEXT}another")
    assert ids.count(eot) == 1 and bpe.decode(ids) == f"one text{tok.END_OF_TEXT}another"
    assert bpe.id_to_token(eot) == tok.END_OF_TEXT
    trained = tok.BPETokenizer.train(
        [f"a b{tok.END_OF_TEXT}"] * 50, 258, special_tokens=[tok.END_OF_TEXT]
    )
    assert trained.merges == [(b" ", b"b")]
    assert not any(b"<|" in left + right for left, right in trained.merges)


def test_bpe_training_is_deterministic_and_reaches_the_vocab_size(bpe):
    again = tok.BPETokenizer.train(CORPUS, 400, special_tokens=[tok.END_OF_TEXT])
    assert again.merges == bpe.merges and bpe.vocab_size == 400 == len(bpe)
    assert len(bpe.merge_counts) == len(bpe.merges)
    # A new pair holds a token just made, so it is never more frequent than the merge that made it.
    assert bpe.merge_counts == sorted(bpe.merge_counts, reverse=True)
    assert min(bpe.merge_counts) >= 2  # the default min_frequency


def test_bpe_vocabularies_are_nested_so_truncate_equals_retraining(bpe):
    small = tok.BPETokenizer.train(CORPUS, 300, special_tokens=[tok.END_OF_TEXT])
    cut = bpe.truncate(300)
    assert cut.merges == small.merges and cut.vocab_size == 300
    text = CORPUS[0]
    assert cut.encode(text) == small.encode(text)
    assert len(bpe.encode(text)) <= len(cut.encode(text)) < len(text.encode("utf-8"))


def test_bpe_ids_accept_tensors_and_token_bytes_add_up(bpe):
    text = "naïve 😀 text"
    ids = bpe.encode(text)
    assert bpe.decode(torch.tensor(ids)) == text
    assert b"".join(bpe.token_bytes(i) for i in ids) == text.encode("utf-8")


def test_bpe_warns_when_the_corpus_is_too_small_for_the_vocabulary():
    with pytest.warns(UserWarning, match="stopped at vocab_size"):
        small = tok.BPETokenizer.train("ab ab ab", 1000)
    assert small.vocab_size < 1000


@pytest.mark.parametrize("text", random_texts(seed=3))
def test_char_tokenizer_round_trips_text_it_was_trained_on(text):
    chars = tok.CharTokenizer.train([ALPHABET, text or "x"])
    assert chars.decode(chars.encode(text)) == text
    assert len(chars.encode(text)) == len(text)


def test_char_tokenizer_vocabulary_and_unknowns():
    chars = tok.CharTokenizer.train(["banana", "cab"])
    assert chars.vocab == ["<unk>", "a", "b", "c", "n"] and chars.vocab_size == 5
    assert chars.encode("cab!") == [3, 1, 2, 0]
    assert chars.tokenize("nab?") == ["n", "a", "b", "<unk>"] and chars.unknown("nab?") == ["?"]
    assert chars.encode("") == [] and chars.decode([]) == ""


@pytest.mark.parametrize("text", random_texts(seed=4))
def test_word_tokenizer_round_trips_its_tokens(text):
    words = tok.WordTokenizer.train([ALPHABET, text or "x"])
    ids = words.encode(text)
    assert words.decode(ids) == " ".join(tok.split_words(text))
    assert words.encode(words.decode(ids)) == ids


def test_word_tokenizer_unknown_words_max_vocab_and_min_count():
    words = tok.WordTokenizer.train(["the cat and the dog and the bird"])
    assert words.vocab[:3] == ["<unk>", "the", "and"]  # most frequent first
    assert words.tokenize("the zebra") == ["the", "<unk>"] and words.unknown("the zebra") == [
        "zebra"
    ]
    capped = tok.WordTokenizer.train(["the cat and the dog and the bird"], max_vocab=3)
    assert capped.vocab == ["<unk>", "the", "and"]
    assert capped.encode("the cat") == [1, 0]
    frequent = tok.WordTokenizer.train(["the cat and the dog and the bird"], min_count=2)
    assert frequent.vocab == ["<unk>", "the", "and"]
    assert words.decode(words.encode("the cat, and the dog!")) == "the cat <unk> and the dog <unk>"


# ---- errors that teach ----------------------------------------------------------------------

TRAINERS = [
    lambda texts: tok.CharTokenizer.train(texts),
    lambda texts: tok.WordTokenizer.train(texts),
    lambda texts: tok.BPETokenizer.train(texts, 300),
    lambda texts: tok.train_hf_bpe(texts, 300),
    lambda texts: tok.train_hf_wordpiece(texts, 300),
]


@pytest.mark.parametrize("train", TRAINERS)
@pytest.mark.parametrize("texts", [[], [""], "", ["", ""]])
def test_an_empty_corpus_is_a_clear_error(train, texts):
    with pytest.raises(ValueError, match="empty corpus"):
        train(texts)


@pytest.mark.parametrize("train", TRAINERS)
def test_non_text_training_data_is_a_clear_error(train):
    with pytest.raises(TypeError, match="expects a str or a list of str"):
        train(42)
    with pytest.raises(TypeError, match="item 1 is a int"):
        train(["fine", 7])


def test_word_tokenizer_needs_words():
    with pytest.raises(ValueError, match="no words"):
        tok.WordTokenizer.train(["   \n  "])
    with pytest.raises(ValueError, match="max_vocab to be an int >= 2"):
        tok.WordTokenizer.train(["a b"], max_vocab=1)


def test_vocab_size_below_the_byte_alphabet_is_a_clear_error():
    with pytest.raises(ValueError, match="vocab_size to be an int >= 256, got 100"):
        tok.BPETokenizer.train(CORPUS, 100)
    with pytest.raises(ValueError, match=">= 257, got 256.*1 special"):
        tok.BPETokenizer.train(CORPUS, 256, special_tokens=[tok.END_OF_TEXT])
    with pytest.raises(ValueError, match=">= 258"):
        tok.train_hf_bpe(CORPUS, 200)
    with pytest.raises(TypeError, match="expected vocab_size to be an int, got float"):
        tok.BPETokenizer.train(CORPUS, 300.0)
    with pytest.raises(ValueError, match="only 400 tokens"):
        tok.BPETokenizer.train(CORPUS, 400).truncate(500)


@pytest.mark.parametrize(
    "make",
    [
        lambda: tok.CharTokenizer.train("abc"),
        lambda: tok.WordTokenizer.train("a b c"),
        lambda: tok.BPETokenizer.train(CORPUS, 300),
    ],
)
def test_decoding_bad_ids_and_encoding_non_text_are_clear_errors(make):
    tokenizer = make()
    with pytest.raises(ValueError, match=rf"out of range.*0 to {tokenizer.vocab_size - 1}"):
        tokenizer.decode([1, tokenizer.vocab_size])
    with pytest.raises(ValueError, match="out of range"):
        tokenizer.decode([-1])
    with pytest.raises(TypeError, match="integer token ids.*position 1 holds str"):
        tokenizer.decode([1, "2"])
    with pytest.raises(TypeError, match="sequence of token ids"):
        tokenizer.decode("1 2 3")
    with pytest.raises(ValueError, match="1-D"):
        tokenizer.decode(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="encode expects a str, got list"):
        tokenizer.encode(["a", "b"])
    with pytest.raises(TypeError, match="decode bytes first"):
        tokenizer.encode(b"abc")


def test_invalid_unicode_is_a_clear_error(bpe):
    with pytest.raises(ValueError, match="lone surrogate"):
        bpe.encode("a\ud800b")


@pytest.mark.parametrize(
    "call",
    [
        lambda: tok.learn_merges(TOY, True),
        lambda: tok.learn_merges(TOY, 5, min_frequency=True),
        lambda: tok.count_pairs({("a", "b"): True}),
        lambda: tok.WordTokenizer.train("a b", max_vocab=True),
        lambda: tok.WordTokenizer.train("a b", min_count=True),
        lambda: tok.BPETokenizer.train(CORPUS, True),
        lambda: tok.BPETokenizer.train(CORPUS, 300, min_frequency=True),
        lambda: tok.BPETokenizer.train(CORPUS, 300).truncate(True),
        lambda: tok.train_hf_bpe(CORPUS, True),
        lambda: tok.train_hf_wordpiece(CORPUS, 300, min_frequency=False),
        lambda: tok.course_bpe_tokenizer(True),
        lambda: tok.course_wordpiece_tokenizer(True),
        lambda: tok.CharTokenizer.train("abc").decode([1, True]),
        lambda: tok.BPETokenizer().id_to_token(False),
    ],
)
def test_a_bool_where_an_int_belongs_is_a_value_error(call):
    with pytest.raises(ValueError, match="True|False"):
        call()


def test_bad_word_freqs_and_merges_are_clear_errors():
    with pytest.raises(TypeError, match="dict mapping words"):
        tok.count_pairs([("a", "b")])
    with pytest.raises(TypeError, match="tuple of symbols"):
        tok.count_pairs({"ab": 1})
    with pytest.raises(ValueError, match="int >= 0"):
        tok.count_pairs({("a", "b"): -1})
    with pytest.raises(TypeError, match="all str or all bytes"):
        tok.learn_merges({("a", b"b"): 2}, 3)
    with pytest.raises(ValueError, match="neither a byte nor made by an earlier merge"):
        tok.BPETokenizer([(b"ab", b"c")])


# ---- Hugging Face ---------------------------------------------------------------------------


def test_our_bpe_learns_the_same_merges_and_ids_as_hugging_face():
    specials = [tok.END_OF_TEXT, tok.PAD_TOKEN]
    ours = tok.BPETokenizer.train(CORPUS, 400, special_tokens=specials)
    theirs = tok.train_hf_bpe(CORPUS, 400)
    assert len(theirs) == ours.vocab_size == 400
    assert tok.hf_bpe_merges(theirs) == ours.merges
    for text in CORPUS[:4] + random_texts(20, seed=5):
        assert theirs(text)["input_ids"] == ours.encode(text)


@pytest.mark.parametrize("text", random_texts(20, seed=6))
def test_hf_bpe_round_trips_any_text(text):
    hf = _hf_bpe()
    assert hf.decode(hf(text)["input_ids"]) == text


_CACHE = {}


def _hf_bpe():
    if "bpe" not in _CACHE:
        _CACHE["bpe"] = tok.train_hf_bpe(CORPUS, 350)
    return _CACHE["bpe"]


def test_hf_bpe_special_tokens_and_padding():
    hf = _hf_bpe()
    assert hf.eos_token == hf.bos_token == tok.END_OF_TEXT and hf.pad_token == tok.PAD_TOKEN
    assert (hf.eos_token_id, hf.pad_token_id) == (0, 1) and hf.unk_token is None
    ids = hf(f"end{tok.END_OF_TEXT}start")["input_ids"]
    assert ids.count(hf.eos_token_id) == 1
    batch = hf(["a longer text here", "short"], padding=True, return_tensors="pt")
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["input_ids"][1, -1] == hf.pad_token_id and batch["attention_mask"][1, -1] == 0


def test_hf_training_is_deterministic():
    # The BPE trainer is; the WordPiece trainer is not by itself (tokenizers issue #1794),
    # train_hf_wordpiece fixes the ids of the "##x" pieces so that it is.
    texts = ["Wel come to the 🤗 Tok en izers libr ary."] * 3 + CORPUS
    bpe_json = {tok.train_hf_bpe(texts, 300).backend_tokenizer.to_str() for _ in range(5)}
    wp_json = {tok.train_hf_wordpiece(texts, 120).backend_tokenizer.to_str() for _ in range(15)}
    assert len(bpe_json) == 1 and len(wp_json) == 1


def test_hf_wordpiece_works_as_a_bert_tokenizer():
    bert = tok.train_hf_wordpiece(CORPUS, 150)
    assert len(bert) == 150
    assert [bert.pad_token_id, bert.unk_token_id, bert.cls_token_id, bert.sep_token_id] == [
        0,
        1,
        2,
        3,
    ]
    assert bert.mask_token_id == 4 and sorted(bert.all_special_ids) == [0, 1, 2, 3, 4]
    pair = bert("The dog sleeps.", "The fox runs!")
    tokens = bert.convert_ids_to_tokens(pair["input_ids"])
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2 and tokens[-1] == "[SEP]"
    first_sep = tokens.index("[SEP]")
    assert pair["token_type_ids"] == [0] * (first_sep + 1) + [1] * (len(tokens) - first_sep - 1)
    assert tokens[1:3] == ["the", "dog"]  # lower-cased; "sleeps" may be split into pieces
    assert "".join(t.removeprefix("##") for t in tokens[1:first_sep]) == "thedogsleeps."
    masked = bert.convert_ids_to_tokens(bert("the [MASK] sleeps")["input_ids"])
    assert masked[:3] == ["[CLS]", "the", "[MASK]"] and masked.count("[MASK]") == 1
    assert "[UNK]" in bert.tokenize("the ☃ sleeps")  # a character never seen in training
    assert any(t.startswith("##") for t in bert.tokenize("unbelievably tokenizers"))
    batch = bert(["the dog", "the quick brown fox jumps"], padding=True, return_tensors="pt")
    assert (
        batch["input_ids"].shape == batch["attention_mask"].shape == batch["token_type_ids"].shape
    )
    assert batch["input_ids"][0, -1] == bert.pad_token_id and batch["attention_mask"][0, -1] == 0
    assert (
        bert.decode(pair["input_ids"], skip_special_tokens=True) == "the dog sleeps. the fox runs!"
    )


def test_saved_tokenizers_load_back_with_the_wrappers(tmp_path):
    bpe_path, wordpiece_path = tmp_path / "bpe.json", tmp_path / "wordpiece.json"
    hf = _hf_bpe()
    bert = tok.train_hf_wordpiece(CORPUS, 150)
    hf.backend_tokenizer.save(str(bpe_path))
    bert.backend_tokenizer.save(str(wordpiece_path))
    for original, loaded in [
        (hf, tok.wrap_hf_bpe(bpe_path)),
        (hf, tok.wrap_hf_bpe(str(bpe_path))),
        (bert, tok.wrap_hf_wordpiece(wordpiece_path)),
        (bert, tok.wrap_hf_wordpiece(bert)),
    ]:
        assert loaded("The dog sleeps.", "A fox.") == original("The dog sleeps.", "A fox.")
        assert loaded.all_special_tokens == original.all_special_tokens
        assert loaded.pad_token_id == original.pad_token_id
    with pytest.raises(ValueError, match="'<\\|endoftext\\|>'"):
        tok.wrap_hf_bpe(wordpiece_path)
    with pytest.raises(ValueError, match="'\\[PAD\\]'"):
        tok.wrap_hf_wordpiece(bpe_path)
    with pytest.raises(FileNotFoundError, match="no tokenizer file"):
        tok.wrap_hf_bpe(tmp_path / "missing.json")
    with pytest.raises(TypeError, match="tokenizer.json"):
        tok.wrap_hf_wordpiece(42)


def test_hf_bpe_merges_reads_only_byte_level_bpe():
    with pytest.raises(TypeError, match="fast tokenizer"):
        tok.hf_bpe_merges("gpt2")
    with pytest.raises(ValueError, match="BPE model"):
        tok.hf_bpe_merges(tok.train_hf_wordpiece(CORPUS, 100))


def test_bytes_to_unicode_is_gpt2s_table():
    table = tok.bytes_to_unicode()
    assert len(set(table.values())) == 256 and table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ"
    assert table[ord("a")] == "a" and sorted(tok.GPT2_BYTE_ORDER) == list(range(256))


# ---- the cached course tokenizers -----------------------------------------------------------


@pytest.fixture
def small_course(monkeypatch, tmp_path):
    monkeypatch.setattr(tok, "course_training_texts", lambda: list(CORPUS))
    return tmp_path


@pytest.mark.parametrize(
    "make,train_name",
    [
        (tok.course_bpe_tokenizer, "train_hf_bpe"),
        (tok.course_wordpiece_tokenizer, "train_hf_wordpiece"),
    ],
)
def test_course_tokenizers_train_once_then_load_from_the_cache(
    small_course, monkeypatch, make, train_name
):
    first = make(300, cache_dir=small_course)
    files = sorted(p.name for p in small_course.iterdir())
    assert len(files) == 1 and "-300-v" in files[0] and files[0].endswith(".json")

    def must_not_train(*args, **kwargs):
        raise AssertionError("the cached tokenizer should have been loaded, not trained again")

    monkeypatch.setattr(tok, train_name, must_not_train)
    second = make(300, cache_dir=small_course)
    assert second.backend_tokenizer.to_str() == first.backend_tokenizer.to_str()
    assert second.all_special_tokens == first.all_special_tokens
    assert second("a b", "c")["input_ids"] == first("a b", "c")["input_ids"]
    with pytest.raises(AssertionError, match="loaded, not trained"):
        make(310, cache_dir=small_course)  # another vocab size is another cache entry


def test_a_corrupt_cache_file_is_retrained(small_course):
    first = tok.course_bpe_tokenizer(300, cache_dir=small_course)
    (path,) = small_course.iterdir()
    path.write_text("{not json", encoding="utf-8")
    again = tok.course_bpe_tokenizer(300, cache_dir=small_course)
    assert again.backend_tokenizer.to_str() == first.backend_tokenizer.to_str()
    assert json.loads(path.read_text(encoding="utf-8"))["model"]["type"] == "BPE"


def test_the_cache_key_follows_the_training_text(small_course, monkeypatch):
    tok.course_bpe_tokenizer(300, cache_dir=small_course)
    monkeypatch.setattr(tok, "course_training_texts", lambda: list(CORPUS) + ["more text"])
    tok.course_bpe_tokenizer(300, cache_dir=small_course)
    assert len(list(small_course.iterdir())) == 2


def test_course_tokenizer_vocab_size_is_checked():
    with pytest.raises(ValueError, match=">= 258"):
        tok.course_bpe_tokenizer(100)
    with pytest.raises(TypeError, match="expected vocab_size to be an int"):
        tok.course_wordpiece_tokenizer("8192")
