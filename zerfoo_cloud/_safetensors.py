"""
Weight sizes of safetensors files, read from their headers alone.

A safetensors file is an 8-byte little-endian header length *n*, *n* bytes
of JSON mapping tensor names to ``{"dtype", "shape", "data_offsets"}``
(offsets relative to the data that follows the header), then the raw tensor
data. Only the first ``8 + n`` bytes are ever read here, and every claim in
the header is checked against the file's size before it is believed, so a
hostile header can neither make us read gigabytes nor invent weights that are
not in the file.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from zerfoo_cloud.errors import InvalidConfigError, ModelFormatError

__all__ = [
    "DEFAULT_KV_CACHE_FRACTION",
    "MAX_HEADER_BYTES",
    "estimate_vram_bytes",
    "safetensors_weight_bytes",
]

#: The largest header read, the same cap as the safetensors library's own.
MAX_HEADER_BYTES = 100_000_000
#: The KV-cache margin `estimate_vram_bytes` adds by default: 20 % of the
#: weights. The cache grows with context length, batch size, layers and
#: key/value heads, so this is a rule of thumb for a model serving a few
#: thousand tokens of context to a few requests at once; pass your own
#: fraction when you know better.
DEFAULT_KV_CACHE_FRACTION = 0.2

#: Bits per element of every dtype the safetensors format defines.
_DTYPE_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}
_SUFFIX = ".safetensors"


def _fail(path: Path, reason: str) -> ModelFormatError:
    return ModelFormatError(str(path), reason)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _tensor_span(path: Path, name: str, spec: object, data_len: int) -> tuple[int, int]:
    """
    Check one tensor entry and return its ``(begin, end)`` in the data.
    """
    if not isinstance(spec, dict):
        raise _fail(path, f"tensor {name!r} is not described by an object")
    offsets = spec.get("data_offsets")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2  # noqa: PLR2004 - a [begin, end] pair
        or not all(_is_count(o) for o in offsets)
    ):
        raise _fail(path, f"tensor {name!r} has no valid data_offsets")
    begin, end = offsets
    if not begin <= end <= data_len:
        raise _fail(
            path,
            f"tensor {name!r} claims bytes {begin}..{end} but the file holds "
            f"only {data_len} bytes of tensor data",
        )
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise _fail(path, f"tensor {name!r} has no valid shape")
    bits = _DTYPE_BITS.get(spec.get("dtype"))  # type: ignore[arg-type]
    # Unknown (newer) dtypes are accepted: the offsets, checked above, are
    # what the sum uses. Known ones must agree with their shape.
    if bits is not None and math.ceil(math.prod(shape) * bits / 8) != end - begin:
        raise _fail(
            path,
            f"tensor {name!r} of dtype {spec['dtype']} and shape {shape} does "
            f"not take {end - begin} bytes",
        )
    return begin, end


def safetensors_weight_bytes(
    path: Path, *, max_header_bytes: int = MAX_HEADER_BYTES
) -> int:
    """
    Return the tensor bytes of the safetensors file *path*, from its header.

    Args:
        path: a ``.safetensors`` file.
        max_header_bytes: the largest JSON header accepted.

    Raises:
        ModelFormatError: the file is missing, truncated, its header is over
            *max_header_bytes*, not a JSON object, or describes tensors that
            overlap or lie beyond the end of the file.

    .. versionadded:: 0.1.0
    """
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            prefix = f.read(8)
            if len(prefix) < 8:  # noqa: PLR2004 - the u64 length prefix
                raise _fail(path, "too short to hold a safetensors header")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > max_header_bytes:
                raise _fail(
                    path,
                    f"header of {header_len} bytes is over the limit of "
                    f"{max_header_bytes} bytes",
                )
            if header_len > size - 8:
                raise _fail(
                    path,
                    f"header of {header_len} bytes runs past the end of the "
                    f"{size}-byte file",
                )
            raw = f.read(header_len)
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or exc})") from exc
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise _fail(path, "header is not a JSON object")
    data_len = size - 8 - header_len
    spans = sorted(
        _tensor_span(path, name, spec, data_len)
        for name, spec in header.items()
        if name != "__metadata__"
    )
    total = 0
    previous_end = 0
    for begin, end in spans:
        if begin < previous_end:
            raise _fail(path, f"tensors overlap at byte {begin} of the tensor data")
        previous_end = end
        total += end - begin
    return total


def estimate_vram_bytes(
    path: str | Path,
    *,
    kv_cache_fraction: float = DEFAULT_KV_CACHE_FRACTION,
    max_header_bytes: int = MAX_HEADER_BYTES,
) -> int:
    """
    Estimate the GPU memory a safetensors model needs: weights plus KV cache.

    The weights are summed from the headers of *path* (one ``.safetensors``
    file, or every ``*.safetensors`` file directly inside a folder, as
    sharded checkpoints are stored); no tensor data is read. The KV cache
    margin is ``ceil(weights * kv_cache_fraction)``.

    Args:
        path: a ``.safetensors`` file or a folder of them.
        kv_cache_fraction: the margin for the KV cache and activations as a
            fraction of the weights; 0 for the weights alone. Defaults to
            `DEFAULT_KV_CACHE_FRACTION`.
        max_header_bytes: the largest header accepted in each file.

    Returns:
        The estimate in bytes, ready for `ResourceManager.load`.

    Raises:
        InvalidConfigError: *kv_cache_fraction* is negative or not finite.
        ModelFormatError: *path* does not exist, a folder holds no
            safetensors file, or a header is corrupt or hostile.

    .. versionadded:: 0.1.0
    """
    if isinstance(kv_cache_fraction, bool) or not (
        isinstance(kv_cache_fraction, (int, float))
        and math.isfinite(kv_cache_fraction)
        and kv_cache_fraction >= 0
    ):
        msg = (
            f"kv_cache_fraction must be a finite number >= 0, not {kv_cache_fraction!r}"
        )
        raise InvalidConfigError(msg, field="kv_cache_fraction")
    path = Path(path)
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir() if p.name.endswith(_SUFFIX) and p.is_file()
        )
        if not files:
            raise _fail(path, f"folder holds no {_SUFFIX} file")
    elif path.exists():
        files = [path]
    else:
        raise _fail(path, "no such file or folder")
    weights = sum(
        safetensors_weight_bytes(f, max_header_bytes=max_header_bytes) for f in files
    )
    return weights + math.ceil(weights * kv_cache_fraction)
