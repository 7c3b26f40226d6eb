"""Read and write an ONNX file's `metadata_props` with the protobuf wire format alone.

The model card travels inside every exported generator as `metadata_props[gan_service.card]`.
Reading or replacing it needs neither the `onnx` package nor an ONNX Runtime session: a ModelProto
is a flat sequence of (field number, wire type, payload) records, and metadata_props is field 14,
a repeated {1: key, 2: value} message. Edits keep every other record's bytes and put field 14 where
protobuf's canonical field order puts it, so the result is what `onnx` itself would serialize.
"""

from __future__ import annotations

from dataclasses import dataclass

from gan_core.errors import UserError

METADATA_FIELD = 14
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class OnnxFormatError(UserError):
    """Bytes that are not a parsable ONNX ModelProto."""


@dataclass(frozen=True)
class _Record:
    field: int
    raw: bytes  # the whole record: tag + payload
    payload: bytes | None  # length-delimited payload (None for other wire types)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise OnnxFormatError("truncated varint")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise OnnxFormatError("varint too long")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _records(data: bytes) -> list[_Record]:
    out, pos = [], 0
    while pos < len(data):
        start = pos
        tag, pos = _varint(data, pos)
        field, wire = tag >> 3, tag & 7
        payload = None
        if wire == _VARINT:
            _, pos = _varint(data, pos)
        elif wire == _I64:
            pos += 8
        elif wire == _I32:
            pos += 4
        elif wire == _LEN:
            n, pos = _varint(data, pos)
            payload = data[pos : pos + n]
            pos += n
        else:
            raise OnnxFormatError(f"unsupported protobuf wire type {wire}")
        if pos > len(data) or field == 0:
            raise OnnxFormatError("truncated or malformed protobuf record")
        out.append(_Record(field, data[start:pos], payload))
    return out


def _len_record(field: int, payload: bytes) -> bytes:
    return _encode_varint(field << 3 | _LEN) + _encode_varint(len(payload)) + payload


def _entry(key: str, value: str) -> bytes:
    body = _len_record(1, key.encode()) + _len_record(2, value.encode())
    return _len_record(METADATA_FIELD, body)


def _entry_kv(payload: bytes) -> tuple[str, str]:
    key = value = ""
    for r in _records(payload):
        if r.payload is not None and r.field in (1, 2):
            text = r.payload.decode("utf-8", errors="replace")
            key, value = (text, value) if r.field == 1 else (key, text)
    return key, value


def read_metadata(data: bytes) -> dict[str, str]:
    """metadata_props of a serialized ModelProto, in file order."""
    recs = _records(data)
    if not any(r.field == 7 and r.payload is not None for r in recs):  # ModelProto.graph
        raise OnnxFormatError("not an ONNX model (no graph)")
    return dict(_entry_kv(r.payload) for r in recs if r.field == METADATA_FIELD and r.payload is not None)


def set_metadata(data: bytes, key: str, value: str) -> bytes:
    """A copy of the serialized model with metadata_props[key] = value (replacing an earlier entry)."""
    recs = [r for r in _records(data) if not (r.field == METADATA_FIELD and _entry_kv(r.payload)[0] == key)]
    # canonical order: after the last record numbered <= 14 (after existing metadata, before functions)
    at = max((k + 1 for k, r in enumerate(recs) if r.field <= METADATA_FIELD), default=0)
    parts = [r.raw for r in recs]
    parts.insert(at, _entry(key, value))
    return b"".join(parts)
