"""CLIP: a ViT image tower and a causal text transformer projected into one embedding space.

The shapes follow the CLIP paper (pre-norm residual blocks, a class token and `ln_post` for the
image, a causal mask and pooling at the end-of-text token for the text, bias-free projections,
a learnable temperature), built from a `ModelConfig` as nanoGPT's `GPT(GPTConfig)`. Attention
goes through `scaled_dot_product_attention`, which picks the fused kernel on GPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from training.config import ModelConfig

# CLIP initialises the temperature at 0.07 and never lets the logit scale pass 100.
LOGIT_SCALE_INIT = math.log(1 / 0.07)
LOGIT_SCALE_MAX = math.log(100)


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, causal: bool):
        super().__init__()
        self.heads = heads
        self.causal = causal
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.out(y.transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, width: int, heads: int, causal: bool):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads, causal)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class VisionTransformer(nn.Module):
    def __init__(self, image_size: int, patch_size: int, width: int, layers: int, heads: int, embed_dim: int):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        num_patches = (image_size // patch_size) ** 2
        scale = width**-0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(num_patches + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.blocks = nn.ModuleList(Block(width, heads, causal=False) for _ in range(layers))
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, embed_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # [B, patches, width]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x)
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x[:, 0]) @ self.proj


class TextTransformer(nn.Module):
    def __init__(
        self, vocab_size: int, context_length: int, width: int, layers: int, heads: int, embed_dim: int, eot_id: int
    ):
        super().__init__()
        self.eot_id = eot_id
        self.trim_padding = True
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(context_length, width))
        self.blocks = nn.ModuleList(Block(width, heads, causal=True) for _ in range(layers))
        self.ln_final = nn.LayerNorm(width)
        self.proj = nn.Parameter(width**-0.5 * torch.randn(width, embed_dim))
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # The causal mask makes the end-of-text token the only one that has seen the whole caption.
        eot_position = (tokens == self.eot_id).int().argmax(dim=-1)
        if self.trim_padding:
            # Nothing after the batch's last end token can reach an end token through the causal
            # mask, so dropping those columns changes no output and saves most of the work on
            # short captions. Off under torch.compile, which prefers one static shape.
            tokens = tokens[:, : int(eot_position.max()) + 1]
        x = self.token_embedding(tokens) + self.positional_embedding[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0], device=x.device), eot_position] @ self.proj


class CLIP(nn.Module):
    """The two towers and the temperature, built from a `ModelConfig` (as nanoGPT's `GPT(GPTConfig)`)."""

    def __init__(self, config: ModelConfig, eot_id: int):
        super().__init__()
        self.config = config
        self.visual = VisionTransformer(
            config.image_size,
            config.patch_size,
            config.vision_width,
            config.vision_layers,
            config.vision_heads,
            config.embed_dim,
        )
        self.text = TextTransformer(
            config.vocab_size,
            config.context_length,
            config.text_width,
            config.text_layers,
            config.text_heads,
            config.embed_dim,
            eot_id,
        )
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))
        self._init_blocks()

    def _init_blocks(self):
        # CLIP's scheme: residual-branch outputs shrink with depth so deep stacks start stable.
        for tower, width, layers in (
            (self.visual, self.config.vision_width, self.config.vision_layers),
            (self.text, self.config.text_width, self.config.text_layers),
        ):
            proj_std = width**-0.5 * (2 * layers) ** -0.5
            for block in tower.blocks:
                nn.init.normal_(block.attn.qkv.weight, std=width**-0.5)
                nn.init.normal_(block.attn.out.weight, std=proj_std)
                nn.init.normal_(block.mlp[0].weight, std=(2 * width) ** -0.5)
                nn.init.normal_(block.mlp[2].weight, std=proj_std)
                for linear in (block.attn.qkv, block.attn.out, block.mlp[0], block.mlp[2]):
                    nn.init.zeros_(linear.bias)

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        features = self.visual(images)
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        features = self.text(tokens)
        return F.normalize(features, dim=-1) if normalize else features

    def forward(self, images: torch.Tensor, tokens: torch.Tensor):
        """Unit-norm image and text features and the logit scale exp(t)."""
        return self.encode_image(images), self.encode_text(tokens), self.logit_scale.exp()

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        """Keep exp(t) <= 100, as CLIP does after every optimiser step."""
        self.logit_scale.clamp_(0, LOGIT_SCALE_MAX)


def forward_flops_per_sample(config: ModelConfig, text_tokens: int | None = None) -> float:
    """Matmul FLOPs of one forward pass of one (image, caption) pair: 2 x multiply-adds of the
    linear layers and attention, the text over `text_tokens` positions (default: the whole
    context). Training costs about 3x this (forward + backward)."""

    def tower(width, layers, tokens):
        linear = 12 * width * width * tokens  # qkv (3), out (1), mlp (8) multiply-adds per token
        attention = 2 * tokens * tokens * width  # q @ k and attn @ v
        return layers * (linear + attention)

    patches = (config.image_size // config.patch_size) ** 2
    patch_embed = patches * 3 * config.patch_size**2 * config.vision_width
    vision = tower(config.vision_width, config.vision_layers, patches + 1) + patch_embed
    text = tower(config.text_width, config.text_layers, text_tokens or config.context_length)
    projections = (config.vision_width + config.text_width) * config.embed_dim
    return 2.0 * (vision + text + projections)
