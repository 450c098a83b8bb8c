"""Build the console's offline map data: borders and coastlines of the region.

Input: Natural Earth 1:50m country boundaries as TopoJSON, from the npm package
``world-atlas`` (public domain data, ISC-licensed packaging):

    npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz
    python scripts/region_map.py package/countries-50m.json \
        > src/hotline/station/console/static/region.geojson

Output: one GeoJSON MultiLineString of every TopoJSON arc (a stretch of border or
coastline) that enters the region (Ukraine, the Black Sea, western Russia and their
neighbours), rounded to 0.01 degree (about 1 km, far below what a border line at this
scale shows). Lines, not polygons: nothing has to be clipped, and the file stays small.
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


def inside(p: tuple[float, float]) -> bool:
    w, s, e, n = REGION
    return w <= p[0] <= e and s <= p[1] <= n


def main(path: str) -> None:
    with open(path) as f:
        topo = json.load(f)
    lines = []
    for arc in arcs_of(topo):
        if not any(inside(p) for p in arc):
            continue
        line: list[list[float]] = []
        for lon, lat in arc:
            q = [round(lon, 2), round(lat, 2)]
            if not line or line[-1] != q:
                line.append(q)
        if len(line) > 1:
            lines.append(line)
    geo = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {
                    "source": "Natural Earth 1:50m admin-0 boundaries (public domain), "
                    "via world-atlas 2.0.2",
                    "region": list(REGION),
                },
                "geometry": {"type": "MultiLineString", "coordinates": lines},
            }
        ],
    }
    json.dump(geo, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
