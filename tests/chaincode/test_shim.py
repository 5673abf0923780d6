"""shim.py undoes the logging set-up that importing fabric-chaincode-python does."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_shim_leaves_the_root_logger_alone() -> None:
    code = (
        "import logging\n"
        "from blockfedml_chaincode import shim\n"
        "root = logging.getLogger()\n"
        "assert root.handlers == [], root.handlers\n"
        "assert root.level == logging.WARNING, root.level\n"
        "assert logging.getLogger('asyncio').level == logging.WARNING\n"
        "assert shim.new_chaincode() is not None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_only_the_shim_imports_the_fabric_package() -> None:
    import pathlib

    import blockfedml_chaincode

    package = pathlib.Path(blockfedml_chaincode.__file__).parent
    importers = sorted(p.name for p in package.glob("*.py") if "fabric_chaincode_python" in p.read_text())
    assert importers == ["shim.py"]
