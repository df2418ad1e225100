"""The LAS/LAZ/COPC reader: headers, CRS records, chunked ranges, broken files."""

from __future__ import annotations

import struct
from pathlib import Path

import laspy
import numpy as np
import pytest

from twin.errors import FormatError
from twin.readers.las import LasSource, describe_las, read_header, sample_rgb_max

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "lidar" / "laspy"
ALL_SAMPLES = sorted(p.name for p in SAMPLES.glob("*.la[sz]"))


def read_all(path: Path, chunk: int = 100_000) -> list:
    header = read_header(path)
    return list(LasSource(path, 0, header.point_count).chunks(chunk))


@pytest.mark.parametrize("name", ALL_SAMPLES)
def test_every_sample_decodes_like_laspy(name):
    path = SAMPLES / name
    header = read_header(path)
    with laspy.open(path) as f:
        expected = f.read()
    chunks = read_all(path, chunk=777)
    assert sum(len(c) for c in chunks) == header.point_count == len(expected)
    assert [c.start for c in chunks] == list(range(0, header.point_count, 777))
    x = np.concatenate([c.x for c in chunks])
    z = np.concatenate([c.z for c in chunks])
    np.testing.assert_array_equal(x, np.asarray(expected.x))
    np.testing.assert_array_equal(z, np.asarray(expected.z))
    classes = np.concatenate([c.classification for c in chunks])
    np.testing.assert_array_equal(classes, np.asarray(expected.classification))
    intensity = np.concatenate([c.intensity for c in chunks])
    np.testing.assert_array_equal(intensity, np.asarray(expected.intensity))
    returns = np.concatenate([c.return_number for c in chunks])
    np.testing.assert_array_equal(returns, np.asarray(expected.return_number))
    if header.has_rgb:
        rgb = np.concatenate([c.rgb for c in chunks])
        np.testing.assert_array_equal(rgb[:, 1], np.asarray(expected.green))


def test_ranges_seek_into_laz_and_copc():
    for name in ("autzen_trim.laz", "simple.copc.laz", "fullwave.laz"):
        path = SAMPLES / name
        header = read_header(path)
        whole = np.concatenate([c.y for c in read_all(path)])
        start, stop = header.point_count // 3, header.point_count - 5
        part = np.concatenate([c.y for c in LasSource(path, start, stop).chunks(1000)])
        np.testing.assert_array_equal(part, whole[start:stop])


def test_header_fields_and_crs_records():
    autzen = read_header(SAMPLES / "autzen_trim.laz")
    assert (autzen.format, autzen.version, autzen.point_format) == ("LAZ", "1.2", 3)
    assert autzen.point_count == 110000 and autzen.has_rgb
    assert autzen.crs_record == "WKT" and "Lambert" in autzen.crs_name
    copc = read_header(SAMPLES / "simple.copc.laz")
    assert copc.format == "COPC" and "NAVD88" in copc.crs_name  # compound CRS kept whole
    assert read_header(SAMPLES / "extrabytes.las").extra_dimensions == (
        "Colors", "Reserved", "Flags", "Intensity", "Time"
    )
    plain = read_header(SAMPLES / "simple.las")
    assert plain.crs_wkt is None and plain.crs_problem == ""
    plane = read_header(SAMPLES / "plane.laz")
    assert plane.crs_wkt is None and "user-defined" in plane.crs_problem


def test_geotiff_keys_with_a_vertical_crs(tmp_path):
    header = laspy.LasHeader(point_format=6, version="1.4")
    header.scales = [0.01, 0.01, 0.01]
    header.offsets = [312000, 5998000, 0]
    # ProjectedCSType 25833, VerticalCSType 7837 (DHHN2016), as M-V's ALS tiles declare them.
    keys = laspy.vlrs.geotiff.GeoKeyDirectoryVlr()
    keys.geo_keys_header.number_of_keys = 3
    entry = laspy.vlrs.known.GeoKeyEntryStruct
    keys.geo_keys = [entry(1024, 0, 1, 1), entry(3072, 0, 1, 25833), entry(4096, 0, 1, 7837)]
    header.vlrs.append(keys)
    las = laspy.LasData(header)
    las.x = np.array([312000.0, 312010.0])
    las.y = np.array([5998000.0, 5998010.0])
    las.z = np.array([1.0, 2.0])
    las.write(tmp_path / "mv.las")
    parsed = read_header(tmp_path / "mv.las")
    assert parsed.crs_record == "GeoTIFF"
    assert "25833" in parsed.crs_wkt and "DHHN2016" in parsed.crs_wkt


def test_colour_depth_is_sampled():
    assert sample_rgb_max(read_header(SAMPLES / "autzen_trim.laz")) <= 255  # 8-bit in 16
    assert sample_rgb_max(read_header(SAMPLES / "fullwave.laz")) > 255
    assert sample_rgb_max(read_header(SAMPLES / "simple1_1.las")) == 0  # no RGB fields


def test_describe_las():
    info = describe_las(SAMPLES / "simple.las")
    assert info["format"] == "LAS" and info["points"] == 1065
    assert "pass --crs" in info["crs"]["error"]
    np.testing.assert_allclose(info["bounds"][0], [635619.85, 848899.70, 406.59])


# --- broken files -----------------------------------------------------------------------------


def test_truncated_las_is_caught_from_the_header(tmp_path):
    data = (SAMPLES / "simple.las").read_bytes()
    bad = tmp_path / "cut.las"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"cut.las: header claims 1065 points .* truncated"):
        read_header(bad)


def test_header_claiming_more_points_than_the_file_holds(tmp_path):
    data = bytearray((SAMPLES / "simple.las").read_bytes())
    struct.pack_into("<I", data, 107, 5000)  # legacy point count (LAS 1.2)
    bad = tmp_path / "more.las"
    bad.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="claims 5000 points .* holds only 1065"):
        read_header(bad)


def test_truncated_laz_names_the_chunk_table(tmp_path):
    data = (SAMPLES / "autzen_trim.laz").read_bytes()
    bad = tmp_path / "cut.laz"
    bad.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(FormatError, match="chunk table .* truncated"):
        read_header(bad)


def test_laz_header_claiming_more_points_names_the_point(tmp_path):
    data = bytearray((SAMPLES / "autzen_trim.laz").read_bytes())
    struct.pack_into("<I", data, 107, 200_000)  # the chunk table holds 110,000
    bad = tmp_path / "more.laz"
    bad.write_bytes(bytes(data))
    header = read_header(bad)  # the chunk table is intact: only decoding can tell
    with pytest.raises(FormatError, match=r"more.laz: cannot decode points from index 110000"):
        for _ in LasSource(bad, 0, header.point_count).chunks(10_000):
            pass


def test_not_a_las_file(tmp_path):
    bad = tmp_path / "x.las"
    bad.write_bytes(b"PK\x03\x04" + b"\0" * 400)
    with pytest.raises(FormatError, match="Invalid file signature 'PK"):
        read_header(bad)
    tiny = tmp_path / "tiny.las"
    tiny.write_bytes(b"LASF" + b"\0" * 20)
    with pytest.raises(FormatError, match="shorter than a LAS header"):
        read_header(tiny)


def test_nan_scale_is_refused(tmp_path):
    data = bytearray((SAMPLES / "simple.las").read_bytes())
    struct.pack_into("<d", data, 131, float("nan"))  # x scale factor
    bad = tmp_path / "nan.las"
    bad.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="x scale factor is nan"):
        read_header(bad)
