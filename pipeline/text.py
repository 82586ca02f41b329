"""Text normalisation and sentence splitting for news text (pure, no I/O).

``split_sentences`` is a hot path: one precompiled regex finds every candidate boundary
(a line break, or terminal punctuation followed by whitespace) in a single C-level scan,
and Python only looks at the few characters around each candidate. Rules, in order:

* a line break ends a sentence, so headings, bylines and datelines stand alone; only a
  single line break followed by a lower-case letter is read as a hard wrap and kept;
* ``!``/``?`` and ellipses end a sentence unless the next word starts in lower case (an
  ellipsis with a space before it, " … ", marks an omission and never ends one);
* a single ``.`` ends a sentence unless the next word starts in lower case, or the word
  before it is a title (``Dr.``, ``Gen.``), a number abbreviation before a digit
  (``No. 10``, ``Feb. 7``), or an ambiguous abbreviation/initial (``U.S.``, ``J.``,
  ``Inc.``, ``etc.``) that is not followed by a common sentence-opening word;
* closing quotes and brackets after the punctuation stay with the sentence.

Offsets index the original string: ``text[s.start:s.end] == s.text`` always holds.
"""

from __future__ import annotations

import re
from html import unescape
from typing import NamedTuple

from lxml import etree
from lxml import html as lxml_html

__all__ = ["Sentence", "clean_text", "html_to_text", "normalize_whitespace", "split_sentences"]


class Sentence(NamedTuple):
    start: int  # char offset into the input text
    end: int  # exclusive; input[start:end] == text (stripped of surrounding whitespace)
    text: str


# ---------------------------------------------------------------------------
# Sentence splitting
# ---------------------------------------------------------------------------

_LB = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines() splits on
_CLOSE = "\"'”’»›)\\]}」』】"
_OPEN = "\"'“‘„‚«‹(\\[{¿¡「『【"
_OPEN_CHARS = _OPEN.replace("\\", "")

_CANDIDATE = re.compile(
    rf"(?P<lb>[{_LB}]\s*)"
    rf"|(?P<cjk>[。！？]+[{_CLOSE}]*)\s*"
    rf"|(?P<p>\.(?: ?\.){{2,}}|[.!?…‽]+)(?P<c>[{_CLOSE}]*)(?P<ws>[^\S{_LB}]+)"
)
_NEXT_WORD = re.compile(rf"[{_OPEN}]*(\w*)")
_INITIALS = re.compile(r"(?:[^\W\d_]\.)*[^\W\d_]")  # J  U.S  J.R.R  a.m  e.g
_TOKEN_TAIL = re.compile(r"[^-/–—(\[“«„\"]*\Z")
_LIST_MARK = re.compile(r"\d{1,3}|[ivxlcdm]{1,6}|[IVXLCDM]{1,6}")


def _words(spaced: str) -> frozenset[str]:
    return frozenset(spaced.split())


# Titles and Latin abbreviations: a following word never starts a new sentence.
_NEVER = _words(
    "mr mrs ms messrs mme mlle dr prof gen gens lt col sgt capt cpt cpl pvt maj adm cmdr cdr "
    "brig lieut gov sen sens rep reps rev hon pres supt insp det atty amb fr "
    "e.g i.e vs v cf viz approx incl esp resp ca"
)
# Abbreviations used before numbers: "No. 10", "Art. 5", "Feb. 7".
_BEFORE_NUMBER = _words(
    "no nos nr art arts vol vols fig figs p pp para ch sec op tel ext "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
)
# Abbreviations that may end a sentence: split only before a common sentence opener.
_WEAK = _words(
    "inc corp co ltd plc llc bros jr sr st mt ft ave blvd rd dept univ assn est etc al "
    "ph.d jan feb mar apr jun jul aug sep sept oct nov dec"
)
# Closed-class words that typically open a sentence; proper names are not here, so
# "U.S. President Trump" and "Andrzej J. Duda" stay whole, while "the U.S. The ..." splits.
_STARTERS = _words(
    """A An The This That These Those It Its He She They We I You His Her Their Our My Your
    There Here But And Or Nor So Yet If When Whenever While Whereas After Before As At In On
    Onto For With Without Within By From To Of Into Over Under Until Upon During Against
    Among Between Through Throughout Not No None Some Many Most Much Few All Any Both Each
    Every Either Neither Other Others Another Such Still Also However Meanwhile Moreover
    Furthermore Nevertheless Nonetheless Instead Indeed Now Then Thus Therefore Hence
    Although Though Since Because Despite Even Only Just More Less What Who Whom Whose Why
    How Where Which Whether Last Next First Second Third Finally Later Earlier Today
    Yesterday Tomorrow Yes One Two Three Four Five Six Seven Eight Nine Ten"""
)


def split_sentences(text: str) -> list[Sentence]:
    """Split ``text`` into sentences with exact character offsets into ``text``."""
    out: list[Sentence] = []
    pos = len(text) - len(text.lstrip())  # start of the current sentence
    for m in _CANDIDATE.finditer(text, pos):
        kind = m.lastgroup
        if kind == "lb":
            if _continues_line(text, m):
                continue
            seg = text[pos : m.start()].rstrip()
            if seg:
                out.append(Sentence(pos, pos + len(seg), seg))
            pos = m.end()
        elif kind == "cjk":
            end = m.end("cjk")
            if end > pos:
                out.append(Sentence(pos, end, text[pos:end]))
            pos = m.end()
        elif m.start() > pos and _ends_sentence(text, m, pos):
            end = m.end("c")
            out.append(Sentence(pos, end, text[pos:end]))
            pos = m.end()
    seg = text[pos:].rstrip()
    if seg:
        out.append(Sentence(pos, pos + len(seg), seg))
    return out


def _continues_line(text: str, m: re.Match[str]) -> bool:
    """A single line break followed by a lower-case letter is a hard wrap, not a boundary."""
    after = m.end()
    if after >= len(text) or not text[after].islower():
        return False
    breaks = m.group()
    return sum(breaks.count(c) for c in _LB) - breaks.count("\r\n") == 1


def _ends_sentence(text: str, m: re.Match[str], pos: int) -> bool:
    """Decide whether terminal punctuation ``m`` (followed by spaces) ends a sentence."""
    after = m.end()
    if after >= len(text) or text[after] in _LB:
        return True
    word = _NEXT_WORD.match(text, after).group(1)  # type: ignore[union-attr]
    first = word[:1]
    if first.islower():
        return False
    if not word and text[after] in ".…—–":
        return False  # a trailing "..." or a dash-led continuation stays with the sentence
    punct = m.group("p")
    start = m.start()
    spaced = text[start - 1].isspace()
    if punct != ".":  # ?, !, ellipsis; " … " between words marks an omission
        return not spaced or "?" in punct or "!" in punct
    if spaced:
        return True
    chunk = text[max(pos, start - 40) : start].rsplit(None, 1)
    token = chunk[-1].lstrip(_OPEN_CHARS) if chunk else ""
    if not token.isalpha():  # "7-Feb" -> "Feb", "(Gen" -> "Gen"; "U.S" and "3" stay
        token = _TOKEN_TAIL.search(token).group()  # type: ignore[union-attr]
    key = token.lower()
    if key in _NEVER:
        return False
    if start - len(token) == pos and _LIST_MARK.fullmatch(token):
        return False  # "1. The first point" or "iv. ..." opening a list item
    if first.isdigit() and key in _BEFORE_NUMBER:
        return False
    if key in _WEAK or _INITIALS.fullmatch(token):
        return word in _STARTERS
    return True


# ---------------------------------------------------------------------------
# Whitespace and HTML
# ---------------------------------------------------------------------------

_WS_TO_FIX = re.compile(r"\s{2,}|[^\S ]")  # runs, or any whitespace that is not a space
_HWS_TO_FIX = re.compile(r"[^\S\n]{2,}|[^\S\n ]")  # the same, sparing newlines
_NEWLINE_RUN = re.compile(r" ?\n[\n ]*")
_TAG_HINT = re.compile(r"<[A-Za-z!/?]")
_TAG = re.compile(r"<[^>]*>?")

_PARA, _LINE, _BR = "\ue000", "\ue001", "\ue002"  # block markers (XML-safe private use)
_MARKERS = _PARA + _LINE + _BR
_MARKER_RUN = re.compile(f" *[{_MARKERS}][{_MARKERS} ]*")
_NOT_XML = re.compile(rf"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff{_MARKERS}]")
_DROP_TAGS = ("script", "style", "noscript", "template", "iframe", "object", "embed")
_PARA_TAGS = _words(
    "p h1 h2 h3 h4 h5 h6 blockquote pre ul ol dl table section article header footer aside "
    "nav figure hr address main form fieldset details center"
)
_LINE_TAGS = _words("div li dt dd tr td th caption figcaption summary legend")
_BLOCK_TAGS = tuple(_PARA_TAGS | _LINE_TAGS | {"br"})


# Control characters and terminal escape sequences (ECMA-48) in text from the network.
# A string sequence (OSC, DCS, SOS, PM, APC) goes whole only when it is terminated (BEL or
# ST) within 512 characters; otherwise only its introducer goes, so no text is swallowed.
_ESCAPE_SEQ = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"  # CSI: ESC [ params intermediates final
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]{0,512}(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[ -/]*[0-~]?"  # any other escape: ESC, intermediates, final
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_SPACE = dict.fromkeys(map(ord, "\x0b\x0c\x1c\x1d\x1e\x1f\x85"), " ")  # whitespace


def _drop_control(m: re.Match[str]) -> str:
    return _CONTROL_SPACE.get(ord(m.group()), "")


def clean_text(text: str) -> str:
    """``text`` without control characters or terminal escape sequences; the rest is kept.

    Removes C0 controls except tab and newline (a CR becomes a newline), DEL, C1 controls,
    and whole ANSI/terminal sequences (``ESC[31m``, ``ESC]0;title BEL``), so stored feed
    text holds no NUL (PostgreSQL refuses it) and can never drive a terminal. Control
    characters that are whitespace (VT, FF, the separators, NEL) become a space.
    """
    if not _CONTROL.search(text):
        return text
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub(_drop_control, _ESCAPE_SEQ.sub("", text))


def normalize_whitespace(text: str) -> str:
    """Collapse every run of whitespace (newlines included) to one space, and strip.

    Control characters and escape sequences are removed first (:func:`clean_text`).
    """
    return _WS_TO_FIX.sub(" ", clean_text(text)).strip()


def html_to_text(html: str) -> str:
    """Visible text of an HTML fragment, one block per line, at most one blank line between.

    Text without tags is treated as plain text: entities decoded, line structure kept.
    Malformed markup never raises; as a last resort tags are stripped by regex.
    Control characters and terminal escape sequences are removed (:func:`clean_text`),
    both as written and as decoded from character references.
    """
    if not html:
        return ""
    text = _html_to_text(clean_text(html))
    cleaned = clean_text(text)  # controls decoded from character references (&#27;)
    return text if cleaned is text else _normalize_lines(cleaned)


def _html_to_text(html: str) -> str:
    if not _TAG_HINT.search(html):
        return _normalize_lines(unescape(html) if "&" in html else html)
    if _NOT_XML.search(html):  # lxml refuses these; our markers must not pre-exist
        html = _NOT_XML.sub(" ", html)
    try:
        text = _visible_text(lxml_html.document_fromstring(html))
    except (etree.ParserError, ValueError):  # empty document, encoding declaration
        return _normalize_lines(unescape(_TAG.sub(" ", html)))
    text = _WS_TO_FIX.sub(" ", text)  # newlines in HTML source are just spaces
    return _MARKER_RUN.sub(_marker_break, text).strip()


def _visible_text(root: lxml_html.HtmlElement) -> str:
    """Text content without script/style, with a marker around every block element."""
    for element in list(root.iter(*_DROP_TAGS)):
        element.drop_tree()  # keeps the element's tail text
    for element in root.iter(*_BLOCK_TAGS):
        tag = element.tag
        if tag == "br":
            element.tail = _BR + (element.tail or "")
            continue
        marker = _PARA if tag in _PARA_TAGS else _LINE
        element.text = marker + (element.text or "")
        element.tail = marker + (element.tail or "")
    return root.text_content()


def _marker_break(m: re.Match[str]) -> str:
    run = m.group()
    return "\n\n" if _PARA in run or run.count(_BR) > 1 else "\n"


def _normalize_lines(text: str) -> str:
    """Collapse spaces/tabs, trim every line, keep at most one blank line; strip."""
    if "\r" in text or "\u2028" in text or "\u2029" in text:
        text = text.replace("\r\n", "\n").translate({0x0D: "\n", 0x2028: "\n", 0x2029: "\n"})
    text = _HWS_TO_FIX.sub(" ", text)
    if "\n" in text:
        text = _NEWLINE_RUN.sub(_newline_break, text)
    return text.strip()


def _newline_break(m: re.Match[str]) -> str:
    return "\n\n" if m.group().count("\n") > 1 else "\n"
