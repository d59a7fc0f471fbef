"""Every YAML in configs/ parses with the parser that will read it, and recipe parsing is strict."""

import os

import pytest
import yaml
from trl import SFTConfig

from refusal_tokens import RefusalSettings, RefusalTaxonomy, get_taxonomy
from refusal_tokens.data.mixture import RefusalDatasetConfig, load_refusal_datasets
from refusal_tokens.evaluation.calibration import CalibrationTargets
from refusal_tokens.recipes.arguments import (
    RefusalDataArguments,
    RefusalEvalArguments,
    RefusalModelArguments,
    parse_recipe_args,
)

ROOT = os.path.join(os.path.dirname(__file__), "..")
SFT_TYPES = [RefusalModelArguments, RefusalDataArguments, RefusalEvalArguments, SFTConfig]


def _parse_accelerate(path):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(path)
    assert cfg.num_processes >= 1


def _parse_dpo(path):
    from trl import DPOConfig

    return _parse_sft(path, DPOConfig)


def _parse_sft(path, trainer_config=SFTConfig):
    import torch

    argv = ["--config", path]
    if not torch.cuda.is_available():
        argv += ["--use_cpu", "true"]  # GPU configs ask for bf16, which TrainingArguments refuses without a GPU
    model_args, data_args, eval_args, training_args = parse_recipe_args(SFT_TYPES[:3] + [trainer_config], argv)
    assert training_args.output_dir
    # every key of the file reached a dataclass field with the file's value
    raw = yaml.safe_load(open(path))
    fields = {**vars(model_args), **vars(data_args), **vars(eval_args)}
    for key, value in raw.items():
        if key == "datasets":
            assert fields[key] == [RefusalDatasetConfig.from_dict(d, i) for i, d in enumerate(value, 1)]
        elif key in fields:
            assert fields[key] == value, key
    _load_local_datasets(path, data_args)


def _load_local_datasets(path, data_args):
    """A config whose datasets are all local or built-in reads them: every path exists, every label maps."""
    entries = data_args.datasets
    local = [e for e in entries if e.path.startswith("builtin:") or e.path.startswith("../")]
    if not entries or len(local) < len(entries):
        return  # hub datasets: cannot be read here
    if any(e.path.startswith("../") for e in entries) and not os.path.isdir(os.path.join(ROOT, "..", "shared")):
        pytest.skip(f"{path} reads ../shared/data, which is absent here")
    cwd = os.getcwd()
    os.chdir(ROOT)  # the configs' relative paths are relative to the repository root, where users run them
    try:
        parts = load_refusal_datasets(entries, get_taxonomy(data_args.taxonomy), label_column=data_args.label_column)
    finally:
        os.chdir(cwd)
    assert parts.get("train") and parts.get("test") or data_args.use_synthetic()


def _parser_for(path):
    rel = os.path.relpath(path, os.path.join(ROOT, "configs")).replace(os.sep, "/")
    if rel.startswith("thresholds/"):
        return RefusalSettings.from_file
    if rel.startswith("taxonomies/"):
        return RefusalTaxonomy.from_file
    if rel.startswith("calibration/"):
        return CalibrationTargets.from_file
    if rel.startswith("accelerate/"):
        return _parse_accelerate
    if rel == "quickstart.yaml" or "/sft/" in rel:
        return _parse_sft
    if "/dpo/" in rel:
        return _parse_dpo
    return None


def _all_configs():
    for folder, _, files in os.walk(os.path.join(ROOT, "configs")):
        for name in sorted(files):
            if name.endswith((".yaml", ".yml")):
                yield os.path.join(folder, name)


@pytest.mark.parametrize("path", list(_all_configs()), ids=lambda p: os.path.relpath(p, ROOT))
def test_every_yaml_in_configs_parses(path):
    parser = _parser_for(path)
    if parser is None:
        pytest.fail(f"{path}: no parser registered for it; add one to tests/test_configs.py")
    parser(path)


def test_unknown_yaml_key_is_an_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("output_dir: out\ntaxonomy: coconot\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match=r"unknown keys 'learning_rat' \(did you mean 'learning_rate'\?\)"):
        parse_recipe_args(SFT_TYPES, ["--config", str(cfg)])


def test_unknown_flag_is_an_error_and_flags_override_yaml(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model_name_or_path: builtin:tiny-random\noutput_dir: out\ntaxonomy: coconot\nmax_steps: 5\nlora_r: 4\n"
        "bf16: false\nuse_cpu: true\n"
    )
    with pytest.raises(ValueError, match="--no_such_flag"):
        parse_recipe_args(SFT_TYPES, ["--config", str(cfg), "--no_such_flag", "1"])
    with pytest.raises(ValueError, match=r"'--max_step' \(did you mean 'max_steps'\?\)"):
        parse_recipe_args(SFT_TYPES, ["--config", str(cfg), "--max_step", "1"])
    m, d, _, t = parse_recipe_args(SFT_TYPES, ["--config", str(cfg), "--max_steps", "7", "--taxonomy", "single"])
    assert (t.max_steps, d.taxonomy, m.lora_r) == (7, "single", 4)


def test_bad_values_name_the_field(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model_name_or_path: m\noutput_dir: out\nresponses: human\nbf16: false\nuse_cpu: true\n")
    with pytest.raises(ValueError, match="responses"):
        parse_recipe_args(SFT_TYPES, ["--config", str(cfg)])


def test_missing_model_and_duplicate_keys_are_errors(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("output_dir: out\nuse_cpu: true\n")
    with pytest.raises(ValueError, match="model_name_or_path is required"):
        parse_recipe_args(SFT_TYPES, ["--config", str(cfg)])
    cfg.write_text("model_name_or_path: a\noutput_dir: out\nmax_steps: 5\nmax_steps: 6\n")
    with pytest.raises(ValueError, match=r"c.yaml:4: key 'max_steps' is given twice \(first on line 3\)"):
        parse_recipe_args(SFT_TYPES, ["--config", str(cfg)])


def test_model_arguments_build_on_trl_model_config():
    from trl import ModelConfig, ScriptArguments

    assert issubclass(RefusalModelArguments, ModelConfig) and issubclass(RefusalDataArguments, ScriptArguments)
    # TRL's own defaults, not redefined ones
    m = RefusalModelArguments(model_name_or_path="m")
    assert (m.use_peft, m.lora_dropout, m.lora_target_modules) == (False, 0.05, None)
    with pytest.raises(ValueError, match="token_learning_rate needs use_peft"):
        RefusalModelArguments(model_name_or_path="m", token_learning_rate=1e-3)
    with pytest.raises(ValueError, match="quantised base models are not supported"):
        RefusalModelArguments(model_name_or_path="m", use_peft=True, load_in_4bit=True)
    with pytest.raises(ValueError, match="dataset_streaming"):
        RefusalDataArguments(dataset_streaming=True)
    kwargs = RefusalModelArguments(model_name_or_path="m", model_revision="v2", attn_implementation="eager")
    assert kwargs.from_pretrained_kwargs()["revision"] == "v2"
    assert kwargs.from_pretrained_kwargs()["attn_implementation"] == "eager"


def test_recipe_help_is_short_and_names_config(capsys):
    from refusal_tokens.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["sft", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: refusal-tokens sft [--config FILE.yaml]" in out
    assert "--token_learning_rate" in out and "--help_all" in out
    assert len(out.splitlines()) < 25
    with pytest.raises(SystemExit):
        main(["sft", "--help_all"])
    assert len(capsys.readouterr().out.splitlines()) > 200  # every TRL field


@pytest.mark.parametrize("command", ["generate", "calibrate", "audit", "mix", "train-classifier", "dpo"])
def test_every_command_has_short_help(command, capsys):
    from refusal_tokens.cli import main

    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: refusal-tokens {command} [--config FILE.yaml]")


def test_user_errors_are_one_line_with_exit_2(tmp_path, capsys):
    from refusal_tokens.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("model_name_or_path: a\noutput_dir: out\nlearning_rat: 1\n")
    assert main(["sft", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and err[0].startswith("refusal-tokens sft: error: ") and "did you mean 'learning_rate'" in err[0]
    )
    assert main(["mix", "--data", str(tmp_path / "missing.jsonl"), "--output_dir", str(tmp_path / "o")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["no-such-command"]) == 2
