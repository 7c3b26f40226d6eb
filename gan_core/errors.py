"""One base class for every mistake a user can fix, and how to say it in one line.

Each package raises its own subclass (DataError, ModelFileError, CheckpointError, ExportError, ...);
the `gan` command, `python -m augment` and the service catch `UserError` and print `one_line(e)`,
never a traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input, a refused operation or an unusable file; the message is one line for a person."""


def one_line(e: BaseException) -> str:
    """The first line of an error's message; pydantic validation errors as 'field: message; ...'."""
    errors = getattr(e, "errors", None)
    if callable(errors) and type(e).__name__ == "ValidationError":
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}"
            for err in errors(include_url=False)
        )
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def user_errors() -> tuple[type[BaseException], ...]:
    """What a command may fail with for a reason the user can fix: printed as one line, exit 2."""
    from pydantic import ValidationError

    return (UserError, ValidationError, FileNotFoundError, PermissionError)
