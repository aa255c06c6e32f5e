"""
estimate_vram_bytes on safetensors files written by hand (8-byte length,
JSON header, raw bytes), including corrupt and hostile headers.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest

from zerfoo_cloud import InvalidConfigError, ModelFormatError
from zerfoo_cloud.resources import (
    DEFAULT_KV_CACHE_FRACTION,
    MAX_HEADER_BYTES,
    estimate_vram_bytes,
)

BITS = {"F32": 32, "BF16": 16, "F16": 16, "I8": 8, "F4": 4, "I64": 64}


def tensors_header(
    tensors: dict[str, tuple[str, list[int]]],
) -> tuple[dict[str, Any], int]:
    """Lay tensors out back to back; return the header and the data length."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = math.ceil(math.prod(shape) * BITS[dtype] / 8)
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + size],
        }
        offset += size
    return header, offset


def write_raw(
    path: Path, header: bytes, data_len: int, *, length: int | None = None
) -> Path:
    """Write the length prefix (or *length*), *header* and *data_len* bytes of data."""
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(header) if length is None else length))
        f.write(header)
        f.truncate(8 + len(header) + data_len)  # sparse: the data is never read
    return path


def write_safetensors(
    path: Path,
    tensors: dict[str, tuple[str, list[int]]] | None = None,
    *,
    header: dict[str, Any] | None = None,
    data_len: int | None = None,
) -> Path:
    if header is None:
        header, length = tensors_header(tensors or {})
        data_len = length if data_len is None else data_len
    return write_raw(path, json.dumps(header).encode(), data_len or 0)


def test_weights_come_from_the_header(tmp_path: Path) -> None:
    """The weight bytes are the sum of dtype size times shape over the tensors."""
    path = write_safetensors(
        tmp_path / "m.safetensors",
        {"w": ("F32", [2, 3]), "b": ("BF16", [4]), "q": ("F4", [6]), "s": ("I8", [])},
    )
    weights = 24 + 8 + 3 + 1
    assert estimate_vram_bytes(path, kv_cache_fraction=0) == weights
    assert estimate_vram_bytes(str(path)) == weights + math.ceil(
        weights * DEFAULT_KV_CACHE_FRACTION
    )
    assert estimate_vram_bytes(path, kv_cache_fraction=1.5) == weights + math.ceil(
        weights * 1.5
    )


def test_sharded_folder_sums_every_shard(tmp_path: Path) -> None:
    """A folder's safetensors shards are summed; other files are ignored."""
    write_safetensors(
        tmp_path / "model-00001-of-00002.safetensors", {"a": ("F16", [10, 10])}
    )
    write_safetensors(
        tmp_path / "model-00002-of-00002.safetensors", {"b": ("F16", [5])}
    )
    (tmp_path / "model.safetensors.index.json").write_text("{}")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "sub.safetensors").mkdir()  # a folder with the suffix is skipped
    assert estimate_vram_bytes(tmp_path, kv_cache_fraction=0) == 200 + 10


def test_tensor_data_is_never_read(tmp_path: Path) -> None:
    """A header describing 64 GiB of (sparse) data is sized from the header alone."""
    gib64 = 64 * 1024**3
    path = write_safetensors(
        tmp_path / "huge.safetensors", {"w": ("F32", [gib64 // 4])}, data_len=gib64
    )
    assert estimate_vram_bytes(path, kv_cache_fraction=0) == gib64


def test_unknown_dtype_is_sized_by_its_offsets(tmp_path: Path) -> None:
    """A dtype this library does not know is counted by its data_offsets."""
    header = {"x": {"dtype": "F2_FUTURE", "shape": [8], "data_offsets": [0, 2]}}
    path = write_safetensors(tmp_path / "m.safetensors", header=header, data_len=2)
    assert estimate_vram_bytes(path, kv_cache_fraction=0) == 2


def test_empty_header_has_no_weights(tmp_path: Path) -> None:
    """A file with only metadata weighs nothing."""
    path = write_safetensors(tmp_path / "m.safetensors", {})
    assert estimate_vram_bytes(path) == 0


@pytest.mark.parametrize(
    "fraction", [-1e-9, -1, float("nan"), float("inf"), True, "0.2"]
)
def test_kv_cache_fraction_must_be_finite_and_not_negative(
    tmp_path: Path, fraction: object
) -> None:
    """A negative, non-finite or non-number KV-cache fraction raises InvalidConfigError."""
    path = write_safetensors(tmp_path / "m.safetensors", {"w": ("F32", [1])})
    with pytest.raises(InvalidConfigError) as info:
        estimate_vram_bytes(path, kv_cache_fraction=fraction)  # type: ignore[arg-type]
    assert info.value.field == "kv_cache_fraction"


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    """A missing path or a folder without safetensors files raises ModelFormatError."""
    with pytest.raises(ModelFormatError, match="no such file"):
        estimate_vram_bytes(tmp_path / "nope.safetensors")
    with pytest.raises(ModelFormatError, match=r"holds no \.safetensors file") as info:
        estimate_vram_bytes(tmp_path)
    assert isinstance(info.value, InvalidConfigError)
    assert info.value.path == str(tmp_path)


def test_header_size_limit(tmp_path: Path) -> None:
    """A header of exactly max_header_bytes is read; one byte over is refused."""
    path = write_safetensors(tmp_path / "m.safetensors", {"w": ("F32", [4])})
    size = len(json.dumps(tensors_header({"w": ("F32", [4])})[0]).encode())
    assert estimate_vram_bytes(path, kv_cache_fraction=0, max_header_bytes=size) == 16
    with pytest.raises(ModelFormatError, match="over the limit"):
        estimate_vram_bytes(path, max_header_bytes=size - 1)


def test_hostile_header_length_is_refused_without_reading(tmp_path: Path) -> None:
    """A length prefix of 2**64 - 1 (or just over the 100 MB cap) is refused at once."""
    for length in (2**64 - 1, MAX_HEADER_BYTES + 1):
        path = write_raw(tmp_path / "m.safetensors", b"{}", 0, length=length)
        with pytest.raises(ModelFormatError, match="over the limit"):
            estimate_vram_bytes(path)


def test_header_running_past_the_end_is_refused(tmp_path: Path) -> None:
    """A length prefix longer than the rest of the file is refused."""
    path = write_raw(tmp_path / "m.safetensors", b"{}", 0, length=3)
    with pytest.raises(ModelFormatError, match="past the end"):
        estimate_vram_bytes(path)


def test_file_shorter_than_the_prefix_is_refused(tmp_path: Path) -> None:
    """A file of fewer than 8 bytes is refused."""
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"\x01\x02")
    with pytest.raises(ModelFormatError, match="too short"):
        estimate_vram_bytes(path)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"w": 3}', "not described by an object"),
    ],
)
def test_malformed_header_is_refused(tmp_path: Path, raw: bytes, message: str) -> None:
    """Invalid JSON, invalid UTF-8, a non-object header or entry is refused."""
    path = write_raw(tmp_path / "m.safetensors", raw, 0)
    with pytest.raises(ModelFormatError, match=message):
        estimate_vram_bytes(path)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"dtype": "F32", "shape": [2], "data_offsets": [0, 9]}, "only 8 bytes"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}, "claims bytes 8..0"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [0]}, "no valid data_offsets"),
        (
            {"dtype": "F32", "shape": [2], "data_offsets": [0, -8]},
            "no valid data_offsets",
        ),
        (
            {"dtype": "F32", "shape": [2], "data_offsets": [0, True]},
            "no valid data_offsets",
        ),
        (
            {"dtype": "F32", "shape": [2], "data_offsets": "0-8"},
            "no valid data_offsets",
        ),
        ({"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}, "no valid shape"),
        ({"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}, "no valid shape"),
        (
            {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]},
            "does not take 8 bytes",
        ),
    ],
)
def test_hostile_tensor_entries_are_refused(
    tmp_path: Path, spec: dict[str, Any], message: str
) -> None:
    """Offsets past the data, reversed or malformed, bad shapes and size mismatches are refused."""
    path = write_safetensors(tmp_path / "m.safetensors", header={"w": spec}, data_len=8)
    with pytest.raises(ModelFormatError, match=message):
        estimate_vram_bytes(path)


def test_offsets_at_the_end_of_the_file_are_accepted(tmp_path: Path) -> None:
    """A tensor ending exactly at the last byte is accepted (the limit)."""
    spec = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    path = write_safetensors(tmp_path / "m.safetensors", header={"w": spec}, data_len=8)
    assert estimate_vram_bytes(path, kv_cache_fraction=0) == 8


def test_overlapping_tensors_are_refused(tmp_path: Path) -> None:
    """Two tensors claiming the same bytes cannot inflate the estimate."""
    spec = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    path = write_safetensors(
        tmp_path / "m.safetensors", header={"a": spec, "b": spec}, data_len=8
    )
    with pytest.raises(ModelFormatError, match="overlap"):
        estimate_vram_bytes(path)


def test_a_bad_shard_fails_the_folder(tmp_path: Path) -> None:
    """One corrupt shard makes the whole folder's estimate fail, naming that shard."""
    write_safetensors(tmp_path / "a.safetensors", {"w": ("F32", [1])})
    bad = write_raw(tmp_path / "b.safetensors", b"oops", 0)
    with pytest.raises(ModelFormatError) as info:
        estimate_vram_bytes(tmp_path)
    assert info.value.path == str(bad)


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_unreadable_file_is_refused() -> None:
    """A path that exists but cannot be read raises ModelFormatError, not OSError."""
    with pytest.raises(ModelFormatError, match="cannot be read"):
        estimate_vram_bytes("/proc/self/mem")
