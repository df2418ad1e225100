"""Spatial tree over features: a quadtree on footprint centres with bounded tiles.

Pure functions on arrays: the tree knows feature indices, centres and sizes, not geometry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


@dataclass(slots=True)
class TileNode:
    """A node of the tile tree: its address, the features below it and its children."""

    level: int
    x: int
    y: int
    features: npt.NDArray[np.int64]
    """Indices of all features in this node's subtree (leaf: the features it holds)."""
    children: list[TileNode] = field(default_factory=list)

    @property
    def address(self) -> str:
        """Stable name of the tile: level-x-y in the quadtree."""
        return f"{self.level}-{self.x}-{self.y}"

    @property
    def is_leaf(self) -> bool:
        """Whether the node holds full-detail content (no children)."""
        return not self.children

    def walk(self) -> list[TileNode]:
        """This node and all below it, parents before children, in a fixed order."""
        nodes = [self]
        for child in self.children:
            nodes.extend(child.walk())
        return nodes


def build_quadtree(
    centres: npt.NDArray[np.float64],
    weights: npt.NDArray[np.int64],
    *,
    max_features: int,
    max_weight: int,
    max_depth: int = 16,
) -> TileNode:
    """Split the square around ``centres`` (n, 2) until each leaf holds at most ``max_features``
    features and ``max_weight`` total weight (estimated bytes), or ``max_depth`` is reached.

    A leaf with a single feature is never split, whatever its weight.
    """
    indices = np.arange(len(centres), dtype=np.int64)
    lo = centres.min(axis=0) if len(centres) else np.zeros(2)
    hi = centres.max(axis=0) if len(centres) else np.zeros(2)
    side = float(max(hi - lo)) or 1.0
    # A square root cell so that quadrants stay square: tiles are then comparable in size.
    origin = lo - 1e-6 * side
    side *= 1.0 + 2e-6

    def split(node: TileNode, cell_origin: npt.NDArray[np.float64], cell_side: float) -> None:
        feats = node.features
        if (
            len(feats) <= 1
            or node.level >= max_depth
            or (len(feats) <= max_features and int(weights[feats].sum()) <= max_weight)
        ):
            return
        half = cell_side / 2.0
        pts = centres[feats]
        right = pts[:, 0] >= cell_origin[0] + half
        top = pts[:, 1] >= cell_origin[1] + half
        for qy in (0, 1):
            for qx in (0, 1):
                mask = (right == bool(qx)) & (top == bool(qy))
                if not mask.any():
                    continue
                child = TileNode(node.level + 1, node.x * 2 + qx, node.y * 2 + qy, feats[mask])
                node.children.append(child)
                split(child, cell_origin + np.array([qx * half, qy * half]), half)
        if len(node.children) == 1 and len(node.children[0].features) == len(feats):
            # All features in one quadrant: the level adds nothing, keep descending through it.
            only = node.children[0]
            node.children = only.children
            if not node.children:
                # Coincident centres cannot be separated: keep them together in this leaf.
                return

    root = TileNode(0, 0, 0, indices)
    split(root, origin, side)
    return root
