"""POST /translate: images in, the translation model's images out (image-to-image models, e.g. CycleGAN).

Inputs, in one of three bodies:
- multipart/form-data: one or more PNG / JPEG files in `images` fields, plus text fields;
- application/json: {"images": [base64 PNG or JPEG, ...], ...};
- application/x-npz (or application/octet-stream): an .npz with `images` uint8 [N, H, W] or
  [N, H, W, C] and optional `labels` [N] (echoed in the answer), the other fields in the query string.
Fields (body or query string): `model` (the translation model's name, or one direction's file name),
`direction` (a2b | b2a), `format` (png | grid | npz, the answers of /generate).

Limits, each a 4xx naming it: the body (GAN_MAX_BODY_BYTES, 413), images per request
(GAN_MAX_TRANSLATE_IMAGES), bytes per image (GAN_MAX_IMAGE_BYTES, 413), pixel size: exactly the
model's input size, checked from the header before any pixel is decoded (no resizing), so no
decompression bomb is ever expanded; Pillow's own guard (Image.MAX_IMAGE_PIXELS) is kept as an error
too. PNG and JPEG only; colour is converted to the model's channels (Pillow's L / RGB conversion).
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.lib import format as npformat
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import Headers
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gan_core.card import DIRECTIONS
from service.encoding import Images, encode
from service.guard import error_line, flood_log
from service.inputs import ClientError
from service.settings import Settings

if TYPE_CHECKING:
    from service.core import ServingCore
    from service.model_set import Model


ROUTE = "/translate"
FORMATS = ("png", "grid", "npz")
IMAGE_FORMATS = ["PNG", "JPEG"]
NPZ_TYPES = ("application/x-npz", "application/octet-stream", "application/zip")
NPY_HEADER = 4096  # room for an .npy header inside an npz member


class TranslateFields(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str | None = Field(None, description="translation model (GET /models: card.translation.model)")
    direction: Literal["a2b", "b2a"] | None = Field(None, description="a2b or b2a")
    format: Literal["png", "grid", "npz"] = "png"


class TranslateJSON(TranslateFields):
    images: list[str] = Field(min_length=1, description="base64 PNG or JPEG images")


@dataclass
class Upload:
    fields: TranslateFields
    images: np.ndarray  # uint8 [N, H, W, C]
    labels: np.ndarray | None


def pick_model(core: ServingCore, model: str | None, direction: str | None) -> Model:
    """The served file for (translation model or file name, direction)."""
    pairs: dict[str, dict[str, Model]] = {}
    for m in core.models.values():
        t = m.card.translation
        if t is not None and m.card.input_of_kind("image") is not None:
            pairs.setdefault(t.model, {})[t.direction] = m
    if not pairs:
        raise ClientError(
            "model: no translation model is served (export one with gan export --direction)", 404
        )
    if model in core.models and core.models[model].card.translation is not None:
        file = core.models[model]
        if direction is not None and direction != file.card.translation.direction:
            raise ClientError(
                f"direction: model {model!r} translates {file.card.translation.direction}, not {direction}"
            )
        return file
    if model is None:
        if len(pairs) > 1:
            raise ClientError(
                f"model: several translation models are served; name one of {', '.join(sorted(pairs))}"
            )
        model = next(iter(pairs))
    if model not in pairs:
        raise ClientError(
            f"model: unknown translation model {model!r}; known: {', '.join(sorted(pairs))}", 404
        )
    if direction is None:
        raise ClientError(f"direction: required, one of {', '.join(DIRECTIONS)}")
    if direction not in pairs[model]:
        raise ClientError(
            f"direction: model {model!r} has no {direction} file served (has {', '.join(pairs[model])})"
        )
    return pairs[model][direction]


async def read_body(request: Request, limit: int) -> bytes:
    too_big = ClientError(f"body: must be <= {limit} bytes ({Settings.ENV['max_body_bytes']})", 413)
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def decode_image(
    data: bytes,
    where: str,
    shape: tuple[int, int, int],
    settings: Settings,
    check_size: Callable[[int, int, str], None] | None = None,
) -> np.ndarray:
    """PNG / JPEG bytes -> uint8 [H, W, C] of the model's input shape (C, H, W); size checked before decoding.

    check_size(width, height, where): raises a ClientError for a size the model does not take (default:
    anything but exactly W x H); the image keeps its own size when it passes."""
    from PIL import Image, UnidentifiedImageError

    c, h, w = shape
    if len(data) > settings.max_image_bytes:
        raise _too_big(where, len(data), settings)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as im:
                if check_size is not None:  # from the header: nothing is decoded yet
                    check_size(*im.size, where)
                    w, h = im.size
                elif im.size != (w, h):
                    raise ClientError(
                        f"{where}: image is {im.size[0]}x{im.size[1]} pixels; the model takes {w}x{h} (no resizing)"
                    )
                arr = np.asarray(im.convert("L" if c == 1 else "RGB"))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ClientError(
            f"{where}: refused as a decompression bomb (more pixels than Pillow allows)", 413
        ) from None
    except UnidentifiedImageError:
        raise ClientError(f"{where}: not a PNG or JPEG image") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        raise ClientError(f"{where}: cannot decode the image ({str(e).splitlines()[0][:120]})") from None
    return arr.reshape(h, w, c)


def _too_big(where: str, size: int, settings: Settings) -> ClientError:
    limit = settings.max_image_bytes
    return ClientError(
        f"{where}: must be <= {limit} bytes ({Settings.ENV['max_image_bytes']}), got {size}", 413
    )


def _check_count(n: int, settings: Settings) -> None:
    if n > settings.max_translate_images:
        raise ClientError(
            f"images: must be <= {settings.max_translate_images} per request ({Settings.ENV['max_translate_images']}), got {n}"
        )
    if n == 0:
        raise ClientError("images: give at least one image")


def _fields(query: dict[str, str], body: dict[str, Any], model: type[BaseModel] = TranslateFields) -> Any:
    """The request's fields (`model`) from the query string and the body; a field in both is refused."""
    twice = sorted(set(query) & set(body))
    if twice:
        raise ClientError(f"{twice[0]}: given twice (in the query string and the body)")
    try:
        return model.model_validate({**query, **body})
    except ValidationError as e:
        raise ClientError(error_line(e)) from None


def json_upload(
    body: bytes, model: type[BaseModel], settings: Settings
) -> tuple[Any, list[tuple[str, bytes]]]:
    """(the validated JSON body, its `images` decoded from base64 with their names), counted and sized first."""
    try:
        doc = model.model_validate_json(body or b"{}")
    except ValidationError as e:
        raise ClientError(error_line(e)) from None
    _check_count(len(doc.images), settings)
    return doc, b64_files(doc.images, "images", settings)


def b64_files(texts: list[str], name: str, settings: Settings) -> list[tuple[str, bytes]]:
    return [(f"{name}[{k}]", _b64(s, f"{name}[{k}]", settings)) for k, s in enumerate(texts)]


def npz_images(
    data: bytes, settings: Settings, shape: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """images (and labels) of an npz body. Each member's .npy header (shape, dtype) is read and
    checked against the member's size and the limits before any array is allocated: a header may
    claim any shape (2**45 pixels over 16 bytes), and a zip directory any size."""
    arrays = npz_arrays(data, settings, int(np.prod(shape)), ("images", "labels"))
    return npz_labelled(arrays)


def npz_arrays(
    data: bytes, settings: Settings, image_bytes: int, names: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """The members `names` of an npz body ('images' required, uint8; 'labels' integers; others uint8),
    each member at most GAN_MAX_TRANSLATE_IMAGES x image_bytes, headers checked before reading."""
    limit = settings.max_translate_images * image_bytes + NPY_HEADER
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = {info.filename.removesuffix(".npy"): info for info in zf.infolist()}
            for info in members.values():
                if info.file_size > limit:
                    raise ClientError(
                        f"npz: member {info.filename} expands to {info.file_size} bytes; must be <= {limit}",
                        413,
                    )
            if "images" not in members:
                raise ClientError(f"npz: needs an 'images' array (found {', '.join(members) or 'none'})")
            for name in (n for n in names if n in members):
                kinds = "iu" if name == "labels" else "u"
                out[name] = _npy_member(zf, members[name], name, kinds, settings)
                if kinds == "u" and out[name].dtype != np.uint8:
                    raise ClientError(f"npz: '{name}' must be uint8 pixels, got {out[name].dtype}")
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise ClientError(f"npz: not a readable .npz file ({str(e).splitlines()[0][:120]})") from None
    return out


def npz_labelled(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """(images, labels as int64 or None) of npz_arrays' members, labels checked to be one per image."""
    images, labels = arrays["images"], arrays.get("labels")
    if labels is not None and labels.shape != (len(images),):
        raise ClientError(
            f"npz: 'labels' must be [N] integers, one per image ({len(images)}), got {labels.dtype} {list(labels.shape)}"
        )
    return images, (None if labels is None else labels.astype(np.int64))


def _npy_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, kinds: str, settings: Settings
) -> np.ndarray:
    """One .npy member as an array, its header checked first: numeric dtype of `kinds`, at least one
    dimension, at most GAN_MAX_TRANSLATE_IMAGES rows, and exactly as many data bytes as it claims."""
    with zf.open(info) as f:
        version = npformat.read_magic(f)
        read_header = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
        shape, fortran, dtype = read_header(f, max_header_size=NPY_HEADER)
        if dtype.hasobject or dtype.kind not in kinds:
            raise ClientError(
                f"npz: '{name}' must be {'uint8 pixels' if kinds == 'u' else 'integers'}, got {dtype}"
            )
        if len(shape) == 0:
            raise ClientError(f"npz: '{name}' is a single value; it must be an array with one row per image")
        if shape[0] > settings.max_translate_images:
            _check_count(shape[0], settings)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        payload = info.file_size - f.tell()
        if nbytes != payload:
            raise ClientError(
                f"npz: '{name}' header claims shape {list(shape)} ({nbytes} bytes) but the member holds {payload}"
            )
        buf = f.read(nbytes)
    if len(buf) != nbytes:
        raise ClientError(f"npz: '{name}' is truncated ({len(buf)} of {nbytes} bytes)")
    arr = np.frombuffer(buf, dtype).reshape(shape, order="F" if fortran else "C")
    return np.ascontiguousarray(arr)


def check_array(images: np.ndarray, shape: tuple[int, int, int], model: str) -> np.ndarray:
    c, h, w = shape
    given = list(images.shape)
    if images.ndim == 3 and c == 1:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != (h, w, c):
        raise ClientError(
            f"npz: 'images' is {given}; model {model!r} takes [N, {h}, {w}, {c}] uint8 (NHWC, no resizing)"
        )
    return np.ascontiguousarray(images)


async def parse(request: Request, settings: Settings, core: ServingCore) -> tuple[Upload, Model]:
    body = await read_body(request, settings.max_body_bytes)
    query = dict(request.query_params)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw: list[tuple[str, bytes]] = []
    labels = None
    if kind == "multipart/form-data":
        form_fields, raw = await _multipart(request, body, settings)
        fields = _fields(query, form_fields)
    elif kind == "application/json":
        doc, raw = json_upload(body, TranslateJSON, settings)
        fields = _fields(query, doc.model_dump(exclude={"images"}, exclude_unset=True))
    elif kind in NPZ_TYPES:
        fields = _fields(query, {})
        model = pick_model(core, fields.model, fields.direction)
        shape = tuple(model.card.translation.source.image_shape)
        images, labels = npz_images(body, settings, shape)
        _check_count(len(images), settings)
        return Upload(fields, check_array(images, shape, model.name), labels), model
    else:
        raise ClientError(
            f"content-type: must be multipart/form-data, application/json or application/x-npz, got {kind or 'none'!r}",
            415,
        )
    model = pick_model(core, fields.model, fields.direction)
    shape = tuple(model.card.translation.source.image_shape)
    images = np.stack([decode_image(data, where, shape, settings) for where, data in raw])
    return Upload(fields, images, labels), model


def _b64(text: str, where: str, settings: Settings) -> bytes:
    if len(text) > 4 * (settings.max_image_bytes // 3 + 2):  # before decoding it
        raise _too_big(where, len(text) * 3 // 4, settings)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ClientError(f"{where}: not valid base64") from None


async def _multipart(
    request: Request, body: bytes, settings: Settings, masks: list[tuple[str, bytes]] | None = None
) -> tuple[dict, list[tuple[str, bytes]]]:
    """(text fields, image files) of a multipart body; with `masks`, 'masks' files are collected there."""

    async def stream():
        yield body

    parser = MultiPartParser(
        Headers(raw=request.headers.raw), stream(), max_files=(2 if masks is not None else 1) * settings.max_translate_images + 1,
        max_fields=16, max_part_size=4096,
    )  # fmt: skip
    try:
        form = await parser.parse()
    except MultiPartException as e:
        if "files" in e.message.lower():
            _check_count(settings.max_translate_images + 1, settings)
        raise ClientError(f"body: not a valid multipart form ({e.message})") from None
    try:
        files, fields = [], {}
        for key, value in form.multi_items():
            if isinstance(value, str):
                if key in fields:
                    raise ClientError(f"{key}: given twice")
                fields[key] = value
            elif key == "masks" and masks is not None:
                masks.append((f"masks[{len(masks)}] ({value.filename or 'unnamed'})", await value.read()))
            elif key != "images":
                where = "'images' and 'masks'" if masks is not None else "'images'"
                raise ClientError(f"{key}: unknown file field (files go in {where})")
            else:
                files.append((f"images[{len(files)}] ({value.filename or 'unnamed'})", await value.read()))
    finally:
        await form.close()
    _check_count(len(files), settings)
    return fields, files


async def translate(request: Request, core: ServingCore) -> Response:
    """The route: parse, translate through the model's batcher, answer like /generate."""
    try:
        upload, model = await parse(request, core.settings, core)
        core.admit(model, len(upload.images))
        out = await core.run(model, {model.card.inputs[0].name: upload.images})
        result = Images(model, out, upload.labels, np.arange(len(out), dtype=np.int64), None)
        reply = await encode(result, upload.fields.format)
    except ClientError as e:
        flood_log.warning(f"refused {e.status}", "POST %s -> %d: %s", ROUTE, e.status, e)
        return JSONResponse({"error": str(e)}, status_code=e.status, headers=e.headers or None)
    headers = {**reply.headers, "X-Direction": model.card.translation.direction}
    return Response(reply.body, media_type=reply.media_type, headers=headers)


def translate_routes(core: Callable[[], ServingCore]) -> list[Route]:
    """POST /translate over the serving core that `core()` returns (the service's, once it started)."""

    async def endpoint(request: Request) -> Response:
        return await translate(request, core())

    return [Route(ROUTE, endpoint, methods=["POST"])]


def openapi_path() -> dict:
    """The /translate operation for /docs.json (a mounted route, so outside BentoML's own document)."""
    fields = TranslateFields.model_json_schema()["properties"]
    params = [{"name": k, "in": "query", "required": False, "schema": v} for k, v in fields.items()]
    error = {
        "content": {
            "application/json": {"schema": {"type": "object", "properties": {"error": {"type": "string"}}}}
        }
    }
    form = {
        "type": "object",
        "properties": {
            "images": {"type": "array", "items": {"type": "string", "format": "binary"}},
            **fields,
        },
    }
    answers = {
        "application/json": {"schema": {"type": "object", "description": "as /generate format png"}},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    }
    return {
        "post": {
            "summary": "Translate images with an image-to-image model (e.g. CycleGAN a2b / b2a)",
            "description": __doc__,
            "operationId": "translate",
            "parameters": params,
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {"schema": form},
                    "application/json": {"schema": TranslateJSON.model_json_schema()},
                    "application/x-npz": {"schema": {"type": "string", "format": "binary"}},
                },
            },
            "responses": {
                "200": {"description": "translated images (format png / grid / npz)", "content": answers},
                **{s: {"description": d, **error} for s, d in (("400", "bad field"), ("404", "unknown model"),
                   ("413", "too large"), ("415", "unsupported body"), ("503", "busy"))},
            },
        }
    }  # fmt: skip
