"""Offline corpora and evaluation sets for the course.

Everything the notebooks need ships inside gensim's wheel (``gensim/test/test_data``), so no
cell needs the network:

* ``load_corpus("wiki")``: about a hundred English Wikipedia articles, parsed with gensim's own
  wiki tools and cleaned into documents -> paragraphs -> sentences, split 80/10/10 into
  train / validation / test by a hash of each title.
* ``load_corpus("lee")``: the 300 news articles of the Lee background corpus.
* ``load_polarity()``: 200 movie-review sentences labelled positive (1) or negative (0).
* ``load_word_similarity("wordsim353" | "simlex999")``: word pairs with human similarity scores.
* ``load_analogies()``: the Google analogy questions ("Athens Greece Baghdad Iraq").
* ``data_card()``: counts, sources and licences of all of the above, as a table.

Parsing the Wikipedia dump takes a couple of seconds, so the parsed corpus is cached as gzipped
JSON under ``cache_dir()`` (``$COURSE_CACHE_DIR``, else ``$XDG_CACHE_HOME/course_lib``, else
``~/.cache/course_lib``) and memoised in the running process.

Why one module of about 1,000 lines: it is the course's single door to data. The document types,
the sentence splitter and the cleaning of the Wikipedia dump, the on-disk cache of the parsed
corpora, the evaluation sets and the data card all describe the same documents; each section is
short and stands alone.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import os
import pathlib
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from course_lib._files import atomic_write

__all__ = [
    "CORPUS_NAMES",
    "SPLIT_NAMES",
    "WORD_SIMILARITY_NAMES",
    "PARSER_VERSION",
    "LEAD_SECTION",
    "Paragraph",
    "Document",
    "CorpusSplits",
    "DataCard",
    "CacheWarning",
    "load_corpus",
    "corpus_sentences",
    "corpus_text",
    "split_sentences",
    "load_polarity",
    "load_word_similarity",
    "load_analogies",
    "data_card",
    "cache_dir",
]

CORPUS_NAMES: tuple[str, ...] = ("wiki", "lee")
SPLIT_NAMES: tuple[str, ...] = ("train", "validation", "test")
WORD_SIMILARITY_NAMES: tuple[str, ...] = ("wordsim353", "simlex999")

# Bump whenever the cleaning or splitting rules change: it is part of the cache key, so an old
# cache written by a different parser is never read back.
PARSER_VERSION = 1

# Section name given to the paragraphs before a Wikipedia article's first heading.
LEAD_SECTION = "Introduction"

_WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_LEE_FILE = "lee_background.cor"
_POLARITY_FILE = "pang_lee_polarity.cor"
_ANALOGY_FILE = "questions-words.txt"
_WORD_SIMILARITY_FILES = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
_CORPUS_FILES = {"wiki": _WIKI_FILE, "lee": _LEE_FILE}

# Fractions of the SHA-1 hash range that go to train and to train + validation.
_TRAIN_FRACTION = 0.8
_VALIDATION_FRACTION = 0.1


# --------------------------------------------------------------------------------------------
# Data structures
# --------------------------------------------------------------------------------------------


def _as_str_tuple(value: Any, what: str) -> tuple[str, ...]:
    """Coerce a list/tuple of strings to a tuple, or raise a TypeError naming ``what``."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{what} must be a tuple of strings, got {type(value).__name__}")
    for item in value:
        if not isinstance(item, str):
            raise TypeError(f"{what} must contain only strings, found {type(item).__name__}")
    return tuple(value)


@dataclass(frozen=True)
class Paragraph:
    """One paragraph of a document: the section it sits in and its sentences.

    Attributes:
        section: the heading the paragraph sits under (``"Introduction"`` for the lead of a
            Wikipedia article, ``""`` for corpora without sections).
        sentences: the paragraph's sentences, in order, as a tuple of str.
    """

    section: str
    sentences: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.section, str):
            raise TypeError(f"Paragraph.section must be a str, got {type(self.section).__name__}")
        # Frozen dataclass: coerce a list to a tuple so the paragraph stays immutable/hashable.
        object.__setattr__(self, "sentences", _as_str_tuple(self.sentences, "Paragraph.sentences"))

    @property
    def text(self) -> str:
        """The paragraph as one str: its sentences joined by a single space."""
        return " ".join(self.sentences)


@dataclass(frozen=True)
class Document:
    """One document (an article): a title and its paragraphs.

    Attributes:
        title: the article title (Wikipedia) or an id such as ``"lee-0001"`` (Lee corpus).
        paragraphs: tuple of :class:`Paragraph`.
    """

    title: str
    paragraphs: tuple[Paragraph, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.title, str):
            raise TypeError(f"Document.title must be a str, got {type(self.title).__name__}")
        if isinstance(self.paragraphs, (str, Paragraph)) or not isinstance(
            self.paragraphs, (list, tuple)
        ):
            raise TypeError(
                "Document.paragraphs must be a tuple of Paragraph, "
                f"got {type(self.paragraphs).__name__}"
            )
        for paragraph in self.paragraphs:
            if not isinstance(paragraph, Paragraph):
                raise TypeError(
                    "Document.paragraphs must contain Paragraph objects, "
                    f"found {type(paragraph).__name__}"
                )
        object.__setattr__(self, "paragraphs", tuple(self.paragraphs))

    @property
    def sentences(self) -> list[str]:
        """All sentences of the document, in order, as a new list of str."""
        return [sentence for paragraph in self.paragraphs for sentence in paragraph.sentences]

    @property
    def text(self) -> str:
        """The document as one str: paragraphs joined by a blank line (``"\\n\\n"``)."""
        return "\n\n".join(paragraph.text for paragraph in self.paragraphs)


@dataclass(frozen=True)
class CorpusSplits:
    """A corpus cut into train / validation / test documents.

    Attributes:
        train, validation, test: tuples of :class:`Document`; disjoint, together the corpus.

    ``splits.split("validation")`` picks a split by name; iterating over ``splits`` yields every
    document (train, then validation, then test) and ``len(splits)`` counts them.
    """

    train: tuple[Document, ...]
    validation: tuple[Document, ...]
    test: tuple[Document, ...]

    def split(self, name: str) -> tuple[Document, ...]:
        """Return the documents of split ``name`` ("train", "validation" or "test").

        Returns:
            tuple of :class:`Document`.
        """
        if not isinstance(name, str):
            raise TypeError(
                f"split name must be a str, one of {list(SPLIT_NAMES)}; got {type(name).__name__}"
            )
        if name not in SPLIT_NAMES:
            raise ValueError(f"unknown split {name!r}; valid split names are {list(SPLIT_NAMES)}")
        return getattr(self, name)

    @property
    def sizes(self) -> dict[str, int]:
        """Number of documents per split, as ``{"train": int, "validation": int, "test": int}``."""
        return {name: len(self.split(name)) for name in SPLIT_NAMES}

    def __iter__(self) -> Iterator[Document]:
        for name in SPLIT_NAMES:
            yield from self.split(name)

    def __len__(self) -> int:
        return sum(self.sizes.values())


class CacheWarning(UserWarning):
    """The on-disk cache could not be used; the data still loads, just more slowly."""


# --------------------------------------------------------------------------------------------
# Sentence splitting
# --------------------------------------------------------------------------------------------

# Words that end with a period without ending a sentence (lower case, without the final period).
# "etc." and "Inc." sometimes do end a sentence; we accept that rare miss, as most splitters do.
_ABBREVIATIONS = frozenset(
    """
    mr mrs ms mme mlle messrs dr prof st jr sr vs v etc ca cf al approx esp viz ibid
    gen gens brig maj col lt lieut capt sgt cmdr adm gov pres sen rep rev hon mt ft inc ltd co
    corp bros dept est univ
    jan feb mar apr jun jul aug sep sept oct nov dec
    """.split()
)
# Abbreviations that are also ordinary words ("no", "c" as in vitamin C): only abbreviations
# when a number follows ("No. 5", "c. 1815", "p. 12", "vol. 3", "fig. 2").
_NUMBER_ABBREVIATIONS = frozenset("no nos c p pp vol vols fig figs".split())
# Candidate boundary: sentence punctuation, optional closing quotes/brackets, then whitespace.
_BOUNDARY = re.compile(r"([.!?]+)([\"'”’»)\]]*)\s+")
# The word just before a candidate period (letters, digits, inner periods, apostrophes).
_WORD_BEFORE = re.compile(r"[\w.'’-]*$")
# Letters separated by periods: "U.S", "e.g", "i.e", "J.R.R", "a.m".
_DOTTED_INITIALS = re.compile(r"^(?:[^\W\d_]\.)+[^\W\d_]$")
# Opening quotes/brackets a sentence may start with.
_OPENERS = "\"'“‘«(["


def _starts_sentence(text: str, pos: int) -> bool:
    """True if the text at ``pos`` looks like the start of a sentence (capital, digit, quote)."""
    while pos < len(text) and text[pos] in _OPENERS:
        pos += 1
    return pos < len(text) and (text[pos].isupper() or text[pos].isdigit())


def _is_abbreviation(word: str, next_char: str) -> bool:
    """True if ``word`` (the text before a period, without it) is an abbreviation or initial.

    ``next_char`` is the first character after the period and the whitespace.
    """
    word = word.lstrip("\"'“‘«([")
    if not word:
        return False
    if word.lower() in _NUMBER_ABBREVIATIONS and next_char.isdigit():
        return True
    if len(word) == 1 and word.isalpha() and word.isupper():
        return True  # an initial: "J. R. R. Tolkien", "George W. Bush"
    if _DOTTED_INITIALS.match(word):
        return True  # "U.S.", "e.g.", "i.e.", "a.m."
    return word.lower() in _ABBREVIATIONS


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences with a small rule-based splitter.

    A sentence ends after ``.``, ``!`` or ``?`` (plus any closing quotes or brackets) when
    whitespace and then a capital letter, a digit or an opening quote follow. A period does not
    end a sentence after a common abbreviation (``e.g.``, ``Mr.``, ``Dr.``, ``St.``, ``U.S.``,
    ``vs.``, ``etc.``, ``c.``, month names such as ``Jan.``) or a single capital initial
    (``J. R. R. Tolkien``); decimals such as ``3.14`` have no whitespace after the period, so
    they never split.

    Args:
        text: a str; runs of whitespace (newlines included) are collapsed to single spaces.

    Returns:
        list of str, the sentences in order, stripped; ``[]`` for empty or blank text.
    """
    if not isinstance(text, str):
        raise TypeError(f"split_sentences expects a str, got {type(text).__name__}")
    text = " ".join(text.split())
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        if not _starts_sentence(text, match.end()):
            continue
        if match.group(1) == ".":
            word = _WORD_BEFORE.search(text, start, match.start())
            if word is not None and _is_abbreviation(word.group(0), text[match.end()]):
                continue
        end = match.end(2)
        sentences.append(text[start:end].strip())
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


# --------------------------------------------------------------------------------------------
# Cleaning Wikipedia text
# --------------------------------------------------------------------------------------------

# Sections after which an article holds only references, links and lists.
_STOP_SECTIONS = frozenset(
    {
        "references",
        "see also",
        "external links",
        "further reading",
        "notes",
        "bibliography",
        "sources",
        "citations",
        "footnotes",
        "notes and references",
        "references and notes",
        "works cited",
    }
)
_HEADING = re.compile(r"^(=+)\s*(.*?)\s*=+\s*$")
# First characters of wiki lines that are not prose: lists (* #), definitions (; :), tables.
_NON_PROSE_START = tuple("*#;:|!{}+")
_QUOTE_MARKUP = re.compile(r"'{2,}")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?)\]])")
_SPACE_AFTER_OPEN = re.compile(r"([(\[])\s+")
# Brackets left empty (or holding only separators) after filter_wiki removed a template.
_EMPTY_BRACKETS = re.compile(r"[(\[]\s*[,;:.–-]*\s*[)\]]")
_REPEATED_SEPARATORS = re.compile(r"([,;])(?:\s*[,;])+")
_SEPARATOR_AFTER_OPEN = re.compile(r"([(\[])\s*[,;]\s*")
_SEPARATOR_BEFORE_CLOSE = re.compile(r"\s*[,;]\s*([)\]])")
_MARKUP_DEBRIS = re.compile(r"\||\{\{|\}\}|\[\[|\]\]|==|</?[A-Za-z][^>]*>|&[a-z]+;|&#\d+;")
_SENTENCE_END = re.compile(r"[.!?][\"'”’»)\]]*$")
_WORD = re.compile(r"\w+(?:[-'’]\w+)*")

_MIN_PARAGRAPH_CHARS = 40
_MIN_DOCUMENT_SENTENCES = 3


def _clean_inline(line: str) -> str:
    """Remove quote markup and the debris of removed templates from one line of text."""
    line = _QUOTE_MARKUP.sub("", line)
    line = " ".join(line.split())
    # Repeat: removing "( )" can leave ", ," behind, which can leave "(, )" and so on.
    for _ in range(3):
        before = line
        line = _SPACE_AFTER_OPEN.sub(r"\1", line)
        line = _SPACE_BEFORE_PUNCT.sub(r"\1", line)
        line = _EMPTY_BRACKETS.sub("", line)
        line = _REPEATED_SEPARATORS.sub(r"\1", line)
        line = _SEPARATOR_AFTER_OPEN.sub(r"\1", line)
        line = _SEPARATOR_BEFORE_CLOSE.sub(r"\1", line)
        line = " ".join(line.split())
        if line == before:
            break
    return line


def _is_prose_sentence(sentence: str) -> bool:
    """True for a sentence worth keeping: ends like one, has words, is not markup."""
    if not _SENTENCE_END.search(sentence) or _MARKUP_DEBRIS.search(sentence):
        return False
    if not _starts_sentence(sentence, 0):
        return False  # a fragment whose start was a removed template (", 50.7% of ...")
    if len(_WORD.findall(sentence)) < 2:
        return False
    letters = sum(ch.isalpha() for ch in sentence)
    return letters >= 0.5 * len(sentence.replace(" ", ""))


def _clean_wiki_text(plain: str) -> list[Paragraph]:
    """Turn the output of ``gensim...filter_wiki`` into paragraphs of prose sentences.

    Returns:
        list of :class:`Paragraph`, in article order, each tagged with its section heading.
    """
    paragraphs: list[Paragraph] = []
    section = LEAD_SECTION
    for raw_line in plain.splitlines():
        line = raw_line.strip()
        if not line:
            continue
        heading = _HEADING.match(line)
        if heading and len(heading.group(1)) >= 2:
            section = _clean_inline(heading.group(2))
            if section.lower() in _STOP_SECTIONS:
                break  # everything after this is references and link lists
            continue
        if line.startswith(_NON_PROSE_START):
            continue
        # In this dump each prose paragraph is one line; the other lines of a block are image
        # captions and table cells, which the sentence filter below throws away.
        sentences = [s for s in split_sentences(_clean_inline(line)) if _is_prose_sentence(s)]
        if sentences and sum(len(s) for s in sentences) >= _MIN_PARAGRAPH_CHARS:
            paragraphs.append(Paragraph(section, tuple(sentences)))
    return paragraphs


def _keep_wiki_page(title: str, wikitext: str) -> bool:
    """False for redirects, disambiguation pages and lists, which are not running prose."""
    if wikitext.lstrip()[:9].upper() == "#REDIRECT":
        return False
    return "(disambiguation)" not in title.lower() and not title.startswith("List of")


# --------------------------------------------------------------------------------------------
# Parsing the sources
# --------------------------------------------------------------------------------------------


def _test_data_dir() -> pathlib.Path:
    """The folder of data files inside the installed gensim package."""
    try:
        import gensim
    except ImportError as err:  # pragma: no cover - gensim is a declared dependency
        raise ImportError(
            "course_lib.data reads its corpora from the gensim package, which is not installed. "
            "Install the course requirements: pip install -r requirements.txt"
        ) from err
    return pathlib.Path(os.path.dirname(gensim.__file__)) / "test" / "test_data"


def _source_path(filename: str) -> pathlib.Path:
    """Path of one of gensim's bundled data files, with a clear error if it is missing."""
    path = _test_data_dir() / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"expected the data file {filename} inside gensim's package at {path}, but it is "
            "missing. Reinstall gensim (pip install --force-reinstall gensim) to restore it."
        )
    return path


def _parse_wiki(path: pathlib.Path) -> list[Document]:
    """Parse the bundled Wikipedia dump into cleaned documents (about 2 s)."""
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    documents = []
    with bz2.open(path) as stream:
        for title, wikitext, _pageid in extract_pages(stream):
            if not _keep_wiki_page(title, wikitext):
                continue
            paragraphs = _clean_wiki_text(filter_wiki(wikitext))
            if sum(len(p.sentences) for p in paragraphs) >= _MIN_DOCUMENT_SENTENCES:
                documents.append(Document(title, tuple(paragraphs)))
    return documents


def _parse_lee(path: pathlib.Path) -> list[Document]:
    """Parse the Lee background corpus: one news article a line, one paragraph each."""
    documents = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            sentences = split_sentences(line)
            if sentences:
                documents.append(Document(f"lee-{number:04d}", (Paragraph("", tuple(sentences)),)))
    return documents


def _parse_corpus(name: str) -> list[Document]:
    """Parse corpus ``name`` from its source file (the slow path the disk cache avoids)."""
    path = _source_path(_CORPUS_FILES[name])
    return _parse_wiki(path) if name == "wiki" else _parse_lee(path)


def _title_hash(title: str) -> str:
    return hashlib.sha1(title.encode("utf-8")).hexdigest()


def _split_documents(documents: Iterable[Document]) -> CorpusSplits:
    """Cut documents 80/10/10 by count, in the order of the SHA-1 of their title.

    Why a hash: the order, and so each split, is the same on every machine and in every parse
    order, and it does not follow the alphabet (the excerpt's articles all start with "A"). Why cut
    by count rather than at fixed hash values: with about a hundred articles, fixed cuts gave
    76/14/6, a test split of 2.7% of the text; counts give the promised proportions. A document
    near a cut may move when other documents are added, which the course never does.
    Validation and test get at least one document each when there are three or more.
    """
    ordered = sorted(documents, key=lambda doc: (_title_hash(doc.title), doc.title))
    n = len(ordered)
    n_validation = max(round(n * _VALIDATION_FRACTION), 1 if n >= 3 else 0)
    n_test = max(n - round(n * _TRAIN_FRACTION) - n_validation, 1 if n >= 3 else 0)
    n_train = n - n_validation - n_test
    return CorpusSplits(
        tuple(ordered[:n_train]),
        tuple(ordered[n_train : n_train + n_validation]),
        tuple(ordered[n_train + n_validation :]),
    )


# --------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------

_MEMO: dict[tuple[str, str], CorpusSplits] = {}
_WARNED_CACHE_DIRS: set[str] = set()


def _default_cache_dir() -> pathlib.Path:
    override = os.environ.get("COURSE_CACHE_DIR")
    if override:
        return pathlib.Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return pathlib.Path(xdg).expanduser() / "course_lib"
    return pathlib.Path.home() / ".cache" / "course_lib"


def cache_dir() -> pathlib.Path:
    """The folder where course_lib caches parsed corpora and tokenizers.

    Returns:
        pathlib.Path: ``$COURSE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/course_lib``, else
        ``~/.cache/course_lib``. The folder is not created here; it is created on first write.
    """
    return _default_cache_dir()


def _resolve_cache_dir(value: str | os.PathLike[str] | None) -> pathlib.Path:
    if value is None:
        return _default_cache_dir()
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(
            "cache_dir must be a path (str or pathlib.Path) or None for the default "
            f"{_default_cache_dir()}; got {type(value).__name__}"
        )
    return pathlib.Path(value).expanduser()


def _warn_cache_once(directory: pathlib.Path, error: BaseException) -> None:
    key = str(directory)
    if key in _WARNED_CACHE_DIRS:
        return
    _WARNED_CACHE_DIRS.add(key)
    warnings.warn(
        f"course_lib cannot write its cache in {directory} ({error}); continuing without a disk "
        "cache, so corpora are parsed again in each new Python process. Set the environment "
        "variable COURSE_CACHE_DIR to a writable folder to fix this.",
        CacheWarning,
        stacklevel=4,
    )


_CODE_FINGERPRINT: list[str] = []


def _code_fingerprint() -> str:
    """SHA-1 of this module's source, computed once per process.

    Part of the cache key so that any edit to the cleaning code invalidates old caches, even if
    the editor forgets to bump PARSER_VERSION (a stale cache would silently serve old sentences).
    """
    if not _CODE_FINGERPRINT:
        try:
            _CODE_FINGERPRINT.append(hashlib.sha1(pathlib.Path(__file__).read_bytes()).hexdigest())
        except OSError:  # pragma: no cover - e.g. a zipped install; PARSER_VERSION still guards
            _CODE_FINGERPRINT.append("")
    return _CODE_FINGERPRINT[0]


def _cache_file(directory: pathlib.Path, name: str, source: pathlib.Path) -> pathlib.Path:
    """Cache file for corpus ``name``, keyed by parser version, this module's code and the
    source file's size and modification time: a change to any of them means a fresh parse."""
    stat = source.stat()
    key = (
        f"{name}|{PARSER_VERSION}|{_code_fingerprint()}|{source.name}|{stat.st_size}|"
        f"{stat.st_mtime_ns}"
    )
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]
    return directory / f"corpus-{name}-v{PARSER_VERSION}-{digest}.json.gz"


def _documents_to_json(name: str, documents: list[Document]) -> dict[str, Any]:
    return {
        "corpus": name,
        "parser_version": PARSER_VERSION,
        "documents": [
            [doc.title, [[p.section, list(p.sentences)] for p in doc.paragraphs]]
            for doc in documents
        ],
    }


def _documents_from_json(name: str, payload: Any) -> list[Document]:
    """Rebuild documents from a cache payload; raises ValueError/TypeError if it is malformed."""
    if (
        not isinstance(payload, dict)
        or payload.get("corpus") != name
        or payload.get("parser_version") != PARSER_VERSION
        or not isinstance(payload.get("documents"), list)
        or not payload["documents"]
    ):
        raise ValueError("not a cache of this corpus and parser version")
    return [
        Document(title, tuple(Paragraph(section, tuple(sentences)) for section, sentences in paras))
        for title, paras in payload["documents"]
    ]


def _read_cache(path: pathlib.Path, name: str) -> list[Document] | None:
    """Documents from the cache file, or None if it is missing, unreadable or corrupt."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return _documents_from_json(name, json.load(handle))
    except FileNotFoundError:
        return None
    except (OSError, EOFError, ValueError, TypeError, KeyError):
        # Corrupt, truncated or foreign: ignore it; the caller parses again and rewrites it.
        return None


def _write_cache(path: pathlib.Path, name: str, documents: list[Document]) -> None:
    """Write the cache atomically; warn once and go on if we cannot."""
    payload = json.dumps(_documents_to_json(name, documents)).encode("utf-8")

    def write(tmp: pathlib.Path) -> None:
        with gzip.GzipFile(tmp, mode="wb", compresslevel=6, mtime=0) as gz:
            gz.write(payload)

    try:
        # A reader in another process sees either the old file or the complete new one.
        atomic_write(path, write)
    except OSError as error:
        _warn_cache_once(path.parent, error)


def _check_corpus_name(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(
            f"corpus name must be a str, one of {list(CORPUS_NAMES)}; got {type(name).__name__} "
            f"{name!r}"
        )
    if name not in CORPUS_NAMES:
        raise ValueError(f"unknown corpus {name!r}; valid corpus names are {list(CORPUS_NAMES)}")
    return name


def load_corpus(
    name: str = "wiki", *, cache_dir: str | os.PathLike[str] | None = None
) -> CorpusSplits:
    """Load a course corpus, split by document into train / validation / test.

    Args:
        name: ``"wiki"`` (about 100 cleaned English Wikipedia articles, about 3 MB of text) or
            ``"lee"`` (300 short news articles).
        cache_dir: folder for the parsed-corpus cache; ``None`` uses :func:`cache_dir`. If it
            cannot be written, a :class:`CacheWarning` is shown once and loading goes on.

    Returns:
        :class:`CorpusSplits` with ``.train``, ``.validation`` and ``.test``, each a tuple of
        :class:`Document` (about 80% / 10% / 10% of the documents, chosen by a hash of the
        title, so the same on every machine).
    """
    name = _check_corpus_name(name)
    directory = _resolve_cache_dir(cache_dir)
    memo_key = (name, str(directory))
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    path = _cache_file(directory, name, _source_path(_CORPUS_FILES[name]))
    documents = _read_cache(path, name)
    if documents is None:
        documents = _parse_corpus(name)
        _write_cache(path, name, documents)
    splits = _split_documents(documents)
    _MEMO[memo_key] = splits
    return splits


def _check_documents(documents: Any, caller: str) -> tuple[Document, ...]:
    """Validate a collection of documents; raise a learner-friendly error if it is not one."""
    if isinstance(documents, CorpusSplits):
        raise TypeError(
            f"{caller}() needs the documents of one split, e.g. {caller}(corpus.train), "
            "but got the whole CorpusSplits"
        )
    if isinstance(documents, Document):
        documents = (documents,)
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Iterable):
        raise TypeError(
            f"{caller}() expects a tuple or list of Document (e.g. load_corpus('wiki').train), "
            f"got {type(documents).__name__}"
        )
    documents = tuple(documents)
    if not documents:
        raise ValueError(
            f"{caller}() got no documents: the split is empty. Pass a non-empty split such as "
            "load_corpus('wiki').train; check its size with len(...) or corpus.sizes."
        )
    for document in documents:
        if not isinstance(document, Document):
            raise TypeError(f"{caller}() expects Document objects, found {type(document).__name__}")
    return documents


def corpus_sentences(documents: Iterable[Document]) -> list[str]:
    """Flatten documents into their sentences.

    Args:
        documents: a non-empty tuple/list of :class:`Document` (e.g. ``corpus.train``).

    Returns:
        list of str, every sentence of every document, in order.
    """
    return [s for doc in _check_documents(documents, "corpus_sentences") for s in doc.sentences]


def corpus_text(documents: Iterable[Document]) -> str:
    """Join documents into one text.

    Args:
        documents: a non-empty tuple/list of :class:`Document` (e.g. ``corpus.train``).

    Returns:
        str: the documents' ``.text`` joined by a blank line (``"\\n\\n"``), so documents and
        paragraphs alike are separated by blank lines.
    """
    return "\n\n".join(doc.text for doc in _check_documents(documents, "corpus_text"))


# --------------------------------------------------------------------------------------------
# Evaluation sets
# --------------------------------------------------------------------------------------------


def load_polarity() -> list[tuple[str, int]]:
    """Load 200 labelled movie-review sentences (Pang & Lee sentence polarity, a sample).

    The text is lower-cased and tokenised by the original authors (``"it's so laddish ."``).
    A few reviews contain non-ASCII characters ("clichés", "—").

    Returns:
        list of ``(text, label)`` tuples: text a str, label an int, 1 = positive, 0 = negative
        (100 of each).
    """
    labels = {"__label__pos": 1, "__label__neg": 0}
    items: list[tuple[str, int]] = []
    path = _source_path(_POLARITY_FILE)
    # The original Pang & Lee release is Windows-1252, not UTF-8 ("clich\xe9s", "\x97" dashes);
    # reading it as cp1252 turns those bytes into "clichés" and "—".
    with open(path, encoding="cp1252") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            tag, _, text = line.strip().partition(" ")
            if tag not in labels or not text.strip():
                raise ValueError(
                    f"{path.name} line {number}: expected '__label__pos TEXT' or "
                    f"'__label__neg TEXT', got {line.strip()[:60]!r}"
                )
            items.append((text.strip(), labels[tag]))
    return items


def load_word_similarity(name: str) -> list[tuple[str, str, float]]:
    """Load a word-similarity benchmark: word pairs scored by people.

    Args:
        name: ``"wordsim353"`` (relatedness, scores 0-10) or ``"simlex999"`` (similarity proper,
            scores 0-10).

    Returns:
        list of ``(word1, word2, score)`` tuples (str, str, float), in file order: 353 pairs for
        WordSim353, 999 for SimLex-999.
    """
    if not isinstance(name, str):
        raise TypeError(
            f"name must be a str, one of {list(WORD_SIMILARITY_NAMES)}; got {type(name).__name__}"
        )
    if name not in WORD_SIMILARITY_NAMES:
        raise ValueError(
            f"unknown word-similarity set {name!r}; valid names are {list(WORD_SIMILARITY_NAMES)}"
        )
    path = _source_path(_WORD_SIMILARITY_FILES[name])
    pairs: list[tuple[str, str, float]] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            try:
                pairs.append((fields[0].strip(), fields[1].strip(), float(fields[2])))
            except (IndexError, ValueError) as error:
                raise ValueError(
                    f"{path.name} line {number}: expected 'word1<TAB>word2<TAB>score', "
                    f"got {line.strip()[:60]!r}"
                ) from error
    return pairs


def load_analogies() -> dict[str, list[tuple[str, str, str, str]]]:
    """Load the Google analogy questions (Mikolov et al., 2013): "a is to b as c is to d".

    The original case is kept (``"Athens", "Greece", "Baghdad", "Iraq"``); evaluations usually
    lower-case the words to match a lower-cased vocabulary. Sections whose name starts with
    ``gram`` are syntactic (``gram3-comparative``), the others semantic (``capital-world``).

    Returns:
        dict from section name (str, e.g. ``"capital-common-countries"``) to a list of
        ``(a, b, c, d)`` tuples of str, in file order: 14 sections, 19,544 questions.
    """
    path = _source_path(_ANALOGY_FILE)
    sections: dict[str, list[tuple[str, str, str, str]]] = {}
    current: list[tuple[str, str, str, str]] | None = None
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(":"):
                current = sections.setdefault(line[1:].strip(), [])
                continue
            words = line.split()
            if current is None or len(words) != 4:
                raise ValueError(
                    f"{path.name} line {number}: expected four words after a ': section' line, "
                    f"got {line[:60]!r}"
                )
            current.append((words[0], words[1], words[2], words[3]))
    return sections


# --------------------------------------------------------------------------------------------
# The data card
# --------------------------------------------------------------------------------------------

_SOURCES: tuple[dict[str, str], ...] = (
    {
        "dataset": "wiki",
        "file": _WIKI_FILE,
        "origin": "English Wikipedia articles (a dump excerpt), cleaned by course_lib",
        "licence": "CC BY-SA 3.0 / GFDL (Wikipedia text); shipped in gensim's test data",
    },
    {
        "dataset": "lee",
        "file": _LEE_FILE,
        "origin": "Lee, Pincombe & Welsh (2005) document-similarity corpus, ABC news articles",
        "licence": "no explicit licence; research data shipped in gensim's test data",
    },
    {
        "dataset": "polarity",
        "file": _POLARITY_FILE,
        "origin": "Pang & Lee (2005) sentence polarity v1.0 (Rotten Tomatoes), a 200-line sample",
        "licence": "no explicit licence; research data shipped in gensim's test data",
    },
    {
        "dataset": "wordsim353",
        "file": _WORD_SIMILARITY_FILES["wordsim353"],
        "origin": "WordSimilarity-353, Finkelstein et al. (2002)",
        "licence": "no explicit licence; free research data shipped in gensim's test data",
    },
    {
        "dataset": "simlex999",
        "file": _WORD_SIMILARITY_FILES["simlex999"],
        "origin": "SimLex-999, Hill, Reichart & Korhonen (2015)",
        "licence": "no explicit licence; free research data shipped in gensim's test data",
    },
    {
        "dataset": "analogies",
        "file": _ANALOGY_FILE,
        "origin": "Google analogy test set, Mikolov et al. (2013), from word2vec",
        "licence": "Apache 2.0 (word2vec); shipped in gensim's test data",
    },
)

_CORPUS_COLUMNS = (
    "dataset",
    "split",
    "documents",
    "paragraphs",
    "sentences",
    "words",
    "characters",
)
_EVALUATION_COLUMNS = ("dataset", "part", "items", "unit")
_SOURCE_COLUMNS = ("dataset", "file", "origin", "licence")


def _markdown_table(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    def fmt(value: Any) -> str:
        return f"{value:,}" if isinstance(value, int) else str(value)

    right = {c for c in columns if rows and all(isinstance(r.get(c), int) for r in rows)}
    cells = [[fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        padded = [
            v.rjust(w) if c in right else v.ljust(w)
            for v, w, c in zip(values, widths, columns, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [
        ("-" * (w - 1) + ":") if c in right else "-" * w
        for w, c in zip(widths, columns, strict=True)
    ]
    return "\n".join([line(list(columns)), line(rule)] + [line(r) for r in cells])


@dataclass(frozen=True)
class DataCard:
    """Counts, sources and licences of the course data.

    Attributes:
        rows: list of dicts, one per corpus split or evaluation-set part. Every row has
            ``"kind"`` (``"corpus"`` or ``"evaluation"``) and ``"dataset"``; corpus rows add
            ``"split"``, ``"documents"``, ``"paragraphs"``, ``"sentences"``, ``"words"``,
            ``"characters"``; evaluation rows add ``"part"``, ``"items"``, ``"unit"``.
        sources: list of dicts with ``"dataset"``, ``"file"``, ``"origin"``, ``"licence"``.

    ``str(card)`` and ``card.to_markdown()`` give markdown tables; notebooks render them.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, str]] = field(default_factory=list)

    def to_markdown(self) -> str:
        """The card as markdown text: a corpus table, an evaluation table, a sources table."""
        corpora = [r for r in self.rows if r.get("kind") == "corpus"]
        evaluation = [r for r in self.rows if r.get("kind") == "evaluation"]
        parts = [
            "### Corpora",
            "",
            _markdown_table(_CORPUS_COLUMNS, corpora),
            "",
            "Words are regex word tokens (`\\w+` with inner hyphens/apostrophes); characters "
            "count each document's text.",
            "",
            "### Evaluation sets",
            "",
            _markdown_table(_EVALUATION_COLUMNS, evaluation),
            "",
            "### Sources and licences",
            "",
            _markdown_table(_SOURCE_COLUMNS, self.sources),
            "",
            "All files ship inside the gensim package (`gensim/test/test_data`, gensim is "
            "LGPL-2.1); nothing is downloaded.",
        ]
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.to_markdown()

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def _corpus_row(name: str, split: str, documents: tuple[Document, ...]) -> dict[str, Any]:
    return {
        "kind": "corpus",
        "dataset": name,
        "split": split,
        "documents": len(documents),
        "paragraphs": sum(len(doc.paragraphs) for doc in documents),
        "sentences": sum(len(doc.sentences) for doc in documents),
        "words": sum(len(_WORD.findall(doc.text)) for doc in documents),
        "characters": sum(len(doc.text) for doc in documents),
    }


def _evaluation_row(dataset: str, part: str, items: int, unit: str) -> dict[str, Any]:
    return {"kind": "evaluation", "dataset": dataset, "part": part, "items": items, "unit": unit}


def data_card(cache_dir: str | os.PathLike[str] | None = None) -> DataCard:
    """Describe every offline data set: sizes per corpus and split, evaluation sets, licences.

    Args:
        cache_dir: passed to :func:`load_corpus` (``None``: the default cache folder).

    Returns:
        :class:`DataCard`; ``print(data_card())`` shows it as markdown tables. Deterministic:
        the same numbers on every machine, no timings and no paths.
    """
    rows: list[dict[str, Any]] = []
    for name in CORPUS_NAMES:
        splits = load_corpus(name, cache_dir=cache_dir)
        for split in SPLIT_NAMES:
            rows.append(_corpus_row(name, split, splits.split(split)))
        rows.append(_corpus_row(name, "all", tuple(splits)))

    polarity = load_polarity()
    positives = sum(label for _, label in polarity)
    rows.append(_evaluation_row("polarity", "positive (1)", positives, "sentences"))
    rows.append(_evaluation_row("polarity", "negative (0)", len(polarity) - positives, "sentences"))
    for name in WORD_SIMILARITY_NAMES:
        rows.append(_evaluation_row(name, "all", len(load_word_similarity(name)), "word pairs"))
    analogies = load_analogies()
    syntactic = {k: v for k, v in analogies.items() if k.startswith("gram")}
    semantic = {k: v for k, v in analogies.items() if not k.startswith("gram")}
    for part, sections in (("semantic", semantic), ("syntactic", syntactic), ("all", analogies)):
        questions = sum(len(v) for v in sections.values())
        unit = f"questions in {len(sections)} sections"
        rows.append(_evaluation_row("analogies", part, questions, unit))
    return DataCard(rows=rows, sources=[dict(source) for source in _SOURCES])
