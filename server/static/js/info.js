// Readable attributes of a picked building (the tiles' EXT_structural_metadata properties) or
// overlay feature (its GeoJSON properties): [label, value] rows in the page's language.

// AdV code lists of the LoD2 buildings of Mecklenburg-Vorpommern (ALKIS Gebäudefunktion,
// Dachform), for the codes the sample data and common city models use.
const FUNCTIONS = {
  "31001_1000": ["Wohngebäude", "Residential building"],
  "31001_1010": ["Wohnhaus", "House"],
  "31001_1020": ["Wohnheim", "Residential home"],
  "31001_1100": ["Gemischt genutztes Gebäude mit Wohnen", "Mixed-use building with housing"],
  "31001_1120": ["Wohngebäude mit Handel und Dienstleistungen", "Residential building with shops and services"],
  "31001_1313": ["Gartenhaus", "Garden house"],
  "31001_2000": ["Gebäude für Wirtschaft oder Gewerbe", "Commercial building"],
  "31001_2020": ["Bürogebäude", "Office building"],
  "31001_2050": ["Geschäftsgebäude", "Shop building"],
  "31001_2140": ["Gebäude für Vorratshaltung", "Storage building"],
  "31001_2143": ["Lagerhalle", "Warehouse"],
  "31001_2463": ["Garage", "Garage"],
  "31001_3000": ["Gebäude für öffentliche Zwecke", "Public building"],
  "31001_3010": ["Verwaltungsgebäude", "Administrative building"],
  "31001_3020": ["Gebäude für Bildung und Forschung", "Education and research building"],
  "31001_3030": ["Gebäude für kulturelle Zwecke", "Cultural building"],
  "31001_3040": ["Gebäude für religiöse Zwecke", "Religious building"],
  "31001_3041": ["Kirche", "Church"],
  "31001_3050": ["Gebäude für Gesundheitswesen", "Health care building"],
  "31001_3051": ["Krankenhaus", "Hospital"],
  "31001_3065": ["Kindertagesstätte", "Day-care centre"],
};
const ROOF_TYPES = {
  1000: ["Flachdach", "Flat roof"],
  2100: ["Pultdach", "Shed roof"],
  2200: ["Versetztes Pultdach", "Offset shed roof"],
  3100: ["Satteldach", "Gable roof"],
  3200: ["Walmdach", "Hip roof"],
  3300: ["Krüppelwalmdach", "Half-hip roof"],
  3400: ["Mansardendach", "Mansard roof"],
  3500: ["Zeltdach", "Pyramid roof"],
  3600: ["Kegeldach", "Cone roof"],
  3700: ["Kuppeldach", "Dome roof"],
  3800: ["Sheddach", "Sawtooth roof"],
  3900: ["Bogendach", "Arched roof"],
  4000: ["Turmdach", "Tower roof"],
  5000: ["Mischform", "Mixed form"],
  9999: ["Sonstiges", "Other"],
};
const CLASSES = {
  Building: ["Gebäude", "Building"],
  BuildingPart: ["Gebäudeteil", "Building part"],
  Bridge: ["Brücke", "Bridge"],
  BridgePart: ["Brückenteil", "Bridge part"],
  GenericCityObject: ["Objekt", "Object"],
};

// Properties shown first, in this order, with labels from i18n.json ("attr_<name>").
const BUILDING_ORDER = [
  "name", "citygml_class", "function", "address", "measuredHeight", "storeysAboveGround",
  "roofType", "yearOfConstruction", "gml_id",
];
const HIDDEN = new Set(["creationDate"]);
// M-V's technical generic attributes (data source codes, municipality key): listed apart,
// under "more details", so that the panel leads with what a citizen asks about.
const TECHNICAL = /^(Datenquelle|Gemeindeschluessel)/;

function coded(table, value, lang) {
  const entry = table[value];
  if (!entry) return String(value);
  return `${entry[lang === "en" ? 1 : 0]} (${value})`;
}

function number(value, lang, digits = 1) {
  return new Intl.NumberFormat(lang === "en" ? "en-GB" : "de-DE", {
    maximumFractionDigits: digits,
  }).format(value);
}

function empty(value) {
  return value === undefined || value === null || value === "" ||
    (typeof value === "number" && (!Number.isFinite(value) || value <= -1e300));
}

/** A generic attribute name made readable: "Laenge_m" -> "Laenge (m)". */
function prettyName(name) {
  const unit = name.match(/_(m|EUR|Prozent)$/);
  const base = unit ? name.slice(0, -unit[0].length) : name;
  const units = { m: "m", EUR: "€", Prozent: "%" };
  const words = base.replace(/_/g, " ");
  return unit ? `${words} (${units[unit[1]]})` : words;
}

/**
 * Rows of a picked 3D Tiles feature: properties is {name: value}; t is the i18n lookup.
 * Returns {title, kind, rows: [[label, value], ...], more: [[label, value], ...]}.
 */
export function describeBuilding(properties, layerTitle, t, lang) {
  const rows = [];
  const seen = new Set();
  const value = (name) => properties[name];
  for (const name of BUILDING_ORDER) {
    const raw = value(name);
    seen.add(name);
    if (empty(raw)) continue;
    let shown;
    if (name === "function") shown = coded(FUNCTIONS, raw, lang);
    else if (name === "roofType") shown = coded(ROOF_TYPES, raw, lang);
    else if (name === "citygml_class") shown = coded(CLASSES, raw, lang).replace(/ \(.*\)$/, "");
    else if (name === "measuredHeight") shown = t("metres", { value: number(raw, lang) });
    else shown = typeof raw === "number" ? number(raw, lang, 2) : String(raw);
    const label = name === "citygml_class" ? t("attr_class") : t(`attr_${name}`);
    rows.push([label, shown]);
  }
  const more = [];
  for (const [name, raw] of Object.entries(properties)) {
    if (seen.has(name) || HIDDEN.has(name) || empty(raw)) continue;
    let shown = typeof raw === "number" ? number(raw, lang, 2) : String(raw);
    if (/_EUR$/.test(name) && typeof raw === "number") shown = number(raw, lang, 0);
    (TECHNICAL.test(name) ? more : rows).push([prettyName(name), shown]);
  }
  const cls = properties.citygml_class;
  const kind = CLASSES[cls] ? CLASSES[cls][lang === "en" ? 1 : 0] : t("info_feature");
  const title = properties.name || properties.address ||
    (FUNCTIONS[properties.function] ? FUNCTIONS[properties.function][lang === "en" ? 1 : 0] : kind);
  return { title, kind: layerTitle ? `${kind} · ${layerTitle}` : kind, rows, more };
}

/** Rows of an overlay feature (docs/scenes.md, "Overlays"). */
export function describeOverlay(feature, t, lang) {
  const p = feature.properties ?? {};
  const rows = [];
  const add = (key, raw, shown = raw) => {
    if (!empty(raw)) rows.push([t(`attr_${key}`), String(shown)]);
  };
  add("kind", p.kind, t(`kind_${p.kind}`) === `kind_${p.kind}` ? p.kind : t(`kind_${p.kind}`));
  add("status", p.status, t(`status_${p.status}`) === `status_${p.status}` ? p.status : t(`status_${p.status}`));
  add("start", p.start);
  add("end", p.end);
  if (typeof p.cost_eur === "number") add("cost_eur", p.cost_eur, t("euros", { value: number(p.cost_eur, lang, 0) }));
  add("description", lang === "en" ? p.description_en || p.description_de : p.description_de);
  add("source", p.source);
  const name = (lang === "en" ? p.name_en : p.name) || p.name || feature.id;
  return { title: name, kind: t("info_project"), rows };
}
