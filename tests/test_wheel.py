"""The wheel holds everything the program reads at run time: a station serves its
console (templates, static files, catalogs) from a fresh install, not from src/."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import pytest

from hotline.i18n import t
from hotline.provision import provision

from .netutil import FAST_KDF, PASSPHRASE, free_ports, wait_for

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[1]


def build_wheel(tmp: Path) -> Path:
    """`pip wheel` from a copy of the project, so the build leaves the checkout untouched."""
    source = tmp / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    out = tmp / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(out)],
        check=True,
        timeout=300,
    )
    (wheel,) = out.glob("hotline-*.whl")
    return wheel


def install(wheel: Path, venv: Path) -> Path:
    """A fresh venv with only the wheel installed; the dependencies already installed
    here are made visible by a plain path line (so no editable-install finder runs)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    subprocess.run(
        [*pip, "install", "-q", "--no-deps", str(wheel)],
        check=True,
        timeout=300,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_a_station_serves_its_console_from_an_installed_wheel(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    for packaged in (
        "hotline/station/console/templates/login.html",
        "hotline/station/console/static/console.css",
        "hotline/locale/ru/LC_MESSAGES/hotline.po",
        "hotline/py.typed",
        # The maps work offline: their library, its license and the borders ship too.
        "hotline/station/console/static/leaflet.js",
        "hotline/station/console/static/leaflet.LICENSE",
        "hotline/station/console/static/region.geojson",
    ):
        assert packaged in names
    venv = tmp_path / "venv"
    python = install(wheel, venv)
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # src/ not on it
    where = subprocess.run(
        [str(python), "-c", "import hotline, jinja2; print(hotline.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=clean,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), where

    relay_port, *api_ports = free_ports(4)
    net = provision(
        tmp_path / "net",
        PASSPHRASE,
        relay_port=relay_port,
        api_ports=dict(zip(["us/us-1", "ru/ru-1", "ua/ua-1"], api_ports, strict=True)),
        kdf=FAST_KDF,
    )
    # The wheel's own `hotline` script, run away from the checkout (no relay: the
    # station's link stays down, its console still serves).
    env = {**os.environ, "HOTLINE_PASSPHRASE": PASSPHRASE}
    env.pop("PYTHONPATH", None)
    log = (tmp_path / "station.log").open("wb")
    station = subprocess.Popen(
        [str(venv / "bin" / "hotline"), "station", "serve", "--dir", str(net.stations["ru/ru-1"])],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{net.api_ports['ru/ru-1']}"
        login = wait_for(lambda: station.poll() is None and httpx.get(f"{base}/login"), what="up")
        assert login.status_code == 200, login.text
        assert t("ru", "ui.sign_in") in login.text  # the station's language, from the catalog
        css = httpx.get(f"{base}/static/console.css")
        assert css.status_code == 200
        assert css.content == (ROOT / "src/hotline/station/console/static/console.css").read_bytes()
    finally:
        station.send_signal(signal.SIGINT)
        try:
            station.wait(15)
        except subprocess.TimeoutExpired:
            station.kill()
            station.wait(5)
        log.close()
    assert station.returncode == 0, (tmp_path / "station.log").read_text()
