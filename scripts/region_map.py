"""Build the console's offline map data: borders and coastlines of the region.

Input: Natural Earth 1:50m country boundaries and land as TopoJSON, from the npm
package ``world-atlas`` (public domain data, ISC-licensed packaging):

    npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz
    python scripts/region_map.py package/countries-50m.json package/land-50m.json \
        > src/hotline/station/console/static/region.geojson

Output, for the region (Ukraine, the Black Sea, western Russia and their neighbours),
rounded to 0.01 degree (about 1 km, far below what a line at this scale shows):
a "land" MultiPolygon clipped to the region (so the sea reads as sea), and a "borders"
MultiLineString of every TopoJSON arc (a stretch of border or coastline) that enters it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

# west, south, east, north (degrees): the region the console's maps show.
REGION = (18.0, 38.0, 54.0, 62.0)


def arcs_of(topo: dict[str, Any]) -> list[list[tuple[float, float]]]:
    """Decode quantized, delta-encoded TopoJSON arcs into lon/lat lines."""
    (sx, sy), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    out = []
    for arc in topo["arcs"]:
        x = y = 0
        line = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            line.append((x * sx + tx, y * sy + ty))
        out.append(line)
    return out


def ring_of(arcs: list[list[tuple[float, float]]], indexes: list[int]) -> list[tuple[float, float]]:
    """A TopoJSON ring: its arcs joined (a negative index ~i is arc i reversed)."""
    out: list[tuple[float, float]] = []
    for i in indexes:
        arc = arcs[i] if i >= 0 else list(reversed(arcs[~i]))
        out.extend(arc if not out else arc[1:])
    return out


def clip(ring: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sutherland-Hodgman: the part of a ring inside the region's rectangle."""
    w, s, e, n = REGION
    edges = (
        (lambda p: p[0] >= w, lambda a, b: (w, a[1] + (b[1] - a[1]) * (w - a[0]) / (b[0] - a[0]))),
        (lambda p: p[0] <= e, lambda a, b: (e, a[1] + (b[1] - a[1]) * (e - a[0]) / (b[0] - a[0]))),
        (lambda p: p[1] >= s, lambda a, b: (a[0] + (b[0] - a[0]) * (s - a[1]) / (b[1] - a[1]), s)),
        (lambda p: p[1] <= n, lambda a, b: (a[0] + (b[0] - a[0]) * (n - a[1]) / (b[1] - a[1]), n)),
    )
    points = ring
    for keep, cut in edges:
        if not points:
            break
        out: list[tuple[float, float]] = []
        prev = points[-1]
        for cur in points:
            if keep(cur):
                if not keep(prev):
                    out.append(cut(prev, cur))
                out.append(cur)
            elif keep(prev):
                out.append(cut(prev, cur))
            prev = cur
        points = out
    return points


def rounded(line: list[tuple[float, float]]) -> list[list[float]]:
    out: list[list[float]] = []
    for lon, lat in line:
        q = [round(lon, 2), round(lat, 2)]
        if not out or out[-1] != q:
            out.append(q)
    return out


def land_of(topo: dict[str, Any]) -> list[list[list[list[float]]]]:
    arcs = arcs_of(topo)
    polygons = []
    for geometry in topo["objects"]["land"]["geometries"]:
        shapes = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
        for shape in shapes:
            rings = [rounded(clip(ring_of(arcs, r))) for r in shape]
            rings = [[*r, r[0]] for r in rings if len(r) >= 3]
            if rings:
                polygons.append(rings)
    return polygons


def inside(p: tuple[float, float]) -> bool:
    w, s, e, n = REGION
    return w <= p[0] <= e and s <= p[1] <= n


def main(path: str, land_path: str) -> None:
    with open(land_path) as f:
        land = land_of(json.load(f))
    with open(path) as f:
        topo = json.load(f)
    lines = []
    for arc in arcs_of(topo):
        if not any(inside(p) for p in arc):
            continue
        line = rounded(arc)
        if len(line) > 1:
            lines.append(line)
    source = "Natural Earth 1:50m (public domain), via world-atlas 2.0.2"
    geo = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"layer": "land", "source": source, "region": list(REGION)},
                "geometry": {"type": "MultiPolygon", "coordinates": land},
            },
            {
                "type": "Feature",
                "properties": {"layer": "borders", "source": source, "region": list(REGION)},
                "geometry": {"type": "MultiLineString", "coordinates": lines},
            },
        ],
    }
    json.dump(geo, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
