"""Tests of course_lib.data: the offline corpora, their splits and cache, the evaluation sets.

Every test runs offline. The cache goes to temporary folders (``COURSE_CACHE_DIR`` is set for
every test), never to the home directory. The Wikipedia dump is parsed once for the module and
read back from the shared cache afterwards, to keep the file fast on a small machine.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import pathlib
import warnings

import pytest

from course_lib import data
from course_lib.data import (
    CacheWarning,
    CorpusSplits,
    DataCard,
    Document,
    Paragraph,
    corpus_sentences,
    corpus_text,
    data_card,
    load_analogies,
    load_corpus,
    load_polarity,
    load_word_similarity,
    split_sentences,
)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """One cache folder for the whole module, so the wiki dump is parsed only once."""
    return tmp_path_factory.mktemp("course_cache")


@pytest.fixture(autouse=True)
def _isolated_cache(shared_cache: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the default cache at the temporary folder and forget in-process state."""
    monkeypatch.setenv("COURSE_CACHE_DIR", str(shared_cache))
    monkeypatch.setattr(data, "_MEMO", {})
    monkeypatch.setattr(data, "_WARNED_CACHE_DIRS", set())


@pytest.fixture()
def wiki() -> CorpusSplits:
    return load_corpus("wiki")


@pytest.fixture()
def lee() -> CorpusSplits:
    return load_corpus("lee")


def _fail_parse(name: str) -> list[Document]:
    raise AssertionError(f"the corpus {name!r} was parsed again instead of read from the cache")


# ------------------------------------------------------------------------------------------
# Corpora and splits
# ------------------------------------------------------------------------------------------


def test_wiki_splits_are_disjoint_and_cover_the_corpus(wiki: CorpusSplits) -> None:
    titles = {name: [doc.title for doc in wiki.split(name)] for name in data.SPLIT_NAMES}
    all_titles = [t for name in data.SPLIT_NAMES for t in titles[name]]
    assert len(all_titles) > 90
    assert len(set(all_titles)) == len(all_titles), "a title appears twice"
    train, validation, test = (set(titles[n]) for n in data.SPLIT_NAMES)
    assert not train & validation and not train & test and not validation & test
    assert [doc.title for doc in wiki] == all_titles  # iteration covers every split, in order
    assert len(wiki) == len(all_titles)
    assert wiki.sizes == {n: len(titles[n]) for n in data.SPLIT_NAMES}


def test_wiki_split_sizes_are_about_80_10_10(wiki: CorpusSplits) -> None:
    total = len(wiki)
    assert 0.70 <= len(wiki.train) / total <= 0.88
    for small in (wiki.validation, wiki.test):
        assert len(small) >= 1
        assert 0.04 <= len(small) / total <= 0.18


def test_wiki_documents_are_articles_not_redirects_lists_or_references(wiki: CorpusSplits) -> None:
    for doc in wiki:
        assert isinstance(doc, Document)
        assert "(disambiguation)" not in doc.title
        assert not doc.title.startswith("List of")
        assert len(doc.sentences) >= 3
        assert not doc.text.upper().startswith("#REDIRECT")
        for paragraph in doc.paragraphs:
            assert paragraph.section.lower() not in {"references", "see also", "external links"}
            assert len(paragraph.text) >= 40


def test_wiki_sentences_look_like_sentences(wiki: CorpusSplits) -> None:
    sentences = corpus_sentences(wiki.train + wiki.validation + wiki.test)
    assert len(sentences) > 5000
    for sentence in sentences:
        assert "'''" not in sentence and "''" not in sentence
        assert "==" not in sentence and "[[" not in sentence and "]]" not in sentence
        assert "{{" not in sentence and "|" not in sentence
        assert "()" not in sentence and ", ," not in sentence and " ," not in sentence
        assert sentence == sentence.strip() and "  " not in sentence
    ending = sum(s.endswith((".", "!", "?", '"', "'", "”", ")")) for s in sentences)
    assert ending / len(sentences) > 0.98
    characters = sum(len(doc.text) for doc in wiki)
    assert 1_500_000 < characters < 3_500_000


def test_known_article_has_a_sensible_first_sentence(wiki: CorpusSplits) -> None:
    by_title = {doc.title: doc for doc in wiki}
    autism = by_title["Autism"]
    assert autism.sentences[0].startswith("Autism is a neurodevelopmental disorder")
    assert autism.sentences[0].endswith(".")
    assert autism.paragraphs[0].section == data.LEAD_SECTION
    sections = {p.section for p in autism.paragraphs}
    assert "Characteristics" in sections and "References" not in sections
    assert "Anarchism" in by_title and "Albert Einstein" in by_title


def test_document_text_and_sentences_are_consistent(wiki: CorpusSplits) -> None:
    doc = wiki.train[0]
    assert doc.text == "\n\n".join(p.text for p in doc.paragraphs)
    assert doc.sentences == [s for p in doc.paragraphs for s in p.sentences]
    assert doc.paragraphs[0].text == " ".join(doc.paragraphs[0].sentences)


def test_lee_corpus_has_300_single_paragraph_documents(lee: CorpusSplits) -> None:
    docs = list(lee)
    assert len(docs) == 300
    assert {doc.title for doc in docs} == {f"lee-{i:04d}" for i in range(1, 301)}
    assert all(len(doc.paragraphs) == 1 for doc in docs)
    assert all(len(s) for doc in docs for s in doc.sentences)
    first = next(doc for doc in docs if doc.title == "lee-0001")
    assert first.sentences[0].startswith("Hundreds of people have been forced to vacate")
    assert first.sentences[1].startswith("A new blaze near Goulburn")
    assert len(lee.validation) >= 1 and len(lee.test) >= 1


def test_splits_are_deterministic_across_a_fresh_parse(
    wiki: CorpusSplits, tmp_path: pathlib.Path
) -> None:
    data._MEMO.clear()
    again = load_corpus("wiki", cache_dir=tmp_path / "fresh")  # parses from scratch
    assert again == wiki
    assert again is not wiki


def test_split_of_a_document_depends_only_on_its_title(lee: CorpusSplits) -> None:
    docs = list(lee)
    reference = data._split_documents(docs)
    assert data._split_documents(list(reversed(docs))) == reference  # parse order is irrelevant

    def where(splits: CorpusSplits) -> dict[str, str]:
        return {doc.title: name for name in data.SPLIT_NAMES for doc in splits.split(name)}

    # Dropping a third of the documents must not move any of the others.
    fewer = where(data._split_documents(docs[::3]))
    full = where(reference)
    assert all(full[title] == split for title, split in fewer.items())


def test_split_of_tiny_corpora_keeps_validation_and_test_non_empty() -> None:
    docs = [Document(f"doc {i}", (Paragraph("", ("One sentence here.",)),)) for i in range(5)]
    splits = data._split_documents(docs)
    assert len(splits.validation) >= 1 and len(splits.test) >= 1
    assert sorted(d.title for d in splits) == sorted(d.title for d in docs)


def test_corpus_sentences_and_text(lee: CorpusSplits) -> None:
    sentences = corpus_sentences(lee.test)
    assert sentences == [s for doc in lee.test for s in doc.sentences]
    text = corpus_text(lee.test)
    assert text == "\n\n".join(doc.text for doc in lee.test)
    assert text.count("\n\n") == len(lee.test) - 1
    assert corpus_sentences(list(lee.test)) == sentences  # a list works as well as a tuple


@pytest.mark.parametrize("function", [corpus_sentences, corpus_text])
def test_empty_split_gives_a_helpful_error(function) -> None:
    with pytest.raises(ValueError, match="empty") as info:
        function(())
    assert "load_corpus" in str(info.value)
    with pytest.raises(ValueError, match="empty"):
        function([])


@pytest.mark.parametrize("function", [corpus_sentences, corpus_text])
def test_wrong_document_types_are_rejected(function, lee: CorpusSplits) -> None:
    with pytest.raises(TypeError, match="one split"):
        function(lee)  # the whole CorpusSplits instead of one split
    with pytest.raises(TypeError, match="Document"):
        function("some text")
    with pytest.raises(TypeError, match="Document"):
        function(["a sentence."])


def test_bad_corpus_and_split_names_list_the_valid_ones(lee: CorpusSplits) -> None:
    with pytest.raises(ValueError, match="wiki") as info:
        load_corpus("wikipedia")
    assert "lee" in str(info.value)
    with pytest.raises(ValueError) as info:
        lee.split("dev")
    assert all(name in str(info.value) for name in ("train", "validation", "test"))
    with pytest.raises(TypeError, match="str"):
        load_corpus(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str"):
        lee.split(0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cache_dir"):
        load_corpus("lee", cache_dir=3)  # type: ignore[arg-type]


def test_paragraph_and_document_are_immutable_and_validated() -> None:
    paragraph = Paragraph("History", ["First one.", "Second one."])  # type: ignore[arg-type]
    assert paragraph.sentences == ("First one.", "Second one.")
    assert paragraph.text == "First one. Second one."
    document = Document("T", [paragraph, Paragraph("Later", ("Third one.",))])  # type: ignore[arg-type]
    assert document.text == "First one. Second one.\n\nThird one."
    assert document.sentences == ["First one.", "Second one.", "Third one."]
    with pytest.raises(dataclasses.FrozenInstanceError):
        document.title = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Paragraph("s", "not a tuple")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Document("T", ("not a paragraph",))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# Cache
# ------------------------------------------------------------------------------------------


def test_second_load_reads_the_disk_cache_not_the_parser(
    wiki: CorpusSplits, shared_cache: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert list(shared_cache.glob("corpus-wiki-*.json.gz")), "the first load wrote no cache"
    data._MEMO.clear()
    monkeypatch.setattr(data, "_parse_corpus", _fail_parse)
    assert load_corpus("wiki") == wiki


def test_load_is_memoised_in_process(tmp_path: pathlib.Path, monkeypatch) -> None:
    first = load_corpus("lee", cache_dir=tmp_path)
    for cache_file in tmp_path.glob("*.json.gz"):
        cache_file.unlink()  # even without the disk cache, the memo answers
    monkeypatch.setattr(data, "_parse_corpus", _fail_parse)
    assert load_corpus("lee", cache_dir=tmp_path) is first


def test_cache_write_is_atomic_and_leaves_no_temp_files(tmp_path: pathlib.Path) -> None:
    load_corpus("lee", cache_dir=tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].startswith("corpus-lee-v") and files[0].endswith(".gz")


@pytest.mark.parametrize(
    "garbage",
    [b"this is not gzip", gzip.compress(b"{not json"), gzip.compress(b'{"corpus": "wiki"}'), b""],
)
def test_corrupt_cache_is_ignored_and_rewritten(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, garbage: bytes
) -> None:
    good = load_corpus("lee", cache_dir=tmp_path)
    (cache_file,) = tmp_path.glob("corpus-lee-*.json.gz")
    cache_file.write_bytes(garbage)
    data._MEMO.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a corrupt cache is repaired quietly
        assert load_corpus("lee", cache_dir=tmp_path) == good
    # It was rewritten: the next fresh load reads it without parsing.
    data._MEMO.clear()
    monkeypatch.setattr(data, "_parse_corpus", _fail_parse)
    assert load_corpus("lee", cache_dir=tmp_path) == good


def test_cache_key_changes_with_the_parser_version(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_corpus("lee", cache_dir=tmp_path)
    data._MEMO.clear()
    monkeypatch.setattr(data, "PARSER_VERSION", data.PARSER_VERSION + 1)
    load_corpus("lee", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("corpus-lee-*.json.gz"))) == 2


def test_cache_key_changes_with_the_code(tmp_path: pathlib.Path, monkeypatch) -> None:
    load_corpus("lee", cache_dir=tmp_path)
    data._MEMO.clear()
    monkeypatch.setattr(data, "_code_fingerprint", lambda: "edited cleaning code")
    load_corpus("lee", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("corpus-lee-*.json.gz"))) == 2


def test_missing_nested_cache_dir_is_created(tmp_path: pathlib.Path) -> None:
    nested = tmp_path / "a" / "b" / "c"
    corpus = load_corpus("lee", cache_dir=nested)
    assert len(corpus) == 300
    assert list(nested.glob("corpus-lee-*.json.gz"))


def test_unwritable_cache_dir_warns_once_and_still_loads(tmp_path: pathlib.Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("a regular file, so no folder can be made under it")
    unwritable = blocker / "cache"
    with pytest.warns(CacheWarning, match="COURSE_CACHE_DIR"):
        corpus = load_corpus("lee", cache_dir=unwritable)
    assert len(corpus) == 300
    data._MEMO.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second time, no warning
        assert load_corpus("lee", cache_dir=unwritable) == corpus
    assert blocker.read_text().startswith("a regular file")


def test_default_cache_dir_follows_the_environment(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("COURSE_CACHE_DIR")
    assert data.cache_dir() == tmp_path / "xdg" / "course_lib"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.cache_dir() == tmp_path / "home" / ".cache" / "course_lib"
    assert not (tmp_path / "home").exists()  # cache_dir() only names the folder


def test_load_uses_the_default_cache_dir(tmp_path: pathlib.Path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "env_cache"))
    load_corpus("lee")
    assert list((tmp_path / "env_cache").glob("corpus-lee-*.json.gz"))


# ------------------------------------------------------------------------------------------
# Sentence splitter
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Dr. Smith went to Washington. He met Mr. Jones at St. Paul's.",
            ["Dr. Smith went to Washington.", "He met Mr. Jones at St. Paul's."],
        ),
        (
            "Pi is about 3.14 today. Prices rose 2.5% in 2010. 2011 was calmer.",
            ["Pi is about 3.14 today.", "Prices rose 2.5% in 2010.", "2011 was calmer."],
        ),
        (
            "J. R. R. Tolkien wrote it. George W. Bush read it.",
            ["J. R. R. Tolkien wrote it.", "George W. Bush read it."],
        ),
        ("Is it true? Yes! It is.", ["Is it true?", "Yes!", "It is."]),
        (
            'He said "Stop." Then he left. "Why?" she asked.',
            ['He said "Stop."', "Then he left.", '"Why?" she asked.'],
        ),
        (
            "Fruit, e.g. apples, is healthy. The U.S. Army arrived. It was c. 1815 then.",
            ["Fruit, e.g. apples, is healthy.", "The U.S. Army arrived.", "It was c. 1815 then."],
        ),
        (
            "Apples, pears, etc. Are fine, i.e. Good. It opened on Jan. 5 in the spring.",
            ["Apples, pears, etc. Are fine, i.e. Good.", "It opened on Jan. 5 in the spring."],
        ),
        (
            "Smith v. Jones was decided in 1954. See No. 5 for details. The answer was no. Done.",
            [
                "Smith v. Jones was decided in 1954.",
                "See No. 5 for details.",
                "The answer was no.",
                "Done.",
            ],
        ),
        (
            "It ended at 5 p.m. yesterday. (This was expected.) Everyone left.",
            ["It ended at 5 p.m. yesterday.", "(This was expected.)", "Everyone left."],
        ),
        (
            "lower case after a period. stays together.",
            ["lower case after a period. stays together."],
        ),
        ("Line one.\nLine  two.", ["Line one.", "Line two."]),
        ("No final punctuation", ["No final punctuation"]),
        ("", []),
        ("   \n ", []),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_split_sentences_rejects_non_strings() -> None:
    with pytest.raises(TypeError, match="str"):
        split_sentences(["A list."])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# Evaluation sets
# ------------------------------------------------------------------------------------------


def test_polarity() -> None:
    items = load_polarity()
    assert len(items) == 200
    assert sum(label == 1 for _, label in items) == 100
    assert sum(label == 0 for _, label in items) == 100
    assert all(
        isinstance(text, str) and text and not text.startswith("__label__") for text, _ in items
    )
    assert items[0] == ("simplistic , silly and tedious .", 0)


def test_word_similarity_sets() -> None:
    wordsim = load_word_similarity("wordsim353")
    assert len(wordsim) == 353
    assert wordsim[0] == ("love", "sex", 6.77)
    simlex = load_word_similarity("simlex999")
    assert len(simlex) == 999
    assert simlex[0] == ("old", "new", 1.58)
    for word1, word2, score in wordsim + simlex:
        assert word1 and word2 and "\t" not in word1 + word2
        assert isinstance(score, float) and 0.0 <= score <= 10.0
    with pytest.raises(ValueError, match="wordsim353"):
        load_word_similarity("men3000")
    with pytest.raises(TypeError):
        load_word_similarity(None)  # type: ignore[arg-type]


def test_analogies() -> None:
    analogies = load_analogies()
    assert len(analogies) == 14
    assert sum(len(v) for v in analogies.values()) == 19544
    assert next(iter(analogies)) == "capital-common-countries"
    assert analogies["capital-common-countries"][0] == ("Athens", "Greece", "Baghdad", "Iraq")
    assert sum(name.startswith("gram") for name in analogies) == 9
    assert all(len(q) == 4 for questions in analogies.values() for q in questions)


# ------------------------------------------------------------------------------------------
# Data card
# ------------------------------------------------------------------------------------------


def test_data_card_covers_every_source(wiki: CorpusSplits, lee: CorpusSplits) -> None:
    card = data_card()
    assert isinstance(card, DataCard)
    datasets = {row["dataset"] for row in card.rows}
    expected = {"wiki", "lee", "polarity", "wordsim353", "simlex999", "analogies"}
    assert datasets == expected
    assert {source["dataset"] for source in card.sources} == expected
    assert all(source["licence"] for source in card.sources)

    rows = {(r["dataset"], r.get("split", r.get("part"))): r for r in card.rows}
    assert rows[("wiki", "all")]["documents"] == len(wiki)
    assert rows[("lee", "all")]["documents"] == 300
    for name in ("wiki", "lee"):
        for column in ("documents", "paragraphs", "sentences", "words", "characters"):
            total = sum(rows[(name, split)][column] for split in data.SPLIT_NAMES)
            assert total == rows[(name, "all")][column]
    assert rows[("wiki", "train")]["documents"] == len(wiki.train)
    assert rows[("wiki", "all")]["sentences"] == len(corpus_sentences(list(wiki)))
    assert rows[("polarity", "positive (1)")]["items"] == 100
    assert rows[("wordsim353", "all")]["items"] == 353
    assert rows[("simlex999", "all")]["items"] == 999
    assert rows[("analogies", "all")]["items"] == 19544

    text = str(card)
    for needle in ("19,544", "353", "999", "| wiki", "| lee", "CC BY-SA", f"{len(wiki):,}"):
        assert needle in text
    assert f"{rows[('wiki', 'all')]['words']:,}" in text
    assert card._repr_markdown_() == card.to_markdown() == text


def test_data_card_is_deterministic_and_has_no_paths(shared_cache: pathlib.Path) -> None:
    first = str(data_card())
    data._MEMO.clear()
    second = str(data_card(cache_dir=shared_cache))
    assert first == second
    assert str(shared_cache) not in first and os.sep + "tmp" not in first


def test_polarity_decodes_non_ascii_characters() -> None:
    texts = " ".join(text for text, _ in load_polarity())
    assert "clichés" in texts and "—" in texts
    assert "\ufffd" not in texts  # no replacement characters
