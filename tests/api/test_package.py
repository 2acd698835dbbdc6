"""The package: a wheel built from the tree installs into a fresh virtualenv and serves the
console, front-end files included, from any folder with TESSERA_DATA_DIR.

Offline and quick: the wheel is built with this virtualenv's setuptools
(`--no-build-isolation`, nothing downloaded) from a copy of the tracked files plus the
vendor files `make install` fetched; it goes into a new virtualenv `--no-deps`, whose
dependencies come from this virtualenv's site-packages through a .pth line (so nothing
is downloaded either; the editable install of the tree there is not seen, since .pth
files in a folder added that way are not read). The test checks that `tessera` is the
installed copy, not the tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import venv
from pathlib import Path

import httpx
import pytest

from tessera.server import free_port

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "tessera" / "web" / "static" / "vendor"

pytestmark = pytest.mark.slow


def _tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def _source_copy(target: Path, with_vendor: bool = True) -> Path:
    for name in _tracked_files():
        if name.startswith(("tests/", "benchmarks/", "docs/")):
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    if with_vendor:
        shutil.copytree(VENDOR, target / "tessera" / "web" / "static" / "vendor")
    return target


def _build(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_a_build_without_the_console_files_stops_and_says_how_to_get_them(
    tmp_path: Path,
) -> None:
    built = _build(_source_copy(tmp_path / "src", with_vendor=False), tmp_path / "dist")
    assert built.returncode != 0
    assert "make install" in built.stdout + built.stderr


def test_the_wheel_installs_and_serves_the_console_from_anywhere(tmp_path: Path) -> None:
    assert (VENDOR / "htmx.min.js").is_file(), "run `make install` first"
    built = _build(_source_copy(tmp_path / "src"), tmp_path / "dist")
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("tessera-*.whl")

    home = tmp_path / "venv"
    venv.create(home, with_pip=False)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(home), "platbase": str(home)}))
    # The dependencies, from this virtualenv (no download); tessera itself from the wheel.
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(home / "bin" / "python"), "install",
         "--no-deps", "--no-index", "-q", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [str(home / "bin" / "python"), "-c", "import tessera; print(tessera.__file__)"],
        cwd=elsewhere, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert where.startswith(str(site)), where
    assert (Path(where).parent / "web" / "static" / "vendor" / "chart.umd.min.js").is_file()

    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")},
        "TESSERA_DATA_DIR": str(tmp_path / "data"),
        "TESSERA_PORT": str(port),
        "TESSERA_COLLECTORS": "0",  # one process starts sooner (collectors: test_operations)
    }
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [str(home / "bin" / "tessera"), "serve"], cwd=elsewhere, env=env, stdout=log, stderr=log
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the installed server did not start"
            time.sleep(0.2)
        page = httpx.get(f"{url}/sign-in")
        assert page.status_code == 200 and "/static/vendor/htmx.min.js" in page.text
        for name in ("htmx.min.js", "chart.umd.min.js", "swagger-ui-bundle.js", "swagger-ui.css"):
            served = httpx.get(f"{url}/static/vendor/{name}")
            assert served.status_code == 200 and len(served.content) > 1000, name
        assert (tmp_path / "data" / "tessera.duckdb").exists()
        assert (tmp_path / "data" / "admin-token").exists()
    finally:
        server.terminate()
        server.wait(30)
        log.close()
