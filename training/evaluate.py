"""Evaluation of a trained CLIP: zero-shot classification, retrieval, linear probe.

- Zero-shot: an image folder `class_name/*.jpg`; each class is the text embedding of its name in
  one prompt ("a photo of a {}.") or the mean over an ensemble of prompts; top-1 and top-5.
- Retrieval: held-out shards; image-to-text and text-to-image recall@1/5/10. Samples whose image
  bytes are equal count as one image with several captions (COCO style).
- Linear probe: logistic regression on frozen image features of a train folder, scored on a
  test folder (the CLIP paper's other headline metric).
"""

from __future__ import annotations

import pathlib
from collections import Counter

import numpy as np
import torch

from training.data import DECODE_ERRORS, eval_samples, expand_shards, load_image, normalise_images

TEMPLATES = ("a photo of a {}.",)
# The prompt subset that CLIP's authors found best on ImageNet, plus the default prompt.
ENSEMBLE_TEMPLATES = (
    "a photo of a {}.",
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def image_folder(folder: str) -> tuple[list[str], list[tuple[pathlib.Path, int]]]:
    """Class folder names (sorted) and (image path, class index) for `folder/class_name/*.jpg`."""
    root = pathlib.Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    items = [
        (path, index)
        for index, name in enumerate(classes)
        for path in sorted((root / name).iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not items:
        raise ValueError(f"no images in {folder}/<class_name>/")
    return classes, items


def class_names(classes: list[str], classnames_file: str | None = None) -> list[str]:
    """Folder names with underscores as spaces, or one name per line of `classnames_file`, in the
    folders' sorted order."""
    if classnames_file is None:
        return [name.replace("_", " ") for name in classes]
    names = [line.strip() for line in pathlib.Path(classnames_file).read_text().splitlines() if line.strip()]
    if len(names) != len(classes):
        raise ValueError(f"{classnames_file} has {len(names)} names for {len(classes)} class folders")
    return names


@torch.no_grad()
def encode_image_batches(model, images, batch_size: int, device) -> torch.Tensor:
    """Unit-norm features of an iterable of uint8 `[3, S, S]` tensors."""
    features, batch = [], []
    for image in images:
        batch.append(image)
        if len(batch) == batch_size:
            features.append(model.encode_image(normalise_images(torch.stack(batch).to(device))).float().cpu())
            batch = []
    if batch:
        features.append(model.encode_image(normalise_images(torch.stack(batch).to(device))).float().cpu())
    return torch.cat(features)


@torch.no_grad()
def encode_texts(model, tokenizer, texts: list[str], batch_size: int, device) -> torch.Tensor:
    return torch.cat(
        [
            model.encode_text(tokenizer(texts[i : i + batch_size]).to(device)).float().cpu()
            for i in range(0, len(texts), batch_size)
        ]
    )


def folder_features(model, folder: str, image_size: int, batch_size: int, device, skipped: Counter):
    """(features, labels, class folder names) of an image folder; undecodable files are counted."""
    classes, items = image_folder(folder)
    labels = []

    def images():
        for path, label in items:
            try:
                image = load_image(path.read_bytes(), image_size, None)
            except DECODE_ERRORS:
                skipped["decode_error"] += 1
                continue
            labels.append(label)
            yield image

    features = encode_image_batches(model, images(), batch_size, device)
    return features, torch.tensor(labels), classes


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).float().mean().item()


def zero_shot(
    model, tokenizer, folder, image_size, classnames_file=None, templates=TEMPLATES, batch_size=64, device="cpu"
) -> dict:
    """Top-1/top-5 accuracy of classifying `folder`'s images by their class names alone."""
    skipped: Counter[str] = Counter()
    features, labels, classes = folder_features(model, folder, image_size, batch_size, device, skipped)
    names = class_names(classes, classnames_file)
    class_embeddings = []
    for name in names:
        # Ensemble: average the unit-norm prompt embeddings, then renormalise (CLIP's recipe).
        prompts = encode_texts(model, tokenizer, [t.format(name) for t in templates], batch_size, device)
        class_embeddings.append(torch.nn.functional.normalize(prompts.mean(dim=0), dim=-1))
    logits = features @ torch.stack(class_embeddings).T
    return {
        "top1": topk_accuracy(logits, labels, 1),
        "top5": topk_accuracy(logits, labels, 5),
        "images": len(labels),
        "classes": len(names),
        "templates": len(templates),
        "skipped": dict(skipped),
    }


def recall_at(similarity: torch.Tensor, positives: torch.Tensor, k: int) -> float:
    """Share of rows whose top-k columns include a positive (`positives` is a bool matrix)."""
    k = min(k, similarity.shape[1])
    top = similarity.topk(k, dim=1).indices
    return positives.gather(1, top).any(dim=1).float().mean().item()


def retrieval(model, tokenizer, shards: str, image_size: int, batch_size: int = 64, device="cpu") -> dict:
    """Image-to-text and text-to-image recall@1/5/10 over every usable sample of `shards`."""
    skipped: Counter[str] = Counter()
    captions, image_ids = [], []
    image_index: dict[str, int] = {}
    images = []
    for image, caption, image_hash in eval_samples(expand_shards(shards), image_size, skipped):
        if image_hash not in image_index:
            image_index[image_hash] = len(image_index)
            images.append(image)
        captions.append(caption)
        image_ids.append(image_index[image_hash])
    if not captions:
        raise ValueError(f"no usable samples in {shards}")
    image_features = encode_image_batches(model, images, batch_size, device)
    text_features = encode_texts(model, tokenizer, captions, batch_size, device)
    similarity = image_features @ text_features.T  # [images, texts]
    positives = torch.tensor(image_ids)[None, :] == torch.arange(len(images))[:, None]
    metrics = {"images": len(images), "texts": len(captions), "skipped": dict(skipped)}
    for k in (1, 5, 10):
        metrics[f"image_to_text_R@{k}"] = recall_at(similarity, positives, k)
        metrics[f"text_to_image_R@{k}"] = recall_at(similarity.T, positives.T, k)
    return metrics


def linear_probe(model, train_folder, test_folder, image_size, C: float = 0.316, batch_size=64, device="cpu") -> dict:
    """Accuracy of an L2-regularised logistic regression on frozen image features.

    C = 0.316 is the middle of the range CLIP's authors swept; features are unit-norm already.
    """
    from sklearn.linear_model import LogisticRegression

    skipped: Counter[str] = Counter()
    train_x, train_y, train_classes = folder_features(model, train_folder, image_size, batch_size, device, skipped)
    test_x, test_y, test_classes = folder_features(model, test_folder, image_size, batch_size, device, skipped)
    if train_classes != test_classes:
        raise ValueError(f"class folders differ between {train_folder} and {test_folder}")
    classifier = LogisticRegression(C=C, max_iter=1000)
    classifier.fit(train_x.numpy(), train_y.numpy())
    accuracy = float(np.mean(classifier.predict(test_x.numpy()) == test_y.numpy()))
    return {
        "accuracy": accuracy,
        "train_images": len(train_y),
        "test_images": len(test_y),
        "C": C,
        "skipped": dict(skipped),
    }
