"""Validating XML against nmap's DTD with xmllint, for the -oX tests.

nmap's DTD allows only ``scanner="nmap"``; stockade writes ``scanner="stockade"`` (as masscan
writes ``masscan``). :func:`dtd_for` makes a copy of nmap's DTD that differs in exactly that
enumeration, so everything else in stockade's files is checked against nmap's own rules.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

NMAP_DTD = Path("/usr/share/nmap/nmap.dtd")


def need_tools(*tools: str) -> None:
    if not NMAP_DTD.exists():
        pytest.skip("nmap's DTD is not installed (apt package nmap)")
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (see scripts/test)")


def dtd_for(scanner: str, folder: Path) -> Path:
    """nmap's DTD, or (for ``stockade``) a copy whose only change admits that scanner name."""
    if scanner == "nmap":
        return NMAP_DTD
    text, changed = re.subn(r"(scanner\s+)\(nmap\)", r"\1(nmap|stockade)", NMAP_DTD.read_text())
    assert changed == 1, "nmap's DTD no longer declares scanner as (nmap)"
    path = folder / "nmap-and-stockade.dtd"
    path.write_text(text)
    return path


def dtd_errors(xml: Path, dtd: Path) -> list[str]:
    """xmllint's complaints about ``xml`` against ``dtd`` (empty: valid)."""
    done = subprocess.run(
        ["xmllint", "--noout", "--dtdvalid", str(dtd), str(xml)],
        capture_output=True,
        text=True,
        check=False,
    )
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert (done.returncode == 0) == (not errors), done.stderr
    return errors
