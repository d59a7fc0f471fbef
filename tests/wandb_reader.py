"""Read the records of an offline W&B run file (`run-<id>.wandb`) without the network or W&B's private modules.

The file is a LevelDB-style log (32 KiB blocks, 7-byte record headers: crc32, length, type) after a 7-byte header
(`:W&B`, magic 0xBEE1, version), holding `wandb_internal_pb2.Record` protobufs. wandb 0.31 ships no reader for it.
"""

import json
import struct

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path):
    from wandb.proto import wandb_internal_pb2

    data = open(path, "rb").read()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B run file (header {data[:4]!r}).")
    offset, parts = HEADER, []
    while offset + HEADER <= len(data):
        room = BLOCK - offset % BLOCK
        if room < HEADER:
            offset += room
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + HEADER])
        if kind == 0 and length == 0:  # zero padding to the end of the block
            offset += room
            continue
        chunk = data[offset + HEADER : offset + HEADER + length]
        offset += HEADER + length
        if kind in (FULL, FIRST):
            parts = [chunk]
        else:
            parts.append(chunk)
        if kind in (FULL, LAST):
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(b"".join(parts))
            yield rec


def history(path):
    """Every history row of the run as a dict of key -> value."""
    rows = []
    for rec in records(path):
        if rec.HasField("history"):
            row = {}
            for item in rec.history.item:
                key = item.key or "/".join(item.nested_key)
                row[key] = json.loads(item.value_json)
            rows.append(row)
    return rows
