"""The one exception type of the augmentation job: its message is one line fit for a user."""


class AugmentError(ValueError):
    """Bad job input, a refused resume, or an output that cannot be written; one line for the user."""
