"""The `refusal-tokens` command line: one module per command, each a `main(argv) -> int` built the same way (its
arguments are a dataclass parsed by `utils.config.parse_dataclasses`: `--config FILE.yaml` plus flags, strict)."""

from .dispatch import COMMANDS, main

__all__ = ["COMMANDS", "main"]
