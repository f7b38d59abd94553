"""The bundled CLIP trainer on tiny real shards (COCO images and captions), CPU only."""

from __future__ import annotations

import gzip
import json
import math
import os
import socket

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # loader workers fork after BPE training

torch = pytest.importorskip("torch")
pytest.importorskip("tokenizers")

from helpers.training import coco_pairs  # noqa: E402

from training.config import ConfigError, ModelConfig, config_from_json, resolve_config  # noqa: E402
from training.data import StreamSpec, stream_batches  # noqa: E402
from training.loss import clip_loss  # noqa: E402
from training.model import CLIP, LOGIT_SCALE_INIT, LOGIT_SCALE_MAX  # noqa: E402
from training.tokenizer import CaptionTokenizer, load_clip_vocab, train_bpe  # noqa: E402
from training.train import DistInfo, make_optimizer, train, train_step  # noqa: E402
from wit_pipeline.shards import write_pair_shards  # noqa: E402

# A model small enough that a step takes milliseconds on one CPU core.
TINY = dict(
    image_size=32,
    patch_size=8,
    vision_width=32,
    vision_layers=1,
    vision_heads=2,
    text_width=32,
    text_layers=1,
    text_heads=2,
    embed_dim=32,
    context_length=24,
    vocab_size=300,
)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    write_pair_shards(coco_pairs(), str(folder), samples_per_shard=8)
    return f"{folder}/{{00000..00002}}.tar"


def config_for(shards, output, **overrides):
    values = dict(
        TINY,
        shards=shards,
        output=str(output),
        batch_size=6,
        lr=2e-3,
        warmup_steps=2,
        workers=0,
        shuffle_buffer=16,
        log_every=2,
        progress=False,
    )
    values.update(overrides)
    return resolve_config(values)


def test_loss_equals_hand_computed_reference():
    # Two pairs, features chosen so the logits are known: logit_scale * cosine similarities.
    image = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    text = torch.tensor([[0.8, 0.6], [0.0, 1.0]])
    scale = torch.tensor(2.0)
    logits = [[2 * 0.8, 2 * 0.0], [2 * (0.48 + 0.48), 2 * 0.8]]  # image i . text j, times 2

    def cross_entropy(rows):
        return sum(-row[i] + math.log(sum(math.exp(v) for v in row)) for i, row in enumerate(rows)) / len(rows)

    columns = [[logits[0][0], logits[1][0]], [logits[0][1], logits[1][1]]]
    expected = (cross_entropy(logits) + cross_entropy(columns)) / 2
    assert clip_loss(image, text, scale).item() == pytest.approx(expected, rel=1e-6)


def test_logit_scale_starts_at_clip_value_and_is_clamped():
    model = CLIP(ModelConfig(**TINY), eot_id=1)
    assert model.logit_scale.item() == pytest.approx(LOGIT_SCALE_INIT)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    model.clamp_logit_scale()
    assert model.logit_scale.exp().item() == pytest.approx(100.0)
    assert model.logit_scale.item() == pytest.approx(LOGIT_SCALE_MAX)


def test_text_features_pool_at_end_of_text_token():
    tokenizer = CaptionTokenizer(train_bpe([p[1] for p in coco_pairs()], 300).to_str(), context_length=24)
    tokens = tokenizer(["a man riding a horse", "a man riding a horse on a beach at sunset"])
    assert tokens.shape == (2, 24)
    assert (tokens[:, 0] == tokenizer.sot_id).all()
    eot = (tokens == tokenizer.eot_id).int().argmax(dim=-1)
    assert eot[1] > eot[0]
    model = CLIP(ModelConfig(**TINY), eot_id=tokenizer.eot_id).eval()
    changed = tokens.clone()
    changed[0, eot[0] + 1 :] = 7  # what follows the end token cannot reach it through a causal mask
    assert torch.allclose(model.encode_text(tokens)[0], model.encode_text(changed)[0], atol=1e-6)
    # A caption longer than the context is cut but keeps its end token.
    long = tokenizer(["word " * 100])
    assert long[0, -1] == tokenizer.eot_id


def test_clip_vocab_file_gives_clip_ids(tmp_path):
    # CLIP's merges-file format: a version line, then one merge per line.
    path = tmp_path / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(path, "wt") as f:
        f.write("#version: 0.2\nt h\nth e</w>\nc a\nca t</w>\n")
    tokenizer = CaptionTokenizer(load_clip_vocab(str(path)).to_str(), context_length=8)
    # CLIP's layout: 256 byte symbols, 256 with '</w>', one id per merge, start, end.
    assert tokenizer.vocab_size == 512 + 4 + 2
    assert (tokenizer.sot_id, tokenizer.eot_id) == (516, 517)
    the, cat = 512 + 1, 512 + 3
    assert tokenizer(["The  CAT"])[0].tolist() == [516, the, cat, 517, 0, 0, 0, 0]


def test_config_presets_toml_and_unknown_keys(tmp_path):
    config = resolve_config({"preset": "ViT-B/32", "image_size": 160})
    assert (config.model.vision_width, config.model.patch_size, config.model.image_size) == (768, 32, 160)
    # config.json is flat, keyed as the flags: a checkpoint written before ModelConfig reads back.
    assert json.loads(config.to_json())["image_size"] == 160
    assert config_from_json(config.to_json()) == config
    with pytest.raises(ConfigError, match="unknown TrainConfig keys: bacth_size"):
        resolve_config({"bacth_size": 3})
    with pytest.raises(ConfigError, match="multiple of patch_size"):
        resolve_config({"image_size": 50})


@pytest.mark.slow
def test_few_steps_reduce_loss(shards, tmp_path):
    result = train(config_for(shards, tmp_path / "run", steps=24, seed=1))
    losses = result["losses"]
    assert len(losses) == 24
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.2, losses
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(2, 25, 2))
    assert {"loss", "logit_scale", "lr", "samples_per_s"} <= set(log[0])
    # The checkpoint holds tensors and plain values only.
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 24
    assert json.loads((tmp_path / "run" / "config.json").read_text())["steps"] == 24


@pytest.mark.slow
def test_resume_continues_exactly(shards, tmp_path):
    # Two loader workers, and a stop after an odd number of batches: the resumed loader must
    # also pick up the right worker's turn.
    straight = train(config_for(shards, tmp_path / "straight", steps=6, workers=2))
    train(config_for(shards, tmp_path / "resumed", steps=3, workers=2))
    resumed = train(config_for(shards, tmp_path / "resumed", steps=6, workers=2), resume=True)
    assert resumed["start_step"] == 3
    assert resumed["losses"] == straight["losses"][3:]
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert a["data"] == b["data"]
    exp_avg = {k: v["exp_avg"] for k, v in a["optimizer"]["state"].items()}
    assert all(torch.equal(exp_avg[k], b["optimizer"]["state"][k]["exp_avg"]) for k in exp_avg)


def test_corrupt_sample_is_skipped_and_counted(tmp_path):
    pairs = coco_pairs()[:6]
    pairs[2] = (b"\xff\xd8\xff\xe0 not really a jpeg", "a broken picture", {})
    pairs[4] = (pairs[4][0][: len(pairs[4][0]) // 3], "a truncated picture", {})  # cut mid-scan
    write_pair_shards(pairs, str(tmp_path), samples_per_shard=6)
    tokenizer = CaptionTokenizer(train_bpe([p[1] for p in pairs], 300).to_str(), context_length=24)
    spec = StreamSpec(
        urls=[str(tmp_path / "00000.tar")],
        tokenizer=tokenizer,
        image_size=32,
        batch_size=4,
        workers=0,
        shuffle_buffer=0,
        resample=False,
    )
    batch = next(stream_batches(spec, 0))
    assert batch["images"].shape == (4, 3, 32, 32)
    assert batch["counts"] == {"decode_error": 2}
    assert batch["position"] == 6  # six raw samples read for four good ones


def test_unreadable_shards_are_counted_and_never_hang(tmp_path):
    write_pair_shards(coco_pairs()[:4], str(tmp_path), samples_per_shard=4)
    (tmp_path / "00001.tar").write_bytes(b"this is not a tar file" * 40)
    tokenizer = CaptionTokenizer(train_bpe(["a cat"] * 5, 300).to_str(), context_length=24)
    urls = [f"file://{tmp_path}/0000{i}.tar" for i in range(3)]  # fsspec URLs; 00002.tar does not exist
    spec = StreamSpec(
        urls=urls, tokenizer=tokenizer, image_size=32, batch_size=4, workers=0, shuffle_buffer=0, resample=False
    )
    batches = stream_batches(spec, 0)
    counts = [next(batches)["counts"].get("shard_error", 0) for _ in range(3)]
    # One batch per epoch from the good shard; by the third, two epochs' two bad shards are past.
    assert counts[0] in (0, 2) and 4 <= counts[2] <= 6, counts
    spec.urls = urls[1:]  # nothing readable at all: an error, not an endless loop
    with pytest.raises(ValueError, match="shards in a row gave no sample"):
        next(stream_batches(spec, 0))


def _two_process_step(rank, port, inputs, result_file):
    """Rank `rank` of 2 (gloo): one optimiser step on its half of the global batch."""
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    info = DistInfo(rank=rank, world_size=2)
    model, optimizer = _fresh_model()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    images, tokens = inputs
    half = images.shape[0] // 2
    part = slice(rank * half, (rank + 1) * half)
    loss = train_step(
        ddp, model, optimizer, [(images[part], tokens[part])], info, torch.autocast("cpu", enabled=False), 0.0
    )
    if rank == 0:
        grads = {name: p.grad for name, p in model.named_parameters()}
        torch.save({"loss": loss, "grads": grads}, result_file)
    torch.distributed.destroy_process_group()


def _fresh_model():
    torch.manual_seed(0)
    model = CLIP(ModelConfig(**TINY), eot_id=1)
    config = resolve_config(dict(TINY, lr=1e-3))
    return model, make_optimizer(model, config, torch.device("cpu"))


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process_on_the_same_global_batch(tmp_path):
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(8, 3, 32, 32, generator=generator)
    tokens = torch.randint(2, 300, (8, 24), generator=generator)
    tokens[:, 0] = 0
    tokens[torch.arange(8), torch.randint(3, 24, (8,), generator=generator)] = 1  # end tokens
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result_file = tmp_path / "rank0.pt"
    torch.multiprocessing.spawn(_two_process_step, args=(port, (images, tokens), str(result_file)), nprocs=2)

    model, optimizer = _fresh_model()
    loss = train_step(
        model, model, optimizer, [(images, tokens)], DistInfo(), torch.autocast("cpu", enabled=False), 0.0
    )
    two = torch.load(result_file, weights_only=True)
    assert two["loss"] == pytest.approx(loss, rel=1e-5)
    # Gradients, not parameters: Adam's first step is blind to a gradient's scale, and turns a
    # float-noise difference in a near-zero gradient into a whole +-lr step.
    for name, p in model.named_parameters():
        assert _close(p.grad, two["grads"][name]), name


def _close(a, b) -> bool:
    """Equal up to float32 summation order, relative to the tensor's largest entry."""
    return (a - b).abs().max() <= 1e-5 * a.abs().max() + 1e-12


def _gradients_after_step(micro_batches):
    model, optimizer = _fresh_model()
    loss = train_step(model, model, optimizer, micro_batches, DistInfo(), torch.autocast("cpu", enabled=False), 0.0)
    return loss, {name: p.grad.clone() for name, p in model.named_parameters()}


def test_gradient_accumulation_equals_one_large_batch():
    # open_clip's accumulation: every micro-batch's samples are negatives for all the others,
    # so two micro-batches of 4 give the loss and gradient of one batch of 8.
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(8, 3, 32, 32, generator=generator)
    tokens = torch.randint(2, 300, (8, 24), generator=generator)
    tokens[:, 0], tokens[:, 10] = 0, 1
    big_loss, big = _gradients_after_step([(images, tokens)])
    accum_loss, accum = _gradients_after_step([(images[:4], tokens[:4]), (images[4:], tokens[4:])])
    assert accum_loss == pytest.approx(big_loss, rel=1e-5)
    for name in big:
        assert _close(accum[name], big[name]), name


def wit(argv):
    """`wit train|eval ARGS` through the commands' own parsers (the other stages are not needed)."""
    import argparse

    from wit_pipeline.commands import eval as eval_command
    from wit_pipeline.commands import train as train_command

    parser = argparse.ArgumentParser(prog="wit")
    subparsers = parser.add_subparsers(dest="command")
    train_command.register(subparsers)
    eval_command.register(subparsers)
    args = parser.parse_args(argv)
    args.passthrough = []
    return args.run(args)


@pytest.mark.slow
def test_wit_train_and_eval_commands(shards, tmp_path, capsys):
    config = tmp_path / "train.toml"
    shape = "\n".join(f"{k} = {v}" for k, v in TINY.items())
    config.write_text(f"[train]\n{shape}\nbatch_size = 6\nworkers = 0\nprogress = false\nlog_every = 2\n")
    run_dir = tmp_path / "run"
    assert (
        wit(
            [
                "train",
                "--shards",
                shards,
                "--output",
                str(run_dir),
                "--config",
                str(config),
                "--steps",
                "4",
                "--lr",
                "1e-3",
                "--accum-steps",
                "2",
            ]
        )
        == 0
    )
    saved = json.loads((run_dir / "config.json").read_text())
    assert (saved["steps"], saved["lr"], saved["vision_width"], saved["batch_size"], saved["accum_steps"]) == (
        4,
        1e-3,
        32,
        6,
        2,
    )
    # Resume with a longer run: it starts at step 4.
    assert (
        wit(["train", "--shards", shards, "--output", str(run_dir), "--steps", "6", "--resume", "--keep-checkpoints"])
        == 0
    )
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["step"] == 6
    assert torch.load(run_dir / "checkpoint_0000006.pt", weights_only=True)["step"] == 6

    # A zero-shot folder of real photos: two classes, underscores as spaces.
    folder = tmp_path / "zs"
    for index, (image, _caption, _) in enumerate(coco_pairs()[:8]):
        target = folder / ("red_thing" if index % 2 else "blue_thing") / f"{index}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(image)
    (folder / "blue_thing" / "broken.jpg").write_bytes(b"not an image")
    metrics_file = tmp_path / "metrics.json"
    capsys.readouterr()
    assert (
        wit(
            [
                "eval",
                "--checkpoint",
                str(run_dir),
                "--zero-shot",
                str(folder),
                "--ensemble",
                "--retrieval",
                shards,
                "--linear-probe",
                str(folder),
                str(folder),
                "--json",
                str(metrics_file),
            ]
        )
        == 0
    )
    metrics = json.loads(metrics_file.read_text())
    assert json.loads(capsys.readouterr().out) == metrics
    assert metrics["zero_shot"]["images"] == 8 and metrics["zero_shot"]["classes"] == 2
    assert metrics["zero_shot"]["skipped"] == {"decode_error": 1}
    assert metrics["zero_shot"]["top5"] == 1.0  # two classes: always within the top five
    assert metrics["zero_shot"]["templates"] == 8
    retrieval = metrics["retrieval"]
    assert (retrieval["images"], retrieval["texts"]) == (24, 24)
    assert retrieval["image_to_text_R@1"] <= retrieval["image_to_text_R@5"] <= retrieval["image_to_text_R@10"]
    assert 0.0 <= metrics["linear_probe"]["accuracy"] <= 1.0


def test_wit_train_rejects_missing_length_and_bad_preset(shards, tmp_path):
    from wit_pipeline.cli import UsageError

    with pytest.raises(UsageError, match="--steps N or --epochs N"):
        wit(["train", "--shards", shards, "--output", str(tmp_path)])
    with pytest.raises(UsageError, match="preset must be one of"):
        wit(["train", "--shards", shards, "--output", str(tmp_path), "--steps", "1", "--preset", "huge"])


def test_shard_patterns_tokenizer_captions_and_epoch_length(shards, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from training.config import total_steps
    from training.data import count_samples, expand_shards, iter_captions

    urls = expand_shards(shards)
    folder = shards.rsplit("/", 1)[0]
    assert expand_shards(folder) == expand_shards(f"{folder}/*.tar") == urls
    with pytest.raises(ValueError, match="no shards in"):
        expand_shards(f"{folder}/nothing-*.tar")
    from_tars = list(iter_captions(urls, limit=100))
    assert from_tars == [caption.strip() for _, caption, _ in coco_pairs()]
    assert len(list(iter_captions(urls, limit=5))) == 5
    # A Parquet sidecar beside the tar is read instead of the tar.
    write_pair_shards(coco_pairs()[:2], str(tmp_path), samples_per_shard=2)
    pq.write_table(pa.table({"caption": ["from the sidecar", None]}), tmp_path / "00000.parquet")
    assert list(iter_captions([str(tmp_path / "00000.tar")], limit=10)) == ["from the sidecar"]
    # --epochs 2 over 24 samples at a global batch of 6 is 8 steps.
    assert count_samples(urls) == 24
    config = resolve_config(dict(TINY, epochs=2, batch_size=3, accum_steps=2))
    assert total_steps(config, count_samples(urls), world_size=1) == 8
