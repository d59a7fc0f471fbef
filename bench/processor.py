"""Throughput of generate() with RefusalTokenLogitsProcessor vs plain generate() vs an extra forward pass.

Three ways to make a per-category refusal decision for a batch, timed side by side in one run (interleaved
repetitions, medians):

- `plain`: `model.generate()` with no processor (the baseline: no decision at all);
- `processor`: `generate()` with `RefusalTokenLogitsProcessor` in threshold mode (header detection, as in chat use);
- `forward+generate`: the reference approach: one extra forward pass over the prompts to read the first-token
  probabilities, then `generate()`.

The model has the SmolLM2-135M architecture (30 layers, width 576, vocabulary 49,152 + refusal tokens). Its weights
are random unless `--model` points at a local checkpoint: throughput does not depend on weight values, and this
keeps the benchmark runnable on machines without the model files. Every generation is forced to its full length
(`min_new_tokens`), so all variants do the same amount of decoding.

On CUDA it also checks that the processor never synchronises with the host: `torch.cuda.set_sync_debug_mode("error")`
is active during every processor call.

    python bench/processor.py                        # CPU, batch 32
    python bench/processor.py --device cuda --dtype bfloat16 --batch-sizes 1 32 128
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from refusal_tokens import RefusalSettings, RefusalTokenIds, RefusalTokenLogitsProcessor, get_taxonomy

sys.path.insert(0, os.path.dirname(__file__))

from results_io import default_device, write_results  # noqa: E402

SMOLLM2_135M = {
    "vocab_size": 49152,
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "max_position_embeddings": 2048,
    "rope_theta": 100000.0,
    "tie_word_embeddings": True,
}


class SyncCheckedProcessor:
    """Runs the wrapped processor with CUDA sync debugging set to raise on any host synchronisation."""

    def __init__(self, processor: RefusalTokenLogitsProcessor) -> None:
        self.processor = processor
        self.calls = 0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        torch.cuda.set_sync_debug_mode("error")
        try:
            out = self.processor(input_ids, scores)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        self.calls += 1
        return out


def build(args: argparse.Namespace):
    taxonomy = get_taxonomy(args.taxonomy)
    if args.model:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=getattr(torch, args.dtype))
    else:
        torch.manual_seed(0)
        config = LlamaConfig(**SMOLLM2_135M)
        config.vocab_size += len(taxonomy.all_tokens)
        model = LlamaForCausalLM(config).to(getattr(torch, args.dtype))
    model = model.to(args.device).eval()
    vocab = model.get_output_embeddings().weight.shape[0]
    n = len(taxonomy.all_tokens)
    ids = RefusalTokenIds(taxonomy, respond_id=vocab - n, category_ids=tuple(range(vocab - n + 1, vocab)))
    return model, ids


def time_call(fn, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def run_batch(model, ids: RefusalTokenIds, batch: int, args: argparse.Namespace) -> dict:
    g = torch.Generator().manual_seed(batch)
    header = [1, 2]  # stands in for "<|im_start|>assistant\n"
    prompts = torch.randint(10, 40000, (batch, args.prompt_len - len(header)), generator=g)
    input_ids = torch.cat([prompts, torch.tensor(header).expand(batch, -1)], dim=1)
    attention = torch.ones_like(input_ids)
    # Left padding: a quarter of the rows are shorter prompts.
    attention[: batch // 4, : args.prompt_len // 4] = 0
    input_ids = input_ids.masked_fill(attention == 0, 0).to(args.device)
    attention = attention.to(args.device)
    if args.mode == "threshold":
        settings = RefusalSettings(default=0.3, rule=args.rule)
    else:
        settings = RefusalSettings(mode="scale", default=2.0)
    processor = RefusalTokenLogitsProcessor(ids, settings, assistant_header_ids=header)
    checked = SyncCheckedProcessor(processor) if args.device == "cuda" else processor
    gen = {
        "attention_mask": attention,
        "max_new_tokens": args.new_tokens,
        "min_new_tokens": args.new_tokens,
        "do_sample": False,
        "pad_token_id": 0,
        "eos_token_id": None,
    }
    cols = torch.tensor(ids.all_ids, device=args.device)

    def plain():
        model.generate(input_ids, **gen)

    def with_processor():
        model.generate(input_ids, logits_processor=[checked], **gen)

    def forward_then_generate():
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=attention, logits_to_keep=1).logits[:, -1]
            _ = logits.float().softmax(-1).index_select(1, cols)
        model.generate(input_ids, **gen)

    def timed_with_processor():
        model.generate(input_ids, logits_processor=[processor], **gen)

    if args.device == "cuda":
        with_processor()  # the sync check: one full generation with sync debugging around every processor call
    variants = {"plain": plain, "processor": timed_with_processor, "forward+generate": forward_then_generate}
    for fn in variants.values():  # warm-up (kernels, caches)
        fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            times[name].append(time_call(fn, args.device))
    med = {k: statistics.median(v) for k, v in times.items()}
    tokens = batch * args.new_tokens
    # The processor alone on one step's scores (first position: the most work), against one decoding step.
    scores = torch.randn(batch, model.get_output_embeddings().weight.shape[0], device=args.device)
    scores = scores.to(getattr(torch, args.dtype))
    n_calls = 200
    call_s = time_call(lambda: [processor(input_ids, scores) for _ in range(n_calls)], args.device) / n_calls
    return {
        "batch": batch,
        "median_s": med,
        "tokens_per_s": {k: tokens / v for k, v in med.items()},
        "ratio_processor_vs_plain": med["plain"] / med["processor"],
        "ratio_forward_generate_vs_plain": med["plain"] / med["forward+generate"],
        "ratio_processor_vs_forward_generate": med["forward+generate"] / med["processor"],
        "processor_call_us": call_s * 1e6,
        "decode_step_ms": med["plain"] / args.new_tokens * 1e3,
        "processor_share_of_step": call_s / (med["plain"] / args.new_tokens),
        "sync_checked_calls": checked.calls if args.device == "cuda" else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32])
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--taxonomy", default="cannot-should-not")
    parser.add_argument("--mode", default="threshold", choices=["threshold", "scale"])
    parser.add_argument("--rule", default="passing", choices=["passing", "top"], help="Threshold mode's rule.")
    parser.add_argument("--model", default=None, help="Local checkpoint; default: random SmolLM2-135M architecture.")
    parser.add_argument("--out", default=None, help="Write the results as JSON here.")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    model, ids = build(args)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu"
    results = {"device": device_name, "dtype": args.dtype, "mode": args.mode, "torch": torch.__version__, "runs": []}
    print(
        "| device | dtype | mode | batch | plain tok/s | processor tok/s | fwd+gen tok/s | proc/plain | proc/fwd+gen |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for b in args.batch_sizes:
        r = run_batch(model, ids, b, args)
        results["runs"].append(r)
        tps = r["tokens_per_s"]
        print(
            f"| {device_name} | {args.dtype} | {args.mode} | {b} | {tps['plain']:.0f} | {tps['processor']:.0f} | "
            f"{tps['forward+generate']:.0f} | {r['ratio_processor_vs_plain']:.3f} | "
            f"{r['ratio_processor_vs_forward_generate']:.3f} | {r['processor_call_us']:.0f} | "
            f"{r['decode_step_ms']:.1f} | {r['processor_share_of_step']:.2%} |",
            flush=True,
        )
    if args.device == "cuda":
        print(
            f"no host sync in {sum(r['sync_checked_calls'] for r in results['runs'])} processor calls "
            "(set_sync_debug_mode('error'))"
        )
    write_results(args.out, results)


if __name__ == "__main__":
    main()
