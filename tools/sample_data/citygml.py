"""CityGML writers: M-V-style CityGML 1.0 LoD2 building tiles, and the planned bridge as
CityGML 2.0.

The building tiles copy the shape of the open LoD2 tiles of Mecklenburg-Vorpommern (AdV LoD2
profile): the AdV srsName ``urn:adv:crs:ETRS89_UTM33*DE_DHHN2016_NH`` on the envelope and on
every geometry, ``bldg:Building`` with ``gml:id`` DEMVAL…, ``core:creationDate``, an
``externalReference``, the ``gen:stringAttribute`` Datenquelle… and Gemeindeschluessel,
``bldg:function`` (AdV code), ``roofType``, ``measuredHeight``, ``storeysAboveGround``, a
``lod2Solid`` whose members reference (``xlink:href``) the polygons of the ``boundedBy``
Ground/Wall/RoofSurfaces, BuildingParts, and an xAL address. Text is written directly
(deterministic, and fast: thousands of buildings a second); every value is escaped.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import numpy.typing as npt

from tools.sample_data.bridge import Element, PlannedBridge
from tools.sample_data.layout import Building, BuildingSolid

FloatArray = npt.NDArray[np.float64]

ADV_SRS = "urn:adv:crs:ETRS89_UTM33*DE_DHHN2016_NH"
EPSG_SRS = "urn:ogc:def:crs,crs:EPSG::25833,crs:EPSG::7837"
CREATION_DATE = "2023-06-27"
GEMEINDESCHLUESSEL = "13003000"  # Hanse- und Universitätsstadt Rostock

_NS_10 = (
    'xmlns:core="http://www.opengis.net/citygml/1.0" '
    'xmlns:bldg="http://www.opengis.net/citygml/building/1.0" '
    'xmlns:gen="http://www.opengis.net/citygml/generics/1.0" '
    'xmlns:gml="http://www.opengis.net/gml" xmlns:xlink="http://www.w3.org/1999/xlink" '
    'xmlns:xAL="urn:oasis:names:tc:ciq:xsdschema:xAL:2.0" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://www.opengis.net/citygml/building/1.0 '
    'http://schemas.opengis.net/citygml/building/1.0/building.xsd '
    'http://www.opengis.net/citygml/generics/1.0 '
    'http://schemas.opengis.net/citygml/generics/1.0/generics.xsd"'
)
_NS_20 = (
    'xmlns:core="http://www.opengis.net/citygml/2.0" '
    'xmlns:brid="http://www.opengis.net/citygml/bridge/2.0" '
    'xmlns:gen="http://www.opengis.net/citygml/generics/2.0" '
    'xmlns:app="http://www.opengis.net/citygml/appearance/2.0" '
    'xmlns:gml="http://www.opengis.net/gml" xmlns:xlink="http://www.w3.org/1999/xlink" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://www.opengis.net/citygml/bridge/2.0 '
    'http://schemas.opengis.net/citygml/bridge/2.0/bridge.xsd '
    'http://www.opengis.net/citygml/generics/2.0 '
    'http://schemas.opengis.net/citygml/generics/2.0/generics.xsd '
    'http://www.opengis.net/citygml/appearance/2.0 '
    'http://schemas.opengis.net/citygml/appearance/2.0/appearance.xsd"'
)


def _pos_list(ring: FloatArray) -> str:
    """Coordinates of a closed ring (the first point repeated at the end), in millimetres."""
    closed = np.vstack([ring, ring[:1]])
    return " ".join(f"{x:.3f} {y:.3f} {z:.3f}" for x, y, z in closed.tolist())


class _Bounds:
    def __init__(self) -> None:
        self.lo = np.full(3, np.inf)
        self.hi = np.full(3, -np.inf)

    def add(self, ring: FloatArray) -> None:
        self.lo = np.minimum(self.lo, ring.min(axis=0))
        self.hi = np.maximum(self.hi, ring.max(axis=0))

    def corners(self) -> tuple[str, str]:
        return (" ".join(f"{v:.3f}" for v in self.lo), " ".join(f"{v:.3f}" for v in self.hi))


class _Uuid:
    """Seeded UUID-shaped ids (M-V polygon ids look like DEMVAL…_<uuid>)."""

    def __init__(self, key: str) -> None:
        self.rnd = random.Random(key)

    def __call__(self) -> str:
        h = f"{self.rnd.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# --------------------------------------------------------------------------------------------
# CityGML 1.0 buildings (M-V LoD2 tiles)
# --------------------------------------------------------------------------------------------


def _solid(out: list[str], ind: str, owner_id: str, solid: BuildingSolid, uuid: _Uuid,
           bounds: _Bounds) -> None:
    """lod2Solid (xlinks) + boundedBy surfaces of one body."""
    ids = [f"{owner_id}_{uuid()}" for _ in solid.surfaces]
    i1, i2, i3, i4 = ind + "  ", ind + "    ", ind + "      ", ind + "        "
    out += [ind, "<bldg:lod2Solid>\n", i1, f'<gml:Solid srsName="{ADV_SRS}" srsDimension="3">\n',
            i2, "<gml:exterior>\n", i3, "<gml:CompositeSurface>\n"]
    out += [f'{i4}<gml:surfaceMember xlink:href="#{sid}_poly"/>\n' for sid in ids]
    out += [i3, "</gml:CompositeSurface>\n", i2, "</gml:exterior>\n", i1, "</gml:Solid>\n",
            ind, "</bldg:lod2Solid>\n"]
    j = [ind + "  " * k for k in range(10)]
    for (kind, ring), sid in zip(solid.surfaces, ids, strict=True):
        bounds.add(ring)
        out += [j[0], "<bldg:boundedBy>\n",
                j[1], f'<bldg:{kind} gml:id="{sid}">\n',
                j[2], "<bldg:lod2MultiSurface>\n",
                j[3], f'<gml:MultiSurface srsName="{ADV_SRS}" srsDimension="3">\n',
                j[4], "<gml:surfaceMember>\n",
                j[5], f'<gml:Polygon gml:id="{sid}_poly">\n',
                j[6], "<gml:exterior>\n",
                j[7], "<gml:LinearRing>\n",
                j[8], '<gml:posList srsDimension="3">', _pos_list(ring), "</gml:posList>\n",
                j[7], "</gml:LinearRing>\n",
                j[6], "</gml:exterior>\n",
                j[5], "</gml:Polygon>\n",
                j[4], "</gml:surfaceMember>\n",
                j[3], "</gml:MultiSurface>\n",
                j[2], "</bldg:lod2MultiSurface>\n",
                j[1], f"</bldg:{kind}>\n",
                j[0], "</bldg:boundedBy>\n"]


def _attributes(out: list[str], ind: str, solid: BuildingSolid, generic: bool) -> None:
    if generic:
        for name, value in (("DatenquelleDachhoehe", "1000"), ("DatenquelleLage", "1000"),
                            ("DatenquelleBodenhoehe", "1100"),
                            ("Gemeindeschluessel", GEMEINDESCHLUESSEL)):
            out += [ind, f'<gen:stringAttribute name="{name}">\n', ind,
                    f"  <gen:value>{value}</gen:value>\n", ind, "</gen:stringAttribute>\n"]
    out += [ind, f"<bldg:function>{solid.function}</bldg:function>\n",
            ind, f"<bldg:roofType>{solid.roof_type}</bldg:roofType>\n",
            ind, f'<bldg:measuredHeight uom="urn:adv:uom:m">{solid.measured_height:.3f}'
                 "</bldg:measuredHeight>\n",
            ind, f"<bldg:storeysAboveGround>{solid.storeys}</bldg:storeysAboveGround>\n"]


def _address(out: list[str], street: str, number: str, postcode: str) -> None:
    out += ["      <bldg:address>\n        <core:Address>\n          <core:xalAddress>\n"
            "            <xAL:AddressDetails>\n              <xAL:Country>\n"
            "                <xAL:CountryName>Deutschland</xAL:CountryName>\n"
            '                <xAL:Locality Type="Town">\n'
            "                  <xAL:LocalityName>Rostock</xAL:LocalityName>\n"
            '                  <xAL:Thoroughfare Type="Street">\n'
            f"                    <xAL:ThoroughfareNumber>{escape(number)}"
            "</xAL:ThoroughfareNumber>\n"
            f"                    <xAL:ThoroughfareName>{escape(street)}"
            "</xAL:ThoroughfareName>\n"
            "                  </xAL:Thoroughfare>\n                  <xAL:PostalCode>\n"
            f"                    <xAL:PostalCodeNumber>{postcode}</xAL:PostalCodeNumber>\n"
            "                  </xAL:PostalCode>\n                </xAL:Locality>\n"
            "              </xAL:Country>\n            </xAL:AddressDetails>\n"
            "          </core:xalAddress>\n        </core:Address>\n      </bldg:address>\n"]


def building_tile(name: str, buildings: Iterable[Building], seed: int, note: str) -> bytes:
    """One CityGML 1.0 file of LoD2 buildings in the M-V style (``name``: gml:name)."""
    uuid = _Uuid(f"{seed}:{name}")
    bounds = _Bounds()
    body: list[str] = []
    for building in buildings:
        bid = building.gml_id
        out = ["  <core:cityObjectMember>\n", f'    <bldg:Building gml:id="{bid}">\n']
        if building.name:
            out.append(f"      <gml:name>{escape(building.name)}</gml:name>\n")
        out += [f"      <core:creationDate>{CREATION_DATE}</core:creationDate>\n",
                "      <core:externalReference>\n"
                "        <core:informationSystem>http://repository.gdi-de.org/schemas/adv/"
                "citygml/fdv/art.htm#_9100</core:informationSystem>\n"
                f"        <core:externalObject>\n          <core:name>{bid}</core:name>\n"
                "        </core:externalObject>\n      </core:externalReference>\n"]
        _attributes(out, "      ", building.main, generic=True)
        _solid(out, "      ", bid, building.main, uuid, bounds)
        for k, part in enumerate(building.parts, start=1):
            pid = f"{bid}_BP{k}"
            out += ["      <bldg:consistsOfBuildingPart>\n",
                    f'        <bldg:BuildingPart gml:id="{pid}">\n',
                    f"          <core:creationDate>{CREATION_DATE}</core:creationDate>\n"]
            _attributes(out, "          ", part, generic=False)
            _solid(out, "          ", pid, part, uuid, bounds)
            out += ["        </bldg:BuildingPart>\n", "      </bldg:consistsOfBuildingPart>\n"]
        if building.address is not None:
            _address(out, *building.address)
        out.append("    </bldg:Building>\n  </core:cityObjectMember>\n")
        body.append("".join(out))
    lo, hi = bounds.corners()
    head = (f'<?xml version="1.0" encoding="UTF-8"?>\n<!-- {escape(note)} -->\n'
            f"<core:CityModel {_NS_10}>\n  <gml:name>{escape(name)}</gml:name>\n"
            f'  <gml:boundedBy>\n    <gml:Envelope srsName="{ADV_SRS}" srsDimension="3">\n'
            f"      <gml:lowerCorner>{lo}</gml:lowerCorner>\n"
            f"      <gml:upperCorner>{hi}</gml:upperCorner>\n"
            "    </gml:Envelope>\n  </gml:boundedBy>\n")
    return (head + "".join(body) + "</core:CityModel>\n").encode("utf-8")


# --------------------------------------------------------------------------------------------
# CityGML 2.0 bridge
# --------------------------------------------------------------------------------------------


def _colour(out: list[str], ind: str, targets: list[tuple[str, tuple[float, float, float]]]
            ) -> None:
    """An app:appearance with one X3D material per colour, targeting geometry ids."""
    by_colour: dict[tuple[float, float, float], list[str]] = {}
    for target, colour in targets:
        by_colour.setdefault(colour, []).append(target)
    out += [ind, "<app:appearance>\n", ind, "  <app:Appearance>\n", ind,
            "    <app:theme>Material</app:theme>\n"]
    for colour, ids in by_colour.items():
        out += [ind, "    <app:surfaceDataMember>\n", ind, "      <app:X3DMaterial>\n", ind,
                f"        <app:diffuseColor>{colour[0]:.3f} {colour[1]:.3f} {colour[2]:.3f}"
                "</app:diffuseColor>\n"]
        out += [f"{ind}        <app:target>#{t}</app:target>\n" for t in ids]
        out += [ind, "      </app:X3DMaterial>\n", ind, "    </app:surfaceDataMember>\n"]
    out += [ind, "  </app:Appearance>\n", ind, "</app:appearance>\n"]


def _polygon(out: list[str], ind: str, pid: str | None, ring: FloatArray, bounds: _Bounds
             ) -> None:
    bounds.add(ring)
    ident = f' gml:id="{pid}"' if pid else ""
    out += [ind, f"<gml:Polygon{ident}>\n", ind, "  <gml:exterior>\n", ind,
            "    <gml:LinearRing>\n", ind, '      <gml:posList srsDimension="3">',
            _pos_list(ring), "</gml:posList>\n", ind, "    </gml:LinearRing>\n", ind,
            "  </gml:exterior>\n", ind, "</gml:Polygon>\n"]


def _closed_solid(out: list[str], ind: str, sid: str, polygons: list[FloatArray],
                  bounds: _Bounds) -> None:
    out += [ind, f'<gml:Solid gml:id="{sid}" srsName="{EPSG_SRS}" srsDimension="3">\n', ind,
            "  <gml:exterior>\n", ind, "    <gml:CompositeSurface>\n"]
    for ring in polygons:
        out += [ind, "      <gml:surfaceMember>\n"]
        _polygon(out, ind + "        ", None, ring, bounds)
        out += [ind, "      </gml:surfaceMember>\n"]
    out += [ind, "    </gml:CompositeSurface>\n", ind, "  </gml:exterior>\n", ind,
            "</gml:Solid>\n"]


def _element(out: list[str], ind: str, owner: str, element: Element, bounds: _Bounds) -> None:
    """A BridgeConstructionElement (in outerBridgeConstruction) or BridgeInstallation (in
    outerBridgeInstallation) with its solids as lod2Geometry."""
    prop = ("outerBridgeConstruction" if element.cls == "BridgeConstructionElement"
            else "outerBridgeInstallation")
    eid = f"{owner}_{element.key}"
    gid = f"{eid}_geometry"
    out += [ind, f"<brid:{prop}>\n", ind, f'  <brid:{element.cls} gml:id="{eid}">\n', ind,
            f"    <gml:name>{escape(element.name)}</gml:name>\n"]
    _colour(out, ind + "    ", [(gid, element.color)])
    out += [ind, f"    <brid:function>{escape(element.function)}</brid:function>\n", ind,
            "    <brid:lod2Geometry>\n"]
    inner = ind + "      "
    if len(element.solids) == 1:
        _closed_solid(out, inner, gid, element.solids[0], bounds)
    else:
        out += [inner, f'<gml:MultiSolid gml:id="{gid}" srsName="{EPSG_SRS}" '
                       'srsDimension="3">\n']
        for k, solid in enumerate(element.solids, start=1):
            out += [inner, "  <gml:solidMember>\n"]
            _closed_solid(out, inner + "    ", f"{gid}_{k}", solid, bounds)
            out += [inner, "  </gml:solidMember>\n"]
        out += [inner, "</gml:MultiSolid>\n"]
    out += [ind, "    </brid:lod2Geometry>\n", ind, f"  </brid:{element.cls}>\n", ind,
            f"</brid:{prop}>\n"]


def bridge_file(bridge: PlannedBridge, note: str) -> bytes:
    """The planned Warnowbrücke as one brid:Bridge (CityGML 2.0, LoD2): the deck sections
    (the 70 m bascule among them) as BridgeParts with boundary surfaces and a lod2Solid, the
    railings as BridgeInstallations, piers and protective piles as construction elements."""
    d = bridge.design
    bid = "Warnowbruecke"
    bounds = _Bounds()
    out: list[str] = ["  <core:cityObjectMember>\n", f'    <brid:Bridge gml:id="{bid}">\n',
                      "      <gml:description>Geplante Geh- und Radwegbrücke über die Warnow "
                      "vom Stadthafen (Schnickmannstraße) nach Gehlsdorf (Fährberg). "
                      "Synthetisches LoD2-Modell nach öffentlichen Angaben, kein "
                      "Planungsstand.</gml:description>\n",
                      "      <gml:name>Warnowbrücke</gml:name>\n",
                      "      <core:creationDate>2025-08-01</core:creationDate>\n"]
    generic: list[tuple[str, str, str]] = [
        ("stringAttribute", "Status", "geplant"),
        ("doubleAttribute", "Kostenschaetzung_EUR", f"{d.cost_eur:.0f}"),
        ("stringAttribute", "Kostenstand", d.cost_date),
        ("intAttribute", "Eroeffnung_geplant", str(d.opening_year)),
        ("doubleAttribute", "Laenge_m", f"{d.length:.2f}"),
        ("doubleAttribute", "Nutzbreite_m", f"{d.usable_width:.2f}"),
        ("doubleAttribute", "Radweg_m", f"{d.cycle_lane:.2f}"),
        ("doubleAttribute", "Gehweg_m", f"{d.footway:.2f}"),
        ("doubleAttribute", "Durchfahrtshoehe_m", f"{d.clearance:.2f}"),
        ("doubleAttribute", "Klappbruecke_m", f"{d.bascule_length:.2f}"),
        ("doubleAttribute", "Steigung_Stadtseite_Prozent", f"{100 * d.gradient_city:.1f}"),
        ("doubleAttribute", "Steigung_Gehlsdorf_Prozent", f"{100 * d.gradient_gehlsdorf:.1f}"),
        ("stringAttribute", "Bauweise", "Stahl mit Betonfahrbahnplatte"),
        ("stringAttribute", "Planung", "Inros Lackner SE; schlaich bergermann partner"),
        ("uriAttribute", "Quelle", "https://rathaus.rostock.de/"),
    ]
    for kind, name, value in generic:
        out += [f'      <gen:{kind} name="{name}">\n',
                f"        <gen:value>{escape(value)}</gen:value>\n",
                f"      </gen:{kind}>\n"]
    out += ["      <brid:function>Geh- und Radwegbrücke</brid:function>\n",
            "      <brid:isMovable>true</brid:isMovable>\n"]
    for element in bridge.elements:
        _element(out, "      ", bid, element, bounds)
    for part in bridge.parts:
        pid = f"{bid}_{part.key}"
        ind = "          "
        groups = []
        for k, group in enumerate(part.surfaces, start=1):
            groups.append((f"{pid}_s{k}", group))
        out += ["      <brid:consistsOfBridgePart>\n",
                f'        <brid:BridgePart gml:id="{pid}">\n',
                f"{ind}<gml:name>{escape(part.name)}</gml:name>\n"]
        _colour(out, ind, [(f"{gid}_ms", g.color) for gid, g in groups])
        if part.movable:
            out.append(f'{ind}<gen:doubleAttribute name="Spannweite_m">\n{ind}  <gen:value>'
                       f"{part.s1 - part.s0:.2f}</gen:value>\n{ind}</gen:doubleAttribute>\n")
        out += [f"{ind}<brid:function>{escape(part.function)}</brid:function>\n",
                f"{ind}<brid:isMovable>{'true' if part.movable else 'false'}</brid:isMovable>\n",
                f"{ind}<brid:lod2Solid>\n",
                f'{ind}  <gml:Solid srsName="{EPSG_SRS}" srsDimension="3">\n',
                f"{ind}    <gml:exterior>\n{ind}      <gml:CompositeSurface>\n"]
        for gid, group in groups:
            out += [f'{ind}        <gml:surfaceMember xlink:href="#{gid}_p{k}"/>\n'
                    for k in range(len(group.polygons))]
        out += [f"{ind}      </gml:CompositeSurface>\n{ind}    </gml:exterior>\n",
                f"{ind}  </gml:Solid>\n{ind}</brid:lod2Solid>\n"]
        for element in part.elements:
            _element(out, ind, pid, element, bounds)
        for gid, group in groups:
            out += [f"{ind}<brid:boundedBy>\n", f'{ind}  <brid:{group.cls} gml:id="{gid}">\n',
                    f"{ind}    <brid:lod2MultiSurface>\n",
                    f'{ind}      <gml:MultiSurface gml:id="{gid}_ms" srsName="{EPSG_SRS}" '
                    'srsDimension="3">\n']
            for k, ring in enumerate(group.polygons):
                out.append(f"{ind}        <gml:surfaceMember>\n")
                _polygon(out, ind + "          ", f"{gid}_p{k}", ring, bounds)
                out.append(f"{ind}        </gml:surfaceMember>\n")
            out += [f"{ind}      </gml:MultiSurface>\n", f"{ind}    </brid:lod2MultiSurface>\n",
                    f"{ind}  </brid:{group.cls}>\n", f"{ind}</brid:boundedBy>\n"]
        out += ["        </brid:BridgePart>\n", "      </brid:consistsOfBridgePart>\n"]
    out.append("    </brid:Bridge>\n  </core:cityObjectMember>\n")
    lo, hi = bounds.corners()
    head = (f'<?xml version="1.0" encoding="UTF-8"?>\n<!-- {escape(note)} -->\n'
            f"<core:CityModel {_NS_20}>\n  <gml:name>{escape('Warnowbrücke (geplant)')}"
            "</gml:name>\n"
            f"  <gml:boundedBy>\n    <gml:Envelope srsName={quoteattr(EPSG_SRS)} "
            'srsDimension="3">\n'
            f"      <gml:lowerCorner>{lo}</gml:lowerCorner>\n"
            f"      <gml:upperCorner>{hi}</gml:upperCorner>\n"
            "    </gml:Envelope>\n  </gml:boundedBy>\n")
    return (head + "".join(out) + "</core:CityModel>\n").encode("utf-8")
