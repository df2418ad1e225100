"""``.3dtiles`` packages: the 3d-tiles-tools SQLite layout, ``twin package``, serving them."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from tests.server_fixtures import SCENE_ID, publish_scene, tile_paths
from tools.cli import cli
from twin.errors import FormatError, InputError
from twin.pipeline.package import package_scene
from twin.readers.package import PackageReader
from twin.writers.package import write_package

API = "/api/v1/scenes"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scenes")
    publish_scene(folder, cache_dir=tmp_path_factory.mktemp("layer"))
    return folder


@pytest.fixture(scope="module")
def package(scenes: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("packages") / f"{SCENE_ID}.3dtiles"
    package_scene(scenes, SCENE_ID, out)
    return out


def version_folder(scenes: Path) -> Path:
    return (scenes / SCENE_ID / "current").resolve()


def test_package_has_the_3d_tiles_tools_layout(scenes: Path, package: Path) -> None:
    connection = sqlite3.connect(package)
    try:
        schema = connection.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
        rows = dict(connection.execute("SELECT key, content FROM media").fetchall())
    finally:
        connection.close()
    assert schema[0] == (
        "table", "media", "CREATE TABLE media (key TEXT PRIMARY KEY, content BLOB)"
    )
    assert [entry[0] for entry in schema] == ["table", "index"]  # the primary key's index
    folder = version_folder(scenes)
    manifest = json.loads((folder / "manifest.json").read_bytes())
    assert sorted(rows) == sorted([*manifest["files"], "manifest.json"])
    for key, content in rows.items():
        assert content == (folder / key).read_bytes(), key
        if key != "manifest.json":
            assert hashlib.sha256(content).hexdigest() == manifest["files"][key]


def test_reader_reads_entries_and_ranges(scenes: Path, package: Path) -> None:
    folder = version_folder(scenes)
    tile = tile_paths(scenes)[0]
    data = (folder / tile).read_bytes()
    with PackageReader(package) as reader:
        assert "manifest.json" in reader.keys() and tile in reader.keys()
        assert reader.read(tile) == data
        assert reader.size(tile) == len(data)
        assert reader.read_range(tile, 100, 50) == data[100:150]
        assert reader.read("no/such/key") is None
        assert reader.size("no/such/key") is None


def test_packages_are_byte_identical_for_the_same_scene(
    scenes: Path, package: Path, tmp_path: Path
) -> None:
    again = package_scene(scenes, SCENE_ID, tmp_path / "again.3dtiles")
    assert again.files == len(tile_paths(scenes)) + 6  # tiles, 2 tilesets, report, 3 docs
    assert (tmp_path / "again.3dtiles").read_bytes() == package.read_bytes()


def test_package_is_written_atomically_and_checks_hashes(
    tmp_path: Path, scenes: Path
) -> None:
    scenes_dir = tmp_path / "scenes"
    publish_scene(scenes_dir, cache_dir=tmp_path / "layer")
    out = tmp_path / "out" / "warnowbruecke.3dtiles"
    package_scene(scenes_dir, SCENE_ID, out)
    before = out.read_bytes()
    tile = tile_paths(scenes_dir)[-1]
    target = version_folder(scenes_dir) / tile
    target.write_bytes(b"changed after publishing")
    with pytest.raises(FormatError, match=r"SHA-256 differs from manifest\.json"):
        package_scene(scenes_dir, SCENE_ID, out)
    assert out.read_bytes() == before  # the old package is untouched
    assert sorted(p.name for p in out.parent.iterdir()) == ["warnowbruecke.3dtiles"]
    target.unlink()
    with pytest.raises(FormatError, match="listed in manifest.json but missing"):
        package_scene(scenes_dir, SCENE_ID, out)


def test_package_refuses_symlinks_out_of_the_version(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the package")
    scenes_dir = tmp_path / "scenes"
    publish_scene(scenes_dir, cache_dir=tmp_path / "layer", symlinks={"leak.txt": secret})
    with pytest.raises(FormatError, match="symlink out of the version folder"):
        package_scene(scenes_dir, SCENE_ID, tmp_path / "x.3dtiles")
    assert not (tmp_path / "x.3dtiles").exists()


def test_writer_refuses_bad_keys(tmp_path: Path) -> None:
    for key in ("../escape", "/absolute", "a\\b", ""):
        with pytest.raises(InputError, match="not a relative path"):
            write_package(tmp_path / "bad.3dtiles", [(key, lambda: b"x")])
    with pytest.raises(InputError, match="two package entries"):
        write_package(tmp_path / "bad.3dtiles", [("a", lambda: b"1"), ("a", lambda: b"2")])
    assert list(tmp_path.iterdir()) == []


def test_reader_refuses_what_is_not_a_package(tmp_path: Path) -> None:
    text = tmp_path / "notes.3dtiles"
    text.write_text("hello")
    with pytest.raises(FormatError, match=r"notes\.3dtiles: not a \.3dtiles package"):
        PackageReader(text)
    other = tmp_path / "other.3dtiles"
    connection = sqlite3.connect(other)
    connection.execute("CREATE TABLE tiles (zoom INTEGER, data BLOB)")
    connection.commit()
    connection.close()
    with pytest.raises(FormatError, match=r"other\.3dtiles: no table 'media'"):
        PackageReader(other)
    wrong = tmp_path / "wrong.3dtiles"
    connection = sqlite3.connect(wrong)
    connection.execute("CREATE TABLE media (key TEXT PRIMARY KEY, content TEXT)")
    connection.commit()
    connection.close()
    with pytest.raises(FormatError, match=r"columns \(key TEXT, content TEXT\)"):
        PackageReader(wrong)
    with pytest.raises(FormatError, match="no such package file"):
        PackageReader(tmp_path / "missing.3dtiles")


def test_twin_package_command(scenes: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli.3dtiles"
    result = runner.invoke(cli, ["package", SCENE_ID, "--scenes", str(scenes), "--out", str(out)])
    assert result.exit_code == 0, result.output
    version = version_folder(scenes).name
    assert f"scene {SCENE_ID} version {version}" in result.output
    with PackageReader(out) as reader:
        assert len(reader.keys()) == len(tile_paths(scenes)) + 6
    missing = runner.invoke(cli, ["package", "atlantis", "--scenes", str(scenes)])
    assert missing.exit_code == 1
    assert missing.output.strip().splitlines() == [
        f"twin: error: {scenes / 'atlantis'}: no published scene 'atlantis'; build it with "
        f"`twin build scene atlantis --out {scenes}`"
    ]


def test_a_package_serves_with_the_same_urls(scenes: Path, package: Path, tmp_path: Path) -> None:
    folder_settings = Settings(
        scenes_dir=scenes, database_url=f"sqlite:///{tmp_path / 'a.sqlite3'}"
    )
    package_settings = Settings(
        scenes_dir=tmp_path / "no-folders", packages=[package],
        database_url=f"sqlite:///{tmp_path / 'b.sqlite3'}",
    )
    version = version_folder(scenes).name
    urls = [
        f"{API}",
        f"{API}/{SCENE_ID}",
        f"{API}/{SCENE_ID}/tour",
        f"{API}/{SCENE_ID}/tour/stops/1",
        f"{API}/{SCENE_ID}/overlays",
        f"{API}/{SCENE_ID}/overlays/warnowbruecke",
        f"{API}/{SCENE_ID}/current/manifest.json",
        f"{API}/{SCENE_ID}/v/{version}/epochs/heute/tileset.json",
    ] + [f"{API}/{SCENE_ID}/current/{tile}" for tile in tile_paths(scenes)]
    with TestClient(create_app(folder_settings)) as from_folder, TestClient(
        create_app(package_settings)
    ) as from_package:
        for url in urls:
            expected, got = from_folder.get(url), from_package.get(url)
            assert got.status_code == expected.status_code == 200, url
            assert got.content == expected.content, url
            assert got.headers["etag"] == expected.headers["etag"], url
            assert got.headers["content-type"] == expected.headers["content-type"], url
        tile = f"{API}/{SCENE_ID}/current/{tile_paths(scenes)[0]}"
        ranged = from_package.get(tile, headers={"range": "bytes=10-19"})
        assert ranged.status_code == 206
        assert ranged.content == from_folder.get(tile).content[10:20]
        assert from_package.get(f"{API}/{SCENE_ID}/current/nope.glb").status_code == 404
        assert from_package.get("/readyz").status_code == 200


def test_a_replaced_package_is_served_without_restart(
    scenes: Path, tmp_path: Path
) -> None:
    scenes_dir = tmp_path / "scenes"
    layer = tmp_path / "layer"
    first = publish_scene(scenes_dir, cache_dir=layer)
    served = tmp_path / "served" / "warnowbruecke.3dtiles"
    package_scene(scenes_dir, SCENE_ID, served)
    settings = Settings(
        scenes_dir=tmp_path / "no-folders", packages=[served], current_check_seconds=0,
        database_url=f"sqlite:///{tmp_path / 'c.sqlite3'}",
    )
    with TestClient(create_app(settings)) as client:
        assert client.get(f"{API}/{SCENE_ID}").json()["version"] == first
        second = publish_scene(scenes_dir, edition=3, cache_dir=layer)
        package_scene(scenes_dir, SCENE_ID, served)  # renamed over the served file
        assert client.get(f"{API}/{SCENE_ID}").json()["version"] == second
        assert client.get(f"{API}/{SCENE_ID}/tour").json()["title"]["de"].endswith("(3)")
        os.utime(served)  # touching it alone does not change what is served
        assert client.get(f"{API}/{SCENE_ID}").json()["version"] == second
