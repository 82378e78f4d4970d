#!/usr/bin/env python3
"""An independent float64 T5 (T5ForConditionalGeneration) in plain PyTorch, written from transformers'
modeling_t5.py: relative position buckets (bidirectional in the encoder, causal in the decoder, computed
in float32 as transformers does, the table held by each stack's first block), T5LayerNorm (RMS, no mean,
no bias), no 1/sqrt(d) scaling of the scores, relu or gated-gelu (gelu_new) feed-forward, the decoder
input shifted right behind decoder_start_token_id, the tied head's d_model**-0.5 rescale or an untied
lm_head, and the loss as CrossEntropyLoss(ignore_index=-100). Debian's python3-torch only: no transformers.

usage:
  t5_reference.py --write-random DIR --variant t5|v1_1 [--seed N]   a random checkpoint in HF layout
  t5_reference.py --write-adapter DIR --model DIR [--targets q,v] [--rank 4] [--alpha 8] [--seed N]
                                                                    a random PEFT LoRA adapter (SEQ_2_SEQ_LM)
  t5_reference.py --jobs JOBS.json                                  [{model, adapter?, input_ids, labels, attention_mask?, out}]
"""
import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_reference import read_safetensors, write_safetensors  # noqa: E402

DT = torch.float64


def relative_position_bucket(relative_position, bidirectional, num_buckets, max_distance):
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative_position > 0).to(torch.long) * num_buckets
        relative_position = torch.abs(relative_position)
    else:
        relative_position = -torch.min(relative_position, torch.zeros_like(relative_position))
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    if_large = max_exact + (
        torch.log(relative_position.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).to(torch.long)
    if_large = torch.min(if_large, torch.full_like(if_large, num_buckets - 1))
    return buckets + torch.where(is_small, relative_position, if_large)


def position_bias(table, q_len, k_len, bidirectional, c):
    context = torch.arange(q_len)[:, None]
    memory = torch.arange(k_len)[None, :]
    buckets = relative_position_bucket(memory - context, bidirectional, c["relative_attention_num_buckets"], c["relative_attention_max_distance"])
    return table[buckets].permute(2, 0, 1).unsqueeze(0)  # [1, heads, q, k]


def rms(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def attention(p, prefix, x, kv, bias, c):
    b, t, _ = x.shape
    s = kv.shape[1]
    h, d = c["num_heads"], c["d_kv"]
    q = (x @ p[prefix + "q.weight"].T).view(b, t, h, d).transpose(1, 2)
    k = (kv @ p[prefix + "k.weight"].T).view(b, s, h, d).transpose(1, 2)
    v = (kv @ p[prefix + "v.weight"].T).view(b, s, h, d).transpose(1, 2)
    scores = q @ k.transpose(2, 3) + bias
    probs = torch.softmax(scores, dim=-1)
    return ((probs @ v).transpose(1, 2).reshape(b, t, h * d)) @ p[prefix + "o.weight"].T


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def feed_forward(p, prefix, x, c):
    ff = c.get("feed_forward_proj", "relu")
    if ff.startswith("gated-"):
        act = gelu_new if ff == "gated-gelu" else torch.relu
        hidden = act(x @ p[prefix + "wi_0.weight"].T) * (x @ p[prefix + "wi_1.weight"].T)
    else:
        hidden = torch.relu(x @ p[prefix + "wi.weight"].T)
    return hidden @ p[prefix + "wo.weight"].T


def forward(p, c, input_ids, decoder_ids, attention_mask=None):
    eps = c.get("layer_norm_epsilon", 1e-6)
    emb = p["shared.weight"]
    low = torch.finfo(DT).min
    pad_mask = 0 if attention_mask is None else ((1 - attention_mask.to(DT)) * low)[:, None, None, :]
    # encoder
    h = emb[input_ids]
    s = input_ids.shape[1]
    enc_bias = position_bias(p["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], s, s, True, c) + pad_mask
    for i in range(c["num_layers"]):
        pre = f"encoder.block.{i}.layer."
        n = rms(h, p[pre + "0.layer_norm.weight"], eps)
        h = h + attention(p, pre + "0.SelfAttention.", n, n, enc_bias, c)
        h = h + feed_forward(p, pre + "1.DenseReluDense.", rms(h, p[pre + "1.layer_norm.weight"], eps), c)
    enc = rms(h, p["encoder.final_layer_norm.weight"], eps)
    # decoder
    h = emb[decoder_ids]
    t = decoder_ids.shape[1]
    causal = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
    dec_bias = position_bias(p["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], t, t, False, c).masked_fill(causal, low)
    cross_bias = torch.zeros(1, dtype=DT) + pad_mask
    for i in range(c.get("num_decoder_layers", c["num_layers"])):
        pre = f"decoder.block.{i}.layer."
        n = rms(h, p[pre + "0.layer_norm.weight"], eps)
        h = h + attention(p, pre + "0.SelfAttention.", n, n, dec_bias, c)
        n = rms(h, p[pre + "1.layer_norm.weight"], eps)
        h = h + attention(p, pre + "1.EncDecAttention.", n, enc, cross_bias, c)
        h = h + feed_forward(p, pre + "2.DenseReluDense.", rms(h, p[pre + "2.layer_norm.weight"], eps), c)
    out = rms(h, p["decoder.final_layer_norm.weight"], eps)
    if c.get("tie_word_embeddings", True):
        return (out * c["d_model"] ** -0.5) @ emb.T
    return out @ p["lm_head.weight"].T


def shift_right(labels, c):
    start = c.get("decoder_start_token_id", c.get("pad_token_id", 0))
    shifted = torch.cat([torch.full((labels.shape[0], 1), start, dtype=torch.long), labels[:, :-1]], dim=1)
    return shifted.masked_fill(shifted == -100, c.get("pad_token_id", 0))


def load(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    tensors, _ = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    return {k: v.to(DT) for k, v in tensors.items()}, c


def lora_paths(p, targets):
    """Module paths PEFT wraps for target names: every bias-free projection whose last name is a target."""
    return sorted(k[: -len(".weight")] for k in p if k.endswith(".weight") and k.split(".")[-2] in targets
                  and (".SelfAttention." in k or ".EncDecAttention." in k or ".DenseReluDense." in k))


def write_adapter(adapter_dir, model_dir, targets, rank, alpha, seed):
    """A PEFT LoRA adapter as save_pretrained lays it out for a seq2seq model, B not zero."""
    p, c = load(model_dir)
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for path in lora_paths(p, targets):
        out_f, in_f = p[path + ".weight"].shape
        tensors[f"base_model.model.{path}.lora_A.weight"] = (torch.randn(rank, in_f, generator=g, dtype=DT) / math.sqrt(in_f)).to(torch.float32)
        tensors[f"base_model.model.{path}.lora_B.weight"] = (torch.randn(out_f, rank, generator=g, dtype=DT) * 0.05).to(torch.float32)
    os.makedirs(adapter_dir, exist_ok=True)
    write_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"), tensors, {"format": "pt"})
    config = {"peft_type": "LORA", "task_type": "SEQ_2_SEQ_LM", "r": rank, "lora_alpha": alpha, "lora_dropout": 0.0,
              "target_modules": sorted(targets), "bias": "none", "fan_in_fan_out": False, "use_rslora": False,
              "use_dora": False, "init_lora_weights": True, "inference_mode": True, "base_model_name_or_path": model_dir}
    with open(os.path.join(adapter_dir, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)


def apply_adapter(p, adapter_dir):
    """W + scaling * B @ A for every module the adapter holds factors for (PEFT's LoRA Linear, merged: the same function)."""
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        a = json.load(f)
    assert a.get("peft_type", "LORA") == "LORA" and not a.get("use_dora"), "plain LoRA only"
    tensors, _ = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
    r, alpha = a["r"], a["lora_alpha"]
    scaling = alpha / math.sqrt(r) if a.get("use_rslora") else alpha / r
    p = dict(p)
    found = 0
    for key, value in tensors.items():
        if not key.endswith(".lora_A.weight"):
            continue
        path = key[len("base_model.model."): -len(".lora_A.weight")]
        b = tensors[f"base_model.model.{path}.lora_B.weight"].to(DT)
        p[path + ".weight"] = p[path + ".weight"] + scaling * (b @ value.to(DT))
        found += 1
    assert found > 0, f"{adapter_dir}: no LoRA factors"
    return p


def write_random(model_dir, variant, seed):
    g = torch.Generator().manual_seed(seed)
    v11 = variant == "v1_1"
    c = {"model_type": "t5", "vocab_size": 96, "d_model": 32, "d_kv": 12, "d_ff": 48, "num_layers": 2,
         "num_decoder_layers": 3 if v11 else 2, "num_heads": 3, "relative_attention_num_buckets": 8,
         "relative_attention_max_distance": 20, "layer_norm_epsilon": 1e-6, "dropout_rate": 0.1,
         "feed_forward_proj": "gated-gelu" if v11 else "relu", "tie_word_embeddings": not v11,
         "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0, "is_encoder_decoder": True}
    inner = c["num_heads"] * c["d_kv"]

    def randn(*shape, std):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * std).to(torch.float32)

    p = {"shared.weight": randn(c["vocab_size"], c["d_model"], std=1.0)}
    for stack, layers in (("encoder", c["num_layers"]), ("decoder", c["num_decoder_layers"])):
        for i in range(layers):
            pre = f"{stack}.block.{i}.layer."
            attn_layers = [("0.SelfAttention.", "0.layer_norm.weight")]
            if stack == "decoder":
                attn_layers.append(("1.EncDecAttention.", "1.layer_norm.weight"))
            for name, norm in attn_layers:
                p[pre + name + "q.weight"] = randn(inner, c["d_model"], std=(c["d_model"] * c["d_kv"]) ** -0.5)
                p[pre + name + "k.weight"] = randn(inner, c["d_model"], std=c["d_model"] ** -0.5)
                p[pre + name + "v.weight"] = randn(inner, c["d_model"], std=c["d_model"] ** -0.5)
                p[pre + name + "o.weight"] = randn(c["d_model"], inner, std=inner ** -0.5)
                p[pre + norm] = (1 + randn(c["d_model"], std=0.1))
            if i == 0:
                p[pre + "0.SelfAttention.relative_attention_bias.weight"] = randn(c["relative_attention_num_buckets"], c["num_heads"], std=0.5)
            ff = pre + ("2." if stack == "decoder" else "1.")
            if v11:
                p[ff + "DenseReluDense.wi_0.weight"] = randn(c["d_ff"], c["d_model"], std=c["d_model"] ** -0.5)
                p[ff + "DenseReluDense.wi_1.weight"] = randn(c["d_ff"], c["d_model"], std=c["d_model"] ** -0.5)
            else:
                p[ff + "DenseReluDense.wi.weight"] = randn(c["d_ff"], c["d_model"], std=c["d_model"] ** -0.5)
            p[ff + "DenseReluDense.wo.weight"] = randn(c["d_model"], c["d_ff"], std=c["d_ff"] ** -0.5)
            p[ff + "layer_norm.weight"] = (1 + randn(c["d_model"], std=0.1))
        p[f"{stack}.final_layer_norm.weight"] = (1 + randn(c["d_model"], std=0.1))
    # transformers' files carry the stacks' copies of the shared embedding (tied to it).
    p["encoder.embed_tokens.weight"] = p["shared.weight"].clone()
    p["decoder.embed_tokens.weight"] = p["shared.weight"].clone()
    if v11:
        p["lm_head.weight"] = randn(c["vocab_size"], c["d_model"], std=c["d_model"] ** -0.5)
    os.makedirs(model_dir, exist_ok=True)
    write_safetensors(os.path.join(model_dir, "model.safetensors"), p, {"format": "pt"})
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(c, f, indent=2)


def selftest():
    # Worked by hand from the formula, T5's defaults (32 buckets, max distance 128). Bidirectional: 16 per
    # side, exact below 8, then 8 + floor(log(n/8) / log(128/8) * 8), keys after the query offset by 16.
    rel = torch.tensor([-200, -128, -20, -8, -1, 0, 1, 7, 8, 15, 16, 100, 500])
    got = relative_position_bucket(rel, True, 32, 128).tolist()
    assert got == [15, 15, 10, 8, 1, 0, 17, 23, 24, 25, 26, 31, 31], got
    # Causal: keys after the query all fall in bucket 0; exact below 16, then 16 + floor(log(n/16) / log(8) * 16).
    got = relative_position_bucket(rel, False, 32, 128).tolist()
    assert got == [31, 31, 17, 8, 1, 0, 0, 0, 0, 0, 0, 0, 0], got
    print("selftest ok")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--write-random")
    ap.add_argument("--variant", default="t5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs")
    ap.add_argument("--write-adapter")
    ap.add_argument("--model")
    ap.add_argument("--targets", default="q,v")
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--alpha", type=float, default=8.0)
    ap.add_argument("--selftest", action="store_true")
    a = ap.parse_args()
    if a.selftest:
        selftest()
    if a.write_random:
        write_random(a.write_random, a.variant, a.seed)
    if a.write_adapter:
        write_adapter(a.write_adapter, a.model, set(a.targets.split(",")), a.rank, a.alpha, a.seed)
    if a.jobs:
        with open(a.jobs) as f:
            jobs = json.load(f)
        for job in jobs:
            p, c = load(job["model"])
            if job.get("adapter"):
                p = apply_adapter(p, job["adapter"])
            ids = torch.tensor(job["input_ids"], dtype=torch.long)
            labels = torch.tensor(job["labels"], dtype=torch.long)
            mask = torch.tensor(job["attention_mask"], dtype=torch.long) if job.get("attention_mask") else None
            logits = forward(p, c, ids, shift_right(labels, c), mask)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
            with open(job["out"], "w") as f:
                json.dump({"logits": logits.tolist(), "loss": loss.item()}, f)


if __name__ == "__main__":
    main()
