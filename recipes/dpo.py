"""DPO with per-category refusal tokens (chosen and rejected each tagged by its own class).

    accelerate launch recipes/dpo.py --config configs/smollm2-135m/dpo/coconot.yaml

Every YAML key is a field of RefusalModelArguments, RefusalDataArguments, RefusalEvalArguments or trl.DPOConfig;
unknown keys are an error and command-line flags override the YAML.
"""

import sys

from refusal_tokens.cli import main

if __name__ == "__main__":
    sys.exit(main(["dpo", *sys.argv[1:]]))
