"""Work directories: a run kept on disk as it goes, resumed after a crash, and a cache of
phase results (loaded only when a run uses a work directory)."""
