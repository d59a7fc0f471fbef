"""Run the SFT recipe in each of several processes, recording what each process trained on and what it logged.

Launched by tests/test_multiprocess.py with `accelerate launch --multi_gpu --num_processes 2` (gloo on CPU).
Writes <output_dir>/rank<k>.json per process.
"""

import hashlib
import json
import os
import sys

import trl
from transformers import Trainer

from refusal_tokens.cli import main as cli_main

seen: list[str] = []
refusal_logs: list[dict] = []
callback_history: list[dict] = []

_step = trl.SFTTrainer.training_step
_log = Trainer.log


def training_step(self, model, inputs, *args, **kwargs):
    for row in inputs["input_ids"].tolist():
        seen.append(hashlib.sha1(str(row).encode()).hexdigest())
    return _step(self, model, inputs, *args, **kwargs)


def log(self, logs, *args, **kwargs):
    if any(k.startswith("refusal/") for k in logs):
        refusal_logs.append(dict(logs))
    return _log(self, logs, *args, **kwargs)


trl.SFTTrainer.training_step = training_step
Trainer.log = log

if __name__ == "__main__":
    argv = sys.argv[1:]
    cli_main(["sft", *argv])
    from accelerate import PartialState

    rank = PartialState().process_index
    out_dir = argv[argv.index("--output_dir") + 1]
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"seen": seen, "refusal_logs": refusal_logs}, f)
