// Overlay features (overlays.geojson: lon/lat + ellipsoidal heights, docs/scenes.md) drawn as
// CesiumJS entities: lines as outlined polylines, polygons as translucent areas with an
// outline, points as dots with a label. Colours follow the project status. The stop's
// highlighted features are drawn wider and labelled.

const STATUS_COLOURS = {
  planned: "#c2185b",
  "under construction": "#e69500",
  done: "#2e7d32",
};
const DEFAULT_COLOUR = "#1565c0";

// Clamped features carry the terrain height; lift them a little so that they are not hidden
// in the terrain mesh (whose triangles cut the straight segments between grid points).
const CLAMP_LIFT_M = 1.5;

export function statusColour(properties) {
  return STATUS_COLOURS[properties?.status] ?? DEFAULT_COLOUR;
}

export class OverlayLayer {
  constructor(Cesium, viewer, collection) {
    this.Cesium = Cesium;
    this.viewer = viewer;
    this.features = new Map(); // id -> {feature, entities, shown, colour}
    this.byEntity = new Map(); // entity -> feature id
    this.highlighted = new Set();
    this.lang = "de";
    for (const feature of collection?.features ?? []) {
      if (typeof feature?.id !== "string" || !feature.geometry) continue;
      this.add(feature);
    }
  }

  get ids() {
    return [...this.features.keys()];
  }

  feature(id) {
    return this.features.get(id)?.feature;
  }

  name(id, lang = this.lang) {
    const properties = this.feature(id)?.properties ?? {};
    return (lang === "en" ? properties.name_en : properties.name) || properties.name || id;
  }

  add(feature) {
    const { Cesium } = this;
    const properties = feature.properties ?? {};
    const lift = properties.height_mode === "absolute" ? 0 : CLAMP_LIFT_M;
    const colour = Cesium.Color.fromCssColorString(statusColour(properties));
    const record = { feature, entities: [], shown: true, colour, label: null };
    this.features.set(feature.id, record);
    for (const [piece, coordinates] of pieces(feature.geometry)) {
      const place = ([lon, lat, height = 0]) =>
        Cesium.Cartesian3.fromDegrees(lon, lat, height + lift);
      if (piece === "point") {
        this.entity(record, {
          position: place(coordinates[0]),
          point: {
            pixelSize: 14,
            color: colour,
            outlineColor: Cesium.Color.WHITE,
            outlineWidth: 3,
            disableDepthTestDistance: Number.POSITIVE_INFINITY,
          },
        });
      } else if (piece === "line") {
        this.line(record, coordinates.map(place));
      } else {
        const [outer, ...holes] = coordinates.map((ring) => ring.map(place));
        this.entity(record, {
          polygon: {
            hierarchy: new Cesium.PolygonHierarchy(
              outer,
              holes.map((hole) => new Cesium.PolygonHierarchy(hole)),
            ),
            perPositionHeight: true,
            material: colour.withAlpha(0.3),
          },
        });
        for (const ring of [outer, ...holes]) this.line(record, ring);
      }
    }
    // One label per feature at its first point (points) or the middle of its first piece.
    const anchor = labelAnchor(feature.geometry);
    if (anchor) {
      const [lon, lat, height = 0] = anchor;
      record.label = this.entity(record, {
        position: Cesium.Cartesian3.fromDegrees(lon, lat, height + lift + 4),
        label: {
          text: this.name(feature.id),
          font: "bold 15px 'DejaVu Sans', Verdana, sans-serif",
          fillColor: Cesium.Color.WHITE,
          showBackground: true,
          backgroundColor: Cesium.Color.fromCssColorString("#0b2545").withAlpha(0.9),
          backgroundPadding: new Cesium.Cartesian2(8, 5),
          verticalOrigin: Cesium.VerticalOrigin.BOTTOM,
          pixelOffset: new Cesium.Cartesian2(0, -12),
          disableDepthTestDistance: Number.POSITIVE_INFINITY,
          show: geometryKind(feature.geometry) === "point",
        },
      });
    }
  }

  // One material for every line (PolylineOutline, a white casing around the colour) and no
  // depth-fail material: each further material is a further shader program, and compiling
  // programs is what delays the first frame on slow devices.
  polyline(positions, colour, highlighted) {
    const { Cesium } = this;
    return {
      positions,
      width: highlighted ? 11 : 6,
      arcType: Cesium.ArcType.NONE,
      material: new Cesium.PolylineOutlineMaterialProperty({
        color: colour,
        outlineColor: Cesium.Color.WHITE,
        outlineWidth: highlighted ? 3 : 1.5,
      }),
    };
  }

  line(record, positions) {
    this.entity(record, { polyline: this.polyline(positions, record.colour, false) });
  }

  entity(record, options) {
    const entity = this.viewer.entities.add(options);
    record.entities.push(entity);
    this.byEntity.set(entity, record.feature.id);
    return entity;
  }

  /** The feature id of a picked entity, or undefined. */
  pickedId(picked) {
    const entity = picked?.id;
    return entity ? this.byEntity.get(entity) : undefined;
  }

  setShown(id, shown) {
    const record = this.features.get(id);
    if (!record) return;
    record.shown = shown;
    for (const entity of record.entities) entity.show = shown;
  }

  setHighlight(ids) {
    this.highlighted = new Set(ids.filter((id) => this.features.has(id)));
    for (const [id, record] of this.features) {
      const on = this.highlighted.has(id);
      for (const entity of record.entities) {
        if (entity.polyline) {
          const options = this.polyline([], record.colour, on);
          entity.polyline.width = options.width;
          entity.polyline.material = options.material;
        }
        if (entity.point) entity.point.pixelSize = on ? 20 : 14;
      }
      if (record.label) {
        record.label.label.show = on || geometryKind(record.feature.geometry) === "point";
      }
    }
  }

  setLanguage(lang) {
    this.lang = lang;
    for (const [id, record] of this.features) {
      if (record.label) record.label.label.text = this.name(id, lang);
    }
  }
}

function geometryKind(geometry) {
  const type = geometry?.type ?? "";
  if (type.endsWith("Point")) return "point";
  if (type.endsWith("LineString")) return "line";
  return "polygon";
}

/** [piece, coordinates] of a GeoJSON geometry: "point" and "line" (positions), "polygon" (rings). */
export function pieces(geometry) {
  const c = geometry?.coordinates;
  switch (geometry?.type) {
    case "Point": return [["point", [c]]];
    case "MultiPoint": return c.map((p) => ["point", [p]]);
    case "LineString": return [["line", c]];
    case "MultiLineString": return c.map((line) => ["line", line]);
    case "Polygon": return [["polygon", c]];
    case "MultiPolygon": return c.map((rings) => ["polygon", rings]);
    default: return [];
  }
}

function labelAnchor(geometry) {
  const c = geometry?.coordinates;
  switch (geometry?.type) {
    case "Point": return c;
    case "MultiPoint": return c[0];
    case "LineString": return c[Math.floor(c.length / 2)];
    case "MultiLineString": return c[0][Math.floor(c[0].length / 2)];
    case "Polygon": return centroid(c[0]);
    case "MultiPolygon": return centroid(c[0][0]);
    default: return undefined;
  }
}

function centroid(ring) {
  const points = ring.length > 1 ? ring.slice(0, -1) : ring;
  const sum = points.reduce((acc, p) => [acc[0] + p[0], acc[1] + p[1], acc[2] + (p[2] ?? 0)], [0, 0, 0]);
  return sum.map((value) => value / points.length);
}
