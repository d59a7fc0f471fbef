"""DPO with per-category refusal tokens (chosen and rejected each tagged by its own class).

    accelerate launch recipes/dpo.py --config configs/smollm2-135m/dpo/coconot.yaml

Every YAML key is a field of RefusalModelArguments, RefusalDataArguments, RefusalEvalArguments or trl.DPOConfig;
unknown keys are an error and command-line flags override the YAML.
"""

from refusal_tokens.dpo import main

if __name__ == "__main__":
    main()
