"""Settings read from the environment; the lowest layer, imported by every other."""
