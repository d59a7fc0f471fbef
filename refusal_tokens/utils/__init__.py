"""Small helpers shared by every tier: logging, atomic file writes, importing user callables, strict config parsing.

Nothing here imports a training or plotting library.
"""
