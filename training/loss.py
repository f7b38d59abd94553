"""CLIP's symmetric contrastive loss, over the global batch when training on several ranks.

Each rank all-gathers every rank's features, puts its own (which carry gradients) back in its
slot, and computes the loss over the whole global similarity matrix, as open_clip's `ClipLoss`
does. Every rank then holds the same loss value, and its backward pass yields its *share* of the
gradient: the part that flows through its own samples' features, and 1/world_size of the logit
scale's gradient (which every rank would otherwise count whole). The shares summed over ranks are
the single-process gradient of the global batch; DDP averages instead of summing, so the trainer
multiplies the loss by world_size before backward.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by `factor`."""

    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.factor, None


def gradient_share(x: torch.Tensor, parts: int) -> torch.Tensor:
    """`x` unchanged, with 1/parts of its gradient: for a tensor used whole in each of `parts`
    backward passes (ranks, micro-batches) whose gradients are then added up."""
    return x if parts == 1 else _ScaleGradient.apply(x, 1.0 / parts)


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
        logit_scale = gradient_share(logit_scale, world_size)
    logits_per_image = logit_scale * image_features @ text_features.T
    labels = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_image.T, labels)) / 2
