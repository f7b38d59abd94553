"""COCO caption files (`captions_train2017.json` ...): one record per (image, caption), or per image.

The file is one JSON object with `licenses`, `images` and `annotations` lists. It is streamed with
ijson (the C yajl2 backend) in two passes: the first keeps a small tuple per image and the license
table, the second streams the annotations. Two passes because JSON does not fix the key order, and
an annotation can only be checked once its image is known. Memory is O(images) in `each` and
`first` modes; `join` also holds every caption grouped by image (COCO's largest file: 118,287 images,
591,753 captions, about 80 MB of Python strings), because annotations are not grouped by image in
the file.

Local mode (`image_root`): each record's `image_path` names the file under the root and the
download stage reads it instead of fetching `url`; `url` stays the canonical COCO address, so the
uid of a pair is the same with or without local images.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec
import ijson

from wit_pipeline.config import require_choice
from wit_pipeline.sources.base import SourceShard, make_record
from wit_pipeline.sources.files import (
    READ_ERRORS,
    FileSource,
    format_license,
    http_url_or_none,
    open_input,
    unreadable_input_record,
)

NAME = "coco"
_CHUNK = 1 << 16
_JSON_ERRORS = (ijson.JSONError, ijson.IncompleteJSONError) + READ_ERRORS


@dataclass(frozen=True)
class CocoConfig:
    """How to read COCO caption files (`captions_*.json`)."""

    # each: one pair per caption; first: the image's first caption in file order; join: all of an
    # image's captions in one caption, in file order, each ended with a full stop.
    captions: str = "each"
    url_field: str = "coco_url"
    # Local mode: the folder holding the images' `file_name`s; the download stage reads them from
    # there instead of fetching, while `url` stays the canonical address, so uids do not change.
    image_root: str | None = None

    def __post_init__(self):
        require_choice("coco captions", self.captions, ("each", "first", "join"))
        require_choice("coco url_field", self.url_field, ("coco_url", "flickr_url"))


@dataclass(frozen=True)
class _Image:
    """What a record needs of one `images` entry; `problem` says why it cannot give pairs."""

    image_id: int | None  # None only with a problem: the entry has no integer id
    url: str | None
    file_name: str | None
    # The entry's license id until `_with_license` puts the license's name and URL in its place.
    license: str | int | None
    problem: str | None = None


class _Collector:
    """An ijson sink: turns each parsed item into something small before keeping it."""

    def __init__(self, convert):
        self.items = []
        self._convert = convert
        self._index = 0

    def send(self, item):
        self.items.append(self._convert(self._index, item))
        self._index += 1


class CocoSource(FileSource):
    """The COCO captions source (`--source coco`)."""

    name = NAME
    default_config = CocoConfig()
    config: CocoConfig

    def read(self, shard: SourceShard) -> Iterator[dict]:
        """The records of one caption file: pairs in annotation order (`each`) or image order."""
        try:
            images, licenses = self._read_images(shard.path)
        except _JSON_ERRORS as err:
            yield unreadable_input_record(NAME, shard.path, "the images/licenses pass", err)
            return
        by_id = {image.image_id: _with_license(image, licenses) for image in images}
        on_disk = self._files_on_disk()
        # each: only which images have a caption; first: the first caption; join: all of them.
        captions: dict[int, list[str]] = {}
        index = 0
        try:
            for index, annotation in enumerate(self._iter_annotations(shard.path)):
                record = self._annotation_record(index, annotation, by_id, captions, on_disk)
                if record is not None:
                    yield record
        except _JSON_ERRORS as err:
            yield unreadable_input_record(NAME, shard.path, f"the annotations pass, after item {index}", err)
            return
        yield from self._image_records(by_id, captions, on_disk)

    # -- the two passes -------------------------------------------------------------------------

    def _read_images(self, path: str) -> tuple[list[_Image], dict[int | str, str | None]]:
        url_field = self.config.url_field
        images = _Collector(lambda index, item: _image_from_json(index, item, url_field))
        licenses = _Collector(lambda index, item: item)
        image_parser = ijson.items_coro(images, "images.item", use_float=True)
        license_parser = ijson.items_coro(licenses, "licenses.item", use_float=True)
        with open_input(path) as f:
            while chunk := f.read(_CHUNK):
                image_parser.send(chunk)
                license_parser.send(chunk)
        image_parser.close()
        license_parser.close()
        return images.items, _license_table(licenses.items)

    def _iter_annotations(self, path: str) -> Iterator[dict]:
        with open_input(path) as f:
            yield from ijson.items(f, "annotations.item", use_float=True)

    # -- records --------------------------------------------------------------------------------

    def _annotation_record(self, index, annotation, images, captions, on_disk) -> dict | None:
        """`each` mode: the annotation's record. Other modes: remember the caption, return None."""
        where = f"annotations[{index}]"
        if not isinstance(annotation, dict):
            return _malformed(f"{where}: not a JSON object")
        image_id, caption = annotation.get("image_id"), annotation.get("caption")
        where = f"{where} (id {annotation.get('id')})"
        image = images.get(image_id)
        if image is None:
            return _malformed(f"{where}: image_id {image_id!r} is not in the images list", caption, image_id)
        if not isinstance(caption, str):
            return _malformed(f"{where}: caption is {type(caption).__name__}, not a string", None, image_id)
        texts = captions.setdefault(image_id, [])
        if self.config.captions == "each":
            return self._record(image, caption.strip(), on_disk)
        if self.config.captions == "join" or not texts:
            texts.append(caption.strip())
        return None

    def _image_records(self, images: dict[int | None, _Image], captions, on_disk) -> Iterator[dict]:
        """Per-image records in images order: joined/first captions, and images without any caption."""
        for image_id, image in images.items():
            texts = captions.get(image_id)
            if texts is None:
                yield self._record(
                    image,
                    None,
                    on_disk,
                    status="missing_caption",
                    error=f"image {image_id} has no annotation in this file",
                )
            elif self.config.captions == "first":
                yield self._record(image, texts[0], on_disk)
            elif self.config.captions == "join":
                yield self._record(image, join_sentences(texts), on_disk)

    def _record(self, image: _Image, caption, on_disk, status="ok", error=None) -> dict:
        image_path = None
        if image.problem is not None:
            status, error = "malformed_record", image.problem
        elif image.url is None:
            status, error = "invalid_url", f"image {image.image_id}: no http(s) {self.config.url_field}"
        elif self.config.image_root is not None:
            image_path = posixpath.join(self.config.image_root, image.file_name or "")
            if status == "ok" and image.file_name not in on_disk:
                status, error = "missing_image_file", f"image {image.image_id}: {image_path} is not on disk"
        return make_record(
            image.url,
            caption,
            NAME,
            source_id=image.image_id,
            license=image.license,
            image_path=image_path,
            status=status,
            error=error,
        )

    def _files_on_disk(self) -> frozenset[str]:
        """The file names under `image_root`, listed once (one listing, not one stat per image)."""
        if self.config.image_root is None:
            return frozenset()
        fs, root = fsspec.core.url_to_fs(self.config.image_root)
        if not fs.isdir(root):
            raise FileNotFoundError(f"image root {self.config.image_root!r} is not a folder")
        return frozenset(posixpath.relpath(name, root) for name in fs.find(root))


def _image_from_json(index: int, item, url_field: str) -> _Image:
    if not isinstance(item, dict) or not isinstance(item.get("id"), int):
        image_id = item.get("id") if isinstance(item, dict) else None
        return _Image(image_id, None, None, None, problem=f"images[{index}]: no integer id")
    file_name = item.get("file_name")
    problem = None if isinstance(file_name, str) and file_name else f"images[{index}] (id {item['id']}): no file_name"
    license_id = item.get("license")
    return _Image(item["id"], http_url_or_none(item.get(url_field)), file_name, license_id, problem)


def _license_table(licenses: list) -> dict[int | str, str | None]:
    return {
        entry["id"]: format_license(entry.get("name"), entry.get("url"))
        for entry in licenses
        if isinstance(entry, dict) and "id" in entry
    }


def _with_license(image: _Image, licenses: dict[int | str, str | None]) -> _Image:
    """The image with its license id replaced by the license's name and URL."""
    license_id = image.license
    if license_id is None:
        text = None
    else:
        text = licenses.get(license_id, f"license id {license_id} (not in the licenses list)")
    return _Image(image.image_id, image.url, image.file_name, text, image.problem)


def join_sentences(texts: list[str]) -> str:
    """Captions joined into one text, each ended with a full stop unless it has its own."""
    return " ".join(text if text.endswith((".", "!", "?")) else text + "." for text in texts if text)


def _malformed(error: str, caption=None, image_id=None) -> dict:
    caption = caption.strip() if isinstance(caption, str) else None
    return make_record(None, caption, NAME, source_id=image_id, status="malformed_record", error=error)
