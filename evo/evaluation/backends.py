"""Which backend runs the evaluations: local threads on this machine's slots, or Ray.

Both hand the loop a ``concurrent.futures.Future`` per evaluation, so the loop does not know
which it has. Ray is imported only when asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evo.evaluation.slots import LocalBackend, make_slots

if TYPE_CHECKING:
    from evo.evaluation.ray_backend import RayBackend

BACKENDS = ("local", "ray")


class BackendError(ValueError):
    """The backend cannot start as asked; the message names the setting and what to do."""


def make_backend(
    kind: str,
    *,
    workers: int | None = None,
    address: str | None = None,
    gpus_per_task: float | None = None,
    cpus_per_task: int | None = None,
) -> LocalBackend | RayBackend:
    """The backend the ``[backend]`` config asks for.

    Args:
        kind: ``"local"`` (threads on this machine's slots) or ``"ray"``.
        workers: parallel evaluations; None: automatic (see ``make_slots``, ``RayBackend``).
        address: Ray only; None or ``""`` starts a local Ray instance.
        gpus_per_task, cpus_per_task: Ray only; see :class:`RayBackend`.

    Raises:
        BackendError: an unknown kind, or a Ray backend that cannot start.
    """
    if kind == "local":
        return LocalBackend(make_slots(workers))
    if kind == "ray":
        from evo.evaluation.ray_backend import RayBackend

        return RayBackend(
            address=address or None,
            workers=workers,
            gpus_per_task=gpus_per_task,
            cpus_per_task=cpus_per_task,
        )
    raise BackendError(f"backend.kind {kind!r} is unknown; use one of {list(BACKENDS)}")


__all__ = ["BACKENDS", "BackendError", "make_backend"]
