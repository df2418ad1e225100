"""The planners' write API: overlays and scenario variants, bearer tokens, validation, body
limits, and the project store on SQLite and on a real PostgreSQL server.

The service under test is the real one (``server.app.create_app``) serving a small published
scene (tests/server_fixtures.py); the durability tests run ``twin serve`` as a process, kill it
with SIGKILL in the middle of a burst of writes, restart it and check every acknowledged write.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server import write_api
from server.app import create_app
from server.auth import TokenConfigError, WriteTokens, bearer_token, hash_token
from server.db import (
    SCHEMA_VERSION,
    ProjectStore,
    RecordExists,
    StoreConfigError,
    StoreUnavailable,
    redact_url,
)
from server.settings import Settings
from tests.postgres import PostgresCluster, postgres_cluster  # noqa: F401
from tests.server_fixtures import SCENE_ID, free_port, publish_scene, wait_until_ready
from tools.cli import cli

REPO = Path(__file__).resolve().parent.parent
TOKEN = "planner-token-for-tests-0123456789abcdef"
OTHER_TOKEN = "a-token-nobody-configured-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = f"/api/v1/scenes/{SCENE_ID}"
MAX_BODY = 8192
PUBLISHED_IDS = {"warnowbruecke", "primelberg-infotafel", "stadthafen-kaimauer"}

BACKENDS = [
    "sqlite",
    # one worker runs every PostgreSQL test (tools/test: -n 2 --dist loadgroup): one cluster
    pytest.param("postgresql", marks=pytest.mark.xdist_group("postgres")),
]


def run_async(coroutine: Any) -> Any:
    """asyncio.run() in a thread of its own: browser tests on the same xdist worker keep a
    sync Playwright (and so a running event loop) on the main thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


# ------------------------------------------------------------------------------------------
# bodies
# ------------------------------------------------------------------------------------------


def overlay(feature_id: str | None = "kabutzenhof-steg", **changes: Any) -> dict[str, Any]:
    """A valid planner feature: a footpath on the Stadthafen quay (lon/lat)."""
    feature: dict[str, Any] = {
        "type": "Feature",
        "geometry": {
            "type": "LineString",
            "coordinates": [[12.1301, 54.0931], [12.1312, 54.0936], [12.1325, 54.0938]],
        },
        "properties": {
            "name": "Steg am Kabutzenhof",
            "name_en": "Kabutzenhof footbridge",
            "kind": "path",
            "status": "planned",
            "start": 2027,
            "end": "2028-06",
            "cost_eur": 1200000,
            "description_de": "Neuer Fußweg am Wasser.",
            "description_en": "New footpath along the water.",
            "source": "https://rathaus.rostock.de/",
            "height_mode": "clamp",
        },
    }
    if feature_id is not None:
        feature["id"] = feature_id
    for key, value in changes.items():
        if key == "geometry":
            feature["geometry"] = value
        else:
            feature["properties"][key] = value
    return feature


def square(west: float, south: float, size: float) -> list[list[float]]:
    """A closed counterclockwise square ring."""
    return [[west, south], [west + size, south], [west + size, south + size],
            [west, south + size], [west, south]]


def variant(variant_id: str | None = "bruecke-mit-steg", **changes: Any) -> dict[str, Any]:
    """A valid scenario variant of the test scene."""
    body: dict[str, Any] = {
        "title": {"de": "Brücke mit Steg", "en": "Bridge with footbridge"},
        "description": {"de": "Die Brücke und der neue Steg.", "en": "Bridge and footbridge."},
        "base_epoch": "heute",
        "layers": ["buildings"],
        "overlays": ["warnowbruecke"],
        "author": "Amt für Stadtentwicklung",
    }
    if variant_id is not None:
        body["id"] = variant_id
    body.update(changes)
    return body


# ------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scenes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A published test scene (warnowbruecke: epoch heute, layer buildings, three overlays)."""
    folder = tmp_path_factory.mktemp("scenes")
    publish_scene(folder)
    return folder


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty project database: a SQLite file, or a new database on the test cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'twin.sqlite3'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database(request.node.name.split("[")[0])


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An empty SQLite project database (for tests about the HTTP layer only)."""
    return f"sqlite:///{tmp_path / 'twin.sqlite3'}"


def make_settings(scenes_dir: Path, database_url: str, **changes: Any) -> Settings:
    """Service settings for the tests: one token, a small body limit."""
    values: dict[str, Any] = {
        "scenes_dir": scenes_dir,
        "database_url": database_url,
        "write_tokens": hash_token(TOKEN),
        "max_body_bytes": MAX_BODY,
        "current_check_seconds": 0.0,
    }
    values.update(changes)
    return Settings(**values)


@pytest.fixture
def client(scenes_dir: Path, database_url: str) -> Iterator[TestClient]:
    """The service on either backend."""
    with TestClient(create_app(make_settings(scenes_dir, database_url))) as test_client:
        yield test_client


@pytest.fixture
def sqlite_client(scenes_dir: Path, sqlite_url: str) -> Iterator[TestClient]:
    """The service on SQLite."""
    with TestClient(create_app(make_settings(scenes_dir, sqlite_url))) as test_client:
        yield test_client


def stored_ids(client: TestClient) -> set[str]:
    """Ids of every overlay feature the read API serves (published and planners')."""
    response = client.get(f"{BASE}/overlays")
    assert response.status_code == 200
    return {feature["id"] for feature in response.json()["features"]}


# ------------------------------------------------------------------------------------------
# authentication: every write endpoint, without a token and with a wrong one
# ------------------------------------------------------------------------------------------

WRITES = [
    ("POST", f"{BASE}/overlays", overlay("auth-probe")),
    ("PUT", f"{BASE}/overlays/kabutzenhof-steg", overlay(None)),
    ("DELETE", f"{BASE}/overlays/kabutzenhof-steg", None),
    ("POST", f"{BASE}/variants", variant("auth-probe")),
    ("PUT", f"{BASE}/variants/bruecke-mit-steg", variant(None)),
    ("DELETE", f"{BASE}/variants/bruecke-mit-steg", None),
]
BAD_AUTHORIZATION = {
    "missing": (None, None),
    "wrong token": (f"Bearer {OTHER_TOKEN}", "invalid_token"),
    "token hash instead of token": (f"Bearer {hash_token(TOKEN)}", "invalid_token"),
    "basic scheme": ("Basic " + TOKEN, None),
    "empty bearer": ("Bearer ", None),
}


@pytest.mark.parametrize("how", list(BAD_AUTHORIZATION))
@pytest.mark.parametrize(("method", "url", "body"), WRITES,
                         ids=[f"{m} {u.rsplit('/', 2)[-2:]}" for m, u, _ in WRITES])
def test_every_write_needs_an_accepted_bearer_token(
    sqlite_client: TestClient, method: str, url: str, body: Any, how: str
) -> None:
    client = sqlite_client
    assert client.post(f"{BASE}/overlays", json=overlay(), headers=AUTH).status_code == 201
    assert client.post(f"{BASE}/variants", json=variant(), headers=AUTH).status_code == 201
    before_overlays = client.get(f"{BASE}/overlays").json()
    before_variants = client.get(f"{BASE}/variants").json()

    authorization, error = BAD_AUTHORIZATION[how]
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = client.request(method, url, json=body, headers=headers)

    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="rostock-virtuell"')
    assert (f'error="{error}"' in challenge) == (error is not None)
    assert "detail" in response.json()
    assert client.get(f"{BASE}/overlays").json() == before_overlays
    assert client.get(f"{BASE}/variants").json() == before_variants
    # the same request with the token goes through
    accepted = client.request(method, url, json=body, headers=AUTH)
    assert accepted.status_code in (200, 201, 204)


def test_the_token_is_checked_before_the_body_is_read(sqlite_client: TestClient) -> None:
    # neither a broken nor an oversized body gets a 422/413 without a token
    broken = sqlite_client.post(f"{BASE}/overlays", content=b"{not json",
                                headers={"content-type": "application/json"})
    assert broken.status_code == 401
    huge = sqlite_client.post(f"{BASE}/overlays", content=b" " * (MAX_BODY * 4),
                              headers={"content-type": "application/json"})
    assert huge.status_code == 401


def test_reads_need_no_token(sqlite_client: TestClient) -> None:
    assert sqlite_client.get(f"{BASE}/variants").status_code == 200
    assert sqlite_client.get(f"{BASE}/overlays").status_code == 200


def test_write_tokens_from_a_secret_file(scenes_dir: Path, sqlite_url: str,
                                         tmp_path: Path) -> None:
    secret = tmp_path / "write-tokens"
    secret.write_text(f"# planners\n{hash_token('from-the-file')}  # Amt 61\n\n")
    settings = make_settings(scenes_dir, sqlite_url, write_tokens="", write_tokens_file=secret)
    with TestClient(create_app(settings)) as client:
        ok = client.post(f"{BASE}/overlays", json=overlay(),
                         headers={"Authorization": "Bearer from-the-file"})
        assert ok.status_code == 201
        refused = client.post(f"{BASE}/overlays", json=overlay("zwei"), headers=AUTH)
        assert refused.status_code == 401


def test_no_configured_token_refuses_every_write(scenes_dir: Path, sqlite_url: str) -> None:
    settings = make_settings(scenes_dir, sqlite_url, write_tokens="")
    with TestClient(create_app(settings)) as client:
        assert client.post(f"{BASE}/overlays", json=overlay(), headers=AUTH).status_code == 401


def test_a_malformed_token_hash_stops_the_service_at_start(scenes_dir: Path,
                                                           sqlite_url: str) -> None:
    settings = make_settings(scenes_dir, sqlite_url,
                             write_tokens=f"{hash_token(TOKEN)}, {TOKEN}")
    with pytest.raises(TokenConfigError, match=r"TWIN_WRITE_TOKENS entry 2: .*sha256:<64 hex"):
        with TestClient(create_app(settings)):
            pass


def test_write_tokens_parse_and_compare(tmp_path: Path) -> None:
    secret = tmp_path / "tokens"
    secret.write_text(f"{hash_token('b')}\nsha256:xyz\n")
    with pytest.raises(TokenConfigError, match=rf"{secret}:2: 'sha256:xyz'"):
        WriteTokens.parse("", secret)
    with pytest.raises(TokenConfigError, match="cannot read the write-token file"):
        WriteTokens.parse("", tmp_path / "missing")
    tokens = WriteTokens.parse(f"{hash_token('a')},{hash_token('a').upper()}",
                               None)
    assert len(tokens) == 1  # upper-case hex is the same hash
    assert tokens.accepts("a") and not tokens.accepts("b") and not tokens.accepts("")
    assert hash_token("abc") == (
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc ") == "abc"
    assert bearer_token("Bearer a b") is None
    assert bearer_token("Basic abc") is None


def test_twin_token_prints_a_token_and_its_hash() -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["token"])
    second = runner.invoke(cli, ["token"])
    assert first.exit_code == 0, first.output
    lines = dict(line.split(None, 1) for line in first.output.splitlines())
    token, digest = lines["token"], lines["hash"]
    assert len(token) == 43  # 32 random bytes, URL-safe base64
    assert digest == "sha256:" + hashlib.sha256(token.encode()).hexdigest()
    assert WriteTokens.parse(digest).accepts(token)
    assert second.output != first.output
    hashed = runner.invoke(cli, ["token", "--hash-stdin"], input=token + "\n")
    assert hashed.exit_code == 0 and hashed.output.strip() == digest
    empty = runner.invoke(cli, ["token", "--hash-stdin"], input="")
    assert empty.exit_code == 1 and "twin: error: standard input: no token" in empty.output


# ------------------------------------------------------------------------------------------
# overlays
# ------------------------------------------------------------------------------------------


def test_overlay_create_read_replace_delete(client: TestClient) -> None:
    created = client.post(f"{BASE}/overlays", json=overlay(), headers=AUTH)
    assert created.status_code == 201
    assert created.headers["content-type"] == "application/geo+json"
    assert created.headers["location"] == f"{BASE}/overlays/kabutzenhof-steg"
    assert created.headers["etag"] == '"1"'
    feature = created.json()
    assert list(feature) == ["type", "id", "geometry", "properties"]
    assert feature["id"] == "kabutzenhof-steg"
    assert feature["geometry"] == overlay()["geometry"]
    assert feature["properties"] == overlay()["properties"]
    assert feature["properties"]["cost_eur"] == 1200000

    # the read API serves it, alone and with the published features
    assert client.get(f"{BASE}/overlays/kabutzenhof-steg").json() == feature
    assert stored_ids(client) == PUBLISHED_IDS | {"kabutzenhof-steg"}
    inside = client.get(f"{BASE}/overlays", params={"bbox": "12.1300,54.0930,12.1310,54.0935"})
    assert "kabutzenhof-steg" in {f["id"] for f in inside.json()["features"]}
    outside = client.get(f"{BASE}/overlays", params={"bbox": "12.150,54.097,12.160,54.099"})
    assert "kabutzenhof-steg" not in {f["id"] for f in outside.json()["features"]}

    # taken ids: a planner's and a published one
    again = client.post(f"{BASE}/overlays", json=overlay(), headers=AUTH)
    assert again.status_code == 409 and "exists" in again.json()["detail"]
    published = client.post(f"{BASE}/overlays", json=overlay("warnowbruecke"), headers=AUTH)
    assert published.status_code == 409
    assert "published with the scene" in published.json()["detail"]

    # replace: new revision, same creation
    changed = overlay(None, status="under construction", cost_eur=1350000.5)
    replaced = client.put(f"{BASE}/overlays/kabutzenhof-steg", json=changed, headers=AUTH)
    assert replaced.status_code == 200 and replaced.headers["etag"] == '"2"'
    assert replaced.json()["properties"]["status"] == "under construction"
    assert replaced.json()["properties"]["cost_eur"] == 1350000.5
    assert client.get(f"{BASE}/overlays/kabutzenhof-steg").json() == replaced.json()

    # optimistic concurrency: a stale If-Match is refused, the current one accepted
    stale = client.put(f"{BASE}/overlays/kabutzenhof-steg", json=overlay(None),
                       headers=AUTH | {"If-Match": '"1"'})
    assert stale.status_code == 412 and "revision 2, not 1" in stale.json()["detail"]
    current = client.put(f"{BASE}/overlays/kabutzenhof-steg", json=overlay(None),
                         headers=AUTH | {"If-Match": '"2"'})
    assert current.status_code == 200 and current.headers["etag"] == '"3"'

    mismatch = client.put(f"{BASE}/overlays/kabutzenhof-steg", json=overlay("other"),
                          headers=AUTH)
    assert mismatch.status_code == 422 and mismatch.json()["detail"][0]["loc"] == ["body", "id"]
    assert client.put(f"{BASE}/overlays/nope", json=overlay(None), headers=AUTH).status_code == 404
    read_only = client.put(f"{BASE}/overlays/warnowbruecke", json=overlay(None), headers=AUTH)
    assert read_only.status_code == 409 and "read-only" in read_only.json()["detail"]
    assert client.delete(f"{BASE}/overlays/warnowbruecke", headers=AUTH).status_code == 409

    stale_delete = client.delete(f"{BASE}/overlays/kabutzenhof-steg",
                                 headers=AUTH | {"If-Match": '"2"'})
    assert stale_delete.status_code == 412
    assert client.delete(f"{BASE}/overlays/kabutzenhof-steg", headers=AUTH).status_code == 204
    assert client.get(f"{BASE}/overlays/kabutzenhof-steg").status_code == 404
    assert client.delete(f"{BASE}/overlays/kabutzenhof-steg", headers=AUTH).status_code == 404
    assert stored_ids(client) == PUBLISHED_IDS


def test_overlay_id_generated_when_missing(client: TestClient) -> None:
    created = client.post(f"{BASE}/overlays", json=overlay(None), headers=AUTH)
    assert created.status_code == 201
    feature_id = created.json()["id"]
    assert len(feature_id) == 32 and int(feature_id, 16) >= 0
    assert created.headers["location"] == f"{BASE}/overlays/{feature_id}"
    assert client.get(f"{BASE}/overlays/{feature_id}").json()["id"] == feature_id


def test_unknown_scene_is_404(client: TestClient) -> None:
    for method, url, body in [
        ("POST", "/api/v1/scenes/nirgendwo/overlays", overlay()),
        ("PUT", "/api/v1/scenes/nirgendwo/overlays/x", overlay(None)),
        ("DELETE", "/api/v1/scenes/nirgendwo/overlays/x", None),
        ("GET", "/api/v1/scenes/nirgendwo/variants", None),
        ("GET", "/api/v1/scenes/nirgendwo/variants/x", None),
        ("POST", "/api/v1/scenes/nirgendwo/variants", variant()),
        ("PUT", "/api/v1/scenes/nirgendwo/variants/x", variant(None)),
        ("DELETE", "/api/v1/scenes/nirgendwo/variants/x", None),
    ]:
        response = client.request(method, url, json=body, headers=AUTH)
        assert response.status_code == 404, (method, url, response.text)
        assert "nirgendwo" in response.json()["detail"]


def test_polygons_are_stored_in_rfc7946_winding_order(sqlite_client: TestClient) -> None:
    clockwise = square(12.1300, 54.0950, 0.002)[::-1]
    hole = square(12.1305, 54.0955, 0.0005)  # counterclockwise: must become clockwise
    geometry = {"type": "Polygon", "coordinates": [clockwise, hole]}
    created = sqlite_client.post(f"{BASE}/overlays",
                                 json=overlay("quartier", geometry=geometry, kind="district"),
                                 headers=AUTH)
    assert created.status_code == 201, created.text
    exterior, interior = created.json()["geometry"]["coordinates"]
    assert exterior == clockwise[::-1]
    assert interior == hole[::-1]


def test_absolute_heights_are_kept(sqlite_client: TestClient) -> None:
    geometry = {"type": "Point", "coordinates": [12.1340, 54.0960, 41.25]}
    created = sqlite_client.post(
        f"{BASE}/overlays", json=overlay("mast", geometry=geometry, kind="info-point",
                                         height_mode="absolute", start=None, end=None,
                                         cost_eur=None), headers=AUTH)
    assert created.status_code == 201, created.text
    assert created.json()["geometry"]["coordinates"] == [12.134, 54.096, 41.25]
    assert created.json()["properties"]["start"] is None


def _bowtie() -> list[list[float]]:
    return [[12.130, 54.094], [12.132, 54.096], [12.132, 54.094], [12.130, 54.096],
            [12.130, 54.094]]


INVALID_OVERLAYS: dict[str, tuple[dict[str, Any], list[Any], str]] = {
    "ring not closed": (
        overlay(geometry={"type": "Polygon", "coordinates": [square(12.13, 54.094, 0.001)[:-1]
                                                             + [[12.1301, 54.094]]]}),
        ["body", "geometry", "Polygon", "coordinates", 0],
        "linear ring is not closed",
    ),
    "ring of three positions": (
        overlay(geometry={"type": "Polygon", "coordinates": [
            [[12.13, 54.094], [12.131, 54.094], [12.13, 54.094]]]}),
        ["body", "geometry", "Polygon", "coordinates", 0],
        "at least 4 items",
    ),
    "self-intersecting polygon": (
        overlay(geometry={"type": "Polygon", "coordinates": [_bowtie()]}),
        ["body", "geometry", "Polygon"],
        "Self-intersection[12.131 54.095]",
    ),
    "longitude out of range": (
        overlay(geometry={"type": "Point", "coordinates": [312544.0, 5997613.0]}),
        ["body", "geometry", "Point", "coordinates"],
        "longitude 312544.0 is outside -180..180",
    ),
    "latitude out of range": (
        overlay(geometry={"type": "Point", "coordinates": [12.13, 95.0]}),
        ["body", "geometry", "Point", "coordinates"],
        "latitude 95.0 is outside -90..90",
    ),
    "latitude and longitude swapped": (
        overlay(geometry={"type": "LineString", "coordinates": [[54.0931, 12.1301],
                                                                [54.0936, 12.1312]]}),
        ["body", "geometry", "coordinates"],
        "outside scene warnowbruecke's area",
    ),
    "four numbers in a position": (
        overlay(geometry={"type": "Point", "coordinates": [12.13, 54.09, 3.0, 1.0]}),
        ["body", "geometry", "Point", "coordinates"],
        "at most 3 items",
    ),
    "coordinate as a string": (
        overlay(geometry={"type": "Point", "coordinates": ["12.13", 54.09]}),
        ["body", "geometry", "Point", "coordinates", 0],
        "valid number",
    ),
    "line of one position": (
        overlay(geometry={"type": "LineString", "coordinates": [[12.13, 54.094]]}),
        ["body", "geometry", "LineString", "coordinates"],
        "at least 2 items",
    ),
    "line of one repeated position": (
        overlay(geometry={"type": "LineString", "coordinates": [[12.13, 54.094]] * 2}),
        ["body", "geometry", "LineString"],
        "Too few points",
    ),
    "empty multipoint": (
        overlay(geometry={"type": "MultiPoint", "coordinates": []}),
        ["body", "geometry", "MultiPoint", "coordinates"],
        "at least 1 item",
    ),
    "mixed 2D and 3D positions": (
        overlay(geometry={"type": "LineString", "coordinates": [[12.13, 54.094, 2.0],
                                                                [12.131, 54.094]]}),
        ["body", "geometry", "LineString"],
        "mixed 2D and 3D positions",
    ),
    "geometry type unknown": (
        overlay(geometry={"type": "Circle", "coordinates": [12.13, 54.094]}),
        ["body", "geometry"],
        "'Point', 'MultiPoint', 'LineString', 'MultiLineString', 'Polygon', 'MultiPolygon'",
    ),
    "absolute heights missing": (
        overlay(height_mode="absolute"),
        ["body"],
        "height_mode is 'absolute' but position [12.1301, 54.0931] has no height",
    ),
    "kind unknown": (overlay(kind="tower"), ["body", "properties", "kind"], "'bridge'"),
    "status unknown": (overlay(status="maybe"), ["body", "properties", "status"],
                       "'under construction'"),
    "end before start": (overlay(start="2028-01-01", end=2027), ["body", "properties"],
                         "end 2027 is before start '2028-01-01'"),
    "date not a date": (overlay(start="2027-13-01"), ["body", "properties", "start"],
                        "'2027-13-01' is not a valid date"),
    "date in another format": (overlay(end="01.06.2028"), ["body", "properties", "end"],
                               "'01.06.2028' is not a date: write a year"),
    "negative cost": (overlay(cost_eur=-5), ["body", "properties", "cost_eur"],
                      "greater than or equal to 0"),
    "source not a URL": (overlay(source="rathaus"), ["body", "properties", "source"],
                         "'rathaus' is not a web address"),
    "upper-case id": (overlay("Steg"), ["body", "id"], "should match pattern"),
    "clamped position with a height": (
        overlay(geometry={"type": "Point", "coordinates": [12.13, 54.094, 3.5]}),
        ["body"],
        "height_mode is 'clamp' (on the terrain) but position [12.13, 54.094, 3.5] carries",
    ),
    "empty name": (overlay(name="  "), ["body", "properties", "name"], "at least 1 character"),
    "unknown property": (overlay(colour="red"), ["body", "properties", "colour"],
                         "Extra inputs are not permitted"),
    "id with a slash": (overlay("a/b"), ["body", "id"], "should match pattern"),
    "not a feature": ({**overlay(), "type": "FeatureCollection"}, ["body", "type"], "'Feature'"),
}


@pytest.mark.parametrize("case", list(INVALID_OVERLAYS))
def test_invalid_overlays_are_422_with_the_reason(sqlite_client: TestClient, case: str) -> None:
    body, location, reason = INVALID_OVERLAYS[case]
    response = sqlite_client.post(f"{BASE}/overlays", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(
        error["loc"][: len(location)] == location and reason in error["msg"] for error in errors
    ), errors
    assert "Traceback" not in response.text
    assert stored_ids(sqlite_client) == PUBLISHED_IDS


def test_missing_property_and_broken_json_are_422(sqlite_client: TestClient) -> None:
    body = overlay()
    del body["properties"]["kind"]
    response = sqlite_client.post(f"{BASE}/overlays", json=body, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "properties", "kind"]
    nan = json.dumps(overlay()).replace("12.1301", "NaN")
    response = sqlite_client.post(f"{BASE}/overlays", content=nan,
                                  headers=AUTH | {"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["ctx"]["error"] == "NaN is not a JSON number (RFC 8259)"
    broken = sqlite_client.post(f"{BASE}/overlays", content=b'{"type": "Feature",',
                                headers=AUTH | {"content-type": "application/json"})
    assert broken.status_code == 422 and broken.json()["detail"][0]["type"] == "json_invalid"


def test_odd_ids_and_text_never_reach_the_database_as_errors(client: TestClient) -> None:
    """NUL and lone surrogates: fine for SQLite, an error in PostgreSQL; 4xx on both."""
    for method, url, body in [
        ("PUT", f"{BASE}/overlays/a%00b", overlay(None)),
        ("DELETE", f"{BASE}/overlays/a%00b", None),
        ("GET", f"{BASE}/variants/a%00b", None),
        ("PUT", f"{BASE}/variants/a%00b", variant(None)),
        ("DELETE", f"{BASE}/variants/a%00b", None),
    ]:
        response = client.request(method, url, json=body, headers=AUTH)
        assert response.status_code == 404, (method, url, response.text)
    nul = client.post(f"{BASE}/variants", json=variant(overlays=["a\x00b"]), headers=AUTH)
    assert nul.status_code == 422 and nul.json()["detail"][0]["loc"] == ["body", "overlays", 0]
    surrogate = json.dumps(overlay(name="Steg \ud800"))
    assert "\\ud800" in surrogate
    response = client.post(f"{BASE}/overlays", content=surrogate,
                           headers=AUTH | {"content-type": "application/json"})
    assert response.status_code == 422
    assert "lone UTF-16 surrogate" in response.json()["detail"][0]["ctx"]["error"]
    stored = client.post(f"{BASE}/overlays", json=overlay(name="Steg \x00 über die Warnow"),
                         headers=AUTH)
    assert stored.status_code == 201
    assert client.get(f"{BASE}/overlays/kabutzenhof-steg").json()["properties"]["name"] == (
        "Steg \x00 über die Warnow")


# ------------------------------------------------------------------------------------------
# body limits
# ------------------------------------------------------------------------------------------


def _padded(feature: dict[str, Any], size: int) -> bytes:
    text = json.dumps(feature).encode()
    assert len(text) <= size
    return text + b" " * (size - len(text))


def test_body_limit_is_inclusive(sqlite_client: TestClient) -> None:
    headers = AUTH | {"content-type": "application/json"}
    at_limit = sqlite_client.post(f"{BASE}/overlays", content=_padded(overlay("a"), MAX_BODY),
                                  headers=headers)
    assert at_limit.status_code == 201
    over = sqlite_client.post(f"{BASE}/overlays", content=_padded(overlay("b"), MAX_BODY + 1),
                              headers=headers)
    assert over.status_code == 413
    assert f"larger than {MAX_BODY} bytes" in over.json()["detail"]
    assert stored_ids(sqlite_client) == PUBLISHED_IDS | {"a"}


def test_chunked_body_over_the_limit_is_413(sqlite_client: TestClient) -> None:
    """No Content-Length: the limit holds on the stream itself."""
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        body = _padded(variant("gross"), MAX_BODY * 3)
        for start in range(0, len(body), 1000):
            sent.append(start)
            yield body[start:start + 1000]

    response = sqlite_client.post(f"{BASE}/variants", content=chunks(),
                                  headers=AUTH | {"content-type": "application/json"})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert sqlite_client.get(f"{BASE}/variants").json()["variants"] == []
    # a Content-Length that understates the body does not help either: the stream is counted
    lying = sqlite_client.post(f"{BASE}/variants", content=_padded(variant("gross"), MAX_BODY * 3),
                               headers=AUTH | {"content-type": "application/json",
                                               "content-length": "1000"})
    assert lying.request.headers["content-length"] == "1000"
    assert lying.status_code == 413
    small = sqlite_client.post(f"{BASE}/variants", content=_padded(variant("klein"), 2000),
                               headers=AUTH | {"content-type": "application/json"})
    assert small.status_code == 201


# ------------------------------------------------------------------------------------------
# variants
# ------------------------------------------------------------------------------------------


def test_variant_create_read_replace_delete(client: TestClient) -> None:
    assert client.post(f"{BASE}/overlays", json=overlay(), headers=AUTH).status_code == 201
    body = variant(overlays=["warnowbruecke", "kabutzenhof-steg"])
    created = client.post(f"{BASE}/variants", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{BASE}/variants/bruecke-mit-steg"
    document = created.json()
    assert {key: document[key] for key in body} == body
    assert document["scene"] == SCENE_ID and document["revision"] == 1
    assert document["created"] == document["updated"]
    assert document["created"].endswith("Z")

    single = client.get(f"{BASE}/variants/bruecke-mit-steg")
    assert single.status_code == 200 and single.json() == document
    etag = single.headers["etag"]
    assert etag == '"1"'
    assert client.get(f"{BASE}/variants/bruecke-mit-steg",
                      headers={"If-None-Match": etag}).status_code == 304
    listing = client.get(f"{BASE}/variants").json()
    assert listing == {"scene": SCENE_ID, "variants": [document]}

    # the planner's feature is in use
    in_use = client.delete(f"{BASE}/overlays/kabutzenhof-steg", headers=AUTH)
    assert in_use.status_code == 409
    assert "shown in scenario variants bruecke-mit-steg" in in_use.json()["detail"]

    time.sleep(0.002)
    replaced = client.put(f"{BASE}/variants/bruecke-mit-steg",
                          json=variant(None, overlays=[], author="Ortsbeirat Gehlsdorf"),
                          headers=AUTH | {"If-Match": etag})
    assert replaced.status_code == 200
    assert replaced.json()["revision"] == 2 and replaced.json()["overlays"] == []
    assert replaced.json()["created"] == document["created"]
    assert replaced.json()["updated"] > document["updated"]
    stale = client.put(f"{BASE}/variants/bruecke-mit-steg", json=variant(None),
                       headers=AUTH | {"If-Match": etag})
    assert stale.status_code == 412
    assert client.post(f"{BASE}/variants", json=variant(), headers=AUTH).status_code == 409
    assert client.put(f"{BASE}/variants/nope", json=variant(None),
                      headers=AUTH).status_code == 404

    # no longer in use: the feature can go
    assert client.delete(f"{BASE}/overlays/kabutzenhof-steg", headers=AUTH).status_code == 204
    assert client.delete(f"{BASE}/variants/bruecke-mit-steg", headers=AUTH).status_code == 204
    assert client.get(f"{BASE}/variants/bruecke-mit-steg").status_code == 404
    assert client.delete(f"{BASE}/variants/bruecke-mit-steg", headers=AUTH).status_code == 404
    assert client.get(f"{BASE}/variants").json()["variants"] == []


INVALID_VARIANTS: dict[str, tuple[dict[str, Any], list[Any], str]] = {
    "unknown epoch": (variant(base_epoch="2040"), ["body", "base_epoch"],
                      "'2040' is not an epoch of the scene (heute)"),
    "unknown layer": (variant(layers=["buildings", "bridge"]), ["body", "layers", 1],
                      "'bridge' is not a layer of the scene (buildings)"),
    "layer twice": (variant(layers=["buildings", "buildings"]), ["body", "layers"],
                    "'buildings' is listed twice"),
    "unknown overlay": (variant(overlays=["warnowbruecke", "luftschloss"]),
                        ["body", "overlays", 1], "no overlay feature 'luftschloss'"),
    "title missing": ({k: v for k, v in variant().items() if k != "title"}, ["body", "title"],
                      "Field required"),
    "English title missing": (variant(title={"de": "Nur deutsch"}), ["body", "title", "en"],
                              "Field required"),
    "empty author": (variant(author=""), ["body", "author"], "at least 1 character"),
    "unknown field": (variant(colour="red"), ["body", "colour"], "Extra inputs"),
}


@pytest.mark.parametrize("case", list(INVALID_VARIANTS))
def test_invalid_variants_are_422_with_the_reason(sqlite_client: TestClient, case: str) -> None:
    body, location, reason = INVALID_VARIANTS[case]
    response = sqlite_client.post(f"{BASE}/variants", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(error["loc"] == location and reason in error["msg"] for error in errors), errors
    assert sqlite_client.get(f"{BASE}/variants").json()["variants"] == []


def test_store_unavailable_is_503_without_a_trace(sqlite_client: TestClient) -> None:
    store: ProjectStore = sqlite_client.app.state.store  # type: ignore[attr-defined]
    sqlite_client.portal.call(store.close)  # type: ignore[union-attr]
    response = sqlite_client.post(f"{BASE}/overlays", json=overlay(), headers=AUTH)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json() == {"detail": "the project store is unavailable; try again shortly"}
    assert sqlite_client.get(f"{BASE}/variants").status_code == 503


def test_openapi_documents_the_write_api() -> None:
    app = FastAPI()
    app.include_router(write_api.router())
    schema = app.openapi()
    overlays = schema["paths"]["/api/v1/scenes/{scene}/overlays"]
    assert set(overlays) == {"post"}  # GET is the read API's
    assert set(schema["paths"]["/api/v1/scenes/{scene}/overlays/{feature_id}"]) >= {
        "put", "delete"}
    assert set(schema["paths"]["/api/v1/scenes/{scene}/variants"]) == {"get", "post"}
    assert set(schema["paths"]["/api/v1/scenes/{scene}/variants/{variant_id}"]) == {
        "get", "put", "delete"}
    assert schema["components"]["securitySchemes"]["PlannerToken"] == {
        "type": "http", "scheme": "bearer",
        "description": "A planner's token (`twin token`); the service keeps only its SHA-256.",
    }
    assert overlays["post"]["security"] == [{"PlannerToken": []}]
    assert "security" not in schema["paths"]["/api/v1/scenes/{scene}/variants"]["get"]
    assert {"401", "413", "422"} <= set(overlays["post"]["responses"])
    properties = schema["components"]["schemas"]["PlannerOverlayProperties"]["properties"]
    assert properties["kind"]["enum"] == ["bridge", "district", "quay", "path", "info-point"]
    assert properties["height_mode"]["enum"] == ["clamp", "absolute"]


# ------------------------------------------------------------------------------------------
# the store itself, on both backends
# ------------------------------------------------------------------------------------------


def test_schema_creation_is_idempotent(database_url: str) -> None:
    async def run() -> None:
        stores = await asyncio.gather(*(ProjectStore.open(database_url) for _ in range(3)))
        for store in stores:
            await store.close()
        store = await ProjectStore.open(database_url)
        assert await store.schema_version() == SCHEMA_VERSION == 1
        rows = await store._run(lambda tx: tx.rows("SELECT version FROM schema_migrations"))
        assert rows == [(1,)]
        assert await store.check_consistency() == []
        await store._run(
            lambda tx: tx.execute("INSERT INTO schema_migrations VALUES (99, 'future')"),
            write=True,
        )
        await store.close()
        with pytest.raises(StoreConfigError, match="schema version 99, newer than"):
            await ProjectStore.open(database_url)

    run_async(run())


def test_sqlite_runs_in_wal_mode_with_full_sync(sqlite_url: str, tmp_path: Path) -> None:
    async def run() -> tuple[Any, ...]:
        store = await ProjectStore.open(sqlite_url)
        try:
            return await store._run(lambda tx: (
                tx.row("PRAGMA journal_mode"), tx.row("PRAGMA synchronous"),
                tx.row("PRAGMA foreign_keys"), tx.row("PRAGMA busy_timeout")))
        finally:
            await store.close()

    assert run_async(run()) == (("wal",), (2,), (1,), (10000,))  # synchronous 2 = FULL
    assert (tmp_path / "twin.sqlite3").exists()


def test_store_bbox_filter_and_concurrent_writes(database_url: str) -> None:
    async def run() -> None:
        store = await ProjectStore.open(database_url)
        try:
            features = [
                overlay(f"punkt-{n:02d}",
                        geometry={"type": "Point", "coordinates": [12.13 + n * 0.001, 54.09]})
                for n in range(20)
            ]
            await asyncio.gather(*(store.create_overlay(SCENE_ID, f) for f in features))
            assert [f["id"] for f in await store.overlay_features(SCENE_ID)] == [
                f"punkt-{n:02d}" for n in range(20)]
            boxed = await store.overlay_features(SCENE_ID, (12.1325, 54.0, 12.1355, 54.1))
            assert [f["id"] for f in boxed] == ["punkt-03", "punkt-04", "punkt-05"]
            assert await store.overlay_features("gehlsdorf") == []

            same = overlay("umstritten")
            results = await asyncio.gather(
                *(store.create_overlay(SCENE_ID, same) for _ in range(8)), return_exceptions=True
            )
            assert sum(1 for r in results if isinstance(r, RecordExists)) == 7
            assert sum(1 for r in results if not isinstance(r, BaseException)) == 1

            replaced = await asyncio.gather(*(
                store.replace_overlay(SCENE_ID, overlay("umstritten", name=f"Fassung {n}"))
                for n in range(6)))
            assert sorted(r.revision for r in replaced) == [2, 3, 4, 5, 6, 7]
            record = await store.overlay_record(SCENE_ID, "umstritten")
            assert record is not None and record.revision == 7
            assert await store.check_consistency() == []
        finally:
            await store.close()

    run_async(run())


def test_store_errors_name_the_database(tmp_path: Path) -> None:
    not_sqlite = tmp_path / "notes.sqlite3"
    not_sqlite.write_text("Einkaufsliste\n" * 200)

    async def run() -> None:
        with pytest.raises(StoreUnavailable, match=rf"{not_sqlite}: .*file is not a database"):
            await ProjectStore.open(f"sqlite:///{not_sqlite}")
        with pytest.raises(StoreConfigError, match="unknown scheme 'mysql'"):
            await ProjectStore.open("mysql://localhost/twin")
        with pytest.raises(StoreConfigError, match="every worker process must see"):
            await ProjectStore.open("sqlite:///:memory:")
        port = free_port()
        with pytest.raises(StoreUnavailable) as caught:
            await ProjectStore.open(f"postgresql://planer:geheim@127.0.0.1:{port}/twin")
        message = str(caught.value)
        assert f"postgresql://planer:***@127.0.0.1:{port}/twin" in message
        assert "geheim" not in message

    run_async(run())
    assert redact_url("postgresql://u@h/d") == "postgresql://u@h/d"


# ------------------------------------------------------------------------------------------
# durability: a real `twin serve`, killed with SIGKILL in the middle of a burst of writes
# ------------------------------------------------------------------------------------------


class Service:
    """``twin serve`` as a process group (master and workers) on a free port."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tools.cli", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port), "--workers", "2"],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until_ready(self.port, self.process, self.log)
        except AssertionError:
            self.kill()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL to the whole process group: no shutdown, no flush, like a power cut."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        """SIGTERM to the group (graceful), SIGKILL if it does not end in time."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self.process = None


@pytest.fixture
def service_env(scenes_dir: Path, database_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a `twin serve` on the test scene and database (tokens in a file)."""
    tokens = tmp_path / "write-tokens"
    tokens.write_text(f"# the tests' planner\n{hash_token(TOKEN)}\n")
    tokens.chmod(0o600)
    env = {key: value for key, value in os.environ.items() if not key.startswith("TWIN_")}
    env.update({
        "TWIN_SCENES_DIR": str(scenes_dir),
        "TWIN_DATABASE_URL": database_url,
        "TWIN_WRITE_TOKENS_FILE": str(tokens),
        "TWIN_MAX_BODY_BYTES": str(MAX_BODY),
        "PYTHONPATH": str(REPO),
    })
    return env


def _writer(url: str, number: int, stop: threading.Event, acknowledged: dict[str, Any],
            attempted: dict[str, list[Any]], lock: threading.Lock) -> None:
    """Create features and replace every third one, recording what the service confirmed."""
    with httpx.Client(base_url=url, headers=AUTH, timeout=10) as session:
        for n in range(10_000):
            if stop.is_set():
                return
            feature_id = f"w{number}-{n:04d}"
            body = overlay(feature_id, name=f"Entwurf {number}/{n}",
                           geometry={"type": "Point",
                                     "coordinates": [12.13 + n * 1e-5, 54.09 + number * 1e-4]})
            writes = [("POST", f"{BASE}/overlays", body)]
            if n % 3 == 0:
                writes.append(("PUT", f"{BASE}/overlays/{feature_id}",
                               overlay(None, name=f"Überarbeitet {number}/{n}",
                                       geometry=body["geometry"])))
            for method, path, payload in writes:
                expected = {**payload, "id": feature_id}
                with lock:
                    attempted.setdefault(feature_id, []).append(expected)
                try:
                    response = session.request(method, path, json=payload)
                except httpx.TransportError:
                    return  # the service is gone
                if response.status_code not in (200, 201):
                    return
                with lock:
                    acknowledged[feature_id] = response.json()
                    acknowledged["#writes"] = acknowledged.get("#writes", 0) + 1


def test_no_acknowledged_write_is_lost_when_the_service_is_killed(
    service_env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "service.log"
    service = Service(service_env, log).start()
    acknowledged: dict[str, Any] = {}
    attempted: dict[str, list[Any]] = {}
    lock = threading.Lock()
    stop = threading.Event()
    writers = [
        threading.Thread(target=_writer, args=(service.url, number, stop, acknowledged,
                                               attempted, lock))
        for number in range(4)
    ]
    try:
        for thread in writers:
            thread.start()
        deadline = time.monotonic() + 60
        while acknowledged.get("#writes", 0) < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert acknowledged.get("#writes", 0) >= 60, f"only {acknowledged} writes in 60 s"
        service.kill()  # in the middle of the burst: four writers are sending
    finally:
        stop.set()
        service.kill()
        for thread in writers:
            thread.join(timeout=30)

    writes = acknowledged.pop("#writes")
    tried = sum(len(tries) for tries in attempted.values())
    assert writes >= 60 and tried > writes  # some writes were in flight when it was killed

    restarted = Service(service_env, log).start()
    try:
        served = httpx.get(f"{restarted.url}{BASE}/overlays", timeout=10).json()["features"]
        planners = {f["id"]: f for f in served if f["id"] not in PUBLISHED_IDS}
        print(f"{writes} writes acknowledged, {tried - writes} in flight at SIGKILL, "
              f"{len(planners)} planner features after the restart")
        # every acknowledged write is there, as acknowledged or as a later attempted version
        for feature_id, confirmed in acknowledged.items():
            assert feature_id in planners, f"acknowledged {feature_id} lost"
            tries = attempted[feature_id]
            later = tries[next(i for i, t in enumerate(tries)
                               if t["properties"] == confirmed["properties"]):]
            assert planners[feature_id]["properties"] in [t["properties"] for t in later]
            assert planners[feature_id]["geometry"] == confirmed["geometry"]
        # nothing appeared that was not sent, and nothing is half-written
        assert set(planners) <= set(attempted)
        for feature_id, feature in planners.items():
            assert feature["properties"] in [t["properties"] for t in attempted[feature_id]]
        # and the service takes writes again
        again = httpx.post(f"{restarted.url}{BASE}/overlays", json=overlay("nach-dem-neustart"),
                           headers=AUTH, timeout=10)
        assert again.status_code == 201
        _chunked_upload_over_the_limit_is_413(restarted)
    finally:
        restarted.stop()

    async def consistency() -> list[str]:
        store = await ProjectStore.open(database_url)
        try:
            return await store.check_consistency()
        finally:
            await store.close()

    assert run_async(consistency()) == []


def _chunked_upload_over_the_limit_is_413(service: Service) -> None:
    """Transfer-Encoding: chunked to the real server (uvicorn, httptools): no Content-Length
    to trust, the limit holds on the stream."""
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    body = _padded(overlay("zu-gross"), MAX_BODY * 2)
    connection.request(
        "POST", f"{BASE}/overlays",
        body=(body[i:i + 1024] for i in range(0, len(body), 1024)),
        headers=AUTH | {"Content-Type": "application/json"}, encode_chunked=True,
    )
    response = connection.getresponse()
    assert response.status == 413
    assert f"larger than {MAX_BODY} bytes" in json.loads(response.read())["detail"]
    connection.close()
    assert httpx.get(f"{service.url}{BASE}/overlays/zu-gross", timeout=10).status_code == 404
