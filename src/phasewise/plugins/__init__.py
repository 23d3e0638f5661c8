"""Plugin layer: hook specifications, the plugin manager and the executor registry."""
