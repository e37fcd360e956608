"""Pack N circles in the unit square, maximising the sum of their radii (an OpenEvolve-style
block target: only the code between the EVOLVE-BLOCK markers may change)."""

import json
import os

import numpy as np

N = 26

# EVOLVE-BLOCK-START
SPACING = 0.9  # fraction of the grid cell a circle may fill


def grid_centers(n):
    """Centers on a square grid, row by row."""
    side = int(np.ceil(np.sqrt(n)))
    xs = (np.arange(side) + 0.5) / side
    pts = [(x, y) for y in xs for x in xs]
    return np.array(pts[:n])


def radii_for(centers):
    """The largest radii that keep every circle inside the square and apart from the others."""
    n = len(centers)
    r = np.minimum.reduce([centers[:, 0], centers[:, 1], 1 - centers[:, 0], 1 - centers[:, 1]])
    for i in range(n):
        for j in range(i + 1, n):
            d = np.linalg.norm(centers[i] - centers[j])
            if r[i] + r[j] > d:
                scale = d / (r[i] + r[j])
                r[i] *= scale
                r[j] *= scale
    return r * SPACING


def construct_packing():
    centers = grid_centers(N)
    return centers, radii_for(centers)
# EVOLVE-BLOCK-END


def main():
    centers, radii = construct_packing()
    result = {"sum_radii": float(radii.sum()), "n": len(radii)}
    with open(os.environ["EVO_RESULT"], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
