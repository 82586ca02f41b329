"""A model for the classify benchmarks, fitted so it always matches the current code.

``escmon train`` also cross-validates and scores the dev set (seconds the bench does not
need); here the one factory, :func:`pipeline.classify.build_pipeline`, is fitted on the
same seed labels and saved under the name :func:`pipeline.classify.load_model` expects.
When ``models/`` ships the model of these very labels and parameters (a release build,
whose version is the same), that file is used as it is, temperature included. Otherwise
the fitted file is cached in the system temporary folder under its model version (a hash
of the training rows, the parameters and the lexicon), the scikit-learn version and a hash
of the model code (how it is saved can change while the version does not), so reruns of
the bench and of its test skip the fit.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(tempfile.gettempdir()) / "escmon-bench-models"


def fit_model(models_dir: Path, seeds_dir: Path = REPO / "seeds", family: str = "en") -> str:
    """Put a model fitted on ``seeds_dir`` labels into ``models_dir``; return its version.

    ``family="multi"``: the multilingual model, fitted on ``seeds_dir/languages``. The
    shipped release of these labels (with its second opinion) is used when ``models/``
    holds it; a model fitted here is the fast one alone: embedding every training row for
    a second opinion would take a quarter of an hour.
    """
    import sklearn
    import skops.io as sio

    from pipeline.classify import (
        MODEL_NAME,
        MODEL_SERIES,
        MULTI_MODEL_NAME,
        MULTI_SERIES,
        build_pipeline,
        fit_weighted,
        load_training_data,
        model_version,
        training_column,
        translation_weights,
    )
    from pipeline.language import family_labels_dir

    multi = family == "multi"
    data_dir = family_labels_dir(seeds_dir, family)
    rows = load_training_data(data_dir)
    # As train_multilingual fits: translations weigh less (the English data has none).
    weights = translation_weights([bool(t) for t in training_column(data_dir, "translated_from")])
    series = MULTI_SERIES if multi else MODEL_SERIES
    models_dir.mkdir(parents=True, exist_ok=True)
    for second_opinion in (True, False):
        pipeline = build_pipeline(random_state=0, family=family, second_opinion=second_opinion)
        version = model_version(rows, pipeline, series, weights)
        name = f"{MULTI_MODEL_NAME if multi else MODEL_NAME}-{version}.skops"
        shipped = REPO / "models" / name
        if shipped.is_file():  # the release of these very labels, its temperature fitted
            shutil.copyfile(shipped, models_dir / name)
            return version
    code = hashlib.sha256(
        b"".join(
            (REPO / "pipeline" / module).read_bytes() for module in ("classify.py", "lexicon.py")
        )
    ).hexdigest()[:12]
    cached = CACHE / f"sklearn-{sklearn.__version__}-{code}" / name
    if not cached.is_file():
        fit_weighted(pipeline, [text for text, _ in rows], [label for _, label in rows], weights)
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f"{name}.{uuid.uuid4().hex}.partial")
        sio.dump(pipeline, partial)
        partial.replace(cached)  # atomic: a parallel run never reads half a file
    shutil.copyfile(cached, models_dir / name)
    return version
