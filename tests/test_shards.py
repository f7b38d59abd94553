"""Shard tars: wit's own USTAR writer gives exactly the bytes of Python's tarfile."""

from __future__ import annotations

import io
import random
import tarfile

import pytest

from wit_pipeline.shards import TarSampleWriter, iter_tar


def _tarfile_bytes(samples: list[tuple[str, dict[str, bytes]]]) -> bytes:
    """What TarSampleWriter wrote through tarfile in USTAR stream mode before it built headers itself."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w|", format=tarfile.USTAR_FORMAT) as tar:
        for key, members in samples:
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mtime, info.mode, info.uname, info.gname = len(data), 0, 0o644, "", ""
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _samples(rng: random.Random, count: int) -> list[tuple[str, dict[str, bytes]]]:
    keys = [f"{rng.getrandbits(64):016x}" for _ in range(count)]
    keys[1] = "k" * 95  # "<key>.json" fills the 100 bytes of the USTAR name field
    keys[2] = "clé-ünïcode"
    sizes = [0, 1, 511, 512, 513, 10240, 70000]
    return [
        (key, {"jpg": rng.randbytes(rng.choice(sizes)), "txt": key.encode(), "json": b'{"uid": "%s"}' % key.encode()})
        for key in keys
    ]


@pytest.mark.parametrize("flush_bytes", [TarSampleWriter.flush_bytes, 1000])
def test_shard_tars_equal_tarfiles_ustar_stream_bytes(tmp_path, monkeypatch, flush_bytes):
    monkeypatch.setattr(TarSampleWriter, "flush_bytes", flush_bytes)  # 1000: a flush after every sample
    rng = random.Random(7)
    for count in (0, 3, 25):
        samples = _samples(rng, count) if count else []
        path = tmp_path / f"{count}.tar"
        with TarSampleWriter(str(path)) as writer:
            for key, members in samples:
                writer.write(key, members)
        assert path.read_bytes() == _tarfile_bytes(samples)
        assert [(key, sample) for key, sample in iter_tar(str(path))] == samples
