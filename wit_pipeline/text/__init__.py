"""Ingest's text work, one module per step.

- `normalise`: caption normalisation (HTML unescape, whitespace, control characters).
- `langid`: fastText language identification, batched, the model loaded once per process.
- `matching`: query-list (metadata) substring matching with an Aho-Corasick automaton.
- `metadata`: the query list (`wit metadata build`): WordNet lemmas, Wikipedia n-grams, titles.
- `processor`: `CaptionProcessor`, the steps above (and the filters) applied to one record.
"""
