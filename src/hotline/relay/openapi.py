"""OpenAPI description of the relay's HTTP API (the WebSocket protocol is in docs/PROTOCOL.md)."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "description": "A hotline error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
# Every request may be refused for its address's rate (docs/OPERATIONS.md, relay limits).
_LIMITED = {"description": "Too many requests from this address (rate_limited)", **_ERROR}
_CHANNEL = {"name": "channel", "in": "path", "required": True, "schema": {"type": "string"}}


def _int(name: str, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": {"type": "integer", "minimum": 0},
    }


def _text(desc: str) -> dict[str, Any]:
    return {"description": desc, "content": {"text/plain": {"schema": {"type": "string"}}}}


def _json(desc: str) -> dict[str, Any]:
    return {"description": desc, "content": {"application/json": {"schema": {"type": "object"}}}}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "hotline relay",
        "version": "1",
        "description": "Public, read-only view of the relay. Stations talk over /ws.",
    },
    "paths": {
        "/health": {
            "get": {
                "summary": "Liveness, log sizes, stations online",
                "responses": {"200": _json("Health"), "429": _LIMITED},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text format; docs/OPERATIONS.md lists them)",
                "responses": {"200": _text("Prometheus text exposition"), "429": _LIMITED},
            }
        },
        "/roster": {
            "get": {
                "summary": "The roster signed by every party",
                "responses": {"200": _text("Signed roster note"), "429": _LIMITED},
            }
        },
        "/certificates": {
            "get": {
                "summary": "Station certificates and revocations",
                "responses": {"200": _json("Statements as signed notes"), "429": _LIMITED},
            }
        },
        "/channels/{channel}/checkpoint": {
            "get": {
                "summary": "Signed checkpoint (latest, or at a size) with cosignatures",
                "parameters": [_CHANNEL, _int("size")],
                "responses": {
                    "200": _text("C2SP checkpoint note (only ones the relay has signed)"),
                    "400": _ERROR,
                    "429": _LIMITED,
                },
            }
        },
        "/channels/{channel}/proof/inclusion": {
            "get": {
                "summary": "RFC 6962 inclusion proof of an entry",
                "parameters": [_CHANNEL, _int("index", True), _int("size")],
                "responses": {
                    "200": _json("index, size, leaf_hash, proof"),
                    "400": _ERROR,
                    "429": _LIMITED,
                },
            }
        },
        "/channels/{channel}/proof/consistency": {
            "get": {
                "summary": "RFC 6962 consistency proof between two sizes",
                "parameters": [_CHANNEL, _int("from", True), _int("to")],
                "responses": {"200": _json("from, to, proof"), "400": _ERROR, "429": _LIMITED},
            }
        },
        "/channels/{channel}/entries": {
            "get": {
                "summary": "Envelopes from a cursor (member stations only, signed request)",
                "parameters": [
                    _CHANNEL,
                    _int("after"),
                    _int("limit"),
                    {
                        "name": "Authorization",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "Hotline station=P/S,time=UNIX,signature=B64",
                    },
                ],
                "responses": {
                    "200": _json("entries"),
                    "400": _ERROR,
                    "401": _ERROR,
                    "403": _ERROR,
                    "429": _LIMITED,
                },
            }
        },
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "channel": {"type": "string"},
                            "index": {"type": "integer"},
                            "field": {"type": "string"},
                        },
                    }
                },
            }
        }
    },
}
