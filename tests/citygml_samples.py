"""Tiny CityGML documents written on the fly for tests (shapes with known answers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

HEADER_2 = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0" '
    'xmlns:bldg="http://www.opengis.net/citygml/building/2.0" '
    'xmlns:gen="http://www.opengis.net/citygml/generics/2.0" '
    'xmlns:gml="http://www.opengis.net/gml" xmlns:xlink="http://www.w3.org/1999/xlink">\n'
)


def box_polygons(x0: float, y0: float, z0: float, w: float, d: float, h: float) -> dict[str, list]:
    """Outward-oriented polygons of a box building, by CityGML boundary surface kind."""
    a = [(x0, y0), (x0 + w, y0), (x0 + w, y0 + d), (x0, y0 + d)]
    z1 = z0 + h
    ground = [(x, y, z0) for x, y in a[::-1]]
    roof = [(x, y, z1) for x, y in a]
    walls = []
    for i in range(4):
        (xa, ya), (xb, yb) = a[i], a[(i + 1) % 4]
        walls.append([(xa, ya, z0), (xb, yb, z0), (xb, yb, z1), (xa, ya, z1)])
    return {"GroundSurface": [ground], "RoofSurface": [roof], "WallSurface": walls}


def pos_list(ring: list[tuple[float, float, float]]) -> str:
    pts = list(ring) + [ring[0]]
    return " ".join(f"{x:.3f} {y:.3f} {z:.3f}" for x, y, z in pts)


def building_xml(gml_id: str, surfaces: dict[str, list], attrs: str = "") -> str:
    parts = [f'  <core:cityObjectMember>\n   <bldg:Building gml:id="{gml_id}">\n{attrs}']
    n = 0
    for kind, polys in surfaces.items():
        for ring in polys:
            n += 1
            parts.append(
                f"    <bldg:boundedBy><bldg:{kind}><bldg:lod2MultiSurface><gml:MultiSurface>"
                f'<gml:surfaceMember><gml:Polygon gml:id="{gml_id}_p{n}">'
                f"<gml:exterior><gml:LinearRing>"
                f"<gml:posList>{pos_list(ring)}</gml:posList>"
                f"</gml:LinearRing></gml:exterior></gml:Polygon></gml:surfaceMember>"
                f"</gml:MultiSurface></bldg:lod2MultiSurface></bldg:{kind}></bldg:boundedBy>\n"
            )
    parts.append("   </bldg:Building>\n  </core:cityObjectMember>\n")
    return "".join(parts)


def write_citygml(
    path: Path, buildings: list[str], srs: str | None = "urn:adv:crs:ETRS89_UTM33*DE_DHHN2016_NH"
) -> Path:
    """A CityGML 2.0 file with the given building members and an envelope with ``srs``."""
    env = ""
    if srs:
        env = (
            f'  <gml:boundedBy><gml:Envelope srsName="{srs}" srsDimension="3">'
            "<gml:lowerCorner>0 0 0</gml:lowerCorner><gml:upperCorner>1 1 1</gml:upperCorner>"
            "</gml:Envelope></gml:boundedBy>\n"
        )
    path.write_text(HEADER_2 + env + "".join(buildings) + "</core:CityModel>\n", encoding="utf-8")
    return path


def tall_tower(path: Path) -> Path:
    """One 4 m × 4 m × 60 m tower at the Kröpeliner Tor, ground at 10 m DHHN2016."""
    return write_citygml(
        path, [building_xml("tower", box_polygons(312244.0, 5997168.0, 10.0, 4.0, 4.0, 60.0))]
    )


def ring_array(ring: list[tuple[float, float, float]]) -> np.ndarray:
    return np.asarray(ring, dtype=np.float64)
