"""The SFT recipe under `accelerate launch` with two CPU processes (gloo): sharded data, one logger."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from test_sft_recipe import TINY

ROOT = os.path.join(os.path.dirname(__file__), "..")


@pytest.mark.slow
def test_two_processes_train_different_shards_and_log_once(tmp_path):
    cfg = dict(
        TINY,
        responses="template",
        max_steps=4,
        per_device_train_batch_size=4,
        eval_strategy="steps",
        eval_steps=2,
        per_device_eval_batch_size=8,
        agreement_prompts=4,
    )
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    env = dict(os.environ, REFUSAL_TOKENS_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    # `--cpu --num_processes 2` wants MPI and starts one process; `--multi_gpu` with no GPU runs two gloo processes.
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
        os.path.join(os.path.dirname(__file__), "mp_sft_script.py"),
        "--config", str(tmp_path / "c.yaml"), "--output_dir", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{k}.json").read_text()) for k in (0, 1)]
    # both processes trained, on different rows
    assert ranks[0]["seen"] and ranks[1]["seen"]
    assert len(ranks[0]["seen"]) == len(ranks[1]["seen"]) == 4 * 4
    assert set(ranks[0]["seen"]) != set(ranks[1]["seen"])
    # the callback's metrics (2 evaluations) and the final report were logged by the main process only
    assert len(ranks[0]["refusal_logs"]) == 3
    assert ranks[1]["refusal_logs"] == []
    assert (out / "refusal_eval.json").is_file()
