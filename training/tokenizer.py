"""Caption tokenizer: a byte-level BPE trained on the shards' captions, or CLIP's own vocabulary.

Both are `tokenizers.Tokenizer` objects serialised as JSON, so a checkpoint carries its tokenizer
as a string. A caption becomes `[start] tokens [end] 0 0 ...` of `context_length` ids; the text
tower pools its features at the end-of-text position, as CLIP does.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

SOT = "<|startoftext|>"
EOT = "<|endoftext|>"
# CLIP's word split (letters, single digits, runs of other symbols, English contractions).
CLIP_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def _normalizer():
    # CLIP lowercases and squeezes whitespace; NFC keeps composed and decomposed accents equal.
    return normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip(), normalizers.Lowercase()]
    )


def train_bpe(captions: Iterable[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE with `vocab_size` entries (the 256 bytes and the two specials included)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = _normalizer()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[SOT, EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(captions, trainer=trainer)
    return tokenizer


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's and CLIP's map from the 256 bytes to printable characters."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def load_clip_vocab(path: str) -> Tokenizer:
    """CLIP's tokenizer from its merges file (`bpe_simple_vocab_16e6.txt.gz`, gzipped or plain).

    The vocabulary is built exactly as CLIP's `SimpleTokenizer` builds it: the 256 byte symbols,
    the same with the end-of-word marker `</w>`, one entry per merge, then start and end of text.
    With the real file that gives CLIP's 49,408 ids.
    """
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    # The first line is a version header; CLIP keeps 49152 - 256 - 2 merges.
    merges = [_merge(line) for line in lines[1 : 49152 - 256 - 2 + 1] if line.strip()]
    symbols = list(bytes_to_unicode().values())
    vocab_list = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [SOT, EOT]
    vocab = {token: i for i, token in enumerate(vocab_list)}
    tokenizer = Tokenizer(
        models.BPE(vocab=vocab, merges=merges, end_of_word_suffix="</w>", continuing_subword_prefix="")
    )
    tokenizer.normalizer = _normalizer()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CLIP_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([SOT, EOT])
    return tokenizer


def _merge(line: str) -> tuple[str, str]:
    """One merge of CLIP's merges file: two symbols separated by a space."""
    first, second = line.split()
    return first, second


class CaptionTokenizer:
    """Turns captions into fixed-length id tensors; pickles as its JSON, so workers can hold one."""

    def __init__(self, tokenizer_json: str, context_length: int = 77):
        self.tokenizer_json = tokenizer_json
        self.context_length = context_length
        self._tokenizer = Tokenizer.from_str(tokenizer_json)
        sot_id, eot_id = self._tokenizer.token_to_id(SOT), self._tokenizer.token_to_id(EOT)
        if sot_id is None or eot_id is None:
            raise ValueError(f"tokenizer has no {SOT} or {EOT} token")
        self.sot_id, self.eot_id = sot_id, eot_id

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size()

    def __getstate__(self):
        return {"tokenizer_json": self.tokenizer_json, "context_length": self.context_length}

    def __setstate__(self, state):
        self.__init__(state["tokenizer_json"], state["context_length"])

    def __call__(self, captions: list[str]) -> torch.Tensor:
        """A `[len(captions), context_length]` long tensor; long captions are cut, keeping the end token."""
        out = torch.zeros(len(captions), self.context_length, dtype=torch.long)
        keep = self.context_length - 2
        for row, encoding in enumerate(self._tokenizer.encode_batch(captions, add_special_tokens=False)):
            ids = [self.sot_id] + encoding.ids[:keep] + [self.eot_id]
            out[row, : len(ids)] = torch.tensor(ids)
        return out

    def decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True)
