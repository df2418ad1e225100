"""The read side of the service: scenes, files, tours, overlays, delivery, safety, operations.

Most tests run the app in-process (FastAPI's TestClient, which runs the lifespan); one class
starts a real ``twin serve`` with two workers on a free port of 127.0.0.1.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import brotli
import hypothesis
import pytest
import schemathesis
from click.testing import CliRunner
from fastapi.testclient import TestClient
from schemathesis.checks import not_a_server_error

from server.app import create_app
from server.auth import hash_token
from server.settings import Settings
from tests.server_fixtures import SCENE_ID, publish_scene, serving, tile_paths
from twin.pipeline.package import package_scene

REPO = Path(__file__).resolve().parent.parent
API = "/api/v1/scenes"
TRACEBACK = re.compile(r"Traceback|File \"|line \d+, in ")
TOKEN = "test-token-for-the-read-side"


@pytest.fixture(scope="session")
def layer_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One build of the sample buildings layer for every published test scene."""
    return tmp_path_factory.mktemp("buildings-layer")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory, layer_cache: Path) -> Path:
    """A scenes folder with one published version of the test scene (not changed by tests)."""
    folder = tmp_path_factory.mktemp("scenes")
    publish_scene(folder, cache_dir=layer_cache)
    return folder


def settings_for(scenes_dir: Path, tmp: Path, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "scenes_dir": scenes_dir,
        "database_url": f"sqlite:///{tmp / 'store.sqlite3'}",
        "current_check_seconds": 0.0,
        "write_tokens": hash_token(TOKEN),
    }
    values.update(changes)
    return Settings(**values)


@pytest.fixture
def client(scenes: Path, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(scenes, tmp_path))) as test_client:
        yield test_client


def current(scenes_dir: Path) -> Path:
    return scenes_dir / SCENE_ID / "current"


def manifest(scenes_dir: Path) -> dict[str, Any]:
    return json.loads((current(scenes_dir) / "manifest.json").read_bytes())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- scenes -----------------------------------------------------------------------------------


def test_scene_list_names_the_published_version(client: TestClient, scenes: Path) -> None:
    response = client.get(API)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "scenes": [
            {
                "id": SCENE_ID,
                "title": {"de": "Warnowbrücke", "en": "Warnow Bridge"},
                "description": manifest(scenes)["description"],
                "version": manifest(scenes)["version"],
                "stops": 2,
                "links": {
                    "detail": f"{API}/{SCENE_ID}",
                    "tour": f"{API}/{SCENE_ID}/tour",
                    "preview": f"/tour/{SCENE_ID}",
                },
            }
        ]
    }


def test_scene_detail_has_absolute_versioned_urls(client: TestClient, scenes: Path) -> None:
    published = manifest(scenes)
    version = published["version"]
    detail = client.get(f"{API}/{SCENE_ID}").json()
    base = f"{API}/{SCENE_ID}/v/{version}/"
    assert detail["id"] == SCENE_ID and detail["version"] == version
    assert detail["base_url"] == base
    assert [layer["tileset_url"] for layer in detail["layers"]] == [
        base + "layers/buildings/tileset.json"
    ]
    assert [epoch["tileset_url"] for epoch in detail["epochs"]] == [
        base + "epochs/heute/tileset.json"
    ]
    assert detail["tour_url"] == f"{API}/{SCENE_ID}/tour"
    assert detail["overlays_url"] == f"{API}/{SCENE_ID}/overlays"
    assert detail["region"] == published["region"]
    assert detail["attributions"] == published["attributions"]
    assert detail["files"] == len(published["files"]) + 1  # a count, not the whole list
    tileset = client.get(detail["layers"][0]["tileset_url"])
    assert tileset.status_code == 200
    on_disk = (current(scenes) / "layers/buildings/tileset.json").read_bytes()
    assert tileset.content == on_disk


def test_unknown_scene_is_404_everywhere(client: TestClient) -> None:
    for url in (
        f"{API}/atlantis",
        f"{API}/atlantis/tour",
        f"{API}/atlantis/tour/stops/1",
        f"{API}/atlantis/overlays",
        f"{API}/atlantis/overlays/x",
        f"{API}/atlantis/current/manifest.json",
        f"{API}/atlantis/v/0123456789abcdef/manifest.json",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "atlantis" in response.json()["detail"], url


# -- files: media types, ETags, caching, ranges, compression -----------------------------------


def test_files_have_media_types_strong_etags_and_cache_control(
    client: TestClient, scenes: Path
) -> None:
    published = manifest(scenes)
    version = published["version"]
    tile = tile_paths(scenes)[3]
    cases = {
        tile: "model/gltf-binary",
        "layers/buildings/tileset.json": "application/json",
        "overlays.geojson": "application/geo+json",
        "tour.json": "application/json",
    }
    for path, media_type in cases.items():
        on_disk = (current(scenes) / path).read_bytes()
        for prefix, cache_control in (
            (f"v/{version}", "public, max-age=31536000, immutable"),
            ("current", "public, max-age=60, must-revalidate"),
        ):
            response = client.get(
                f"{API}/{SCENE_ID}/{prefix}/{path}", headers={"accept-encoding": "identity"}
            )
            assert response.status_code == 200, path
            assert response.headers["content-type"] == media_type
            assert response.headers["etag"] == f'"{published["files"][path]}"'
            assert response.headers["cache-control"] == cache_control
            assert response.headers["content-length"] == str(len(on_disk))
            assert response.content == on_disk
    manifest_response = client.get(f"{API}/{SCENE_ID}/v/{version}/manifest.json")
    on_disk = (current(scenes) / "manifest.json").read_bytes()
    assert manifest_response.content == on_disk
    assert manifest_response.headers["etag"].startswith(f'"{sha256(on_disk)}')


def test_if_none_match_gives_304(client: TestClient, scenes: Path) -> None:
    tile = tile_paths(scenes)[0]
    url = f"{API}/{SCENE_ID}/current/{tile}"
    etag = client.get(url).headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = client.get(url, headers={"if-none-match": header})
        assert response.status_code == 304, header
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert response.headers["cache-control"] == "public, max-age=60, must-revalidate"
    assert client.get(url, headers={"if-none-match": '"stale"'}).status_code == 200
    # API documents too
    for document in (f"{API}", f"{API}/{SCENE_ID}", f"{API}/{SCENE_ID}/tour",
                     f"{API}/{SCENE_ID}/overlays", f"{API}/{SCENE_ID}/tour/stops/1"):
        first = client.get(document)
        again = client.get(document, headers={"if-none-match": first.headers["etag"]})
        assert again.status_code == 304, document


def test_range_requests(client: TestClient, scenes: Path) -> None:
    tile = tile_paths(scenes)[1]
    data = (current(scenes) / tile).read_bytes()
    size = len(data)
    url = f"{API}/{SCENE_ID}/current/{tile}"
    expectations = {
        "bytes=0-99": (0, 99),
        "bytes=100-": (100, size - 1),
        "bytes=-20": (size - 20, size - 1),
        f"bytes=10-{size + 500}": (10, size - 1),
    }
    for header, (start, end) in expectations.items():
        response = client.get(url, headers={"range": header})
        assert response.status_code == 206, header
        assert response.headers["content-range"] == f"bytes {start}-{end}/{size}"
        assert response.content == data[start : end + 1]
        assert response.headers["content-length"] == str(end - start + 1)
    for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        response = client.get(url, headers={"range": header})
        assert response.status_code == 416, header
        assert response.headers["content-range"] == f"bytes */{size}"
    # several ranges, nonsense, or a stale If-Range: the whole file
    for headers in (
        {"range": "bytes=0-1,5-6"},
        {"range": "lines=1-2"},
        {"range": "bytes=0-9", "if-range": '"not-this-version"'},
    ):
        response = client.get(url, headers=headers)
        assert response.status_code == 200
        assert response.content == data
    etag = client.get(url).headers["etag"]
    response = client.get(url, headers={"range": "bytes=0-9", "if-range": etag})
    assert response.status_code == 206 and response.content == data[:10]


def test_head_sends_headers_only(client: TestClient, scenes: Path) -> None:
    tile = tile_paths(scenes)[2]
    size = (current(scenes) / tile).stat().st_size
    response = client.head(f"{API}/{SCENE_ID}/current/{tile}")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(size)
    assert response.headers["content-type"] == "model/gltf-binary"
    assert response.content == b""
    assert client.head(f"{API}/{SCENE_ID}/current/missing.glb").status_code == 404
    for document in (API, f"{API}/{SCENE_ID}", f"{API}/{SCENE_ID}/tour"):
        head, get = client.head(document), client.get(document)
        assert head.status_code == 200 and head.content == b"", document
        assert head.headers["etag"] == get.headers["etag"]
        assert head.headers["content-length"] == get.headers["content-length"]


def test_json_is_compressed_with_brotli_or_gzip(client: TestClient, scenes: Path) -> None:
    path = "layers/buildings/tileset.json"
    on_disk = (current(scenes) / path).read_bytes()
    url = f"{API}/{SCENE_ID}/current/{path}"
    identity = client.get(url, headers={"accept-encoding": "identity"})
    assert "content-encoding" not in identity.headers
    assert identity.headers["vary"] == "accept-encoding"
    raw = client.get(url, headers={"accept-encoding": "br, gzip"})
    assert raw.headers["content-encoding"] == "br"
    assert raw.content == on_disk  # the client decodes it
    assert int(raw.headers["content-length"]) < len(on_disk) / 3
    zipped = client.get(url, headers={"accept-encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == on_disk
    assert len({identity.headers["etag"], raw.headers["etag"], zipped.headers["etag"]}) == 3
    refused = client.get(url, headers={"accept-encoding": "br;q=0, gzip;q=0"})
    assert "content-encoding" not in refused.headers
    # the compressed bytes themselves, without the client's decoding
    with client.stream("GET", url, headers={"accept-encoding": "gzip"}) as streamed:
        assert gzip.decompress(b"".join(streamed.iter_raw())) == on_disk
    with client.stream("GET", url, headers={"accept-encoding": "br"}) as streamed:
        assert brotli.decompress(b"".join(streamed.iter_raw())) == on_disk
    # tiles are never compressed
    tile = client.get(f"{API}/{SCENE_ID}/current/{tile_paths(scenes)[0]}",
                      headers={"accept-encoding": "br, gzip"})
    assert "content-encoding" not in tile.headers and "vary" not in tile.headers
    # API documents are compressed too
    detail = client.get(f"{API}/{SCENE_ID}", headers={"accept-encoding": "gzip"})
    assert detail.headers["content-encoding"] == "gzip"


# -- tours and overlays ---------------------------------------------------------------------


def test_tour_and_its_stops(client: TestClient, scenes: Path) -> None:
    tour = json.loads((current(scenes) / "tour.json").read_bytes())
    response = client.get(f"{API}/{SCENE_ID}/tour")
    assert response.status_code == 200
    assert response.json() == tour
    assert response.headers["cache-control"] == "public, max-age=60, must-revalidate"
    stop = client.get(f"{API}/{SCENE_ID}/tour/stops/2").json()
    assert stop["id"] == "faehrberg" and stop["number"] == 2
    assert stop["camera"]["look_at"] == [312795.0, 5998160.0, 3.0]
    missing = client.get(f"{API}/{SCENE_ID}/tour/stops/3")
    assert missing.status_code == 404
    assert missing.json() == {"detail": f"scene '{SCENE_ID}': no stop 3; the tour has 2 stops"}
    assert client.get(f"{API}/{SCENE_ID}/tour/stops/0").status_code == 422
    assert client.get(f"{API}/{SCENE_ID}/tour/stops/first").status_code == 422


def test_overlays_with_bbox_filter(client: TestClient) -> None:
    url = f"{API}/{SCENE_ID}/overlays"
    everything = client.get(url)
    assert everything.status_code == 200
    assert everything.headers["content-type"] == "application/geo+json"
    assert everything.headers["cache-control"] == "no-cache"
    document = everything.json()
    assert document["type"] == "FeatureCollection"
    assert [feature["id"] for feature in document["features"]] == [
        "warnowbruecke", "primelberg-infotafel", "stadthafen-kaimauer",
    ]
    cases = {
        "12.155,54.095,12.160,54.098": ["primelberg-infotafel"],  # around the info board
        "12.120,54.090,12.1335,54.0946": ["warnowbruecke", "stadthafen-kaimauer"],
        "12.0,53.0,12.01,53.01": [],
    }
    for bbox, expected in cases.items():
        found = client.get(url, params={"bbox": bbox}).json()["features"]
        assert [feature["id"] for feature in found] == expected, bbox
    for bbox in ("1,2,3", "a,b,c,d", "12.2,54,12.1,54.1", "12,55,12.1,54", "nan,1,2,3",
                 "-200,0,0,1", "12,54,12.1,54.1,5", ""):
        response = client.get(url, params={"bbox": bbox})
        assert response.status_code == 422, bbox
        assert "bbox" in response.json()["detail"], bbox


def test_single_overlay_feature(client: TestClient) -> None:
    response = client.get(f"{API}/{SCENE_ID}/overlays/primelberg-infotafel")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    feature = response.json()
    assert feature["geometry"] == {"type": "Point", "coordinates": [12.157, 54.0964, 41.5]}
    assert feature["properties"]["kind"] == "info-point"
    missing = client.get(f"{API}/{SCENE_ID}/overlays/no-such-feature")
    assert missing.status_code == 404
    assert "no-such-feature" in missing.json()["detail"]


def test_overlays_merge_planners_features(client: TestClient) -> None:
    feature = {
        "type": "Feature",
        "id": "gehlsdorf-steg",
        "geometry": {"type": "Point", "coordinates": [12.1228, 54.1014]},
        "properties": {
            "name": "Steg Gehlsdorf", "name_en": "Gehlsdorf jetty", "kind": "path",
            "status": "planned", "start": "2027", "end": None, "cost_eur": None,
            "description_de": "Ein neuer Steg.", "description_en": "A new jetty.",
            "source": "https://rathaus.rostock.de/", "height_mode": "clamp",
        },
    }
    created = client.post(
        f"{API}/{SCENE_ID}/overlays", json=feature,
        headers={"authorization": f"Bearer {TOKEN}"},
    )
    assert created.status_code == 201, created.text
    ids = [f["id"] for f in client.get(f"{API}/{SCENE_ID}/overlays").json()["features"]]
    assert ids == ["warnowbruecke", "primelberg-infotafel", "stadthafen-kaimauer",
                   "gehlsdorf-steg"]
    near = client.get(f"{API}/{SCENE_ID}/overlays", params={"bbox": "12.12,54.10,12.13,54.11"})
    assert [f["id"] for f in near.json()["features"]] == ["gehlsdorf-steg"]
    one = client.get(f"{API}/{SCENE_ID}/overlays/gehlsdorf-steg")
    assert one.status_code == 200
    assert one.json()["properties"]["name"] == "Steg Gehlsdorf"


# -- safety ---------------------------------------------------------------------------------


def test_path_traversal_is_404_without_traces(client: TestClient, scenes: Path) -> None:
    version = manifest(scenes)["version"]
    assert client.get(f"{API}/{SCENE_ID}/current/layers/buildings/tileset.json").status_code == 200
    attacks = [
        f"{API}/{SCENE_ID}/current/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        f"{API}/{SCENE_ID}/current/%2E%2E/versions/{version}/manifest.json",
        f"{API}/{SCENE_ID}/v/%2e%2e/current/manifest.json",
        f"{API}/%2e%2e/{SCENE_ID}/current/manifest.json",
        f"{API}/{SCENE_ID}/current/layers%2Fbuildings%2Ftileset.json",
        f"{API}/{SCENE_ID}/current/layers%2fbuildings/tileset.json",
        f"{API}/{SCENE_ID}/current/layers%5Cbuildings%5Ctileset.json",
        f"{API}/{SCENE_ID}/current//etc/passwd",
        f"{API}/{SCENE_ID}/current/%2Fetc%2Fpasswd",
        f"{API}/{SCENE_ID}/current/./manifest.json".replace("/./", "/%2e/"),
        f"{API}/{SCENE_ID}/current/manifest.json%00.glb",
        f"{API}/{SCENE_ID}/v/{version}/../../../../etc/passwd".replace("..", "%2e%2e"),
        f"{API}/{SCENE_ID}/current/.build/anything",
    ]
    for url in attacks:
        response = client.get(url)
        assert response.status_code == 404, url
        assert not TRACEBACK.search(response.text), url
        assert "root:" not in response.text


def test_symlinks_out_of_the_scene_are_404(
    tmp_path: Path, layer_cache: Path
) -> None:
    scenes_dir = tmp_path / "scenes"
    secret = tmp_path / "secret.json"
    secret.write_text('{"password": "hunter2"}')
    publish_scene(
        scenes_dir, cache_dir=layer_cache, symlinks={"layers/buildings/leak.json": secret}
    )
    # a scene folder that is a symlink to a published scene elsewhere
    elsewhere = tmp_path / "elsewhere"
    publish_scene(elsewhere, scene_id="gehlsdorf", cache_dir=layer_cache)
    os.symlink(elsewhere / "gehlsdorf", scenes_dir / "gehlsdorf")
    # a scene whose current link points out of its versions folder
    publish_scene(scenes_dir, scene_id="rostocker-oval", cache_dir=layer_cache)
    outside = scenes_dir / "rostocker-oval" / "current.tmp"
    os.symlink(str(elsewhere / "gehlsdorf" / "current"), outside)
    os.replace(outside, scenes_dir / "rostocker-oval" / "current")
    with TestClient(create_app(settings_for(scenes_dir, tmp_path))) as client:
        leak = client.get(f"{API}/{SCENE_ID}/current/layers/buildings/leak.json")
        assert leak.status_code == 404
        assert "hunter2" not in leak.text
        assert client.get(f"{API}/{SCENE_ID}/current/tour.json").status_code == 200
        for scene in ("gehlsdorf", "rostocker-oval"):
            assert client.get(f"{API}/{scene}/current/manifest.json").status_code == 404
            assert client.get(f"{API}/{scene}").status_code == 404
        assert [s["id"] for s in client.get(API).json()["scenes"]] == [SCENE_ID]
        ready = client.get("/readyz")
        assert ready.status_code == 503
        errors = ready.json()["checks"]["scenes"]["errors"]
        assert sorted(errors) == ["gehlsdorf", "rostocker-oval"]
        assert "symlink out of" in errors["gehlsdorf"]
        assert "outside" in errors["rostocker-oval"]


def test_a_changed_published_file_is_500_without_traceback(
    tmp_path: Path, layer_cache: Path
) -> None:
    scenes_dir = tmp_path / "scenes"
    publish_scene(scenes_dir, cache_dir=layer_cache)
    tile = tile_paths(scenes_dir)[0]
    target = current(scenes_dir) / tile
    target.write_bytes(target.read_bytes()[:-4] + b"evil")
    with TestClient(create_app(settings_for(scenes_dir, tmp_path))) as client:
        response = client.get(f"{API}/{SCENE_ID}/current/{tile}")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error reading the file"}
    assert not TRACEBACK.search(response.text)


# -- republishing, large files, the cache ---------------------------------------------------


def test_republishing_while_serving(tmp_path: Path, layer_cache: Path) -> None:
    scenes_dir = tmp_path / "scenes"
    first = publish_scene(scenes_dir, cache_dir=layer_cache)
    with TestClient(create_app(settings_for(scenes_dir, tmp_path))) as client:
        assert client.get(f"{API}/{SCENE_ID}").json()["version"] == first
        old_tour = client.get(f"{API}/{SCENE_ID}/current/tour.json").json()
        assert old_tour["title"]["en"] == "Across the Warnow"
        second = publish_scene(scenes_dir, edition=1, cache_dir=layer_cache)
        assert second != first
        assert client.get(f"{API}/{SCENE_ID}").json()["version"] == second
        assert client.get(f"{API}/{SCENE_ID}/tour").json()["title"]["en"] == (
            "Across the Warnow (1)"
        )
        new_tour = client.get(f"{API}/{SCENE_ID}/current/tour.json")
        assert new_tour.json()["title"]["en"] == "Across the Warnow (1)"
        # the previous version stays reachable under its immutable URL
        old = client.get(f"{API}/{SCENE_ID}/v/{first}/tour.json")
        assert old.status_code == 200 and old.json() == old_tour
        assert old.headers["cache-control"] == "public, max-age=31536000, immutable"
        # a version that was never published
        assert client.get(f"{API}/{SCENE_ID}/v/0000000000000000/tour.json").status_code == 404


def test_current_is_checked_at_the_configured_interval(tmp_path: Path, layer_cache: Path) -> None:
    scenes_dir = tmp_path / "scenes"
    first = publish_scene(scenes_dir, cache_dir=layer_cache)
    settings = settings_for(scenes_dir, tmp_path, current_check_seconds=0.5)
    with TestClient(create_app(settings)) as client:
        assert client.get(f"{API}/{SCENE_ID}").json()["version"] == first
        second = publish_scene(scenes_dir, edition=2, cache_dir=layer_cache)
        assert client.get(f"{API}/{SCENE_ID}").json()["version"] == first  # not looked yet
        deadline = time.monotonic() + 10
        while client.get(f"{API}/{SCENE_ID}").json()["version"] != second:
            assert time.monotonic() < deadline, "the republished version was never served"
            time.sleep(0.05)
        assert client.get(f"{API}/{SCENE_ID}/tour").json()["title"]["en"].endswith("(2)")


def test_large_files_stream_and_the_cache_stays_bounded(
    tmp_path: Path, layer_cache: Path
) -> None:
    scenes_dir = tmp_path / "scenes"
    big = bytes(range(256)) * 12_000  # 3 MB
    publish_scene(scenes_dir, cache_dir=layer_cache, extra_files={"layers/terrain/big.bin": big})
    capacity = 200_000  # files above 50 kB are streamed
    settings = settings_for(scenes_dir, tmp_path, tile_cache_bytes=capacity)
    with TestClient(create_app(settings)) as client:
        url = f"{API}/{SCENE_ID}/current/layers/terrain/big.bin"
        response = client.get(url)
        assert response.status_code == 200
        assert response.headers["content-length"] == str(len(big))
        assert response.content == big
        ranged = client.get(url, headers={"range": "bytes=1048570-1048590"})
        assert ranged.status_code == 206 and ranged.content == big[1048570:1048591]
        for tile in tile_paths(scenes_dir):
            assert client.get(f"{API}/{SCENE_ID}/current/{tile}").status_code == 200
        catalog = client.app.state.catalog  # type: ignore[attr-defined]
        assert 0 < catalog.cache.held <= capacity
        assert len(catalog.cache) < len(tile_paths(scenes_dir))


# -- CORS -----------------------------------------------------------------------------------


def test_cors_default_same_origin_and_configured_origins(
    scenes: Path, tmp_path: Path
) -> None:
    tile = f"{API}/{SCENE_ID}/current/{tile_paths(scenes)[0]}"
    origin = {"origin": "https://example.org"}
    with TestClient(create_app(settings_for(scenes, tmp_path))) as client:
        for url in (tile, f"{API}/{SCENE_ID}"):
            response = client.get(url, headers=origin)
            assert response.status_code == 200
            assert "access-control-allow-origin" not in response.headers
    settings = settings_for(scenes, tmp_path, cors_origins=["https://example.org"])
    with TestClient(create_app(settings)) as client:
        for url in (tile, f"{API}/{SCENE_ID}", f"{API}/{SCENE_ID}/overlays"):
            response = client.get(url, headers=origin)
            assert response.headers["access-control-allow-origin"] == "https://example.org"
            assert "ETag" in response.headers["access-control-expose-headers"]
        stranger = client.get(tile, headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in stranger.headers
        plain = client.get(tile)  # the cached response headers were not changed in place
        assert "access-control-allow-origin" not in plain.headers
        preflight = client.options(
            f"{API}/{SCENE_ID}/overlays",
            headers=origin | {"access-control-request-method": "POST",
                              "access-control-request-headers": "authorization"},
        )
        assert preflight.status_code == 200
        assert "POST" in preflight.headers["access-control-allow-methods"]


# -- operations -----------------------------------------------------------------------------


def test_healthz_readyz(client: TestClient, tmp_path: Path) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["store"] == {"ok": True}
    assert list(ready.json()["checks"]["scenes"]["served"]) == [SCENE_ID]
    with TestClient(create_app(settings_for(tmp_path / "nothing", tmp_path))) as empty:
        response = empty.get("/readyz")
        assert response.status_code == 503
        assert response.json()["status"] == "not ready"
        assert "no scene in" in response.json()["checks"]["scenes"]["errors"][""]

    async def unreachable() -> None:
        raise ConnectionRefusedError("connection refused")

    store = client.app.state.store  # type: ignore[attr-defined]
    ping = store.ping
    store.ping = unreachable
    try:
        response = client.get("/readyz")
    finally:
        store.ping = ping
    assert response.status_code == 503
    assert response.json()["checks"]["store"] == {"ok": False, "error": "not reachable"}
    assert client.get("/healthz").status_code == 200


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(found.get(key) == value for key, value in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_latency_bytes_and_cache_hits(
    client: TestClient, scenes: Path
) -> None:
    route = "/api/v1/scenes/{scene}/current/{path}"
    before = client.get("/metrics").text
    tiles = tile_paths(scenes)[:5]
    sizes = [(current(scenes) / tile).stat().st_size for tile in tiles]
    for tile in tiles:
        client.get(f"{API}/{SCENE_ID}/current/{tile}")
        client.get(f"{API}/{SCENE_ID}/current/{tile}")
    client.get(f"{API}/{SCENE_ID}/current/nothing.glb")
    client.get(f"{API}/{SCENE_ID}/tour")
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text

    def delta(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert delta("twin_http_requests_total", route=route, method="GET", status="200") == 10
    assert delta("twin_http_requests_total", route=route, method="GET", status="404") == 1
    assert delta("twin_http_requests_total", route="/api/v1/scenes/{scene}/tour",
                 method="GET", status="200") == 1
    assert delta("twin_http_request_duration_seconds_count", route=route) == 11
    assert delta("twin_http_request_duration_seconds_bucket", route=route, le="+Inf") == 11
    not_found_body = len(json.dumps(
        {"detail": f"no file 'nothing.glb' in scene '{SCENE_ID}' {manifest(scenes)['version']}"},
        separators=(",", ":"),
    ))
    assert delta("twin_http_response_bytes_total", route=route) == 2 * sum(sizes) + not_found_body
    assert delta("twin_file_cache_hits_total") >= 5
    assert delta("twin_file_cache_hits_total") + delta("twin_file_cache_misses_total") == 10


def test_openapi_documents_the_read_routes(client: TestClient) -> None:
    schema = client.get("/api/v1/openapi.json").json()
    for path in (
        "/api/v1/scenes",
        "/api/v1/scenes/{scene}",
        "/api/v1/scenes/{scene}/v/{version}/{path}",
        "/api/v1/scenes/{scene}/current/{path}",
        "/api/v1/scenes/{scene}/tour",
        "/api/v1/scenes/{scene}/tour/stops/{number}",
        "/api/v1/scenes/{scene}/overlays",
        "/api/v1/scenes/{scene}/overlays/{feature_id}",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert "get" in schema["paths"][path], path


# -- the scenes `twin build scene` publishes ------------------------------------------------


def _content_uris(tile: dict[str, Any]) -> Iterator[str]:
    for content in [tile.get("content"), *tile.get("contents", [])]:
        if content and "uri" in content:
            yield content["uri"]
    for child in tile.get("children", []):
        yield from _content_uris(child)


@pytest.mark.slow
def test_serves_every_file_the_scene_builder_publishes(
    published_scenes: Any, tmp_path: Path
) -> None:
    """The contract of docs/scenes.md between builder and service: every tileset reachable from
    the detail document resolves, through the service, to the published bytes."""
    with TestClient(create_app(settings_for(published_scenes.out, tmp_path))) as client:
        listed = [scene["id"] for scene in client.get(API).json()["scenes"]]
        assert listed == ["gehlsdorf", "rostocker-oval", "warnowbruecke"]
        for scene in listed:
            published = published_scenes.manifest(scene)
            version = published["version"]
            base = f"{API}/{scene}/v/{version}/"
            detail = client.get(f"{API}/{scene}").json()
            assert detail["version"] == version
            pending = [item["tileset_url"] for item in detail["epochs"] + detail["layers"]]
            seen: set[str] = set()
            while pending:
                url = pending.pop()
                if url in seen:
                    continue
                seen.add(url)
                assert url.startswith(base), url
                response = client.get(url, headers={"accept-encoding": "identity"})
                assert response.status_code == 200, url
                path = url.removeprefix(base)
                assert sha256(response.content) == published["files"][path], url
                if path.endswith(".json"):
                    assert response.headers["content-type"] == "application/json"
                    tileset = response.json()
                    pending += [urljoin(url, uri) for uri in _content_uris(tileset["root"])]
                else:
                    assert response.headers["content-type"] == "model/gltf-binary", url
            reachable_glbs = sum(1 for url in seen if url.endswith(".glb"))
            assert reachable_glbs == sum(1 for path in published["files"] if path.endswith(".glb"))
            tour = client.get(f"{API}/{scene}/tour").json()
            assert tour == published_scenes.tour(scene)
            stops = len(tour["stops"])
            assert client.get(f"{API}/{scene}/tour/stops/{stops}").json()["number"] == stops
            assert client.get(f"{API}/{scene}/tour/stops/{stops + 1}").status_code == 404
            overlays = json.loads(
                (published_scenes.current(scene) / "overlays.geojson").read_bytes()
            )
            served = client.get(f"{API}/{scene}/overlays").json()["features"]
            assert [f["id"] for f in served] == [f["id"] for f in overlays["features"]]


# -- `twin serve` settings ------------------------------------------------------------------


def test_twin_serve_uses_production_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn

    from tools.cli import cli

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append(dict(options, app=app)))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--port", "8123", "--workers", "3"])
    assert result.exit_code == 0, result.output
    options = calls[0]
    assert options["app"] == "server.app:create_app_from_env" and options["factory"] is True
    assert (options["host"], options["port"], options["workers"]) == ("127.0.0.1", 8123, 3)
    assert options["reload"] is False and options["proxy_headers"] is False
    assert options["access_log"] is False and options["server_header"] is False
    assert (options["loop"], options["http"]) == ("uvloop", "httptools")
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ  # made for the run, removed after


def test_twin_serve_names_a_bad_setting(tmp_path: Path) -> None:
    from tools.cli import cli

    runner = CliRunner()
    cases = {
        "TWIN_PACKAGES": ("not json", "environment variable TWIN_PACKAGES: cannot be read"),
        "TWIN_TILE_CACHE_BYTES": ("-1", "environment variable TWIN_TILE_CACHE_BYTES: Input "
                                        "should be greater than or equal to 0"),
    }
    for name, (value, message) in cases.items():
        result = runner.invoke(cli, ["serve"], env={name: value})
        assert result.exit_code == 1
        assert result.output.startswith(f"twin: error: {message}"), result.output
    missing = tmp_path / "missing.3dtiles"
    result = runner.invoke(cli, ["serve"], env={"TWIN_PACKAGES": json.dumps([str(missing)])})
    assert result.exit_code == 1
    assert result.output == (
        f"twin: error: TWIN_PACKAGES: {missing}: no such file; make it with twin package\n"
    )


# -- a real `twin serve` --------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, layer_cache: Path
) -> Iterator[tuple[int, Path]]:
    """``twin serve --workers 2`` on a free port, serving a scene with a 24 MB file."""
    tmp_path = tmp_path_factory.mktemp("served")
    scenes_dir = tmp_path / "scenes"
    big = hashlib.sha256(b"0").digest() * (24 * 1024 * 1024 // 32)
    publish_scene(scenes_dir, cache_dir=layer_cache, extra_files={"layers/big.bin": big})
    package = tmp_path / "packaged.3dtiles"
    package_scene(scenes_dir, SCENE_ID, package)
    env = dict(
        os.environ,
        TWIN_SCENES_DIR=str(scenes_dir),
        TWIN_PACKAGES=json.dumps([str(package)]),
        TWIN_DATABASE_URL=f"sqlite:///{tmp_path / 'store.sqlite3'}",
        TWIN_CURRENT_CHECK_SECONDS="0",
        TWIN_WRITE_TOKENS=hash_token(TOKEN),
    )
    with serving(env, tmp_path / "serve.log", workers=2) as port:
        yield port, scenes_dir


def _get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers=headers or {})  # sent as written: no normalising
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


@pytest.mark.slow
def test_twin_serve_serves_and_refuses_traversal(served: tuple[int, Path]) -> None:
    port, scenes_dir = served
    tile = tile_paths(scenes_dir)[0]
    status, headers, body = _get(port, f"{API}/{SCENE_ID}/current/{tile}")
    assert status == 200 and body == (current(scenes_dir) / tile).read_bytes()
    assert headers["content-type"] == "model/gltf-binary"
    assert "server" not in headers  # no server banner
    # the package (TWIN_PACKAGES) under the same URLs, named by its file stem
    packaged = _get(port, f"{API}/packaged/current/{tile}")
    assert packaged[0] == 200 and packaged[2] == body
    assert packaged[1]["etag"] == headers["etag"]
    for path in (
        f"{API}/{SCENE_ID}/current/../../../../../etc/passwd",
        f"{API}/{SCENE_ID}/current/../current/manifest.json",
        f"{API}/{SCENE_ID}/v/../current/manifest.json",
        f"{API}/{SCENE_ID}/current/layers%2Fbuildings%2Ftileset.json",
        f"{API}/{SCENE_ID}/current/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        f"{API}/{SCENE_ID}/current//etc/passwd",
        f"{API}/{SCENE_ID}/current/..\\..\\etc\\passwd",
    ):
        status, _, body = _get(port, path)
        assert status == 404, path
        assert b"root:" not in body and not TRACEBACK.search(body.decode("utf-8", "replace"))
    # metrics of both workers in one scrape
    for _ in range(20):
        _get(port, f"{API}/{SCENE_ID}/v/{manifest(scenes_dir)['version']}/{tile}")
    time.sleep(1.5)  # each worker hands its tallies over at least once a second
    _, headers, text = _get(port, "/metrics")
    served_total = _sample(
        text.decode(), "twin_http_requests_total",
        route="/api/v1/scenes/{scene}/v/{version}/{path}", method="GET", status="200",
    )
    assert served_total == 20


@pytest.mark.slow
def test_twin_serve_republish_during_a_download(
    served: tuple[int, Path], layer_cache: Path
) -> None:
    port, scenes_dir = served
    old = (current(scenes_dir) / "layers/big.bin").read_bytes()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", f"{API}/{SCENE_ID}/current/layers/big.bin")
    response = connection.getresponse()
    assert response.status == 200
    first_part = response.read(1 << 20)
    # republish with different content while the download is under way, then drop the old
    # version folder entirely (the builder deletes versions two publishes old)
    new = hashlib.sha256(b"1").digest() * (len(old) // 32)
    old_version = manifest(scenes_dir)["version"]
    publish_scene(scenes_dir, edition=5, cache_dir=layer_cache, extra_files={"layers/big.bin": new})
    shutil.rmtree(scenes_dir / SCENE_ID / "versions" / old_version)
    rest = response.read()
    connection.close()
    assert sha256(first_part + rest) == sha256(old)
    status, _, body = _get(port, f"{API}/{SCENE_ID}/current/layers/big.bin")
    assert status == 200 and sha256(body) == sha256(new)


# -- schemathesis: no 5xx for anything the OpenAPI document allows --------------------------


@pytest.fixture(scope="module")
def api_schema(scenes: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    app = create_app(settings_for(scenes, tmp, current_check_seconds=3600.0))
    with TestClient(app):  # the lifespan opens the catalog and the store
        yield schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)


def test_openapi_operations_never_answer_5xx(api_schema: Any, scenes: Path) -> None:
    """Every operation of the OpenAPI document, with generated parameters and bodies: as
    generated, and again on the published scene (its version) with a valid write token."""
    version = manifest(scenes)["version"]
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15  # read, write and operations routes

    def on_the_scene(case: Any) -> Any:
        if case.path_parameters and "scene" in case.path_parameters:
            case.path_parameters["scene"] = SCENE_ID
            if "version" in case.path_parameters:
                case.path_parameters["version"] = version
        case.headers = {**(case.headers or {}), "authorization": f"Bearer {TOKEN}"}
        return case

    for operation in operations:
        for strategy in (operation.as_strategy(), operation.as_strategy().map(on_the_scene)):

            @hypothesis.given(case=strategy)
            @hypothesis.settings(
                max_examples=12, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(hypothesis.HealthCheck),
            )
            def no_server_error(case: Any) -> None:
                case.call_and_validate(checks=[not_a_server_error])

            no_server_error()
