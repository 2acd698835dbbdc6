"""The build step that puts the console's front-end files in the package.

`make install` copies htmx, Chart.js and Swagger UI from node_modules (npm, pinned in
package-lock.json) into tessera/web/static/vendor, which git ignores; a wheel or a
`pip install .` carries them from there (package-data in pyproject.toml), so installing
the wheel needs neither npm nor the network. A build without them stops here with the
command that fetches them, instead of making a package whose console has no scripts.
An editable install (`make install` runs it before npm) is not checked.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

VENDOR = Path(__file__).resolve().parent / "tessera" / "web" / "static" / "vendor"
VENDOR_FILES = ("htmx.min.js", "chart.umd.min.js", "swagger-ui-bundle.js", "swagger-ui.css")


class BuildWithConsoleFiles(build_py):
    def run(self) -> None:
        missing = [name for name in VENDOR_FILES if not (VENDOR / name).is_file()]
        if missing and not getattr(self, "editable_mode", False):
            raise SystemExit(
                f"the console's front-end files are missing from {VENDOR} ({', '.join(missing)}): "
                "run `make install` (npm ci, then the copy) before building the package"
            )
        super().run()


setup(cmdclass={"build_py": BuildWithConsoleFiles})
