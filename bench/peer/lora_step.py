#!/usr/bin/env python3
"""LoraShell's benchmark peer: the same LoRA training step in eager PyTorch.

Reads the model (Hugging Face Llama names), the LoRA factors, the batch and the settings that
LoraShell.Bench wrote, then runs `--steps` optimizer steps: forward, mean cross-entropy, backward,
AdamW. Prints one JSON line: the loss of every step and the median milliseconds per step.
Written for Debian's python3-torch (1.13, CPU) with OpenBLAS; needs nothing else.
"""
import argparse, json, math, statistics, struct, sys, time

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": np.float32, "I64": np.int64}
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=dtypes[e["dtype"]]).reshape(e["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


class Model:
    """HF LlamaForCausalLM in plain tensor code, with LoRA on the listed projections."""

    def __init__(self, w, cfg):
        self.w, self.c = w, cfg
        self.lora = {}  # path -> (A, B)
        for key in list(w):
            if key.endswith(".lora_A.weight"):
                path = key[: -len(".lora_A.weight")]
                A = w.pop(key).requires_grad_(True)
                B = w.pop(path + ".lora_B.weight").requires_grad_(True)
                self.lora[path] = (A, B)
        hd = cfg["head_dim"]
        inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        t = torch.arange(cfg["seq"], dtype=torch.float64)
        emb = torch.cat([torch.outer(t, inv)] * 2, dim=-1)
        self.cos, self.sin = emb.cos().float(), emb.sin().float()
        self.mask = torch.ones(cfg["seq"], cfg["seq"], dtype=torch.bool).triu(1)

    def params(self):
        return [p for ab in self.lora.values() for p in ab]

    def linear(self, x, path):
        y = x @ self.w[path + ".weight"].t()
        if path in self.lora:
            A, B = self.lora[path]
            y = y + self.c["scaling"] * ((x @ A.t()) @ B.t())
        return y

    def norm(self, x, weight):
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.c["eps"]))

    @staticmethod
    def rotate(x, cos, sin):
        h = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., h:], x[..., :h]], dim=-1) * sin

    def forward(self, ids):
        c, w = self.c, self.w
        b, s = ids.shape
        hd, nh, nkv = c["head_dim"], c["heads"], c["kv_heads"]
        x = w["model.embed_tokens.weight"][ids]
        cos, sin = self.cos[:s], self.sin[:s]
        for i in range(c["layers"]):
            p = f"model.layers.{i}."
            h = self.norm(x, w[p + "input_layernorm.weight"])
            q = self.linear(h, p + "self_attn.q_proj").view(b, s, nh, hd).transpose(1, 2)
            k = self.linear(h, p + "self_attn.k_proj").view(b, s, nkv, hd).transpose(1, 2)
            v = self.linear(h, p + "self_attn.v_proj").view(b, s, nkv, hd).transpose(1, 2)
            q, k = self.rotate(q, cos, sin), self.rotate(k, cos, sin)
            if nkv != nh:
                k = k.repeat_interleave(nh // nkv, dim=1)
                v = v.repeat_interleave(nh // nkv, dim=1)
            # torch 1.13 has no scaled_dot_product_attention: the same math written out.
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            scores = scores.masked_fill(self.mask[:s, :s], float("-inf"))
            a = torch.softmax(scores, dim=-1) @ v
            x = x + self.linear(a.transpose(1, 2).reshape(b, s, nh * hd), p + "self_attn.o_proj")
            h = self.norm(x, w[p + "post_attention_layernorm.weight"])
            x = x + self.linear(F.silu(self.linear(h, p + "mlp.gate_proj")) * self.linear(h, p + "mlp.up_proj"), p + "mlp.down_proj")
        x = self.norm(x, w["model.norm.weight"])
        head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
        return x @ head.t()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("inputs")
    ap.add_argument("config")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = json.load(open(args.config))
    tensors = read_safetensors(args.inputs)
    ids, targets = tensors.pop("input_ids"), tensors.pop("targets")
    model = Model(tensors, cfg)
    opt = torch.optim.AdamW(model.params(), lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    losses, times = [], []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        logits = model.forward(ids)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append((time.perf_counter() - t0) * 1000)
        losses.append(loss.item())
    print(json.dumps({"losses": losses, "ms_per_step": statistics.median(times[1:] if len(times) > 1 else times),
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    sys.exit(main())
