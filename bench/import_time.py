"""Import time and imported heavy libraries of `import refusal_tokens` and of the processor path.

    python bench/import_time.py [--tree PATH]   # PATH: another checkout to measure side by side (e.g. an old commit)

Each statement runs in a fresh interpreter, best of `--repeat` runs; figures go to bench/results/import_time.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from results_io import write_results

STATEMENTS = {
    "import refusal_tokens": "import refusal_tokens",
    "processor path": "from refusal_tokens import RefusalTokenLogitsProcessor, RefusalSettings",
    "everything (recipes)": "from refusal_tokens import run_sft",
}
HEAVY = ("trl", "datasets", "wandb", "accelerate", "matplotlib", "peft", "transformers", "torch")


def measure(tree: str, statement: str, repeat: int) -> dict:
    probe = f"{statement}\nimport sys, json\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    env = dict(os.environ, PYTHONPATH=tree)
    best, loaded = float("inf"), []
    for _ in range(repeat):
        t = time.perf_counter()
        # run inside the tree: `-c` puts the working folder first on sys.path
        out = subprocess.run(
            [sys.executable, "-c", probe], env=env, cwd=tree, capture_output=True, text=True, check=True
        )
        best = min(best, time.perf_counter() - t)
        loaded = json.loads(out.stdout.strip().splitlines()[-1])
    return {"seconds": round(best, 3), "heavy_libraries": [m for m in HEAVY if m in loaded]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default=None, help="Another checkout to measure beside this one.")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    here = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    trees = {"this tree": here} | ({"other tree": os.path.abspath(args.tree)} if args.tree else {})
    result = {
        name: {label: measure(tree, stmt, args.repeat) for label, stmt in STATEMENTS.items()}
        for name, tree in trees.items()
    }
    result["baseline (python -c pass)"] = measure(here, "pass", args.repeat)["seconds"]
    write_results(os.path.join(os.path.dirname(__file__), "results", "import_time.json"), result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
