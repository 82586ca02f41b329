"""CAMEO cue features: scikit-learn conventions, negation/hedges, explain, the shipped TSV."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from pipeline.lexicon import (
    LEXICON_PATH,
    POLARITIES,
    CueFeatures,
    explain,
    feature_names,
    load_lexicon,
    sentence_features,
    tokenize,
)

# Checks that feed random numeric matrices: CueFeatures reads sentences, so it refuses them.
_NUMERIC_INPUT_CHECKS = (
    "check_complex_data",
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_dtype_object",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimator_sparse_tag",
    "check_estimators_dtypes",
    "check_estimators_empty_data_messages",
    "check_estimators_fit_returns_self",
    "check_estimators_nan_inf",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_fit2d_1feature",
    "check_fit2d_1sample",
    "check_fit2d_predict1d",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_fit_score_takes_y",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_pipeline_consistency",
    "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input",
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_preserve_dtypes",
)


def _expected_failures(estimator) -> dict[str, str]:
    return {
        name: "feeds numeric arrays; CueFeatures takes sentences (one text column)"
        for name in _NUMERIC_INPUT_CHECKS
    }


@parametrize_with_checks([CueFeatures()], expected_failed_checks=_expected_failures)
def test_sklearn_conventions(estimator, check):
    check(estimator)


def _states(text: str) -> dict[str, str]:
    return {m.text: m.state for m in explain(text)}


def _polarities(text: str) -> dict[str, str]:
    return {m.text: m.polarity for m in explain(text)}


def _feature(text: str, name: str) -> float:
    return float(sentence_features(text)[feature_names().index(name)])


def test_tokenize_splits_contractions_and_lowercases():
    assert tokenize("Minsk WON'T send troops.") == ["minsk", "wo", "n't", "send", "troops", "."]


def test_escalation_cues_with_cameo_codes():
    cues = explain("Israeli airstrikes killed 20 people in Gaza overnight.")
    first = cues[0]
    assert (first.text, first.code, first.root, first.polarity) == (
        "airstrikes",
        "195",
        "19",
        "escalation",
    )
    assert first.state == "affirmed"
    assert first.source.startswith("supplement:")


def test_pattern_overrides_verb_code():
    # "withdraw" alone is a yield (08); leaving a treaty is reducing relations (16).
    assert _polarities("Russia withdrew its troops from the border.")["withdrew"] == "deescalation"
    assert _polarities("The United States withdrew from the INF treaty.")["withdrew from"] == (
        "escalation"
    )


def test_negated_escalation_is_restraint():
    assert "will not send" in _polarities("Belarus will not send troops to Ukraine.")
    text = "The troops will not take part in combat operations, officials say."
    assert _states(text)["combat operations"] == "negated"
    assert _feature(text, "restraint") > 0


def test_negated_deescalation_is_not_affirmed():
    text = "Moscow refused to withdraw its forces from the region."
    assert _states(text)["withdraw"] == "negated"
    assert _feature(text, "deescalation_affirmed") == 0


def test_hedged_move_is_hypothetical_but_threat_stays_threat():
    assert _states("Poland could close the border next month.")["close"] == "hypothetical"
    assert _states("Minsk threatened to expel Ukrainian diplomats.")["expel"] == "threat"
    assert _polarities("Minsk threatened to expel Ukrainian diplomats.")["threatened"] == (
        "escalation"
    )


def test_stopped_moves():
    assert _states("The army halted its offensive near Kharkiv.")["offensive"] == "stopped"
    text = "Talks between Armenia and Azerbaijan collapsed on Tuesday."
    assert _polarities(text)["collapsed"] == "escalation"
    assert _states("Peace talks broke down after a week.")["peace talks"] == "stopped"
    assert _states("First day of peace talks ends in Geneva")["peace talks"] == "affirmed"
    # a confidence-building measure cut is a breakdown (shared/FINDINGS.md)
    assert _states("The armistice was over and the hotline was cut.")["hotline"] == "stopped"


def test_closures_match_whatever_the_wording():
    """Closing a border counts however it is worded: "sealed its frontier", "barred ...
    from the crossing" (FINDINGS.md: "closed its frontier" read as neutral)."""
    for text, cue in [
        ("Poland sealed its frontier with Belarus.", "sealed"),
        ("Hungary barred Ukrainian trucks from the frontier crossing.", "barred"),
        ("Lithuania shut two crossings on the Belarusian border.", "shut"),
    ]:
        assert _polarities(text)[cue] == "escalation" and _states(text)[cue] == "affirmed"
    assert _polarities("Police blocked the road to the stadium.").get("blocked") != "escalation"


def test_names_containing_cue_words_are_ignored():
    assert "states" not in _polarities("The United States said nothing.")
    assert not explain("Amnesty International published a report on Monday.")


def test_moves_are_split_by_who_the_sentence_is_about():
    rivals = "Talks between Russia and Ukraine resumed."
    friends = "Talks between Pakistan and Austria resumed."
    domestic = "Talks between the union and the employers resumed."
    assert _feature(rivals, "deescalation_rival") > 0
    assert _feature(friends, "deescalation_rival") == 0
    assert _feature(friends, "deescalation_party") > 0  # Pakistan is party to a rivalry
    assert _feature(domestic, "deescalation_unanchored") > 0


def test_transform_is_sparse_bounded_and_named():
    cf = CueFeatures().fit(["x"])
    X = cf.transform(["Hamas released three hostages under the ceasefire deal.", "Comments."])
    assert X.shape == (2, len(feature_names()))
    assert X.min() >= -1 and X.max() <= 1
    names = cf.get_feature_names_out()
    assert list(names) == feature_names() and len(set(names)) == len(names)
    assert any(n.startswith("root08_") for n in names)
    assert all(f"{p}_affirmed" in names for p in POLARITIES)


def test_text_column_equals_list_and_bad_input_is_refused():
    cf = CueFeatures().fit(["x"])
    texts = ["Serbia withdrew troops from the border.", "Oil prices rose."]
    column = np.asarray(texts, dtype=object).reshape(-1, 1)
    assert (cf.transform(column) != cf.transform(texts)).nnz == 0
    with pytest.raises(ValueError, match="single string"):
        cf.transform("one sentence")
    with pytest.raises(ValueError, match="strings"):
        cf.transform([1.0, 2.0])


def test_fitted_transformer_does_not_need_the_lexicon_file(tmp_path: Path):
    copy = tmp_path / "lexicon.tsv"
    shutil.copy(LEXICON_PATH, copy)
    cf = CueFeatures(lexicon_path=str(copy)).fit(["x"])
    copy.unlink()
    assert cf.transform(["Russian drones struck Odesa."]).nnz > 0
    assert clone(cf).get_params() == {"lexicon_path": str(copy)}


def test_shipped_lexicon_loads_from_the_package():
    assert LEXICON_PATH.parent.name == "data" and LEXICON_PATH.is_file()
    lex = load_lexicon()
    assert lex.n_rows > 5000
    assert lex.dyads and lex.parties
    header = LEXICON_PATH.read_text(encoding="utf-8").splitlines()[0].split("\t")
    assert header == ["kind", "cue", "context", "code", "root", "polarity", "block", "source"]


def test_shipped_lexicon_rows_are_well_formed():
    allowed = {
        *POLARITIES,
        "none",
        "actor_country",
        "actor_military",
        "actor_armed_group",
        "actor_state",
        "actor_justice",
        "actor_economy",
        "actor_civil",
    }
    kinds = set()
    for line in LEXICON_PATH.read_text(encoding="utf-8").splitlines()[1:]:
        kind, _cue, _ctx, code, root, polarity, _block, source = line.split("\t")
        kinds.add(kind)
        assert polarity in allowed, line
        if kind == "supplement":
            assert source.startswith("supplement: ") and len(source) > 15, line
        if code and kind not in {"actor", "dyad"}:
            assert code.isdigit() and root == code[:2], line
    assert {"verb", "pattern", "noun", "supplement", "synset", "actor", "dyad"} <= kinds


_FIXTURE = Path(__file__).parent / "data" / "lexicon_features.npz"


def test_transform_matches_the_recorded_features():
    # tests/data/lexicon_features.npz: ~200 real feed and seed sentences (chosen to cover every
    # feature column that fires on them) with the features of the code before the matchers were
    # optimized. Any change here changes what the shipped model sees: regenerate deliberately.
    data = np.load(_FIXTURE)
    texts, expected = data["texts"].tolist(), data["features"]
    assert len(texts) >= 200 and expected.shape == (len(texts), len(feature_names()))
    got = CueFeatures().fit([]).transform(texts).toarray()
    assert got.dtype == expected.dtype
    diff = np.flatnonzero((got != expected).any(axis=1))
    assert not diff.size, [(texts[i], np.flatnonzero(got[i] != expected[i])) for i in diff[:5]]
    assert np.array_equal(got, expected)
    rows = np.vstack([sentence_features(t) for t in texts[:50]])
    assert np.array_equal(rows, expected[:50])


def test_matches_are_greedy_and_do_not_overlap():
    from itertools import pairwise

    from pipeline.lexicon import match, match_actors

    lex = load_lexicon()
    text = (
        "The United States and China did not agree to lift sanctions, while the Russian "
        "armed forces struck Kyiv and Hamas threatened to abandon ceasefire talks."
    )
    tokens = tokenize(text)
    hits, actors = match(tokens, lex), match_actors(tokens, lex)
    assert hits and actors
    assert all(a.end <= b.start for a, b in pairwise(hits))
    assert all(a[1] <= b[0] for a, b in pairwise(actors))
    assert [" ".join(tokens[h.start : h.end]) for h in hits] == [m.text for m in explain(text)]
