"""Length-prefixed binary fields: the building blocks of hotline's wire formats."""

from __future__ import annotations

import struct

from .errors import Malformed

# Every integer read from the wire must fit a signed 64-bit column (SQLite, PostgreSQL
# BIGINT): an unsigned u64 above this is refused when parsed, never met by a store.
MAX_U63 = 2**63 - 1


class Writer:
    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def raw(self, data: bytes) -> Writer:
        self._parts.append(data)
        return self

    def _int(self, fmt: str, value: int, limit: int) -> Writer:
        if not 0 <= value <= limit:
            raise Malformed(f"{value} is outside 0..{limit}")
        return self.raw(struct.pack(fmt, value))

    def u8(self, value: int) -> Writer:
        return self._int(">B", value, 0xFF)

    def u16(self, value: int) -> Writer:
        return self._int(">H", value, 0xFFFF)

    def u32(self, value: int) -> Writer:
        return self._int(">I", value, 0xFFFF_FFFF)

    def u64(self, value: int) -> Writer:
        """A u64 field; values above 2^63-1 are refused as a reader would refuse them."""
        return self._int(">Q", value, MAX_U63)

    def str8(self, value: str) -> Writer:
        data = value.encode()
        if len(data) > 255:
            raise Malformed(f"{value[:20]!r}... is longer than 255 bytes")
        return self.u8(len(data)).raw(data)

    def bytes32(self, data: bytes) -> Writer:
        """Variable bytes with a u32 length."""
        return self.u32(len(data)).raw(data)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    """Reads fields in order; every short read or bad value is Malformed."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def raw(self, n: int, field: str) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise Malformed(f"{self.what} is truncated in {field}", field=field)
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def u8(self, field: str) -> int:
        return int(self.raw(1, field)[0])

    def u16(self, field: str) -> int:
        return int(struct.unpack(">H", self.raw(2, field))[0])

    def u32(self, field: str) -> int:
        return int(struct.unpack(">I", self.raw(4, field))[0])

    def u64(self, field: str, limit: int = MAX_U63) -> int:
        """A u64 field, refused (Malformed naming ``field``) above ``limit`` (2^63-1)."""
        value = int(struct.unpack(">Q", self.raw(8, field))[0])
        if value > limit:
            raise Malformed(f"{self.what} {field} is {value}, over {limit}", field=field)
        return value

    def str8(self, field: str) -> str:
        data = self.raw(self.u8(field), field)
        try:
            return data.decode()
        except UnicodeDecodeError as exc:
            raise Malformed(f"{self.what} {field} is not UTF-8", field=field) from exc

    def bytes32(self, field: str, limit: int) -> bytes:
        n = self.u32(field)
        if n > limit:
            raise Malformed(f"{self.what} {field} claims {n} bytes (limit {limit})", field=field)
        return self.raw(n, field)

    def end(self) -> None:
        if self.pos != len(self.data):
            raise Malformed(f"{self.what} has {len(self.data) - self.pos} trailing bytes")
