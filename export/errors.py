"""The one exception the exporter raises for anything the user can fix or should know about."""

from __future__ import annotations

from gan_core.errors import UserError


class ExportError(UserError):
    """An export that cannot be made or did not verify; the message is one line for the user."""
