"""The one exception type of the augmentation job: its message is one line fit for a user."""

from gan_core.errors import UserError


class AugmentError(UserError):
    """Bad job input, a refused resume, or an output that cannot be written; one line for the user."""
