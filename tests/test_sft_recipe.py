"""The SFT recipe end to end on the tiny built-in model: accelerate launch, save, reload, generate, check the table."""

import glob
import json
import os
import re
import subprocess
import sys

import pytest
import torch
import yaml
from peft import PeftModel
from transformers import AutoTokenizer

from refusal_tokens import (
    RefusalSettings,
    RefusalTokenLogitsProcessor,
    add_refusal_tokens,
    build_chat_prompts,
    first_token_probabilities,
    load_taxonomy,
    parse_generations,
)
from refusal_tokens.data.synthetic import SyntheticCorpusConfig, build_synthetic_corpus
from refusal_tokens.inference.models import load_model_and_tokenizer

ROOT = os.path.join(os.path.dirname(__file__), "..")

TINY = {
    "model_name_or_path": "builtin:tiny-random",
    "taxonomy": "coconot",
    "synthetic_train_per_category": 24,
    "synthetic_train_benign": 24,
    "synthetic_train_contrast": 24,
    "synthetic_eval_fraction": 0.5,
    "responses": "self",
    "distill_max_new_tokens": 8,
    "use_peft": True,
    "lora_r": 8,
    "lora_dropout": 0.0,
    "lora_target_modules": "all-linear",
    "agreement_prompts": 8,
    "agreement_max_new_tokens": 8,
    "max_steps": 40,
    "per_device_train_batch_size": 16,
    "learning_rate": 5.0e-3,
    "lr_scheduler_type": "constant",
    "max_length": 64,
    "bf16": False,
    "activation_checkpointing": False,
    "use_cpu": True,
    "logging_steps": 10,
    "save_strategy": "no",
    "report_to": "none",
    "seed": 0,
}


def _recipe_test_split():
    """The recipe's held-out split, rebuilt from the TINY settings (no validation split: the run does not evaluate)."""
    cfg = SyntheticCorpusConfig(
        train_per_category=24, train_benign=24, train_contrast=24, eval_fraction=0.5, seed=0, validation=False
    )
    return build_synthetic_corpus("coconot", cfg)["test"]


def _env(tmp):
    env = dict(os.environ)
    env.update(REFUSAL_TOKENS_CACHE=str(tmp / "cache"), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("recipe")
    targets = tmp / "targets.yaml"
    targets.write_text("max_over_refusal: 0.1\nrefusal_rates:\n  humanizing: 0.5\n")
    cfg = tmp / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(dict(TINY, calibration_targets=str(targets))))
    out = tmp / "out"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", os.path.join(ROOT, "configs", "accelerate", "cpu.yaml"),
        os.path.join(ROOT, "recipes", "sft.py"),
        "--config", str(cfg),
        "--output_dir", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=_env(tmp), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "refusal_eval.json").read_text())
    # the recipe logs its tables (stderr, through `logging`)
    return {"tmp": tmp, "out": out, "stdout": proc.stdout + proc.stderr, "report": report}


def test_recipe_saves_everything_a_reload_needs(recipe_run):
    out = recipe_run["out"]
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json", "refusal_taxonomy.json"):
        assert (out / name).is_file(), name
    settings = RefusalSettings.from_file(out / "thresholds.yaml")
    assert settings.mode == "threshold" and settings.default == 0.5


def test_printed_table_numbers_come_from_the_reloaded_model(recipe_run, monkeypatch):
    out, report = recipe_run["out"], recipe_run["report"]
    monkeypatch.setenv("REFUSAL_TOKENS_CACHE", str(recipe_run["tmp"] / "cache"))
    tok = AutoTokenizer.from_pretrained(out)
    base, _ = load_model_and_tokenizer("builtin:tiny-random")
    add_refusal_tokens(base, tok, load_taxonomy(tok))
    model = PeftModel.from_pretrained(base, out).eval()

    # the test split is the synthetic corpus' held-out split, rebuilt from the same settings
    test = _recipe_test_split()
    assert [r["refusal_label"] for r in test] == [r["refusal_label"] for r in report["test_rows"]]
    prompts = [r["prompt"] for r in test]
    probs = first_token_probabilities(model, tok, prompts)
    torch.testing.assert_close(probs, torch.tensor(report["probabilities"]), atol=1e-5, rtol=1e-4)

    settings = RefusalSettings.from_file(out / "thresholds.yaml")
    labels = report["labels"]
    decided = [labels[i] for i in settings.decide(probs, load_taxonomy(tok)).tolist()]
    assert decided == report["predictions"]

    # generate() with the saved thresholds emits exactly these decisions as its first token
    enc = tok(build_chat_prompts(tok, prompts), return_tensors="pt", padding=True, add_special_tokens=False)
    proc = RefusalTokenLogitsProcessor.from_tokenizer(tok, settings)
    gen = model.generate(**enc, logits_processor=[proc], max_new_tokens=2, do_sample=False)
    assert [g.label for g in parse_generations(tok, gen, enc["input_ids"].shape[1])] == decided

    # each printed row is recomputed here from the reloaded model's probabilities
    truth = [r["refusal_label"] for r in test]
    for group, metrics in report["groups"].items():
        idx = [
            i
            for i, r in enumerate(test)
            if (r["refusal_label"] == group) or (group == f"respond/{r['kind']}" and r["refusal_label"] == "respond")
        ]
        assert metrics["support"] == len(idx)
        acc = sum(decided[i] == truth[i] for i in idx) / len(idx)
        rate = sum(decided[i] != "respond" for i in idx) / len(idx)
        p_ok = sum(probs[i, labels.index(truth[i])].item() for i in idx) / len(idx)
        line = f"{group:<22} {len(idx):>7d} {rate:>12.3f} {acc:>15.3f} {p_ok:>15.3f}"
        assert line in recipe_run["stdout"], (line, recipe_run["stdout"][-2000:])
    assert re.search(
        r"identical \d\.\d{3}, token agreement \d\.\d{3}, next-token agreement on the untrained answers \d\.\d{3}",
        recipe_run["stdout"],
    )

    # training moved the token rows: the right token is far more probable than in the untrained model
    fresh, fresh_tok = load_model_and_tokenizer("builtin:tiny-random")
    add_refusal_tokens(fresh, fresh_tok, "coconot")
    before = first_token_probabilities(fresh, fresh_tok, prompts)
    truth_idx = torch.tensor([labels.index(t) for t in truth])
    p_before = before.gather(1, truth_idx[:, None]).mean().item()
    assert report["overall"]["mean_p_correct"] > 5 * p_before


def test_recipe_calibrates_on_half_the_test_split(recipe_run):
    out, report = recipe_run["out"], recipe_run["report"]
    cal = report["calibration"]
    for name in ("thresholds.yaml", "refusal_rate_vs_threshold.png", "roc.png"):
        assert (out / "calibration" / name).is_file(), name
    settings = RefusalSettings.from_file(out / "calibration" / "thresholds.yaml")
    assert settings.categories == cal["settings"]["categories"]
    assert sum(cal["support"]["calibration"].values()) + sum(cal["support"]["held_out"].values()) == len(
        report["test_rows"]
    )
    assert cal["calibration"]["over_refusal"] <= 0.1 + 1e-6  # the ceiling holds where it was solved
    assert "Calibration to" in recipe_run["stdout"] and "over-refusal" in recipe_run["stdout"]


def test_calibrate_and_generate_commands_load_the_recipe_output(recipe_run, tmp_path, monkeypatch, capsys):
    from refusal_tokens.cli import main
    from refusal_tokens.evaluation import refusal_rates, split_halves

    monkeypatch.setenv("REFUSAL_TOKENS_CACHE", str(recipe_run["tmp"] / "cache"))
    out, report = recipe_run["out"], recipe_run["report"]
    test = _recipe_test_split()
    data = tmp_path / "val.jsonl"
    data.write_text(
        "".join(
            json.dumps({"prompt": r["prompt"][0]["content"], "refusal_label": r["refusal_label"]}) + "\n" for r in test
        )
    )
    targets = tmp_path / "t.yaml"
    targets.write_text("refusal_rates:\n  incomplete: 0.5\n  humanizing: 0.25\n")
    assert main(["calibrate", "--model", str(out), "--data", str(data), "--targets", str(targets),
                 "--output-dir", str(tmp_path / "cal")]) == 0  # fmt: skip
    cal = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert (tmp_path / "cal" / "roc.png").is_file() and (tmp_path / "cal" / "refusal_rate_vs_threshold.png").is_file()
    # the held-out figures are those of the saved thresholds on the other half of the same probabilities
    probs = torch.tensor(report["probabilities"])
    truth = torch.tensor([report["labels"].index(r["refusal_label"]) for r in test])
    _, held = split_halves(len(test), 0)
    settings = RefusalSettings.from_file(tmp_path / "cal" / "thresholds.yaml")
    got = refusal_rates(probs[held], truth[held], settings, load_taxonomy(AutoTokenizer.from_pretrained(out)))
    for c in ("incomplete", "humanizing"):
        assert got[c] == pytest.approx(cal["held_out"][c], abs=1e-6)
    assert "held-out" in capsys.readouterr().out

    # generate takes the recipe's output_dir directly and applies the calibrated thresholds
    gen_out = tmp_path / "gen.jsonl"
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": r["prompt"][0]["content"]}) + "\n" for r in test[:6]))
    assert main(["generate", "--model", str(out), "--thresholds", str(tmp_path / "cal" / "thresholds.yaml"),
                 "--prompts-file", str(prompts), "--max-new-tokens", "2", "--output", str(gen_out)]) == 0  # fmt: skip
    rows = [json.loads(line) for line in gen_out.read_text().splitlines()]
    want = [
        report["labels"][i]
        for i in settings.decide(probs[:6], load_taxonomy(AutoTokenizer.from_pretrained(out))).tolist()
    ]
    assert [r["label"] for r in rows] == want


def test_report_to_wandb_without_an_account_runs_offline(tmp_path):
    cfg = dict(TINY, report_to="wandb", max_steps=2, responses="template", agreement_prompts=0)
    cfg.update(eval_strategy="steps", eval_steps=2, per_device_eval_batch_size=8)  # the callback fires once
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    env = _env(tmp_path)
    for key in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_DISABLED"):
        env.pop(key, None)
    env.update(HOME=str(tmp_path), NETRC=str(tmp_path / "no-netrc"), WANDB_DIR=str(tmp_path))
    cmd = [sys.executable, "-m", "refusal_tokens.cli", "sft", "--config", str(tmp_path / "c.yaml")]
    cmd += ["--output_dir", str(tmp_path / "out")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    notices = [line for line in proc.stderr.splitlines() if "W&B: no API key found, logging offline" in line]
    assert len(notices) == 1
    runs = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "run-*.wandb"))
    assert len(runs) == 1
    # the per-category metrics are in the offline run file, with the values of the saved evaluation
    from wandb_reader import history

    report = json.loads((tmp_path / "out" / "refusal_eval.json").read_text())
    logged = {k: v for row in history(runs[0]) for k, v in row.items() if "refusal/" in k}
    for category in ("incomplete", "humanizing", "safety_concerns"):
        key = next(k for k in logged if k.endswith(f"refusal/{category}/refusal_rate"))
        assert logged[key] == pytest.approx(report["groups"][category]["refusal_rate"])
    assert any(k.endswith("refusal/over_refusal") for k in logged)
    # the callback's W&B media: per-category bars, confusion matrix, calibration curve
    keys = {k for row in history(runs[0]) for k in row}
    for name in ("refusal/per_category", "refusal/confusion", "refusal/calibration"):
        assert any(k.startswith(name) for k in keys), (name, sorted(keys))


def test_dpo_recipe_on_top_of_the_sft_output_with_drift_guard(recipe_run, tmp_path, monkeypatch):
    cfg = {
        "model_name_or_path": str(recipe_run["out"]),
        "taxonomy": "coconot",
        "synthetic_train_per_category": 8,
        "synthetic_train_benign": 8,
        "synthetic_train_contrast": 8,
        "responses": "template",
        "use_peft": True,
        "lora_r": 4,
        "lora_dropout": 0.0,
        "lora_target_modules": "all-linear",
        "min_refusal_rate": 1.0,  # unreachable floor: the guard must fire and stop training at the first check
        "stop_on_drift": True,
        "probe_every_n_steps": 2,
        "max_steps": 6,
        "per_device_train_batch_size": 8,
        "learning_rate": 1.0e-3,
        "max_length": 64,
        "bf16": False,
        "activation_checkpointing": False,
        "use_cpu": True,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
    }
    (tmp_path / "dpo.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "dpo_out"
    cmd = [sys.executable, "-m", "refusal_tokens.cli", "dpo", "--config", str(tmp_path / "dpo.yaml")]
    cmd += ["--output_dir", str(out)]
    proc = subprocess.run(cmd, env=_env(recipe_run["tmp"]), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Refusal drift at step 2" in proc.stderr and "stopping training" in proc.stderr
    assert "'refusal/humanizing/refusal_rate'" in proc.stdout  # the callback's scalars reached the Trainer's log
    report = json.loads((out / "refusal_eval.json").read_text())
    assert report["overall"]["support"] > 0
    # the DPO adapter sits on the merged SFT model; the loader follows the chain back to the builtin base
    from refusal_tokens.inference.models import load_refusal_model

    monkeypatch.setenv("REFUSAL_TOKENS_CACHE", str(recipe_run["tmp"] / "cache"))
    model, tok = load_refusal_model(str(out))
    # reloaded, it gives the probabilities its own report measured on the (rebuilt) held-out split
    cfg = SyntheticCorpusConfig(train_per_category=8, train_benign=8, train_contrast=8, seed=0, validation=True)
    test = build_synthetic_corpus("coconot", cfg)["test"]
    assert [r["refusal_label"] for r in test] == [r["refusal_label"] for r in report["test_rows"]]
    probs = first_token_probabilities(model, tok, [r["prompt"] for r in test])
    torch.testing.assert_close(probs, torch.tensor(report["probabilities"]), atol=1e-5, rtol=1e-4)
    # and the DPO adapter changed the model: its probabilities are not the SFT model's
    sft_model, sft_tok = load_refusal_model(str(recipe_run["out"]))
    assert not torch.allclose(first_token_probabilities(sft_model, sft_tok, [r["prompt"] for r in test]), probs)


def test_export_is_a_plain_checkpoint_with_the_adapter_models_logits(recipe_run, tmp_path, monkeypatch, capsys):
    from transformers import AutoModelForCausalLM

    from refusal_tokens.cli import main
    from refusal_tokens.inference.models import load_refusal_model

    monkeypatch.setenv("REFUSAL_TOKENS_CACHE", str(recipe_run["tmp"] / "cache"))
    out, export = recipe_run["out"], tmp_path / "export"
    assert main(["export", "--model", str(out), "--output", str(export)]) == 0
    assert "logits within" in capsys.readouterr().out
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", "thresholds.yaml", "README.md",
                 "refusal_export.json", "refusal_eval_summary.json"):  # fmt: skip
        assert (export / name).is_file(), name
    assert not (export / "adapter_config.json").exists()
    plain = AutoModelForCausalLM.from_pretrained(export).eval()
    assert not isinstance(plain, PeftModel)
    assert plain.get_output_embeddings().weight.data_ptr() == plain.get_input_embeddings().weight.data_ptr()  # tied
    adapter_model, tok = load_refusal_model(str(out))
    texts = [r["prompt"][0]["content"] for r in _recipe_test_split()[:4]]
    enc = tok(build_chat_prompts(tok, texts), return_tensors="pt", padding=True)
    with torch.no_grad():
        want, got = adapter_model(**enc).logits, plain(**enc).logits
    assert (want - got).abs().max() < 1e-4
    # the tokenizer carries the refusal tokens and the taxonomy; the thresholds are the run's own
    exported_tok = AutoTokenizer.from_pretrained(export)
    taxonomy = load_taxonomy(exported_tok)
    assert all(exported_tok.convert_tokens_to_ids(t) != exported_tok.unk_token_id for t in taxonomy.tokens)
    assert RefusalSettings.from_file(export / "thresholds.yaml") == RefusalSettings.from_file(out / "thresholds.yaml")
    card = (export / "README.md").read_text()
    assert "base_model: builtin:tiny-random" in card and "/.cache/" not in card  # a real name, never a cache path
    assert all(f"`{t}`" in card for t in taxonomy.tokens)
    assert "refusal-tokens synthetic corpus" in card  # the training data, from the run stamp
    summary = json.loads((export / "refusal_eval_summary.json").read_text())
    assert f"{summary['overall']['refusal_recall']:.3f}" in card  # the held-out table of the run
    # a second export into the same folder is refused; --overwrite_output_dir replaces the earlier export
    assert main(["export", "--model", str(out), "--output", str(export)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["export", "--model", str(out), "--output", str(export), "--overwrite_output_dir", "true"]) == 0


def test_export_loads_without_refusal_tokens_or_peft(recipe_run, tmp_path, monkeypatch):
    from refusal_tokens.inference.export import export_refusal_model

    monkeypatch.setenv("REFUSAL_TOKENS_CACHE", str(recipe_run["tmp"] / "cache"))
    export = tmp_path / "export"
    info = export_refusal_model(str(recipe_run["out"]), str(export), dtype="bfloat16")
    assert info["dtype"] == "bfloat16" and info["logits_max_abs_diff"] < 1e-4
    code = (
        "import sys, torch; from transformers import AutoModelForCausalLM, AutoTokenizer; "
        f"m = AutoModelForCausalLM.from_pretrained({str(export)!r}); "
        f"t = AutoTokenizer.from_pretrained({str(export)!r}); "
        "assert m.dtype == torch.bfloat16; assert '[respond]' in t.get_vocab(); "
        "assert not any(k.split('.')[0] in ('refusal_tokens', 'peft') for k in sys.modules); print('ok')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


def test_export_push_to_hub_uploads_exactly_the_folder(recipe_run, tmp_path, monkeypatch):
    import huggingface_hub

    from refusal_tokens.inference.export import export_refusal_model

    calls = []

    class FakeApi:
        def create_repo(self, repo_id, private, exist_ok):
            calls.append(("create_repo", repo_id, private, exist_ok))

        def upload_folder(self, folder_path, repo_id, commit_message):
            calls.append(("upload_folder", folder_path, repo_id, sorted(os.listdir(folder_path))))
            return "https://huggingface.co/me/model/commit/0"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("REFUSAL_TOKENS_CACHE", str(recipe_run["tmp"] / "cache"))
    export = tmp_path / "export"
    info = export_refusal_model(str(recipe_run["out"]), str(export), push_to_hub="me/model")
    assert calls[0] == ("create_repo", "me/model", True, True)
    assert calls[1][:3] == ("upload_folder", str(export), "me/model")
    assert calls[1][3] == sorted(os.listdir(export)) and "README.md" in calls[1][3]
    assert info["pushed_to"].endswith("/commit/0")


def test_a_missing_or_cut_adapter_file_names_the_path(recipe_run, tmp_path, monkeypatch):
    import shutil

    from refusal_tokens.inference.models import load_refusal_model

    monkeypatch.setenv("REFUSAL_TOKENS_CACHE", str(recipe_run["tmp"] / "cache"))
    broken = tmp_path / "run"
    shutil.copytree(recipe_run["out"], broken)
    weights = broken / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])  # cut: an interrupted copy
    with pytest.raises(ValueError, match=re.escape(f"{weights}: unreadable")):
        load_refusal_model(str(broken))
    weights.unlink()
    with pytest.raises(ValueError, match="adapter_config.json but no adapter_model.safetensors"):
        load_refusal_model(str(broken))
