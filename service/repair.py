"""POST /restore and POST /upscale: damaged or small images in, the repair model's images out.

The models are the paired image-to-image exports (card.repair: task 'restore' or 'upscale'). Bodies
and answers are /translate's (service.translate): multipart (`images` files, plus `masks` files for
/restore), JSON ({"images": [base64 PNG / JPEG], "masks": [...]}) or an npz (`images` uint8
[N, H, W(, C)], optional `masks` [N, H, W(, 1)] and `labels` [N], echoed), fields in the body or the
query string: `model`, `format` (png | grid | npz), and for /upscale `scale` (checked against the
model's). Fill-in models take a mask per image (> 127 = lost pixel; the same size as its image);
without one they fill the centre box of card.repair.mask_box (mask:box's; one of mask:random's boxes).

Sizes: a fully convolutional model (card.repair.any_size) takes any image whose sides are multiples of
card.repair.multiple, up to GAN_MAX_REPAIR_PIXELS output pixels per image (413 past it), checked from
the header before any pixel is decoded; every image of one request has one size. The other limits are
/translate's (body, images per request, bytes per image, decompression bombs), each a 4xx naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gan_core.imaging import centre_masks
from service.encoding import Images, encode
from service.guard import flood_log
from service.inputs import ClientError
from service.settings import Settings
from service.translate import (
    NPZ_TYPES,
    _check_count,
    _fields,
    _multipart,
    b64_files,
    decode_image,
    json_upload,
    npz_arrays,
    npz_labelled,
    read_body,
)

if TYPE_CHECKING:
    from service.core import ServingCore
    from service.model_set import Model

ROUTES = {"/restore": "restore", "/upscale": "upscale"}


class RepairFields(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str | None = Field(
        None, description="the model's name (GET /models: card.repair says what it does)"
    )
    format: Literal["png", "grid", "npz"] = "png"


class UpscaleFields(RepairFields):
    scale: int | None = Field(
        None, ge=2, le=8, description="the model's scale (x2, x4, x8), checked when given"
    )


class RestoreJSON(RepairFields):
    images: list[str] = Field(min_length=1, description="base64 PNG or JPEG images")
    masks: list[str] | None = Field(None, description="base64 PNG masks, one per image (> 127 = lost pixel)")


class UpscaleJSON(UpscaleFields):
    images: list[str] = Field(min_length=1, description="base64 PNG or JPEG images")


FIELDS = {"restore": (RepairFields, RestoreJSON), "upscale": (UpscaleFields, UpscaleJSON)}


def does(task: str) -> str:
    return "repairs" if task == "restore" else "upscales"


def pick_model(core: ServingCore, task: str, name: str | None) -> Model:
    """The served repair model of `task` named `name` (the only one when None)."""
    served = {
        n: m for n, m in core.models.items() if m.card.repair is not None and m.card.repair.task == task
    }
    if name is not None and name in core.models and name not in served:
        raise ClientError(f"model: {name!r} does not {task} images (GET /models says what each model does)")
    if not served:
        raise ClientError(f"model: no {task} model is served (export one trained with a pix2pix preset)", 404)
    if name is None:
        if len(served) > 1:
            raise ClientError(
                f"model: several {task} models are served; name one of {', '.join(sorted(served))}"
            )
        return next(iter(served.values()))
    if name not in served:
        raise ClientError(f"model: unknown {task} model {name!r}; known: {', '.join(sorted(served))}", 404)
    return served[name]


def size_check(model: Model, settings: Settings) -> Callable[[int, int, str], None]:
    """check(width, height, where) of one input image: the model's size rule and the pixel limit."""
    r = model.card.repair
    h0, w0 = model.card.inputs[0].shape[:2]

    def check(w: int, h: int, where: str) -> None:
        if not r.any_size and (h, w) != (h0, w0):
            raise ClientError(f"{where}: image is {w}x{h} pixels; model {model.name!r} takes {w0}x{h0}")
        if h % r.multiple or w % r.multiple:
            raise ClientError(
                f"{where}: image is {w}x{h} pixels; model {model.name!r} takes sides that are multiples of {r.multiple}"
            )
        out = h * w * r.scale**2
        if out > settings.max_repair_pixels:
            grown = f" (x{r.scale}: {out} output pixels)" if r.scale > 1 else ""
            raise ClientError(
                f"{where}: image is {w}x{h} pixels{grown}; must be <= {settings.max_repair_pixels} output pixels "
                f"({Settings.ENV['max_repair_pixels']})",
                413,
            )

    return check


def _one_size(images: list[np.ndarray]) -> np.ndarray:
    for k, im in enumerate(images[1:], 1):
        if im.shape != images[0].shape:
            h, w = im.shape[:2]
            raise ClientError(
                f"images[{k}]: is {w}x{h} pixels, images[0] is {images[0].shape[1]}x{images[0].shape[0]}; "
                "one size per request"
            )
    return np.stack(images)


def _nhwc(images: np.ndarray, c: int, name: str, model: str) -> np.ndarray:
    given = list(images.shape)
    if images.ndim == 3 and c == 1:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] != c:
        raise ClientError(f"npz: '{name}' is {given}; model {model!r} takes [N, H, W, {c}] uint8 (NHWC)")
    return np.ascontiguousarray(images)


def mask_check(image: np.ndarray, where: str) -> Callable[[int, int, str], None]:
    h, w = image.shape[:2]

    def check(mw: int, mh: int, _where: str) -> None:
        if (mh, mw) != (h, w):
            raise ClientError(f"{where}: mask is {mw}x{mh} pixels; its image is {w}x{h}")

    return check


async def parse(request: Request, task: str, core: ServingCore):
    """(fields, model, images NHWC, masks N H W 1 or None, labels or None) of a request."""
    settings = core.settings
    fields_model, json_model = FIELDS[task]
    body = await read_body(request, settings.max_body_bytes)
    query = dict(request.query_params)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw_masks: list[tuple[str, bytes]] | None = [] if task == "restore" else None
    labels = masks = None
    if kind == "multipart/form-data":
        form_fields, raw = await _multipart(request, body, settings, raw_masks)
        fields = _fields(query, form_fields, fields_model)
    elif kind == "application/json":
        doc, raw = json_upload(body, json_model, settings)
        if getattr(doc, "masks", None) is not None:
            raw_masks = b64_files(doc.masks, "masks", settings)
        fields = _fields(query, doc.model_dump(exclude={"images", "masks"}, exclude_unset=True), fields_model)
    elif kind in NPZ_TYPES:
        fields = _fields(query, {}, fields_model)
        model = _checked_model(core, task, fields)
        card = model.card
        per_image = settings.max_repair_pixels // card.repair.scale**2 * card.image_shape[0]
        arrays = npz_arrays(body, settings, per_image, ("images", "labels", "masks"))
        images, labels = npz_labelled(arrays)
        _check_count(len(images), settings)
        images = _nhwc(images, card.image_shape[0], "images", model.name)
        size_check(model, settings)(images.shape[2], images.shape[1], "npz: 'images'")
        if "masks" in arrays:
            masks = _npz_masks(arrays["masks"], images, model)
        return fields, model, images, _masks(model, images, masks), labels
    else:
        raise ClientError(
            f"content-type: must be multipart/form-data, application/json or application/x-npz, got {kind or 'none'!r}",
            415,
        )
    model = _checked_model(core, task, fields)
    c = model.card.image_shape[0]
    check = size_check(model, settings)
    images = _one_size([decode_image(data, where, (c, 0, 0), settings, check) for where, data in raw])
    if raw_masks:
        if model.card.repair.mask is None:
            raise ClientError(f"masks: model {model.name!r} does not fill in (it takes no mask)")
        if len(raw_masks) != len(images):
            raise ClientError(f"masks: give one per image ({len(images)}), got {len(raw_masks)}")
        masks = np.stack(
            [
                decode_image(data, where, (1, 0, 0), settings, mask_check(images[0], where))
                for where, data in raw_masks
            ]
        )
    return fields, model, images, _masks(model, images, masks), labels


def _npz_masks(masks: np.ndarray, images: np.ndarray, model: Model) -> np.ndarray:
    if model.card.repair.mask is None:
        raise ClientError(f"npz: 'masks': model {model.name!r} does not fill in (it takes no mask)")
    masks = _nhwc(masks, 1, "masks", model.name)
    if masks.shape != (*images.shape[:3], 1):
        raise ClientError(f"npz: 'masks' is {list(masks.shape)}; its images need {[*images.shape[:3], 1]}")
    return masks


def _masks(model: Model, images: np.ndarray, masks: np.ndarray | None) -> np.ndarray | None:
    r = model.card.repair
    if r.mask is None:
        return None
    if masks is None:
        return centre_masks(len(images), images.shape[1], images.shape[2], r.mask_box)
    return np.ascontiguousarray(np.where(masks > 127, 255, 0).astype(np.uint8))


def _checked_model(core: ServingCore, task: str, fields: RepairFields) -> Model:
    model = pick_model(core, task, fields.model)
    scale = getattr(fields, "scale", None)
    if scale is not None and scale != model.card.repair.scale:
        raise ClientError(f"scale: model {model.name!r} upscales x{model.card.repair.scale}, not x{scale}")
    return model


async def repair(request: Request, core: ServingCore, route: str) -> Response:
    """The route: parse, run through the model's batcher, answer like /generate."""
    task = ROUTES[route]
    try:
        fields, model, images, masks, labels = await parse(request, task, core)
        core.admit(model, len(images))
        feeds = {model.card.inputs[0].name: images}
        if masks is not None:
            feeds[model.card.inputs[1].name] = masks
        out = await core.run(model, feeds)
        reply = await encode(
            Images(model, out, labels, np.arange(len(out), dtype=np.int64), None), fields.format
        )
    except ClientError as e:
        flood_log.warning(f"refused {e.status}", "POST %s -> %d: %s", route, e.status, e)
        return JSONResponse({"error": str(e)}, status_code=e.status, headers=e.headers or None)
    headers = {**reply.headers, "X-Scale": str(model.card.repair.scale)}
    return Response(reply.body, media_type=reply.media_type, headers=headers)


def repair_routes(core: Callable[[], ServingCore]) -> list[Route]:
    """POST /restore and POST /upscale over the serving core that `core()` returns."""

    def endpoint(route: str):
        async def run(request: Request) -> Response:
            return await repair(request, core(), route)

        return run

    return [Route(route, endpoint(route), methods=["POST"]) for route in ROUTES]


def openapi_paths() -> dict[str, dict]:
    """The /restore and /upscale operations for /docs.json."""
    from service.translate import openapi_path

    out = {}
    for route, task in ROUTES.items():
        fields_model, json_model = FIELDS[task]
        doc = openapi_path()
        op = doc["post"]
        fields = fields_model.model_json_schema()["properties"]
        op["summary"] = (
            "Repair damaged images (noise, blur, JPEG, lost regions given by masks)"
            if task == "restore"
            else "Upscale images with a super-resolution model"
        )
        op["description"] = __doc__
        op["operationId"] = task
        op["parameters"] = [
            {"name": k, "in": "query", "required": False, "schema": v} for k, v in fields.items()
        ]
        form = {"images": {"type": "array", "items": {"type": "string", "format": "binary"}}}
        if task == "restore":
            form["masks"] = {"type": "array", "items": {"type": "string", "format": "binary"}}
        body = op["requestBody"]["content"]
        body["multipart/form-data"]["schema"] = {"type": "object", "properties": {**form, **fields}}
        body["application/json"]["schema"] = json_model.model_json_schema()
        op["responses"]["200"]["description"] = f"the {does(task)} images (format png / grid / npz)"
        out[route] = doc
    return out
