"""The bundled minimal CLIP trainer (`wit train`, `wit eval`).

config.py     TrainConfig and its ModelConfig; the presets (tiny, small, ViT-B/32) are ModelConfigs;
              TOML and flag resolution
data.py       WebDataset shards -> batches: shard order, shuffle buffer, decode, crops, exact resume
tokenizer.py  byte-level BPE trained on the captions, or CLIP's own vocabulary file
model.py      ViT image tower, causal text transformer, learnable clamped logit scale
loss.py       symmetric contrastive loss over the all-gathered global batch
train.py      the training loop (AdamW, cosine schedule, accumulation, DDP, checkpoints) and its log
checkpoint.py tensors-only checkpoints (torch.load(weights_only=True)) and model loading
evaluate.py   zero-shot classification, retrieval recall@k, linear probe
"""
