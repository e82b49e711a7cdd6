"""Weight memory of Llama-3.2-1B and Llama-3-8B shapes in bfloat16 vs bitsandbytes int8, nf4, nf4 + double quant.

Computed, not measured on a whole model: parameter counts come from the architectures built on the meta device
(no weights), and the bytes of each quantized Linear from quantizing one random layer of that shape with
bitsandbytes on CPU (packed weight plus its quantisation state: int8 per-row scales; nf4 per-64-block absmax, in
float32, or in 8 bits with float32 per 256 blocks under double quantisation). Embeddings, norms and lm_head stay
bfloat16, as transformers' BitsAndBytesConfig leaves them. Run: python benchmarks/quant_memory.py (about a minute).
"""

from __future__ import annotations

import warnings

import bitsandbytes as bnb
import torch
from accelerate import init_empty_weights
from transformers import LlamaConfig, LlamaForCausalLM

SHAPES = {
    "Llama-3.2-1B": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True),
    "Llama-3-8B": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False),
}
KINDS = ("int8", "nf4", "nf4-double")


def stored_bytes(shape: tuple[int, int], kind: str) -> int:
    """Bytes bitsandbytes stores for one (out, in) Linear weight quantized as ``kind``."""
    weight = torch.randn(*shape, dtype=torch.bfloat16)
    if kind == "int8":
        param = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False).to("cpu")
        return param.data.nbytes + param.SCB.nbytes
    param = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4",
                              compress_statistics=kind == "nf4-double").to("cpu")
    state = param.quant_state
    total = param.data.nbytes + state.absmax.nbytes + state.code.nbytes
    if state.nested:
        total += state.state2.absmax.nbytes + state.state2.code.nbytes
    return total


def main() -> None:
    warnings.simplefilter("ignore")
    print("| model | parameters (Linear in blocks / rest) | bf16 | int8 | nf4 | nf4 + double quant |")
    print("|---|---|---|---|---|---|")
    for name, dims in SHAPES.items():
        with init_empty_weights():
            model = LlamaForCausalLM(LlamaConfig(**dims))
        shapes = [tuple(m.weight.shape) for m in model.model.layers.modules() if isinstance(m, torch.nn.Linear)]
        n_linear = sum(a * b for a, b in shapes)
        n_rest = sum(p.numel() for p in model.parameters()) - n_linear
        if dims["tie_word_embeddings"]:  # one matrix serves embeddings and lm_head (untied on the meta device)
            n_rest -= model.lm_head.weight.numel()
        cells = [name, f"{(n_linear + n_rest) / 1e9:.3f} B ({n_linear / 1e9:.3f} / {n_rest / 1e9:.3f})",
                 f"{2 * (n_linear + n_rest) / 2**30:.2f} GiB"]
        for kind in KINDS:
            per_shape = {shape: stored_bytes(shape, kind) for shape in set(shapes)}
            linear_bytes = sum(per_shape[shape] for shape in shapes)
            cells.append(f"{(linear_bytes + 2 * n_rest) / 2**30:.2f} GiB ({linear_bytes / n_linear:.3f} B/param)")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
