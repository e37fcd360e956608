"""Which niches the archive has: the edit descriptors by default, or metrics the target names.

By default a program's niche is (edited region x log2 edit size) relative to the seed, so a
search cannot collapse onto one small safe edit: a big rewrite of the model and a one-constant
tweak of the optimizer never compete for the same cell. ``niches`` or ``[descriptors]`` in
``target.toml``, or ``archive.descriptors`` in the run config, pick others (reported metrics,
alone or mixed with the edit descriptors).
"""

from __future__ import annotations

import functools
from typing import Any

from archive import Dim
from evo.config import ConfigError
from evo.target import EDIT_DESCRIPTORS, Target
from operators import edit_descriptors, regions

__all__ = [
    "EDIT_DESCRIPTORS",
    "OTHER",
    "archive_dims",
    "descriptors_for",
    "measured_niches",
    "niche_names",
    "region_labels",
]

OTHER = "other"  # region of a statement the seed does not have (a new top-level def)


@functools.lru_cache(maxsize=8)  # asked for each child's descriptors; the seed is fixed
def region_labels(seed_source: str) -> tuple[str, ...]:
    labels = sorted(set(regions(seed_source).values()))
    return tuple(labels) + ("multi", "none", OTHER)


def niche_names(target: Target, archive_cfg: dict[str, Any]) -> list[str]:
    """The names of a run's niche dims: ``archive.descriptors``, else the target's ``niches``,
    else its ``[descriptors]``, else the edit descriptors."""
    return (
        list(archive_cfg["descriptors"])
        or list(target.niches)
        or [d.name for d in target.descriptors]
        or list(EDIT_DESCRIPTORS)
    )


def measured_niches(target: Target, archive_cfg: dict[str, Any]) -> bool:
    """True when a niche dim is a metric the program reports (a behaviour the user chose),
    not only an edit descriptor (the program's distance from the seed)."""
    return any(name not in EDIT_DESCRIPTORS for name in niche_names(target, archive_cfg))


def archive_dims(target: Target, seed_source: str, archive_cfg: dict[str, Any]) -> list[Dim]:
    """The niche dimensions of a run (validated: unknown names are a ConfigError)."""
    names = niche_names(target, archive_cfg)
    by_name = {d.name: d for d in target.descriptors}
    dims = []
    for name in names:
        if name == "region":
            dims.append(Dim(name="region", kind="category", categories=region_labels(seed_source)))
        elif name == "edit_size_bin":
            bins = archive_cfg["edit_size_bins"]
            dims.append(
                Dim(name="edit_size_bin", kind="grid", low=0.0, high=float(bins), bins=bins)
            )
        elif name in by_name:
            spec = by_name[name]
            if spec.categories:
                dims.append(Dim(name=name, kind="category", categories=spec.categories))
            else:
                low, high = spec.range
                dims.append(Dim(name=name, kind="grid", low=low, high=high, bins=spec.bins))
        else:
            allowed = list(EDIT_DESCRIPTORS) + list(by_name)
            raise ConfigError(
                f"archive.descriptors: unknown descriptor {name!r}; allowed: "
                f"{allowed} (metrics need a [descriptors.NAME] table in "
                f"{target.root / 'target.toml'})"
            )
    return dims


def descriptors_for(source: str, seed_source: str) -> dict[str, Any]:
    """Edit descriptors of ``source`` against the seed, with unknown regions as 'other'."""
    d = edit_descriptors(source, seed_source).to_dict()
    if d["region"] not in region_labels(seed_source):
        d["region"] = OTHER
    return d
