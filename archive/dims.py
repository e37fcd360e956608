"""Niche dimensions: how one descriptor of a program is turned into a coordinate of the archive."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

KINDS = ("grid", "category", "cvt")


@dataclass(frozen=True, kw_only=True)
class Dim:
    """One niche dimension of the elite archive.

    Kinds:
        ``grid``: a numeric descriptor binned into ``bins`` equal bins over ``[low, high]``
            (equal in log10 space when ``log`` is True). Values outside the range fall into
            the edge bins, as in pyribs.
        ``category``: a label that must be one of ``categories``.
        ``cvt``: a vector descriptor of length ``dimension``, each component bounded by
            ``ranges``; the space is tessellated into ``bins`` centroidal Voronoi cells. A
            ``cvt`` dim must be the only dim of its archive.

    Example:
        >>> Dim(name="params", low=1e4, high=1e8, bins=8, log=True).labels()[0]
        '1e+04..3.16e+04'
    """

    name: str
    kind: str = "grid"
    low: float = 0.0
    high: float = 1.0
    bins: int = 10
    log: bool = False
    categories: tuple[str, ...] = ()
    dimension: int = 0
    ranges: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        where = f"Dim {self.name!r}"
        if not self.name:
            raise ValueError("Dim: name must be a non-empty string")
        if self.kind not in KINDS:
            raise ValueError(f"{where}: kind must be one of {list(KINDS)}, got {self.kind!r}")
        if self.kind == "category":
            if not self.categories or len(set(self.categories)) != len(self.categories):
                raise ValueError(
                    f"{where}: categories must be a non-empty tuple of distinct labels"
                )
            object.__setattr__(self, "categories", tuple(self.categories))
            return
        if int(self.bins) < 1:
            raise ValueError(f"{where}: bins must be >= 1, got {self.bins}")
        if self.kind == "grid":
            if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
                raise ValueError(f"{where}: needs finite low < high, got {self.low}, {self.high}")
            if self.log and self.low <= 0:
                raise ValueError(f"{where}: log bins need low > 0, got {self.low}")
            return
        ranges = tuple((float(lo), float(hi)) for lo, hi in self.ranges)
        object.__setattr__(self, "ranges", ranges)
        if self.dimension < 1 or len(ranges) != self.dimension:
            raise ValueError(
                f"{where}: a cvt dim needs dimension >= 1 and one (low, high) "
                f"range per component, got dimension={self.dimension}, "
                f"{len(ranges)} ranges"
            )
        if any(not lo < hi for lo, hi in ranges):
            raise ValueError(f"{where}: every cvt range needs low < high, got {ranges}")

    @property
    def size(self) -> int:
        """Number of cells along this dim (categories, bins or centroids)."""
        return len(self.categories) if self.kind == "category" else int(self.bins)

    def bounds(self) -> tuple[float, float]:
        """The grid range in the space it is binned in (log10 space for log dims)."""
        if self.log:
            return math.log10(self.low), math.log10(self.high)
        return float(self.low), float(self.high)

    def labels(self) -> list[str]:
        """A short label for every cell along this dim, in cell order."""
        if self.kind == "category":
            return [str(c) for c in self.categories]
        if self.kind == "cvt":
            return [f"c{i}" for i in range(self.size)]
        edges = np.linspace(*self.bounds(), self.size + 1)
        if self.log:
            edges = 10.0**edges
        return [f"{lo:.3g}..{hi:.3g}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]

    def measure(self, value: Any) -> tuple[Any, str]:
        """The coordinate pyribs bins for ``value``, or ``(None, reason)`` when it is unusable."""
        if self.kind == "category":
            if value not in self.categories:
                return (
                    None,
                    f"descriptor {self.name!r}={value!r} is not one of {list(self.categories)}",
                )
            return value, ""
        if self.kind == "cvt":
            try:
                vec = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                return None, f"descriptor {self.name!r}={value!r} is not a numeric vector"
            if vec.shape != (self.dimension,) or not np.all(np.isfinite(vec)):
                return None, (
                    f"descriptor {self.name!r} must be {self.dimension} finite numbers, "
                    f"got {value!r}"
                )
            return vec, ""
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            return None, f"descriptor {self.name!r}={value!r} is not a number"
        x = float(value)
        if not math.isfinite(x):
            return None, f"descriptor {self.name!r}={value!r} is not finite"
        if self.log:
            if x <= 0:
                return None, f"descriptor {self.name!r}={value!r} must be > 0 for log bins"
            x = math.log10(x)
        return x, ""

    def outside(self, value: Any) -> str:
        """A note when a usable numeric ``value`` lies outside this grid dim's range (it is
        then placed in the edge bin, as pyribs clips it), else ``""``."""
        x, reason = self.measure(value)
        if reason or self.kind != "grid":
            return ""
        lo, hi = self.bounds()
        if lo <= x <= hi:
            return ""
        rng = f"[{self.low:g}, {self.high:g}]"
        return f"descriptor {self.name!r}={value!r} is outside its range {rng}: put in the edge bin"

    def bin_of(self, x: float) -> int:
        """Bin of a grid coordinate; the same rule as pyribs ``GridArchive.index_of``."""
        lo, hi = self.bounds()
        idx = int((self.size * (x - lo) + 1e-6) / (hi - lo))
        return min(max(idx, 0), self.size - 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "low": self.low,
            "high": self.high,
            "bins": self.bins,
            "log": self.log,
            "categories": list(self.categories),
            "dimension": self.dimension,
            "ranges": [list(r) for r in self.ranges],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Dim:
        return cls(
            name=d["name"],
            kind=d["kind"],
            low=float(d["low"]),
            high=float(d["high"]),
            bins=int(d["bins"]),
            log=bool(d["log"]),
            categories=tuple(d["categories"]),
            dimension=int(d["dimension"]),
            ranges=tuple(tuple(r) for r in d["ranges"]),
        )

    @classmethod
    def from_spec(cls, spec: Any, *, log: bool = False) -> Dim:
        """A Dim from a ``target.toml`` descriptor (``evo.target.DescriptorSpec``, duck-typed).

        Args:
            spec: has ``name``, ``range`` (``(low, high)`` or None), ``bins`` and
                ``categories`` (a tuple or None).
            log: bin the range in log space.
        """
        if spec.categories:
            return cls(name=spec.name, kind="category", categories=tuple(spec.categories))
        if spec.range is None:
            raise ValueError(f"descriptor {spec.name!r}: needs a range or categories")
        low, high = spec.range
        return cls(
            name=spec.name,
            kind="grid",
            low=float(low),
            high=float(high),
            bins=int(spec.bins),
            log=log,
        )
