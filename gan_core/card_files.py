"""The model card in every file kind that carries one: .onnx, checkpoint .safetensors, card.json.

One reader and one writer for all of them, torch- and onnx-free: the ONNX card is a metadata
property edited through the protobuf wire format (gan_core.onnx_meta), and a safetensors
checkpoint keeps it in its JSON header, which is rewritten in front of the unchanged tensor bytes.
Writes are temp file + rename.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gan_core.card import ModelCard, parse_card
from gan_core.errors import UserError
from gan_core.fileio import atomic_write_bytes
from gan_core.onnx_meta import OnnxFormatError, read_metadata, set_metadata

CARD_KEY = "gan_service.card"  # ONNX metadata_props key and safetensors header metadata key "card"
SAFETENSORS_CARD = "card"


class CardFileError(UserError):
    """A file that holds no readable model card."""


def safetensors_header(data: bytes, path: str | os.PathLike = "<bytes>") -> tuple[dict, int]:
    """(header dict, offset of the tensor data) of a safetensors file's bytes."""
    if len(data) < 8:
        raise CardFileError(f"{path}: truncated safetensors file ({len(data)} bytes)")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise CardFileError(f"{path}: truncated safetensors header (needs {n} bytes)")
    try:
        header = json.loads(data[8 : 8 + n])
    except ValueError as e:
        raise CardFileError(f"{path}: safetensors header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise CardFileError(f"{path}: safetensors header is not a JSON object")
    return header, 8 + n


def with_safetensors_metadata(data: bytes, updates: dict[str, str]) -> bytes:
    """The same safetensors bytes with header `__metadata__` entries set; tensor bytes untouched."""
    header, start = safetensors_header(data)
    meta = dict(header.get("__metadata__") or {})
    meta.update(updates)
    header = {"__metadata__": meta, **{k: v for k, v in header.items() if k != "__metadata__"}}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the safetensors writer aligns the data section to 8 bytes
    return len(text).to_bytes(8, "little") + text + data[start:]


def card_from_bytes(data: bytes, kind: str, path: str | os.PathLike = "<bytes>") -> ModelCard:
    try:
        if kind == "onnx":
            text = read_metadata(data).get(CARD_KEY)
        elif kind == "safetensors":
            text = (safetensors_header(data, path)[0].get("__metadata__") or {}).get(SAFETENSORS_CARD)
        else:
            text = data.decode()
    except OnnxFormatError as e:
        raise CardFileError(f"{path}: not a readable ONNX file ({e})") from None
    if text is None:
        where = f"metadata key {CARD_KEY!r}" if kind == "onnx" else f"header metadata {SAFETENSORS_CARD!r}"
        raise CardFileError(f"{path}: carries no gan-service model card ({where})")
    try:
        return parse_card(text)
    except ValueError as e:
        raise CardFileError(f"{path}: model card is invalid ({str(e).splitlines()[0]})") from None


def file_kind(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix
    kinds = {".onnx": "onnx", ".safetensors": "safetensors", ".json": "json"}
    if suffix not in kinds:
        raise CardFileError(
            f"{path}: no model card in a {suffix or 'suffix-less'} file (.onnx, .safetensors, .json)"
        )
    return kinds[suffix]


def read_card(path: str | os.PathLike) -> ModelCard:
    """The card of an exported .onnx, a checkpoint .safetensors or a card.json."""
    kind = file_kind(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise CardFileError(f"{path}: cannot read ({e.strerror or e})") from None
    return card_from_bytes(data, kind, path)


def card_into_bytes(data: bytes, kind: str, card: ModelCard) -> bytes:
    text = card.model_dump_json()
    if kind == "onnx":
        return set_metadata(data, CARD_KEY, text)
    if kind == "safetensors":
        return with_safetensors_metadata(data, {SAFETENSORS_CARD: text})
    return card.to_json().encode()


def write_card(path: str | os.PathLike, card: ModelCard) -> None:
    """Replace the card inside `path` (temp file + rename); everything else in the file is kept."""
    kind = file_kind(path)
    data = b"" if kind == "json" else Path(path).read_bytes()
    atomic_write_bytes(path, card_into_bytes(data, kind, card))
