"""Errors that the command line turns into one line on stderr and exit code 2."""

from __future__ import annotations


class NdgmError(ValueError):
    """Bad input from a user: an unknown name, an out-of-range value, a missing file.

    The CLI prints ``ndgm: error: <message>`` and exits with code 2; library users get
    an ordinary ``ValueError`` subclass whose message names the bad argument.
    """


def check_positive(name: str, value: float) -> float:
    """Return ``value`` as a float if it is finite and > 0, else raise `NdgmError`."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise NdgmError(f"{name} must be a number, got {value!r}") from None
    if not v > 0 or v == float("inf"):
        raise NdgmError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def check_nonnegative(name: str, value: float) -> float:
    """Return ``value`` as a float if it is finite and >= 0, else raise `NdgmError`."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise NdgmError(f"{name} must be a number, got {value!r}") from None
    if not v >= 0 or v == float("inf"):
        raise NdgmError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def check_int(name: str, value: object, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` as an int in ``[minimum, maximum]``; reject floats like 2.5 and strings like '1e3'."""
    if isinstance(value, bool):
        raise NdgmError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, int):
        v = value
    elif isinstance(value, float) and value.is_integer():
        v = int(value)
    elif isinstance(value, str):
        try:
            v = int(value.strip())
        except ValueError:
            raise NdgmError(f"{name} must be an integer, got {value!r}") from None
    else:
        raise NdgmError(f"{name} must be an integer, got {value!r}")
    if v < minimum:
        raise NdgmError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and v > maximum:
        raise NdgmError(f"{name} must be an integer <= {maximum}, got {value!r}")
    return v
