"""Size-like request fields bounded by settings: one table, enforced and documented from one place.

The guard checks a validated request against this table before its route runs anything, and
/docs.json shows the same bounds (`maximum` / `maxItems`), so a size is never checked after the
allocation it guards. The route handlers keep their own checks for callers that skip the
guard (tests, the core used directly); the message is the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from service.inputs import ClientError
from service.settings import Settings


@dataclass(frozen=True)
class FieldLimit:
    field: str
    setting: str  # a Settings field (its environment variable is named in the message)
    items: bool = False  # bounds a list's length (JSON Schema maxItems) rather than a number (maximum)

    @property
    def schema_key(self) -> str:
        return "maxItems" if self.items else "maximum"


FIELD_LIMITS: dict[str, tuple[FieldLimit, ...]] = {
    "/generate": (FieldLimit("count", "max_count"),),
    "/generate_from_latents": (FieldLimit("latents", "max_latents", items=True),),
    "/interpolate": (FieldLimit("steps", "max_steps"),),
    "/traverse": (
        FieldLimit("steps", "max_steps"),
        FieldLimit("values", "max_steps", items=True),
        FieldLimit("seeds", "max_count", items=True),
    ),
}


def over_limit(field: str, value: int, setting: str, settings: Settings) -> ClientError | None:
    """The 400 for `field` = value (a number, or a list's length) over settings.<setting>, else None."""
    limit = getattr(settings, setting)
    if value <= limit:
        return None
    return ClientError(f"{field}: must be <= {limit} ({Settings.ENV[setting]}), got {value}")


def check_fields(route: str, req: BaseModel, settings: Settings) -> None:
    """Raise the first field of `req` over its setting's limit (ClientError, 400)."""
    for lim in FIELD_LIMITS.get(route, ()):
        value = getattr(req, lim.field, None)
        if value is None:
            continue
        error = over_limit(lim.field, len(value) if lim.items else value, lim.setting, settings)
        if error is not None:
            raise error
