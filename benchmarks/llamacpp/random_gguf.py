"""Write a GGUF file of a Llama-architecture model with random weights, for timing
llama.cpp (``llama-bench``) where no checkpoint can be downloaded.

Kernel times do not depend on the weight values, only on shapes and formats, so one random
buffer per tensor shape is shared by every layer. Every matrix (embedding and output
included) is stored in the one format asked for ("pure", as ``llama-quantize --pure``);
norms are f32. Quantised blocks get a small valid fp16 scale and random quants.

    python random_gguf.py OUT.gguf --type q4_0 [--gguf-py DIR] [--layers 32 ...]

The defaults are Llama-2-7B's shapes (meta-llama/Llama-2-7b-hf config.json).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

#: Byte offsets of the fp16 block scales (``d``, and ``dmin`` where the format has one) in
#: each format's block (ggml-common.h).
SCALE_OFFSETS = {
    "Q4_0": (0,),
    "Q8_0": (0,),
    "Q4_K": (0, 2),
    "Q5_K": (0, 2),
    "Q6_K": (208,),
}
BLOCK_SCALE = np.float16(1e-3)


def _matrix(gguf, qtype: str, rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """One random ``rows`` × ``cols`` matrix in ``qtype``: fp16 values or raw block bytes."""
    if qtype == "F16":
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)
    kind = gguf.GGMLQuantizationType[qtype]
    block, type_size = gguf.GGML_QUANT_SIZES[kind]
    blocks = rows * cols // block
    raw = rng.integers(0, 256, size=(blocks, type_size), dtype=np.uint8)
    for offset in SCALE_OFFSETS[qtype]:
        raw[:, offset : offset + 2] = np.frombuffer(BLOCK_SCALE.tobytes(), dtype=np.uint8)
    return raw.reshape(rows, cols // block * type_size)


def write_model(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(args.gguf_py))
    import gguf

    rng = np.random.default_rng(0)
    qtype = args.type.upper()
    raw_dtype = None if qtype == "F16" else gguf.GGMLQuantizationType[qtype]
    hidden, ffn, vocab = args.hidden, args.ffn, args.vocab
    head_dim = hidden // args.heads
    kv = args.kv_heads * head_dim
    w = gguf.GGUFWriter(str(args.out), "llama")
    w.add_name(f"random-llama-{args.layers}L-{hidden}-{qtype.lower()}")
    w.add_context_length(4096)
    w.add_embedding_length(hidden)
    w.add_block_count(args.layers)
    w.add_feed_forward_length(ffn)
    w.add_head_count(args.heads)
    w.add_head_count_kv(args.kv_heads)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
    special = ["<unk>", "<s>", "</s>"]
    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    words = [f"w{i}" for i in range(vocab - len(special) - len(byte_tokens))]
    w.add_tokenizer_model("llama")
    w.add_token_list(special + byte_tokens + words)
    w.add_token_scores([0.0] * 3 + [0.0] * 256 + [-float(i) for i in range(len(words))])
    types = gguf.TokenType
    w.add_token_types(
        [types.UNKNOWN, types.CONTROL, types.CONTROL]
        + [types.BYTE] * 256
        + [types.NORMAL] * len(words)
    )
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    shared: dict[tuple[int, int], np.ndarray] = {}

    def matrix(name: str, rows: int, cols: int) -> None:
        if (rows, cols) not in shared:
            shared[(rows, cols)] = _matrix(gguf, qtype, rows, cols, rng)
        data = shared[(rows, cols)]
        w.add_tensor(name, data, raw_dtype=raw_dtype)

    norm = np.ones(hidden, dtype=np.float32)
    matrix("token_embd.weight", vocab, hidden)
    for i in range(args.layers):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", norm)
        matrix(p + "attn_q.weight", hidden, hidden)
        matrix(p + "attn_k.weight", kv, hidden)
        matrix(p + "attn_v.weight", kv, hidden)
        matrix(p + "attn_output.weight", hidden, hidden)
        w.add_tensor(p + "ffn_norm.weight", norm)
        matrix(p + "ffn_gate.weight", ffn, hidden)
        matrix(p + "ffn_up.weight", ffn, hidden)
        matrix(p + "ffn_down.weight", hidden, ffn)
    w.add_tensor("output_norm.weight", norm)
    matrix("output.weight", vocab, hidden)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    formats = ["q4_0", "q8_0", "q4_k", "q5_k", "q6_k", "f16"]
    parser.add_argument("--type", default="q4_0", choices=formats)
    parser.add_argument("--gguf-py", type=Path, default=Path("gguf-py"))
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--ffn", type=int, default=11008)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=32000)
    write_model(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
