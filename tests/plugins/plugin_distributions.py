"""Real distributions for the plugin tests: wheels built here from a few files, and pip
installing them (or a source tree with a pyproject.toml) into a site directory of a
test's own, which a subprocess then finds on PYTHONPATH.

    build_wheel(tmp, "phasewise-broken", {"phasewise_broken.py": "..."},
                {"broken": "phasewise_broken"})          -> tmp/phasewise_broken-1.0-....whl
    pip_install(site, wheel, ...)                        pip install --no-deps --target site
"""

from __future__ import annotations

import ast
import base64
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

__all__ = ["build_wheel", "phasewise_command", "pip_install", "private_names", "site_env"]


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build_wheel(where: Path, name: str, files: dict[str, str],
                entry_points: dict[str, str], version: str = "1.0") -> Path:
    """A pure-Python wheel of distribution ``name``: ``files`` (path in the wheel ->
    text) and ``entry_points`` in group ``phasewise`` (name -> module)."""
    stem = name.replace("-", "_")
    info = f"{stem}-{version}.dist-info"
    contents = {path: text.encode() for path, text in files.items()}
    contents[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        f"Requires-Dist: phasewise\n").encode()
    contents[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: phasewise-tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n")
    contents[f"{info}/entry_points.txt"] = ("[phasewise]\n" + "".join(
        f"{ep} = {module}\n" for ep, module in entry_points.items())).encode()
    record = [_record_line(path, data) for path, data in contents.items()]
    contents[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    wheel = where / f"{stem}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in contents.items():
            archive.writestr(path, data)
    return wheel


def _builds_without_isolation() -> bool:
    """Whether setuptools here can build a wheel by itself (70.1 and later, or with the
    ``wheel`` package): then pip need not fetch a build environment."""
    if importlib.util.find_spec("wheel") is not None:
        return True
    try:
        import setuptools
    except ImportError:
        return False
    major, minor, *_ = (int(p) if p.isdigit() else 0 for p in setuptools.__version__.split("."))
    return (major, minor) >= (70, 1)


def pip_install(site: Path, *sources: Path) -> None:
    """``pip install --no-deps --target site`` each wheel or source tree."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
               "--disable-pip-version-check", "--no-warn-script-location",
               "--target", str(site)]
    if all(source.suffix == ".whl" for source in sources):
        command.append("--no-index")
    elif _builds_without_isolation():
        command += ["--no-build-isolation", "--no-index"]
    done = subprocess.run([*command, *map(str, sources)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def site_env(site: Path, **extra: str) -> dict[str, str]:
    """This environment with ``site`` first on PYTHONPATH (and without the variables
    that would change which plugins load)."""
    path = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {k: v for k, v in os.environ.items()
           if k not in ("PHASEWISE_DISABLE_PLUGINS", "PHASEWISE_DEBUG", "PHASEWISE_EXECUTOR")}
    return {**env, "PYTHONPATH": path, **extra}


def phasewise_command() -> list[str]:
    """The installed console script, or ``python -m phasewise.cli.main`` without one."""
    script = shutil.which("phasewise")
    return [script] if script else [sys.executable, "-m", "phasewise.cli.main"]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_names(source: str) -> list[str]:
    """What ``source`` uses of phasewise that is private: a module or name starting with
    ``_`` that it imports, or such an attribute of something it imported from phasewise."""
    tree = ast.parse(source)
    found: list[str] = []
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("phasewise"):
            parts = [*(node.module or "").split("."), *(a.name for a in node.names)]
            found += [ast.unparse(node) for p in parts if _private(p)]
            imported |= {alias.asname or alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("phasewise"):
                    found += [alias.name for p in alias.name.split(".") if _private(p)]
                    imported.add((alias.asname or alias.name).split(".")[0])
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in imported and _private(node.attr)):
            found.append(ast.unparse(node))
    return found
