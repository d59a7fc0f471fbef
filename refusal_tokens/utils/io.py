"""Writing files atomically: a temporary file in the same folder, then a rename, so a reader (or a crash) never
sees half a file."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def atomic_write_text(path: str | os.PathLike, text: str) -> str:
    """Write `text` to `path` atomically (creating its folder) and return the path.

    Example:

    ```python
    >>> atomic_write_text("out/note.txt", "done\\n")
    'out/note.txt'
    ```
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        # mkstemp creates the file 0600; give it the mode a plain open() would (0666 less the umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, data: Any) -> str:
    """Write `data` as indented JSON to `path` atomically and return the path."""
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")
