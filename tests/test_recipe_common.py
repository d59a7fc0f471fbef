"""Recipe helpers shared by the SFT and DPO recipes."""

import torch

from refusal_tokens.recipes.arguments import RefusalModelArguments
from refusal_tokens.recipes.base import add_tokens_and_peft
from refusal_tokens.testing import build_tiny_model, build_tiny_tokenizer


def _lora_weights(draws_before: int) -> dict[str, torch.Tensor]:
    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok)
    torch.rand(draws_before)  # e.g. a first run's GGUF conversion initialises a model and draws random numbers
    _, peft_model = add_tokens_and_peft(
        model,
        tok,
        "coconot",
        RefusalModelArguments(model_name_or_path="builtin:tiny-random", use_peft=True, lora_r=4),
        seed=7,
    )
    return {k: v.detach().clone() for k, v in peft_model.named_parameters() if "lora_A" in k}


def test_same_seed_same_lora_init_whatever_ran_before():
    first, second = _lora_weights(0), _lora_weights(1000)
    assert first and first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], msg=name)


def test_self_distillation_device_placement(monkeypatch):
    from types import SimpleNamespace

    import torch

    from refusal_tokens.recipes.arguments import RefusalDataArguments
    from refusal_tokens.recipes.base import on_training_device, self_distills, shards_the_model

    assert self_distills(RefusalDataArguments(responses="self"))
    assert not self_distills(RefusalDataArguments(responses="template"))
    assert not self_distills(RefusalDataArguments(dataset_name="data.jsonl"))

    args = SimpleNamespace(device=torch.device("cpu"), deepspeed=None, fsdp="")
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    assert not shards_the_model(args)
    assert shards_the_model(SimpleNamespace(device=args.device, deepspeed="ds.json", fsdp=""))
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert shards_the_model(args)

    moves = []

    class Model:
        def to(self, device):
            moves.append(str(device))
            return self

    with on_training_device(Model(), args, enabled=False):
        pass
    assert moves == []
    with on_training_device(Model(), args):  # sharded (FSDP): on the device for the block, back to the CPU after
        assert moves == ["cpu"]
    assert moves == ["cpu", "cpu"]
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    moves.clear()
    with on_training_device(Model(), SimpleNamespace(device="cuda:0", deepspeed=None, fsdp="")):
        pass
    assert moves == ["cuda:0"]  # not sharded: it stays where the Trainer would put it
