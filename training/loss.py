"""CLIP's symmetric contrastive loss, over the global batch when training on several ranks.

Each rank all-gathers every rank's features, puts its own (which carry gradients) back in its
slot, and computes the loss over the whole global similarity matrix, as open_clip's `ClipLoss`
does. Every rank then holds the same loss; its backward pass reaches only its own samples' part
of the gradient, so the trainer scales the loss by the world size before DDP averages gradients,
which makes the summed result equal to the single-process gradient of the same global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def gather_features(features: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """All ranks' features concatenated in rank order; only this rank's slice has gradients."""
    gathered = [torch.empty_like(features) for _ in range(world_size)]
    dist.all_gather(gathered, features.detach().contiguous())
    gathered[rank] = features
    return torch.cat(gathered, dim=0)


def clip_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    rank: int = 0,
    world_size: int = 1,
) -> torch.Tensor:
    """Mean of image-to-text and text-to-image cross-entropy; pair i is the positive of row i."""
    if world_size > 1:
        image_features = gather_features(image_features, rank, world_size)
        text_features = gather_features(text_features, rank, world_size)
    logits_per_image = logit_scale * image_features @ text_features.T
    labels = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_image.T, labels)) / 2
