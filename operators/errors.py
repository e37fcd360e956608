"""The exceptions raised by the operators package; every message is one line."""

from __future__ import annotations


class ValidationError(ValueError):
    """A child program is unusable; the message says why in one line.

    Attributes:
        kind: a short machine-readable reason: ``syntax``, ``encoding``, ``outside_block``,
            ``markers``, ``protected`` or ``noop``. The loop records a ``noop`` child as a
            ``duplicate`` (it is its parent) and every other kind as ``rejected``.
    """

    def __init__(self, message: str, kind: str = "syntax"):
        super().__init__(message)
        self.kind = kind


class OperatorConfigError(ValueError):
    """The seed, ranges, choices or operator weights are unusable; raised when a run starts.

    The message is one line that starts with what is wrong and a colon: a config key
    (``ranges.LR``, ``choices.ACT``, ``droppable``, ...), ``seed`` or ``seed line N``.

    Example:
        >>> OperatorConfigError("ranges.LR: low > high (0.5 > 0.01); swap them").key
        'ranges.LR'
    """

    @property
    def key(self) -> str:
        """What the message names first (see above)."""
        return str(self).split(": ", 1)[0]


class NoChild(Exception):  # noqa: N818 - the name reads as what happened: no child was made
    """An operator could not make a valid child that differs from its parent.

    The loop then tries again, or another operator. ``reason`` is one line.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
