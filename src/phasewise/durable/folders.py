"""Each phase's own folder: ``<run workdir>/<phase>/``, or, for a run without a work
directory, one under a temporary directory removed when the run ends."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

__all__ = ["PhaseFolders", "TemporaryFolders"]


class PhaseFolders:
    """``folder(phase)``: ``root/<phase>/``, made (0700) the first time it is asked for."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, phase: str) -> Path:
        name = phase if os.sep not in phase and phase not in (".", "..") else quote(phase, safe="")
        path = self.root / name
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    def close(self) -> None:
        pass


class TemporaryFolders(PhaseFolders):
    """Phase folders under a fresh temporary directory, removed by ``close``."""

    def __init__(self) -> None:
        super().__init__(Path(tempfile.mkdtemp(prefix="phasewise-")))

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
