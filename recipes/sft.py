"""SFT with per-category refusal tokens.

    accelerate launch recipes/sft.py --config configs/quickstart.yaml
    accelerate launch --config_file configs/accelerate/single_gpu.yaml recipes/sft.py \
        --config configs/smollm2-135m/sft/coconot.yaml

Every YAML key is a field of RefusalModelArguments, RefusalDataArguments, RefusalEvalArguments or trl.SFTConfig;
unknown keys are an error and command-line flags override the YAML (e.g. `--max_steps 10`).
"""

import sys

from refusal_tokens.cli import main

if __name__ == "__main__":
    sys.exit(main(["sft", *sys.argv[1:]]))
