"""Writing files atomically: a temporary file in the same folder, then a rename, so a reader (or a crash) never
sees half a file."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from typing import Any


def atomic_write_text(path: str | os.PathLike, text: str) -> str:
    """Write `text` to `path` atomically (creating its folder) and return the path.

    Example:

    ```python
    >>> atomic_write_text("out/note.txt", "done\\n")
    'out/note.txt'
    ```
    """
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> str:
    """Write `data` to `path` atomically (creating its folder) and return the path."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
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


RUN_FILE = "refusal_run.json"
"""Written first into every output folder: which command and run made the files there."""
RUN_MARKERS = (RUN_FILE, "refusal_eval.json", "refusal_taxonomy.json", "composition.json", "calibration.json")
"""Files that show a folder holds a run's outputs (`RUN_FILE`, or the main output of runs before it existed)."""


def prepare_output_dir(path: str | os.PathLike, *, overwrite: bool = False, command: str = "run", **info: Any) -> str:
    """Make `path` ready for a new run's outputs, never mixing them with an earlier run's.

    An empty or missing folder is used as is. A folder holding files is refused unless `overwrite`; then it must be
    an earlier output folder of this library (it holds `refusal_run.json` or a run's main output, such as
    `refusal_eval.json`), and its contents are removed first, so
    no stale file (an old `thresholds.yaml`, a checkpoint) survives beside the new ones. `refusal_run.json`
    (command, start time, process id and `info`) is written before anything else.

    Raises:
        `ValueError`: naming the folder, some of its files, and the fix.

    Example:

    ```python
    >>> prepare_output_dir("out/mix-1", command="mix")
    'out/mix-1'
    >>> prepare_output_dir("out/mix-1", command="mix", overwrite=True)
    'out/mix-1'
    ```
    """
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"output folder {path!r} is a file; give a folder path.")
    entries = sorted(os.listdir(path)) if os.path.isdir(path) else []
    if entries:
        shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
        if not overwrite:
            raise ValueError(
                f"output folder {path!r} is not empty ({len(entries)} entries: {shown}); give a new folder, or "
                "--overwrite_output_dir true to replace an earlier run's outputs."
            )
        if not set(RUN_MARKERS) & set(entries):
            raise ValueError(
                f"output folder {path!r} holds files that no refusal-tokens run wrote ({shown}; no {RUN_FILE}); "
                "--overwrite_output_dir only replaces an earlier run's folder: remove these files yourself or give "
                "another folder."
            )
        for name in entries:
            full = os.path.join(path, name)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            else:
                os.remove(full)
    os.makedirs(path, exist_ok=True)
    stamp = {"command": command, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "pid": os.getpid(), **info}
    atomic_write_json(os.path.join(path, RUN_FILE), stamp)
    return path
