"""One strict parser for every command: dataclasses from a YAML `--config` file plus command-line flags.

Built on transformers' `HfArgumentParser` (what TRL's `TrlParser` extends): each dataclass field is a flag, written
`--field_name` (TRL's style; `--field-name` is accepted too). The YAML gives defaults and flags override it. Unknown
keys in the YAML, unknown flags and duplicate YAML keys are errors with a did-you-mean; an `env:` mapping in the
YAML sets environment variables, as in TRL. `--help` prints a short help with the fields that matter most,
`--help_all` every field.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
from collections.abc import Sequence
from typing import Any

from transformers import HfArgumentParser

from .strict_yaml import ConfigError, load_yaml

__all__ = ["ConfigError", "load_yaml", "parse_command", "parse_dataclasses"]


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """`" (did you mean 'x'?)"` for the closest known name, or `""`."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class StrictArgumentParser(HfArgumentParser):
    """`HfArgumentParser` whose errors are `ConfigError`s of one line (argparse prints the whole usage and exits)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}")


def _pop_option(argv: list[str], name: str) -> str | None:
    """Remove `--name VALUE` / `--name=VALUE` from `argv` and return VALUE (None when absent)."""
    for i, arg in enumerate(argv):
        if arg == name:
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise ConfigError(f"{name} needs a value (a YAML file path).")
            value = argv[i + 1]
            del argv[i : i + 2]
            return value
        if arg.startswith(name + "="):
            del argv[i]
            return arg.split("=", 1)[1]
    return None


def field_names(dataclass_types: Sequence[type]) -> list[str]:
    """Every field name of `dataclass_types`, in order."""
    return [f.name for t in dataclass_types for f in dataclasses.fields(t) if f.init]


def short_help(
    prog: str, description: str, dataclass_types: Sequence[type], key_fields: Sequence[str], positional: str = ""
) -> str:
    """The `--help` text: usage with `--config`, the description, and the help of the fields that matter most."""
    helps = {f.name: f for t in dataclass_types for f in dataclasses.fields(t)}
    lines = [f"usage: {prog} [--config FILE.yaml] [--FIELD VALUE ...]{positional}", "", description, ""]
    lines.append("  --config FILE.yaml    YAML file of field: value pairs (flags given after it override it)")
    for name in key_fields:
        f = helps[name]
        default = f.default if f.default is not dataclasses.MISSING else "(computed)"
        text = f.metadata.get("help", "")
        lines.append(f"  --{name:<20} {text} [default: {default}]")
    lines += ["", f"Every field of {', '.join(t.__name__ for t in dataclass_types)}: {prog} --help_all"]
    return "\n".join(lines)


def parse_dataclasses(
    dataclass_types: Sequence[type],
    argv: Sequence[str] | None = None,
    *,
    prog: str = "refusal-tokens",
    description: str = "",
    key_fields: Sequence[str] = (),
) -> tuple[Any, ...]:
    """Parse `--config file.yaml` plus command-line flags into one instance of each of `dataclass_types`, strictly.

    Args:
        dataclass_types (`Sequence[type]`): The dataclasses, e.g. the recipe's model, data and eval arguments and
            `trl.SFTConfig`.
        argv (`Sequence[str]`, *optional*): Arguments; defaults to `sys.argv[1:]`.
        prog (`str`, *optional*): Program name in messages and help.
        description (`str`, *optional*): One paragraph for `--help`.
        key_fields (`Sequence[str]`, *optional*): Fields listed by `--help` (`--help_all` lists all).

    Returns:
        One instance per dataclass type.

    Raises:
        `ConfigError`: for an unknown YAML key or flag (with a did-you-mean), a duplicate YAML key, a bad value, or
            a value a dataclass's `__post_init__` refuses; the message names the file and the field.
        `SystemExit`: after printing `--help` / `--help_all`.

    Example:

    ```python
    >>> from dataclasses import dataclass, field
    >>> @dataclass
    ... class Args:
    ...     size: int = field(default=1, metadata={"help": "How many."})
    >>> parse_dataclasses([Args], ["--size", "3"])
    (Args(size=3),)
    ```
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    # no abbreviations: `--max_step` must be an error, not silently `--max_steps`
    parser = StrictArgumentParser(
        list(dataclass_types), prog=prog, description=description, add_help=False, allow_abbrev=False
    )
    if "--help_all" in argv or "--help-all" in argv:
        parser.print_help()
        raise SystemExit(0)
    if "-h" in argv or "--help" in argv:
        print(short_help(prog, description, dataclass_types, key_fields))
        raise SystemExit(0)
    known = field_names(dataclass_types)
    config_path = _pop_option(argv, "--config")
    if config_path is not None:
        config = load_yaml(config_path)
        env = config.pop("env", None)
        unknown = [k for k in config if k not in known]
        if unknown:
            hints = ", ".join(f"{k!r}{did_you_mean(str(k), known)}" for k in unknown)
            names = ", ".join(t.__name__ for t in dataclass_types)
            raise ConfigError(f"{config_path}: unknown keys {hints}; every key must be a field of {names}.")
        if env is not None:
            if not isinstance(env, dict):
                raise ConfigError(f"{config_path}: 'env' must be a mapping of environment variables to values.")
            os.environ.update({str(k): str(v) for k, v in env.items()})
        parser.set_defaults(**config)
        for action in parser._actions:  # a field the YAML gives is no longer required on the command line
            if action.dest in config:
                action.required = False
    try:
        *parsed, remaining = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        where = f"{config_path}: " if config_path else ""
        raise ConfigError(f"{where}{e}".replace("\n", " ")) from None
    if remaining:
        flags = [r for r in remaining if r.startswith("-")] or remaining
        hints = ", ".join(f"{r!r}{did_you_mean(r.lstrip('-').split('=')[0].replace('-', '_'), known)}" for r in flags)
        raise ConfigError(f"{prog}: unknown arguments {hints}; see {prog} --help.")
    return tuple(parsed)


def parse_command(
    arguments: type, argv: Sequence[str] | None, command: str, description: str, key_fields: Sequence[str]
) -> Any:
    """`parse_dataclasses` for a `refusal-tokens` command whose arguments are one dataclass; returns its instance."""
    (args,) = parse_dataclasses(
        [arguments], argv, prog=f"refusal-tokens {command}", description=description, key_fields=key_fields
    )
    return args
