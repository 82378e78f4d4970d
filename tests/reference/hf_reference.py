#!/usr/bin/env python3
"""Independent float64 reference forward for Hugging Face decoder families (+ PEFT LoRA).

Written from reading transformers' / PEFT's modeling code (no code copied; no transformers import).
Families, chosen by config.json "model_type": llama, mistral, qwen2, qwen3, phi3, gpt2.

    /usr/bin/python3 hf_reference.py --model DIR [--adapter DIR] [--merge] --ids IDS.json --out OUT.json
    /usr/bin/python3 hf_reference.py --jobs JOBS.json
    /usr/bin/python3 hf_reference.py --selftest
    /usr/bin/python3 hf_reference.py --write-adapter OUTDIR --model DIR --targets q_proj,v_proj
                                     --rank 4 --alpha 8 [--dora] [--seed 1] [--std 0.05]
                                     [--modules-to-save lm_head,model.norm] [--save-embedding-layers auto|false]
                                     [--trainable-tokens 5,17,300]
    /usr/bin/python3 hf_reference.py --combine OUTDIR --model DIR --adapters DIR1,DIR2[,...] --weights 0.7,0.3
                                     --combination-type linear|cat|svd|ties|dare_linear|dare_ties|magnitude_prune|
                                       ties_svd|dare_linear_svd|dare_ties_svd|magnitude_prune_svd
                                     [--density 0.5] [--majority-sign-method total|frequency]
                                     [--svd-rank R] [--svd-clamp C] [--seed S]

IDS.json: list of equal-length lists of token ids (no padding, so no attention mask is needed).
OUT.json: {"logits": [batch][seq][vocab] floats (float64, shortest round-trip repr),
           "loss": mean next-token cross-entropy over positions 2..n of every sequence}.
Adapters: PEFT LoRA, optionally use_dora (DoRA magnitude per output row), unmerged or --merge'd.
--write-adapter: a random adapter for DIR laid out as PEFT's save_pretrained writes it
(adapter_config.json + float32 adapter_model.safetensors), nonzero B, and for --dora a magnitude of
||W + s B A|| per row times U[0.8, 1.2], so both LoRA and DoRA visibly change the logits.
Targets may include nn.Embedding modules (embed_tokens; gpt2 wte/wpe): PEFT lora.Embedding, saved as
base_model.model.<path>.lora_embedding_A [r, num_embeddings] / .lora_embedding_B [embedding_dim, r] (no ".weight";
both random here, PEFT's init is A = 0, B ~ N(0, 1)); forward W[x] + (A^T[x] B^T) s, merge W += (B A)^T s. With
"embed_tokens" or "lm_head" in --targets, save_pretrained's default save_embedding_layers="auto" also saves
base_model.model.<path>.base_layer.weight for those LoRA-wrapped layers (written too, unless
--save-embedding-layers false). --modules-to-save: LoraConfig.modules_to_save; every module whose name ends with
an entry (plain suffix, as PEFT's _set_trainable) is saved in full as base_model.model.<module>.<param> (values:
base + N(0, std)) and used instead of the base module; --merge leaves those copies as they are.
Tied embeddings (qwen3 / gpt2 with tie_word_embeddings): a modules_to_save copy of lm_head (or of the embedding)
is a deepcopy, so the other side stays on the base weight; an embedding LoRA leaves the tied head on the base W
unmerged, but merging writes W + dW into the shared Parameter, so the merged head changes too (PEFT v0.20.0;
merged != unmerged there, with a warning). ensure_weight_tying=true on such adapters is refused.
trainable_token_indices (--trainable-tokens on --write-adapter): the saved token_adapter.trainable_tokens_delta rows
[n, dim] replace rows n of the embedding (values, not differences), and a tied lm_head computes with the same rows
(PEFT ties a token adapter to it); merging writes the same rows, so merged == unmerged.
--combine: PEFT LoraModel.add_weighted_adapter (release v0.20.0) over several adapter folders, written as
save_pretrained would; the math, the PEFT lines followed and every convention are in combine_reference.py
(same folder), whose --selftest checks it.

Everything is computed in float64 (weights are cast on load), so the numbers are more exact than a
float32/bfloat16 implementation under test -- and also more exact than transformers itself, which
builds RoPE inv_freq/cos/sin in float32 (modeling_llama.LlamaRotaryEmbedding.forward "Force float32").
Expect a float32 implementation to differ from this reference by ~1e-6 relative, growing with position.

Sources read (huggingface/transformers unless noted):
  src/transformers/models/llama/modeling_llama.py    LlamaRMSNorm, LlamaRotaryEmbedding, rotate_half,
        apply_rotary_pos_emb, LlamaMLP, repeat_kv, eager_attention_forward, LlamaAttention, LlamaDecoderLayer
  src/transformers/modeling_rope_utils.py            _compute_default/_linear_scaling/_dynamic_ntk/_llama3
        _parameters, dynamic_rope_update (dynamic_frequency_update)
  src/transformers/masking_utils.py                  causal_mask_function, sliding_window_overlay
  src/transformers/models/mistral/modeling_mistral.py MistralAttention (sliding_window), causal mask helpers
  src/transformers/models/qwen2/modular_qwen2.py     Qwen2Attention (q/k/v bias=True, o_proj bias=False)
  src/transformers/models/qwen3/modeling_qwen3.py    Qwen3Attention (q_norm/k_norm on head_dim, pre-RoPE)
  src/transformers/models/phi3/modular_phi3.py       Phi3MLP (gate_up_proj chunk), Phi3Attention (qkv_proj
        slicing), partial-rotary apply_rotary_pos_emb; Phi3Model inherits MistralModel (sliding mask)
  src/transformers/models/gpt2/modeling_gpt2.py      GPT2Attention._attn, GPT2MLP, GPT2Block, Conv1D usage
  activations NewGELUActivation (gelu_new)
  huggingface/peft src/peft/tuners/lora/layer.py     LoraLayer.update_layer (scaling), Linear.forward,
        Linear.get_delta_weight (transpose(B@A, fan_in_fan_out) * scaling), dispatch_default (Conv1D ->
        fan_in_fan_out=True)
  huggingface/peft src/peft/utils/other.py           get_pattern_key;  tuners/lora/model.py _create_and_replace
  DoRA, followed at huggingface/peft main 5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40 (v0.20.0-47, 0.20.1.dev0)
  and checked against tag v0.20.0 (a5526d27a9d47d1e8264d5e1b1f96c0fdc79464e), same math:
  huggingface/peft src/peft/tuners/lora/dora.py      DoraLinearLayer.get_weight_norm, get_lora_weight,
        update_layer (init magnitude = ||W + s B A||, B = 0 at init), forward (base_result - bias)
  huggingface/peft src/peft/tuners/lora/variants.py  DoraLinearVariant.forward, merge_safe (weight_norm with
        scaling=1 on the scaled delta, dora_factor = m / weight_norm transposed for fan_in_fan_out)
  huggingface/peft src/peft/tuners/lora/model.py     LoraModel._get_adapter_state_dict / _remap_adapter_state_dict
        _for_load (magnitude key "lora_magnitude_vector" saved without ".weight", ".weight" re-added on load);
        in v0.20.0 the same two renames live in utils/save_and_load.py get_peft_model_state_dict /
        set_peft_model_state_dict (+ _insert_adapter_name_into_state_dict)
  modules_to_save and embedding LoRA, followed at tag v0.20.0 (a5526d27a9d47d1e8264d5e1b1f96c0fdc79464e):
  huggingface/peft src/peft/utils/other.py           ModulesToSaveWrapper (update: deepcopy; adapter_state_dict /
        adapter_state_dict_load_map), _set_trainable (key.endswith), set_additional_trainable_modules
  huggingface/peft src/peft/utils/save_and_load.py   get_peft_model_state_dict (AuxiliaryTrainingWrapper keys,
        save_embedding_layers "auto", remove_adapter_name), set_peft_model_state_dict (load map,
        _insert_adapter_name_into_state_dict)
  huggingface/peft src/peft/tuners/lora/layer.py     Embedding.update_layer / reset_lora_parameters (A = 0,
        B normal), forward, _embed, get_delta_weight (transpose(B @ A, True) * scaling), merge
  trainable tokens, followed at huggingface/peft main 5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40:
  huggingface/peft src/peft/tuners/trainable_tokens/layer.py  TrainableTokensLayer (update_layer, get_merged_weights,
        forward_adapters, merge / unmerge via index_copy);  utils/other.py TrainableTokensWrapper (adapter_state_dict,
        tied adapters save nothing), set_additional_trainable_modules (list/dict forms, weight tying)
  huggingface/peft src/peft/tuners/tuners_utils.py   _check_tied_modules (warns only, unless ensure_weight_tying)
  huggingface/peft src/peft/tuners/tuners_utils.py   check_target_module_exists (list: exact or "." + suffix),
        _remove_adapter_name_from_state_dict_key;  peft_model.py save_pretrained (metadata {"format": "pt"})
"""

import argparse
import json
import math
import os
import re
import shutil
import struct
import sys
import tempfile

import torch

DT = torch.float64
assert sys.byteorder == "little", "safetensors is little-endian; this reader assumes a little-endian host"


def warn(msg):
    print(f"[hf_reference] warning: {msg}", file=sys.stderr)


# =============================================================================================
# safetensors: 8-byte LE header length, JSON header {name: {dtype, shape, data_offsets}},
# optional "__metadata__" (str->str), then raw little-endian tensor bytes.
# =============================================================================================

_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}


def read_safetensors(path):
    """Return ({name: tensor (stored dtype)}, metadata dict)."""
    with open(path, "rb") as f:
        buf = bytearray(f.read())
    (header_len,) = struct.unpack("<Q", bytes(buf[:8]))
    header = json.loads(bytes(buf[8:8 + header_len]).decode("utf-8"))
    metadata = header.pop("__metadata__", None) or {}
    base = 8 + header_len
    out = {}
    for name, info in header.items():
        if info["dtype"] not in _ST_DTYPES:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        dtype = _ST_DTYPES[info["dtype"]]
        shape = [int(s) for s in info["shape"]]
        start, end = info["data_offsets"]
        numel = math.prod(shape)
        itemsize = torch.empty(0, dtype=dtype).element_size()
        if end - start != numel * itemsize:
            raise ValueError(f"{path}: tensor {name}: byte span {end - start} != {numel} x {itemsize}")
        if numel == 0:
            out[name] = torch.empty(shape, dtype=dtype)
        else:
            raw = bytearray(buf[base + start: base + end])  # own copy: alignment-safe
            out[name] = torch.frombuffer(raw, dtype=dtype).reshape(shape)
    return out, metadata


def _tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype in (torch.float16, torch.bfloat16):
        return t.view(torch.int16).numpy().tobytes()  # numpy has no bf16; same-size view keeps bits
    if t.dtype == torch.bool:
        return t.to(torch.uint8).numpy().tobytes()
    return t.numpy().tobytes()


def write_safetensors(path, tensors, metadata=None):
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        raw = _tensor_bytes(t)
        header[name] = {"dtype": _ST_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)  # pad so the data section starts 8-byte aligned (as the official writer does)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for c in chunks:
            f.write(c)


def load_checkpoint_tensors(model_dir):
    """model.safetensors, or a sharded model.safetensors.index.json, or pytorch_model.bin."""
    single = os.path.join(model_dir, "model.safetensors")
    index = os.path.join(model_dir, "model.safetensors.index.json")
    binary = os.path.join(model_dir, "pytorch_model.bin")
    if os.path.exists(single):
        return read_safetensors(single)[0]
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        tensors = {}
        for shard in sorted(set(weight_map.values())):
            tensors.update(read_safetensors(os.path.join(model_dir, shard))[0])
        return tensors
    if os.path.exists(binary):
        return dict(torch.load(binary, map_location="cpu"))
    raise FileNotFoundError(f"no model.safetensors / index / pytorch_model.bin in {model_dir}")


# =============================================================================================
# Family table: one entry per model_type, naming the tensors of each role.
# Linear module paths are relative to a layer prefix; ".weight"/".bias" are appended.
# =============================================================================================

_ROPE_COMMON = dict(
    position="rope", norm="rms", linear="linear",
    embed="model.embed_tokens", final_norm="model.norm", head="lm_head",
    layer="model.layers.{i}.", ln1="input_layernorm", ln2="post_attention_layernorm",
)
_QKVO = dict(q="self_attn.q_proj", k="self_attn.k_proj", v="self_attn.v_proj", o="self_attn.o_proj")
_SWIGLU = dict(gate="mlp.gate_proj", up="mlp.up_proj", down="mlp.down_proj")

FAMILIES = {
    # LlamaAttention: q/k/v/o bias = config.attention_bias; LlamaMLP: gate/up/down bias = config.mlp_bias.
    "llama": dict(_ROPE_COMMON, attn=_QKVO, mlp=_SWIGLU,
                  defaults=dict(rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
                                hidden_act="silu", attention_bias=False, mlp_bias=False,
                                max_position_embeddings=2048, head_dim=None),
                  biased=lambda c: ([*_QKVO.values()] if c["attention_bias"] else [])
                  + ([*_SWIGLU.values()] if c["mlp_bias"] else []),
                  sliding_window=lambda c: None),
    # MistralAttention / MistralMLP: all bias=False (hard-coded); sliding window from config
    # (MistralConfig default 4096 when the key is absent; null disables it).
    "mistral": dict(_ROPE_COMMON, attn=_QKVO, mlp=_SWIGLU,
                    defaults=dict(rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
                                  hidden_act="silu", max_position_embeddings=32768, head_dim=None,
                                  sliding_window=4096),
                    biased=lambda c: [],
                    sliding_window=lambda c: c["sliding_window"]),
    # Qwen2Attention: q/k/v bias=True, o_proj bias=False; Qwen2MLP bias=False.
    "qwen2": dict(_ROPE_COMMON, attn=_QKVO, mlp=_SWIGLU,
                  defaults=dict(rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
                                hidden_act="silu", max_position_embeddings=32768, head_dim=None,
                                use_sliding_window=False),
                  biased=lambda c: [_QKVO["q"], _QKVO["k"], _QKVO["v"]],
                  sliding_window=lambda c: _refuse_sliding(c)),
    # Qwen3Attention: q/k/v/o bias = attention_bias; q_norm/k_norm RMSNorm(head_dim) before RoPE;
    # Qwen3Config.head_dim defaults to 128 (not hidden/heads).
    "qwen3": dict(_ROPE_COMMON, attn=dict(_QKVO, q_norm="self_attn.q_norm", k_norm="self_attn.k_norm"),
                  mlp=_SWIGLU,
                  defaults=dict(rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
                                hidden_act="silu", max_position_embeddings=32768, head_dim=128,
                                attention_bias=False, use_sliding_window=False),
                  biased=lambda c: [*_QKVO.values()] if c["attention_bias"] else [],
                  sliding_window=lambda c: _refuse_sliding(c)),
    # Phi3: fused qkv_proj (q rows, then k, then v) and gate_up_proj (gate half first); no biases;
    # partial_rotary_factor; Phi3Model is MistralModel, so config.sliding_window masks too.
    "phi3": dict(_ROPE_COMMON, attn=dict(qkv="self_attn.qkv_proj", o="self_attn.o_proj"),
                 mlp=dict(gate_up="mlp.gate_up_proj", down="mlp.down_proj"),
                 defaults=dict(rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                               hidden_act="silu", max_position_embeddings=4096, head_dim=None,
                               partial_rotary_factor=1.0, sliding_window=None),
                 biased=lambda c: [],
                 sliding_window=lambda c: c["sliding_window"]),
    # GPT2: learned positions, LayerNorm with bias, Conv1D weights [in, out] with bias, plain MLP.
    "gpt2": dict(position="learned", norm="layer", linear="conv1d",
                 embed="transformer.wte", pos_embed="transformer.wpe", final_norm="transformer.ln_f",
                 head="lm_head", layer="transformer.h.{i}.", ln1="ln_1", ln2="ln_2",
                 attn=dict(qkv="attn.c_attn", o="attn.c_proj"), mlp=dict(up="mlp.c_fc", down="mlp.c_proj"),
                 defaults=dict(layer_norm_epsilon=1e-5, tie_word_embeddings=True, activation_function="gelu_new",
                               n_inner=None, scale_attn_weights=True, scale_attn_by_inverse_layer_idx=False,
                               n_positions=1024),
                 biased=lambda c: ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"],
                 sliding_window=lambda c: None),
}


def _refuse_sliding(c):
    # Qwen2/Qwen3 only apply a window when use_sliding_window is true (layer_types then marks layers
    # >= max_window_layers as sliding). That hybrid is out of scope: refuse instead of guessing.
    if c.get("use_sliding_window"):
        raise NotImplementedError(f"{c['model_type']}: use_sliding_window=true is not supported")
    if "sliding_attention" in (c.get("layer_types") or []):
        raise NotImplementedError(f"{c['model_type']}: layer_types with sliding_attention not supported")
    return None


def _rope_settings(c, max_pos):
    """Normalise rope_theta/rope_scaling (v4) or rope_parameters (v5) into one dict."""
    theta = c.get("rope_theta")
    scaling = c.get("rope_scaling")
    params = c.get("rope_parameters")
    if isinstance(params, dict) and not scaling:
        theta = params.get("rope_theta", theta)
        scaling = params
    theta = float(theta if theta is not None else 10000.0)
    kind = "default"
    if scaling:
        kind = scaling.get("rope_type", scaling.get("type", "default"))  # BC: "type" was the old key
    rope = dict(type=kind, theta=theta, max_position_embeddings=max_pos)
    if kind == "default":
        return rope
    if kind in ("linear", "dynamic"):
        rope["factor"] = float(scaling["factor"])
        if kind == "dynamic" and "original_max_position_embeddings" in scaling:
            warn("dynamic rope_scaling.original_max_position_embeddings is ignored by transformers' "
                 "_compute_dynamic_ntk_parameters (it uses config.max_position_embeddings); ignored here too")
        return rope
    if kind == "llama3":
        for key in ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"):
            rope[key] = float(scaling[key])
        return rope
    raise NotImplementedError(f"rope_scaling type '{kind}' is not supported (only linear, dynamic, llama3)")


def build_spec(config):
    """Flatten config.json + family table into the few numbers the forward needs."""
    family = config.get("model_type")
    if family not in FAMILIES:
        raise NotImplementedError(f"model_type '{family}' not supported ({', '.join(FAMILIES)})")
    fam = FAMILIES[family]
    c = dict(fam["defaults"])
    c.update({k: v for k, v in config.items()})
    for k, v in fam["defaults"].items():  # explicit nulls fall back only where HF does the same
        if c.get(k) is None and k in ("rms_norm_eps", "layer_norm_epsilon", "hidden_act", "activation_function"):
            c[k] = v
    spec = dict(family=family, fam=fam, vocab=int(c["vocab_size"]),
                position=fam["position"], norm=fam["norm"], linear=fam["linear"])
    if family == "gpt2":
        hidden, heads = int(c["n_embd"]), int(c["n_head"])
        spec.update(hidden=hidden, n_layers=int(c["n_layer"]), n_heads=heads, n_kv=heads,
                    head_dim=hidden // heads, eps=float(c["layer_norm_epsilon"]),
                    act=c["activation_function"], max_positions=int(c["n_positions"]),
                    intermediate=int(c["n_inner"]) if c.get("n_inner") is not None else 4 * hidden,
                    rope=None, rotary_dim=0)
        if hidden % heads:
            raise ValueError("gpt2: n_embd must be divisible by n_head")
        # GPT2Attention._attn: scores / sqrt(head_dim) if scale_attn_weights; then / (layer_idx + 1) if
        # scale_attn_by_inverse_layer_idx. (reorder_and_upcast_attn only changes precision, not math.)
        scale_w, scale_l = bool(c["scale_attn_weights"]), bool(c["scale_attn_by_inverse_layer_idx"])
        spec["attn_scale"] = lambda layer: ((hidden // heads) ** -0.5 if scale_w else 1.0) / (
            float(layer + 1) if scale_l else 1.0)
    else:
        hidden, heads = int(c["hidden_size"]), int(c["num_attention_heads"])
        n_kv = int(c.get("num_key_value_heads") or heads)
        # getattr(config, "head_dim", None) or hidden_size // num_attention_heads
        head_dim = int(c.get("head_dim") or hidden // heads)
        if heads % n_kv:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        partial = float(c.get("partial_rotary_factor", 1.0) or 1.0)
        if partial != 1.0 and family != "phi3":
            raise NotImplementedError(f"{family}: partial_rotary_factor != 1 is not supported by its HF attention")
        rotary_dim = int(head_dim * partial)  # modeling_rope_utils: dim = int(head_dim * partial_rotary_factor)
        if rotary_dim % 2:
            raise ValueError("rotary dim must be even")
        max_pos = int(c["max_position_embeddings"])
        rope = _rope_settings(c, max_pos)
        if family == "phi3" and rope["type"] not in ("default",):
            # Phi-3 long-context checkpoints use longrope/su; linear/dynamic would be unusual. Refuse all.
            raise NotImplementedError(f"phi3: rope_scaling '{rope['type']}' is not supported")
        spec.update(hidden=hidden, n_layers=int(c["num_hidden_layers"]), n_heads=heads, n_kv=n_kv,
                    head_dim=head_dim, rotary_dim=rotary_dim, intermediate=int(c["intermediate_size"]),
                    eps=float(c["rms_norm_eps"]), act=c["hidden_act"], rope=rope, max_positions=None)
        spec["attn_scale"] = lambda layer: head_dim ** -0.5  # LlamaAttention.scaling = head_dim**-0.5
    spec["tie"] = bool(c.get("tie_word_embeddings"))
    spec["biased"] = set(fam["biased"](c))
    window = fam["sliding_window"](c)
    spec["sliding_window"] = int(window) if window is not None else None
    return spec


def layer_prefix(spec, i):
    return spec["fam"]["layer"].format(i=i)


def dense_paths(spec):
    """Every projection module path the forward applies (what a LoRA adapter may target)."""
    fam = spec["fam"]
    paths = [fam["head"]]
    for i in range(spec["n_layers"]):
        for role, name in list(fam["attn"].items()) + list(fam["mlp"].items()):
            if role not in ("q_norm", "k_norm"):
                paths.append(layer_prefix(spec, i) + name)
    return paths


def linear_kind(spec, path):
    # GPT-2's projections are Conv1D ([in, out]); its lm_head is an nn.Linear tied to wte.
    return "conv1d" if spec["linear"] == "conv1d" and path != spec["fam"]["head"] else "linear"


# =============================================================================================
# Loading weights into canonical (HF module-path) names, float64
# =============================================================================================

def _ignorable(name):
    parts = name.split(".")
    # GPT2Attention registers non-persistent buffers "bias" (causal tril) and "masked_bias"; old
    # checkpoints carry them as attn.bias / attn.masked_bias. Old llama checkpoints carry rotary inv_freq.
    if len(parts) >= 2 and parts[-2] == "attn" and parts[-1] in ("bias", "masked_bias"):
        return True
    return name.endswith("rotary_emb.inv_freq")


def load_params(model_dir, spec):
    raw = load_checkpoint_tensors(model_dir)
    raw = {k: v for k, v in raw.items() if not _ignorable(k)}
    if spec["family"] == "gpt2" and not any(k.startswith("transformer.") for k in raw):
        # GPT2LMHeadModel nests GPT2Model under "transformer."; bare GPT2Model checkpoints omit it.
        raw = {(k if k.startswith("lm_head.") else "transformer." + k): v for k, v in raw.items()}
    params = {k: v.to(DT) if v.is_floating_point() else v for k, v in raw.items()}
    return finish_params(params, spec)


def finish_params(params, spec):
    """Tie the head, check every needed tensor exists with the right shape, warn on leftovers."""
    fam = spec["fam"]
    embed_w, head_w = fam["embed"] + ".weight", fam["head"] + ".weight"
    if spec["tie"]:
        # tie_weights(): lm_head.weight *is* the embedding; a stored lm_head.weight is overwritten.
        if head_w in params and not torch.equal(params[head_w], params[embed_w]):
            warn("tie_word_embeddings=true but lm_head.weight differs from the embedding; using the embedding")
        params[head_w] = params[embed_w]
    need = _expected_shapes(spec)
    missing = [k for k in need if k not in params]
    if missing:
        raise KeyError(f"checkpoint is missing {len(missing)} tensors, e.g. {missing[:5]}")
    for k, shape in need.items():
        if tuple(params[k].shape) != shape:
            raise ValueError(f"{k}: shape {tuple(params[k].shape)} != expected {shape}")
    extra = sorted(set(params) - set(need))
    if extra:
        warn(f"{len(extra)} checkpoint tensors unused (HF would ignore them too), e.g. {extra[:5]}")
    return {k: params[k] for k in need}


def _expected_shapes(spec):
    fam, E, V = spec["fam"], spec["hidden"], spec["vocab"]
    H, KV, D, I = spec["n_heads"], spec["n_kv"], spec["head_dim"], spec["intermediate"]
    out_dims = dict(q=H * D, k=KV * D, v=KV * D, qkv=(H + 2 * KV) * D, o=E,
                    gate=I, up=I, gate_up=2 * I, down=E)
    in_dims = dict(q=E, k=E, v=E, qkv=E, o=H * D, gate=E, up=E, gate_up=E, down=I)
    shapes = {fam["embed"] + ".weight": (V, E), fam["head"] + ".weight": (V, E),
              fam["final_norm"] + ".weight": (E,)}
    if spec["norm"] == "layer":
        shapes[fam["final_norm"] + ".bias"] = (E,)
    if spec["position"] == "learned":
        shapes[fam["pos_embed"] + ".weight"] = (spec["max_positions"], E)
    for i in range(spec["n_layers"]):
        p = layer_prefix(spec, i)
        for ln in (fam["ln1"], fam["ln2"]):
            shapes[p + ln + ".weight"] = (E,)
            if spec["norm"] == "layer":
                shapes[p + ln + ".bias"] = (E,)
        for role, name in list(fam["attn"].items()) + list(fam["mlp"].items()):
            if role in ("q_norm", "k_norm"):
                shapes[p + name + ".weight"] = (D,)
                continue
            w = (in_dims[role], out_dims[role]) if spec["linear"] == "conv1d" else (out_dims[role], in_dims[role])
            shapes[p + name + ".weight"] = w
            if name in spec["biased"]:
                shapes[p + name + ".bias"] = (out_dims[role],)
    return shapes


# =============================================================================================
# Building blocks
# =============================================================================================

def rms_norm(x, weight, eps):
    # LlamaRMSNorm.forward: x * rsqrt(mean(x^2) + eps), then weight * (...). (float32 in HF; float64 here)
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def layer_norm(x, weight, bias, eps):
    # nn.LayerNorm: biased variance over the last dim.
    mu = x.mean(-1, keepdim=True)
    var = (x - mu).pow(2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * weight + bias


def activation(name):
    if name == "silu":
        return lambda x: x * torch.sigmoid(x)
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        # NewGELUActivation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); pytorch-tanh is the same formula
        return lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))
    if name == "gelu":
        return lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name == "relu":
        return torch.relu
    raise NotImplementedError(f"activation '{name}' not supported")


def dense(x, params, spec, lora, path, bias_suffix=None):
    """Apply projection `path`; + PEFT LoRA delta if the adapter targets it.

    nn.Linear: y = x W^T + b  (W [out, in]);  transformers Conv1D: y = x W + b  (W [in, out]).
    PEFT lora.Linear.forward: result = base(x) + lora_B(lora_A(dropout(x))) * scaling, where lora_A is
    an nn.Linear(in, r) and lora_B an nn.Linear(r, out) whatever fan_in_fan_out says, so the update is
    scaling * (x A^T) B^T for Conv1D too (fan_in_fan_out only matters when merging).
    With use_dora the entry also holds the magnitude "m" and the update is dora_extra's instead.
    """
    w = params[path + ".weight"]
    y = x @ w if linear_kind(spec, path) == "conv1d" else x @ w.t()
    key = bias_suffix if bias_suffix is not None else path
    bias = params[path + ".bias"] if (path + ".bias") in params and key in spec["biased"] else None
    if bias is not None:
        y = y + bias
    if lora and path in lora:
        a = lora[path]
        lora_result = (x @ a["A"].t()) @ a["B"].t()  # lora_B(lora_A(x)), dropout is 0
        if "m" in a:
            y = y + dora_extra(y, bias, lora_result, weight_out_in(w, spec, path), a)
        else:
            y = y + lora_result * a["scaling"]
    return y


def weight_out_in(w, spec, path):
    # peft.utils.other.transpose(weight, fan_in_fan_out): Conv1D [in, out] -> [out, in]; nn.Linear as is.
    return w.t() if linear_kind(spec, path) == "conv1d" else w


def dora_weight_norm(w_out_in, lora_weight, scaling):
    """DoraLinearLayer.get_weight_norm: L2 norm of (W + scaling * lora_weight) over dim 1, i.e. one norm per
    output feature. w_out_in is already transposed to [out, in] (get_weight_norm does it via fan_in_fan_out)."""
    return torch.linalg.norm(w_out_in + scaling * lora_weight, dim=1)


def dora_extra(base_result, bias, lora_result, w_out_in, a):
    """DoraLinearVariant.forward -> DoraLinearLayer.forward (dropout 0, so base_result is the base output):
        lora_weight    = lora_B(lora_A(eye)).T  == B @ A                 [out, in]
        weight_norm    = get_weight_norm(W, lora_weight.detach(), scaling).detach()
        mag_norm_scale = (magnitude / weight_norm).view(1, -1)
        base_result    = base_result - base_layer.bias   (when the base layer has a bias)
        result_dora    = (mag_norm_scale - 1) * base_result + mag_norm_scale * lora_result * scaling
    and Linear.forward adds result_dora to base_layer(x). Total: mag_norm_scale * (W x + s B A x) + bias,
    i.e. the bias is NOT rescaled by the magnitude (it was subtracted before scaling).
    Followed: peft main 5d602fd (== v0.20.0 here). Older releases (e.g. v0.12.0) recomputed the base as
    F.linear(x, W) without bias instead of subtracting it; same numbers."""
    weight_norm = dora_weight_norm(w_out_in, a["B"] @ a["A"], a["scaling"])
    mag_norm_scale = (a["m"] / weight_norm).view(1, -1)
    if bias is not None:
        base_result = base_result - bias
    return (mag_norm_scale - 1) * base_result + mag_norm_scale * lora_result * a["scaling"]


# ---------------------------------------------------------------- RoPE tables per scaling type

def _default_inv_freq(base, dim):
    # _compute_default_rope_parameters: 1 / base^(arange(0, dim, 2) / dim)
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=DT) / dim))


def _llama3_inv_freq(inv_freq, factor, low_freq_factor, high_freq_factor, old_context_len):
    """_compute_llama3_parameters: three wavelength bands.
    wavelen < old/high_freq_factor          -> unchanged (high frequencies)
    wavelen > old/low_freq_factor           -> inv_freq / factor (low frequencies)
    in between (both ends inclusive)        -> (1 - s) * inv/factor + s * inv,
                                               s = (old/wavelen - low_freq_factor) / (high - low)
    """
    wavelen = 2 * math.pi / inv_freq
    low_wl, high_wl = old_context_len / low_freq_factor, old_context_len / high_freq_factor
    out = torch.where(wavelen > low_wl, inv_freq / factor, inv_freq)
    smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = (wavelen >= high_wl) & (wavelen <= low_wl)
    return torch.where(medium, smoothed, out)


def rope_inv_freq(rope, dim, seq_len):
    """inv_freq [dim/2] for a forward whose largest position id is seq_len - 1."""
    kind, theta = rope["type"], rope["theta"]
    if kind == "default":
        return _default_inv_freq(theta, dim)
    if kind == "linear":
        # _compute_linear_scaling_rope_parameters divides inv_freq by factor (== positions / factor).
        return _default_inv_freq(theta, dim) / rope["factor"]
    if kind == "dynamic":
        # dynamic_rope_update -> dynamic_frequency_update: seq_len = max(position_ids) + 1; when it exceeds
        # the cached length (initially max_position_embeddings), _compute_dynamic_ntk_parameters is called
        # with that seq_len: L = max(seq_len, max_position_embeddings) and
        # base' = base * (factor * L / mpe - (factor - 1)) ** (dim / (dim - 2)).  For L == mpe, base' == base.
        # (A fresh model, one forward: no state carried from earlier, longer calls.)
        mpe, factor = rope["max_position_embeddings"], rope["factor"]
        length = max(seq_len, mpe)
        base = theta * ((factor * length / mpe) - (factor - 1)) ** (dim / (dim - 2))
        return _default_inv_freq(base, dim)
    if kind == "llama3":
        return _llama3_inv_freq(_default_inv_freq(theta, dim), rope["factor"], rope["low_freq_factor"],
                                rope["high_freq_factor"], rope["original_max_position_embeddings"])
    raise NotImplementedError(kind)


def rope_cos_sin(inv_freq, positions):
    # LlamaRotaryEmbedding.forward: freqs = pos x inv_freq; emb = cat(freqs, freqs); attention_scaling = 1
    # for default/linear/dynamic/llama3.
    freqs = positions.to(DT)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x, cos, sin):
    # x [B, heads, T, D]. Phi3's apply_rotary_pos_emb rotates the first cos.shape[-1] dims and passes the
    # rest through; with rotary_dim == head_dim this is Llama's apply_rotary_pos_emb.
    r = cos.shape[-1]
    x_rot, x_pass = x[..., :r], x[..., r:]
    return torch.cat((x_rot * cos + rotate_half(x_rot) * sin, x_pass), dim=-1)


# ---------------------------------------------------------------- attention

def attention_allowed(seq_len, sliding_window):
    """Boolean [T, T]: may query i attend key j?

    masking_utils.causal_mask_function: kv_idx <= q_idx
    masking_utils.sliding_window_overlay: kv_idx > q_idx - sliding_window
    => a token at i attends keys j with  i - sliding_window < j <= i  (sliding_window keys incl. itself).
    (Same as modeling_mistral's older `arange(target) <= cache_position - sliding_window` masking-out.)
    """
    i = torch.arange(seq_len)[:, None]
    j = torch.arange(seq_len)[None, :]
    ok = j <= i
    if sliding_window is not None:
        ok = ok & (j > i - sliding_window)
    return ok


def attention(q, k, v, scale, sliding_window):
    """eager_attention_forward: repeat_kv, softmax(q k^T * scale + mask) v.  q [B,H,T,D]; k,v [B,KV,T,D]."""
    n_rep = q.shape[1] // k.shape[1]
    # repeat_kv: kv head g serves query heads g*n_rep .. g*n_rep + n_rep - 1
    k = k.repeat_interleave(n_rep, dim=1)
    v = v.repeat_interleave(n_rep, dim=1)
    scores = (q @ k.transpose(-1, -2)) * scale
    allowed = attention_allowed(q.shape[2], sliding_window)
    scores = scores.masked_fill(~allowed, float("-inf"))  # every row keeps its diagonal: no NaN
    return torch.softmax(scores, dim=-1) @ v


def project_qkv(h, params, spec, lora, prefix):
    """q [B,T,H*D], k, v [B,T,KV*D] from separate q/k/v or a fused qkv (q rows, then k, then v)."""
    names = spec["fam"]["attn"]
    if "qkv" in names:
        qkv = dense(h, params, spec, lora, prefix + names["qkv"], names["qkv"])
        qd, kd = spec["n_heads"] * spec["head_dim"], spec["n_kv"] * spec["head_dim"]
        return qkv[..., :qd], qkv[..., qd:qd + kd], qkv[..., qd + kd:]
    return tuple(dense(h, params, spec, lora, prefix + names[r], names[r]) for r in ("q", "k", "v"))


def attention_block(h, params, spec, lora, layer, rope_cs):
    prefix, names = layer_prefix(spec, layer), spec["fam"]["attn"]
    B, T, _ = h.shape
    H, KV, D = spec["n_heads"], spec["n_kv"], spec["head_dim"]
    q, k, v = project_qkv(h, params, spec, lora, prefix)
    q, k, v = q.view(B, T, H, D), k.view(B, T, KV, D), v.view(B, T, KV, D)
    if "q_norm" in names:  # Qwen3Attention: per-head RMSNorm over head_dim, before the transpose and RoPE
        q = rms_norm(q, params[prefix + names["q_norm"] + ".weight"], spec["eps"])
        k = rms_norm(k, params[prefix + names["k_norm"] + ".weight"], spec["eps"])
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if rope_cs is not None:
        cos, sin = rope_cs
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    out = attention(q, k, v, spec["attn_scale"](layer), spec["sliding_window"])
    out = out.transpose(1, 2).reshape(B, T, H * D)
    return dense(out, params, spec, lora, prefix + names["o"], names["o"])


# ---------------------------------------------------------------- MLP variants

def mlp_block(h, params, spec, lora, layer):
    prefix, names, act = layer_prefix(spec, layer), spec["fam"]["mlp"], activation(spec["act"])
    d = lambda x, role: dense(x, params, spec, lora, prefix + names[role], names[role])
    if "gate_up" in names:  # Phi3MLP: gate, up = gate_up_proj(x).chunk(2); down(up * act(gate))
        gate, up = d(h, "gate_up").chunk(2, dim=-1)
        return d(act(gate) * up, "down")
    if "gate" in names:  # LlamaMLP (SwiGLU): down(act(gate(x)) * up(x))
        return d(act(d(h, "gate")) * d(h, "up"), "down")
    return d(act(d(h, "up")), "down")  # GPT2MLP: c_proj(act(c_fc(x)))


# ---------------------------------------------------------------- decoder layer / model

def norm(x, params, spec, name):
    if spec["norm"] == "rms":
        return rms_norm(x, params[name + ".weight"], spec["eps"])
    return layer_norm(x, params[name + ".weight"], params[name + ".bias"], spec["eps"])


def decoder_layer(x, params, spec, lora, layer, rope_cs):
    # Pre-norm residual block (LlamaDecoderLayer, Phi3DecoderLayer w/o dropout, GPT2Block):
    # x += attn(ln1(x)); x += mlp(ln2(x))
    p, fam = layer_prefix(spec, layer), spec["fam"]
    x = x + attention_block(norm(x, params, spec, p + fam["ln1"]), params, spec, lora, layer, rope_cs)
    x = x + mlp_block(norm(x, params, spec, p + fam["ln2"]), params, spec, lora, layer)
    return x


def embedding(params, lora, path, idx):
    """nn.Embedding lookup W[idx]; + PEFT lora.Embedding delta if the adapter targets `path`.

    lora.Embedding.forward (peft v0.20.0, tuners/lora/layer.py):
        result = self.base_layer(x)
        embedding_A = self.lora_embedding_A[active_adapter].T          # [num_embeddings, r]
        embedding_B = self.lora_embedding_B[active_adapter].T          # [r, embedding_dim]
        after_A = self._embed(x, embedding_A)                          # F.embedding(x, A.T, padding_idx=...,
        adapter_output = (after_A @ embedding_B) * scaling             #   max_norm=..., ...) of the base layer
        result = result + adapter_output
    padding_idx only shapes gradients (F.embedding's forward is a plain row lookup) and transformers' embeddings
    have max_norm=None, so the forward is W[x] + (A.T[x] @ B.T) * scaling. No lora_dropout on this path."""
    y = params[path + ".weight"][idx]
    if lora and path in lora:
        a = lora[path]
        y = y + (a["A"].t()[idx] @ a["B"].t()) * a["scaling"]
    return y


def forward(params, spec, ids, lora=None):
    """ids LongTensor [B, T] -> logits float64 [B, T, V]. Full forward, no KV cache."""
    fam = spec["fam"]
    B, T = ids.shape
    positions = torch.arange(T)
    x = embedding(params, lora, fam["embed"], ids)
    rope_cs = None
    if spec["position"] == "learned":
        if T > spec["max_positions"]:
            raise ValueError(f"sequence length {T} > n_positions {spec['max_positions']}")
        x = x + embedding(params, lora, fam["pos_embed"], positions)[None]
    else:
        rope_cs = rope_cos_sin(rope_inv_freq(spec["rope"], spec["rotary_dim"], T), positions)
    for layer in range(spec["n_layers"]):
        x = decoder_layer(x, params, spec, lora, layer, rope_cs)
    x = norm(x, params, spec, fam["final_norm"])
    return dense(x, params, spec, lora, fam["head"], "lm_head")


def next_token_loss(logits, ids):
    # ForCausalLMLoss: logits[:, :-1] predict ids[:, 1:], mean over all (B * (T-1)) positions.
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    return -logp.gather(-1, ids[:, 1:, None]).mean().item()


# =============================================================================================
# PEFT LoRA
# =============================================================================================

def get_pattern_key(pattern_keys, key_to_match):
    """peft.utils.other.get_pattern_key: the first key (in dict order) with
    re.match(rf"(.*\\.)?({key})$", module_path); else the module path itself (which no pattern holds).
    The key is a raw regex fragment; module_path is the module name inside the base model
    (e.g. "model.layers.0.self_attn.q_proj", no "base_model.model." prefix).
    Older PEFT differs: ~0.10/0.11 LoraModel._create_and_replace did ONE lookup over rank_pattern keys then
    alpha_pattern keys with re.match(rf".*\.{key}$") and used that key for both r and alpha; an intermediate
    get_pattern_key used re.match(f".*\.{key}$") (key must follow a dot). Here: recent PEFT, r and alpha
    looked up separately."""
    for key in pattern_keys:
        if re.match(rf"(.*\.)?({key})$", key_to_match):
            return key
    return key_to_match


_LORA_KEY = re.compile(r"^base_model\.model\.(?P<path>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")
# DoRA magnitude. get_peft_model_state_dict (LoraModel._get_adapter_state_dict; save_and_load.py before the
# tuner refactor) strips ".weight" from "lora_magnitude_vector.<adapter>.weight", then the adapter name goes:
# saved key "base_model.model.<path>.lora_magnitude_vector". Loading accepts that and also
# "<path>.lora_magnitude_vector.weight" (the remap appends ".weight" to the first; the second already is the
# model key minus the adapter name), so both spellings are read here.
_MAGNITUDE_KEY = re.compile(r"^base_model\.model\.(?P<path>.+)\.lora_magnitude_vector(?:\.weight)?$")


# Embedding LoRA (lora.Embedding): lora_embedding_A / lora_embedding_B are nn.ParameterDict entries, so the model
# key is "<path>.lora_embedding_A.<adapter>" (no ".weight"); get_peft_model_state_dict's remove_adapter_name
# ("if key.endswith(f'.{adapter_name}'): return key.removesuffix(...)  # comes from an nn.Parameter") saves
# "base_model.model.<path>.lora_embedding_A". On load, _insert_adapter_name_into_state_dict (parameter_prefix
# "lora_") appends ".<adapter>" to a key whose text after the last "lora_" has no "." -- so only that spelling
# loads; "...lora_embedding_A.weight" would become "lora_embedding_A.<adapter>.weight", an unexpected key that
# load_state_dict(strict=False) drops (leaving PEFT's init in place). That spelling is refused here.
_EMB_KEY = re.compile(r"^base_model\.model\.(?P<path>.+)\.lora_embedding_(?P<ab>[AB])(?P<w>\.weight)?$")
# save_embedding_layers="auto" (save_pretrained's default) sets it True when config.target_modules is a list
# holding "embed_tokens" or "lm_head" (EMBEDDING_LAYER_NAMES), and then saves every state-dict key containing
# the name of the base_layer of get_input_embeddings()/get_output_embeddings() when that layer is LoRA-wrapped:
# "base_model.model.<path>.base_layer.weight" (the full base weight). Loading copies it into the base layer.
# trainable_token_indices (peft utils/other.py TrainableTokensWrapper.adapter_state_dict): only the wrapper's
# "token_adapter.trainable_tokens_delta" (a ParameterDict entry, so no ".weight") is saved, keyed
# "base_model.model.<path>.token_adapter.trainable_tokens_delta" [n, dim]; a tied head's token adapter saves nothing.
_TOKEN_ROWS_KEY = re.compile(r"^base_model\.model\.(?P<path>.+)\.token_adapter\.trainable_tokens_delta$")
_BASE_LAYER_KEY = re.compile(r"^base_model\.model\.(?P<path>.+)\.base_layer\.(?P<param>weight|bias)$")


def embedding_paths(spec):
    """The nn.Embedding modules a LoRA adapter may target (lora.Embedding): token embedding, and GPT-2's wpe."""
    fam = spec["fam"]
    return [fam["embed"]] + ([fam["pos_embed"]] if spec["position"] == "learned" else [])


def module_names(params):
    """Every module of the HF model that owns (directly or below it) a parameter: the proper dotted prefixes
    of the parameter names (named_modules() minus parameter-less modules such as rotary_emb or act_fn)."""
    names = set()
    for k in params:
        parts = k.split(".")
        for i in range(1, len(parts)):
            names.add(".".join(parts[:i]))
    return sorted(names)


def modules_to_save_targets(spec, params, names, lora_paths=()):
    """peft.utils.other._set_trainable (v0.20.0), which wraps each module that
        target_module_found = any(key.endswith(target_key) for target_key in module_names)
    over model.named_modules(remove_duplicate=False) -- a plain string suffix test, no "." boundary, so "norm"
    hits model.norm and every input_layernorm/post_attention_layernorm/q_norm/k_norm, "head" hits lm_head.
    The wrapper (ModulesToSaveWrapper.update) holds copy.deepcopy(original_module) and the forward uses that copy.
    Returns the matched module names; refuses matches nested in one another or overlapping a LoRA target."""
    names = [n for n in (names or []) if n]
    hits = [m for m in module_names(params) if any(m.endswith(t) for t in names)]
    unmatched = [t for t in names if not any(m.endswith(t) for m in module_names(params))]
    if unmatched:
        warn(f"modules_to_save {unmatched} match no module with parameters (PEFT skips them silently)")
    for m in hits:
        for o in hits:
            if o != m and o.startswith(m + "."):
                raise NotImplementedError(f"modules_to_save matches both {m} and {o} inside it")
        for p in lora_paths:
            if p == m or p.startswith(m + ".") or m.startswith(p + "."):
                raise NotImplementedError(f"modules_to_save module {m} overlaps the LoRA target {p}")
    return hits


def module_params(params, module):
    """The parameter names of `module` (its state_dict keys, prefixed): what its ModulesToSaveWrapper saves."""
    return [k for k in params if k.startswith(module + ".")]


def load_adapter(adapter_dir, spec, params):
    """Read a PEFT LoRA adapter folder. Returns (lora, saved):
    lora  {module_path: {A [r,in], B [out,r], scaling[, m [out] with use_dora]}} for Linear/Conv1D targets and
          {A [r, num_embeddings], B [embedding_dim, r], scaling, embedding: True} for nn.Embedding targets,
          following LoraModel._create_and_replace: r = rank_pattern[get_pattern_key(rank_pattern, path)] or r;
          alpha likewise from alpha_pattern; scaling = alpha / r, or alpha / sqrt(r) with use_rslora
          (LoraLayer.update_layer / lora.Embedding.update_layer).
    saved {"base_layer": {param: tensor}, "modules_to_save": {param: tensor}, "modules": [module names]}:
          base weights saved by save_embedding_layers (loaded into the LoRA layer's base_layer) and the full
          copies of the modules_to_save modules (apply_saved_modules puts both into a params dict)."""
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        cfg = json.load(f)
    if cfg.get("peft_type", "LORA") != "LORA":
        raise NotImplementedError(f"peft_type {cfg.get('peft_type')} not supported")
    if cfg.get("lora_bias"):
        raise NotImplementedError("adapter_config lora_bias=true not supported")
    token_targets = trainable_token_targets(spec, params, cfg.get("trainable_token_indices"),
                                            cfg.get("modules_to_save") or [])
    use_dora = bool(cfg.get("use_dora"))
    st = os.path.join(adapter_dir, "adapter_model.safetensors")
    tensors = read_safetensors(st)[0] if os.path.exists(st) else dict(
        torch.load(os.path.join(adapter_dir, "adapter_model.bin"), map_location="cpu"))
    emb_known = set(embedding_paths(spec))
    # which modules the LoRA tensors target (needed first: modules_to_save may not overlap them)
    lora_paths = set()
    for key in tensors:
        for rx in (_LORA_KEY, _MAGNITUDE_KEY, _EMB_KEY):
            m = rx.match(key)
            if m:
                lora_paths.add(m["path"])
    mts_names = cfg.get("modules_to_save") or []
    if isinstance(mts_names, str):
        mts_names = [mts_names]
    mts_modules = modules_to_save_targets(spec, params, mts_names, sorted(lora_paths))
    if cfg.get("ensure_weight_tying") and spec["tie"] and (
            any(m in (spec["fam"]["embed"], spec["fam"]["head"]) for m in mts_modules)
            or any(p in (spec["fam"]["embed"], spec["fam"]["head"]) for p in lora_paths)):
        # LoraModel._add_modules_to_save_to_tie / _add_targets_to_tie re-tie the copies / adapters; not modelled.
        raise NotImplementedError("ensure_weight_tying=true on a tied model with a tied layer in the adapter")
    # ModulesToSaveWrapper.adapter_state_dict: {k: state_dict[f"modules_to_save.{adapter}.{k}"] for k in
    # modules_to_save[adapter].state_dict()}, keyed f"{name}.{k}" by get_peft_model_state_dict -> saved as
    # "base_model.model.<module>.<param>" (e.g. base_model.model.lm_head.weight). set_peft_model_state_dict maps
    # exactly those keys back via adapter_state_dict_load_map ({k: f"modules_to_save.{adapter}.{k}"}) and reads
    # peft_model_state_dict[lookup_key] unconditionally, so a missing one is a KeyError there too.
    mts_keys = {f"base_model.model.{p}": p for m in mts_modules for p in module_params(params, m)}
    pieces, saved, plain_base = {}, {"base_layer": {}, "modules_to_save": {}, "modules": mts_modules,
                                     "token_rows": {}}, {}
    for key, t in tensors.items():
        tok = _TOKEN_ROWS_KEY.match(key)
        if tok:
            path = tok["path"]
            if path not in token_targets:
                raise ValueError(f"adapter tensor {key}: no trainable_token_indices entry wraps {path}")
            idx = token_targets[path]
            if tuple(t.shape) != (len(idx), params[path + ".weight"].shape[1]):
                raise ValueError(f"{key}: shape {tuple(t.shape)} != [{len(idx)} indices, "
                                 f"{params[path + '.weight'].shape[1]}]")
            saved["token_rows"][path] = (idx, t.to(DT))
            continue
        if key in mts_keys:
            p = mts_keys[key]
            if tuple(t.shape) != tuple(params[p].shape):
                raise ValueError(f"{key}: shape {tuple(t.shape)} != the model's {tuple(params[p].shape)}")
            saved["modules_to_save"][p] = t.to(DT)
            continue
        m, mag, emb, base = _LORA_KEY.match(key), _MAGNITUDE_KEY.match(key), _EMB_KEY.match(key), \
            _BASE_LAYER_KEY.match(key)
        if mag:
            if not use_dora:
                # PEFT would build no magnitude parameter and drop the tensor as an unexpected key; a DoRA
                # checkpoint paired with a use_dora=false config is almost surely a mistake, so refuse.
                raise ValueError(f"adapter tensor {key} is a DoRA magnitude but adapter_config use_dora is false")
            if "m" in pieces.get(mag["path"], {}):
                raise ValueError(f"{mag['path']}: two DoRA magnitudes (with and without .weight)")
            pieces.setdefault(mag["path"], {})["m"] = t.to(DT)
            continue
        if emb:
            if emb["w"]:
                raise ValueError(f"adapter tensor {key}: PEFT saves lora_embedding_A/B without '.weight' and would "
                                 "not load this spelling (unexpected key; the embedding LoRA would stay at init)")
            if emb["path"] not in emb_known:
                raise KeyError(f"adapter has embedding LoRA on '{emb['path']}', which is not an nn.Embedding of "
                               f"this {spec['family']} model ({', '.join(sorted(emb_known))})")
            pieces.setdefault(emb["path"], {"embedding": True})[emb["ab"]] = t.to(DT)
            continue
        if base:
            p = base["path"] + "." + base["param"]
            if p not in params:
                raise KeyError(f"adapter tensor {key}: the model has no {p}")
            if tuple(t.shape) != tuple(params[p].shape):
                raise ValueError(f"{key}: shape {tuple(t.shape)} != the model's {tuple(params[p].shape)}")
            saved["base_layer"][p] = t.to(DT)
            continue
        plain = key[len("base_model.model."):] if key.startswith("base_model.model.") else None
        if not m and plain in params:
            # a base-model key (save_embedding_layers=True on an untargeted embedding, or a resized vocabulary):
            # load_state_dict(strict=False) loads it into that module -- unless the module is LoRA-wrapped, where
            # the key no longer exists (it moved to base_layer) and is dropped as unexpected.
            if tuple(t.shape) != tuple(params[plain].shape):
                raise ValueError(f"{key}: shape {tuple(t.shape)} != the model's {tuple(params[plain].shape)}")
            plain_base[plain] = t.to(DT)
            continue
        if not m:
            raise NotImplementedError(f"adapter tensor {key} is not a LoRA A/B weight, lora_embedding_A/B, DoRA "
                                      "magnitude, saved base_layer or modules_to_save weight of this config")
        if m["path"] in emb_known:
            raise ValueError(f"{key}: an nn.Embedding target holds lora_embedding_A/B, not lora_A/lora_B")
        pieces.setdefault(m["path"], {})[m["ab"]] = t.to(DT)
    lacking = sorted(set(token_targets) - set(saved["token_rows"]))
    if lacking:
        # set_peft_model_state_dict reads the load map's key unconditionally: a KeyError in PEFT too
        raise KeyError(f"trainable_token_indices wraps {lacking}, but the adapter has no token_adapter rows for it")
    missing = sorted(set(mts_keys) - {f"base_model.model.{p}" for p in saved["modules_to_save"]})
    if missing:
        raise KeyError(f"modules_to_save {mts_names}: adapter lacks {missing[:5]} (PEFT's load raises KeyError)")
    for p in sorted(saved["base_layer"]):
        if p.rsplit(".", 1)[0] not in pieces:
            # the key names no LoRA-wrapped layer, so PEFT's load_state_dict(strict=False) ignores it
            warn(f"adapter holds {p} as base_layer of an untargeted module; ignored as PEFT does")
            del saved["base_layer"][p]
        elif not torch.equal(saved["base_layer"][p], params[p]):
            warn(f"adapter's saved base_layer {p} differs from the model's; PEFT loads the saved one (used here)")
    for p, t in plain_base.items():
        if p.rsplit(".", 1)[0] in pieces:
            warn(f"adapter holds {p} for a LoRA-wrapped module; ignored as PEFT does (unexpected key)")
        elif p in saved["base_layer"]:
            raise ValueError(f"adapter holds {p} twice (plain and as base_layer)")
        else:
            if not torch.equal(t, params[p]):
                warn(f"adapter's saved {p} differs from the model's; PEFT loads the saved one (used here)")
            saved["base_layer"][p] = t
    r_default, alpha_default = int(cfg["r"]), float(cfg["lora_alpha"])
    rank_pattern, alpha_pattern = cfg.get("rank_pattern") or {}, cfg.get("alpha_pattern") or {}
    known = set(dense_paths(spec))
    lora = {}
    for path, ab in pieces.items():
        if not {"A", "B"} <= set(ab):
            raise ValueError(f"{path}: needs both " + (
                "lora_embedding_A and lora_embedding_B" if ab.get("embedding") else "lora_A and lora_B"))
        r = int(rank_pattern.get(get_pattern_key(rank_pattern.keys(), path), r_default))
        alpha = float(alpha_pattern.get(get_pattern_key(alpha_pattern.keys(), path), alpha_default))
        scaling = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
        A, B = ab["A"], ab["B"]
        if ab.get("embedding"):
            if use_dora:
                raise NotImplementedError(f"{path}: DoRA on an nn.Embedding (DoraEmbeddingVariant) not supported")
            num, dim = params[path + ".weight"].shape
            if tuple(A.shape) != (r, num) or tuple(B.shape) != (dim, r):
                raise ValueError(f"{path}: lora_embedding_A {tuple(A.shape)} / lora_embedding_B {tuple(B.shape)} "
                                 f"do not match r={r}, num_embeddings={num}, embedding_dim={dim}")
            lora[path] = dict(A=A, B=B, scaling=scaling, embedding=True)
            continue
        if use_dora and "m" not in ab:
            # DoraLinearVariant.init creates a magnitude for every targeted Linear, so a saved DoRA adapter
            # has one per module; without it PEFT would keep the init value ||W||, which we cannot know
            # was intended.
            raise ValueError(f"{path}: use_dora=true but no {path}.lora_magnitude_vector in the adapter")
        if path not in known:
            raise KeyError(f"adapter targets '{path}', which is not a projection of this {spec['family']} model")
        w = params[path + ".weight"]
        fan_in, fan_out = (w.shape[0], w.shape[1]) if linear_kind(spec, path) == "conv1d" else (w.shape[1], w.shape[0])
        if tuple(A.shape) != (r, fan_in) or tuple(B.shape) != (fan_out, r):
            raise ValueError(f"{path}: lora_A {tuple(A.shape)} / lora_B {tuple(B.shape)} do not match "
                             f"r={r} (from r/rank_pattern), in={fan_in}, out={fan_out}")
        is_conv1d = linear_kind(spec, path) == "conv1d"
        if bool(cfg.get("fan_in_fan_out", False)) != is_conv1d:
            # PEFT forces fan_in_fan_out=True for Conv1D and False for nn.Linear (with a warning).
            warn(f"{path}: fan_in_fan_out={cfg.get('fan_in_fan_out')} overridden as PEFT does "
                 f"({'Conv1D' if is_conv1d else 'nn.Linear'})")
        lora[path] = dict(A=A, B=B, scaling=scaling)
        if use_dora:
            if tuple(ab["m"].shape) != (fan_out,):
                raise ValueError(f"{path}: lora_magnitude_vector {tuple(ab['m'].shape)} != [out={fan_out}]")
            lora[path]["m"] = ab["m"]
    if not lora and not saved["modules_to_save"] and not saved["token_rows"]:
        raise ValueError("adapter holds no LoRA weights")
    return lora, saved


def trainable_token_targets(spec, params, indices, modules_to_save):
    """peft utils/other.py set_additional_trainable_modules (v0.20.0-47) for LoraConfig.trainable_token_indices:
    a list means {get_input_embeddings name: list}; a dict maps module names (matched by key.endswith, strict) to
    lists. A name also in modules_to_save is a ValueError. With tie_word_embeddings and the input embedding
    wrapped, every module tied to it (lm_head) gets a TrainableTokensWrapper tied to the embedding's token adapter
    (same indices, same delta, nothing saved); a dict that names lm_head too with the same indices skips it for
    that reason, with other indices it would wrap it separately (not modelled: refused).
    Returns {module path: [indices]} of the wrappers that own (and save) rows."""
    if not indices:
        return {}
    fam = spec["fam"]
    targets = {fam["embed"]: list(indices)} if isinstance(indices, list) else dict(indices)
    names = module_names(params)
    out = {}
    for key, idx in targets.items():
        if key in modules_to_save:
            raise ValueError(f"trainable_token_indices and modules_to_save both name {key}")
        hits = [m for m in names if m.endswith(key) and m + ".weight" in params]
        if len(hits) != 1:
            raise ValueError(f"trainable_token_indices key {key} matches {hits}, not exactly one module")
        path = hits[0]
        if spec["tie"] and path == fam["head"]:
            embed_idx = targets.get(fam["embed"]) or next(
                (v for k, v in targets.items() if fam["embed"].endswith(k)), None)
            if embed_idx != list(idx):
                raise NotImplementedError("tied lm_head with other token indices than the embedding")
            continue
        if len(set(idx)) != len(idx):
            raise ValueError(f"trainable_token_indices[{key}] repeats an index")
        if min(idx) < 0 or max(idx) >= params[path + ".weight"].shape[0]:
            raise ValueError(f"trainable_token_indices[{key}] outside the {params[path + '.weight'].shape[0]} rows")
        out[path] = list(idx)
    return out


def apply_saved_modules(params, saved):
    """The params the PEFT model computes with, before any merge.
    1. saved base_layer weights: load_state_dict copies them into the base layer's Parameter; with tied
       embeddings that Parameter is also lm_head.weight, so every name sharing the tensor gets the new one.
    2. modules_to_save: each wrapped module is a deepcopy, so its parameters are new tensors -- on a tied model a
       saved lm_head copy leaves the embedding on the base weight, and a saved embed_tokens/wte copy leaves
       lm_head on the base weight (tie_word_embeddings is broken for that adapter; PEFT only warns, unless the
       config has ensure_weight_tying, which load_adapter refuses)."""
    out = dict(params)
    for p, t in saved["base_layer"].items():
        old = params[p]
        for q in params:
            if params[q] is old:
                out[q] = t
    for p, t in saved["modules_to_save"].items():
        out[p] = t
    # trainable tokens: TrainableTokensLayer.get_merged_weights = W.index_copy(0, indices, delta) -- the delta holds
    # the rows' values, not differences -- used by the embedding's forward (F.embedding with W') and, through the
    # tied adapter, by a tied lm_head's (F.linear with the same W'). merge() writes the same W' into the weight, so
    # merged and unmerged agree. Replacing every name that shares the tensor gives the tied head the rows.
    for path, (idx, rows) in saved.get("token_rows", {}).items():
        old = out[path + ".weight"]
        new = old.index_copy(0, torch.tensor(idx), rows)
        for q in list(out):
            if out[q] is old:
                out[q] = new
    return out


def load_lora(adapter_dir, spec, params):
    """Linear/Conv1D LoRA/DoRA entries only (the add_weighted_adapter reference, combine_reference.py, uses this):
    adapters with embedding LoRA or modules_to_save are refused, as before they were supported at all."""
    lora, saved = load_adapter(adapter_dir, spec, params)
    if any(a.get("embedding") for a in lora.values()) or saved["modules_to_save"] or saved["token_rows"]:
        raise NotImplementedError("adapter has embedding LoRA, modules_to_save or token rows: use load_adapter")
    for p, t in saved["base_layer"].items():
        if not torch.equal(t, params[p]):
            raise NotImplementedError(f"adapter's saved base_layer {p} differs from the model's")
    if not lora:
        raise ValueError("adapter holds no LoRA weights")
    return lora


def merge_lora(params, spec, lora):
    """lora.Linear.merge / get_delta_weight: W += transpose(B @ A, fan_in_fan_out) * scaling,
    i.e. (B @ A) * s for nn.Linear [out, in] and (B @ A).T * s for Conv1D [in, out]; DoRA entries
    go through dora_merged_weight instead."""
    merged = dict(params)
    head = spec["fam"]["head"]
    for path, a in lora.items():
        if a.get("embedding"):
            # lora.Embedding.get_delta_weight: transpose(weight_B @ weight_A, True) * scaling = (B @ A).T * s,
            # [num_embeddings, embedding_dim] like the weight; merge: base_layer.weight.data += delta (or, with
            # safe_merge, base_layer.weight.data = orig + delta). Either way the Parameter object is kept, so on a
            # tied model lm_head.weight -- the same Parameter -- changes too: the merged model's output projection
            # uses W + delta, while the unmerged one used W. Followed here (every name sharing the tensor).
            old = params[path + ".weight"]
            new = old + (a["B"] @ a["A"]).t() * a["scaling"]
            for q in params:
                if params[q] is old:
                    merged[q] = new
            if merged.get(head + ".weight") is new:
                warn(f"merging the embedding LoRA on {path} also changes the tied lm_head (PEFT merges into the "
                     "shared weight), so merged logits differ from unmerged ones")
            continue
        if path == head and spec["tie"]:
            raise NotImplementedError("merging a LoRA on a tied lm_head would also change the embedding")
        delta = (a["B"] @ a["A"]) * a["scaling"]
        if "m" in a:
            merged[path + ".weight"] = dora_merged_weight(params[path + ".weight"], delta, a["m"], spec, path)
            continue
        if linear_kind(spec, path) == "conv1d":
            delta = delta.t()
        merged[path + ".weight"] = params[path + ".weight"] + delta
    return merged


def dora_merged_weight(w, delta_out_in, magnitude, spec, path):
    """DoraLinearVariant.merge_safe: delta_weight = get_delta_weight() already carries the scaling, so
        weight_norm = get_weight_norm(W, transpose(delta_weight, fan_in_fan_out), scaling=1).detach()
        dora_factor = transpose((magnitude / weight_norm).view(-1, 1), fan_in_fan_out)
        W'          = dora_factor * (W + delta_weight)
    (for Conv1D W and delta_weight are [in, out] and dora_factor a [1, out] row). The bias is untouched,
    matching dora_extra, which leaves the bias outside the magnitude scaling."""
    weight_norm = dora_weight_norm(weight_out_in(w, spec, path), delta_out_in, 1.0)
    dora_factor = (magnitude / weight_norm).view(-1, 1)
    if linear_kind(spec, path) == "conv1d":
        return dora_factor.t() * (w + delta_out_in.t())
    return dora_factor * (w + delta_out_in)


# =============================================================================================
# Writing a random adapter the way PEFT's save_pretrained lays it out (for other programs to load)
# =============================================================================================

def peft_target_paths(spec, targets):
    """check_target_module_exists with a list target_modules: the module path is listed itself, or ends
    with "." + a listed name (so gpt2 "c_proj" hits attn.c_proj and mlp.c_proj). Projections first (in
    dense_paths order), then nn.Embedding modules (embed_tokens / wte, wpe), which PEFT wraps as lora.Embedding."""
    return [p for p in dense_paths(spec) + embedding_paths(spec)
            if p in targets or any(p.endswith("." + t) for t in targets)]


def lora_fan(params, spec, path):
    """(in_features, out_features) of the module PEFT wraps; Conv1D stores its weight [in, out]."""
    w = params[path + ".weight"]
    return (w.shape[0], w.shape[1]) if linear_kind(spec, path) == "conv1d" else (w.shape[1], w.shape[0])


def random_adapter_tensors(params, spec, paths, r, scaling, dora, seed, std):
    """get_peft_model_state_dict keys: base_model.model.<path>.lora_A.weight [r, in], .lora_B.weight [out, r]
    and, for DoRA, .lora_magnitude_vector [out]; float32 like a float32 PeftModel saves them.
    A and B are both nonzero (PEFT's init has B = 0, which would make the adapter a no-op). The magnitude is
    ||W + scaling * B A|| per output row (what DoraLinearLayer.update_layer would store for these A, B),
    computed from the float32-rounded A, B actually saved, times a random factor in [0.8, 1.2] so that
    DoRA differs from plain LoRA.
    nn.Embedding targets: base_model.model.<path>.lora_embedding_A [r, num_embeddings] and .lora_embedding_B
    [embedding_dim, r] (ParameterDict entries: no ".weight"); both nonzero (PEFT's init has A = 0)."""
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    emb = set(embedding_paths(spec))
    for path in paths:
        key = f"base_model.model.{path}"
        if path in emb:
            num, dim = params[path + ".weight"].shape
            A = (torch.randn(r, num, generator=gen, dtype=DT) * std).float()
            B = (torch.randn(dim, r, generator=gen, dtype=DT) * std).float()
            tensors[key + ".lora_embedding_A"], tensors[key + ".lora_embedding_B"] = A, B
            continue
        fan_in, fan_out = lora_fan(params, spec, path)
        A = (torch.randn(r, fan_in, generator=gen, dtype=DT) * std).float()
        B = (torch.randn(fan_out, r, generator=gen, dtype=DT) * std).float()
        tensors[key + ".lora_A.weight"], tensors[key + ".lora_B.weight"] = A, B
        if dora:
            w = weight_out_in(params[path + ".weight"], spec, path)
            norm = dora_weight_norm(w, B.to(DT) @ A.to(DT), scaling)
            factor = 0.8 + 0.4 * torch.rand(fan_out, generator=gen, dtype=DT)
            tensors[key + ".lora_magnitude_vector"] = (norm * factor).float()
    return tensors, gen


def peft_adapter_config(model_dir, targets, r, alpha, dora, fan_in_fan_out, modules_to_save=None):
    """The LoraConfig fields adapter_config.json carries (LoraConfig.to_dict; the rarer ones left out).
    lora_alpha is written as an int when integral, as LoraConfig declares it int."""
    return dict(
        alpha_pattern={}, auto_mapping=None, base_model_name_or_path=model_dir, bias="none",
        exclude_modules=None, fan_in_fan_out=fan_in_fan_out, inference_mode=True, init_lora_weights=True,
        layers_pattern=None, layers_to_transform=None,
        lora_alpha=int(alpha) if float(alpha).is_integer() else float(alpha), lora_bias=False,
        lora_dropout=0.0, modules_to_save=list(modules_to_save) if modules_to_save else None, peft_type="LORA",
        r=int(r), rank_pattern={}, revision=None,
        target_modules=sorted(targets), task_type="CAUSAL_LM", use_dora=bool(dora), use_rslora=False)


EMBEDDING_LAYER_NAMES = ["embed_tokens", "lm_head"]  # peft.utils.constants


def write_peft_adapter(out_dir, model_dir, targets, r, alpha, dora=False, seed=1, std=0.05, modules_to_save=None,
                       save_embedding_layers="auto", trainable_tokens=None):
    """Random LoRA/DoRA adapter for the model in model_dir, saved as PEFT's save_pretrained would.

    modules_to_save: names as in LoraConfig.modules_to_save; every module whose name ends with one of them
    (_set_trainable's key.endswith) is saved in full as base_model.model.<module>.<param>, with values
    base + N(0, std) (drawn after the LoRA tensors, same generator) so the copy visibly differs from the base.
    save_embedding_layers: "auto" (save_pretrained's default) or False. "auto" is True when target_modules
    (a list) holds "embed_tokens" or "lm_head"; then get_peft_model_state_dict also saves, for the input and
    the output embedding layer when LoRA-wrapped, base_model.model.<path>.base_layer.weight (the base weight,
    float32 here). gpt2's "wte" is not in EMBEDDING_LAYER_NAMES, so a wte-only target saves no base layer."""
    spec, params = load_model(model_dir)
    targets = [t.strip() for t in targets if t.strip()]
    paths = peft_target_paths(spec, targets)
    if not paths:  # PEFT: "Target modules ... not found in the base model"
        raise ValueError(f"target_modules {targets} match no projection of this {spec['family']} model")
    unmatched = [t for t in targets if not peft_target_paths(spec, [t])]
    if unmatched:
        warn(f"target_modules {unmatched} match nothing (PEFT ignores such entries if others match)")
    emb_paths = [p for p in paths if p in embedding_paths(spec)]
    if dora and emb_paths:
        raise NotImplementedError(f"DoRA on nn.Embedding targets {emb_paths} is not supported")
    mts_names = [m.strip() for m in (modules_to_save or []) if m.strip()]
    mts_modules = modules_to_save_targets(spec, params, mts_names, paths)
    if mts_names and not mts_modules:
        raise ValueError(f"modules_to_save {mts_names} match no module of this {spec['family']} model")
    tensors, gen = random_adapter_tensors(params, spec, paths, int(r), float(alpha) / int(r), dora, seed, std)
    for m in mts_modules:
        for p in module_params(params, m):
            tensors[f"base_model.model.{p}"] = (params[p] + torch.randn(params[p].shape, generator=gen, dtype=DT)
                                                * std).float()
    if trainable_tokens:
        # TrainableTokensLayer.update_layer starts the rows at W[indices]; base + N(0, std) so they visibly differ.
        emb = spec["fam"]["embed"]
        if emb in paths or any(emb.endswith(m) for m in mts_names):
            raise ValueError("trainable tokens on an embedding that is also a LoRA target or in modules_to_save")
        w = params[emb + ".weight"]
        rows = w[torch.tensor(trainable_tokens)] + torch.randn(len(trainable_tokens), w.shape[1], generator=gen,
                                                                 dtype=DT) * std
        tensors[f"base_model.model.{emb}.token_adapter.trainable_tokens_delta"] = rows.float()
    if save_embedding_layers not in ("auto", False):
        raise ValueError("save_embedding_layers must be 'auto' or False here")
    if save_embedding_layers == "auto" and any(t in targets for t in EMBEDDING_LAYER_NAMES):
        fam = spec["fam"]
        for layer in (fam["embed"], fam["head"]):  # get_input_embeddings(), get_output_embeddings()
            if layer in paths:  # has_valid_embedding_base_layer: LoRA-wrapped
                for p in module_params(params, layer):
                    tensors[f"base_model.model.{layer}.base_layer.{p[len(layer) + 1:]}"] = params[p].float()
    os.makedirs(out_dir, exist_ok=True)
    # save_pretrained -> safe_save_file(output_state_dict, ..., metadata={"format": "pt"})
    write_safetensors(os.path.join(out_dir, "adapter_model.safetensors"), tensors, {"format": "pt"})
    # lora.layer.dispatch_default forces fan_in_fan_out=True on Conv1D targets; a gpt2 config says so.
    fifo = any(linear_kind(spec, p) == "conv1d" for p in paths if p not in emb_paths)
    with open(os.path.join(out_dir, "adapter_config.json"), "w") as f:
        config = peft_adapter_config(model_dir, targets, r, alpha, dora, fifo, mts_names)
        config["trainable_token_indices"] = list(trainable_tokens) if trainable_tokens else None
        json.dump(config, f, indent=2, sort_keys=True)
    return paths


# =============================================================================================
# CLI
# =============================================================================================

def load_model(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    spec = build_spec(config)
    return spec, load_params(model_dir, spec)


def run(model_dir, ids, adapter_dir=None, merge=False):
    spec, params = load_model(model_dir)
    ids = torch.as_tensor(ids, dtype=torch.long)
    if ids.dim() != 2 or ids.shape[1] < 1:
        raise ValueError("ids must be a non-empty list of equal-length lists")
    if int(ids.min()) < 0 or int(ids.max()) >= spec["vocab"]:
        raise ValueError("token id out of range")
    lora = None
    if adapter_dir:
        lora, saved = load_adapter(adapter_dir, spec, params)
        params = apply_saved_modules(params, saved)  # modules_to_save copies are full weights: --merge keeps them
    if lora and merge:
        params, lora = merge_lora(params, spec, lora), None
    with torch.no_grad():
        logits = forward(params, spec, ids, lora)
    loss = next_token_loss(logits, ids) if ids.shape[1] > 1 else float("nan")
    return logits, loss


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model")
    ap.add_argument("--adapter")
    ap.add_argument("--merge", action="store_true", help="merge the adapter into the weights first")
    ap.add_argument("--ids")
    ap.add_argument("--out")
    ap.add_argument("--jobs", help="a JSON list of {model, adapter?, merge?, ids, out}: many runs in one process")
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--write-adapter", metavar="OUTDIR",
                    help="write a random PEFT adapter for --model (needs --targets, --rank, --alpha)")
    ap.add_argument("--targets", help="comma-separated target_modules, e.g. q_proj,v_proj (suffix match)")
    ap.add_argument("--rank", type=int)
    ap.add_argument("--alpha", type=float)
    ap.add_argument("--dora", action="store_true", help="use_dora: also write lora_magnitude_vector")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--std", type=float, default=0.05, help="std of the random lora_A / lora_B entries "
                    "(and of the noise added to --modules-to-save copies)")
    ap.add_argument("--modules-to-save", help="comma-separated LoraConfig.modules_to_save for --write-adapter, e.g. "
                    "lm_head,model.norm (suffix match as PEFT's _set_trainable; saved as base + N(0, std))")
    ap.add_argument("--trainable-tokens", help="comma-separated LoraConfig.trainable_token_indices for "
                    "--write-adapter (list form: the input embedding; rows saved as base + N(0, std))")
    ap.add_argument("--save-embedding-layers", default="auto", choices=["auto", "false"],
                    help="save_pretrained's save_embedding_layers for --write-adapter (default auto: with "
                    "embed_tokens or lm_head in --targets, their base_layer.weight is saved too)")
    ap.add_argument("--combine", metavar="OUTDIR",
                    help="PEFT add_weighted_adapter of --adapters into OUTDIR (see combine_reference.py)")
    ap.add_argument("--adapters", help="comma-separated adapter folders for --combine")
    ap.add_argument("--weights", help="comma-separated weights, one per adapter, for --combine")
    ap.add_argument("--combination-type", default="svd", help="add_weighted_adapter combination_type (default svd)")
    ap.add_argument("--density", type=float)
    ap.add_argument("--majority-sign-method", default="total", choices=["total", "frequency"])
    ap.add_argument("--svd-rank", type=int)
    ap.add_argument("--svd-clamp", type=float)
    args = ap.parse_args(argv)
    if args.combine:
        if not (args.model and args.adapters and args.weights):
            ap.error("--combine needs --model, --adapters and --weights")
        sys.modules.setdefault("hf_reference", sys.modules[__name__])
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import combine_reference
        info = combine_reference.write_combined(
            args.combine, args.model, [a for a in args.adapters.split(",") if a],
            [float(w) for w in args.weights.split(",") if w.strip()], args.combination_type,
            density=args.density, majority_sign_method=args.majority_sign_method, svd_rank=args.svd_rank,
            svd_clamp=args.svd_clamp, seed=args.seed)
        print(f"wrote {info['combination_type']} combination, r = lora_alpha = {info['new_rank']} "
              f"(scaling {info['new_scaling']:g}) to {args.combine}")
        return 0
    if args.selftest:
        return selftest()
    if args.write_adapter:
        if not (args.model and args.targets and args.rank and args.alpha is not None):
            ap.error("--write-adapter needs --model, --targets, --rank and --alpha")
        mts = [m for m in (args.modules_to_save or "").split(",") if m.strip()]
        paths = write_peft_adapter(args.write_adapter, args.model, args.targets.split(","), args.rank,
                                   args.alpha, args.dora, args.seed, args.std, modules_to_save=mts,
                                   save_embedding_layers="auto" if args.save_embedding_layers == "auto" else False,
                                   trainable_tokens=[int(i) for i in (args.trainable_tokens or "").split(",") if i.strip()])
        print(f"wrote {'DoRA' if args.dora else 'LoRA'} adapter for {len(paths)} modules to {args.write_adapter}"
              + (f" (modules_to_save {','.join(mts)})" if mts else ""))
        return 0
    if args.jobs:
        with open(args.jobs) as f:
            jobs = json.load(f)
        for job in jobs:
            logits, loss = run(job["model"], job["ids"], job.get("adapter"), bool(job.get("merge")))
            with open(job["out"], "w") as f:
                json.dump({"logits": logits.tolist(), "loss": loss}, f)
        return 0
    if not (args.model and args.ids and args.out):
        ap.error("--model, --ids and --out are required (or --selftest)")
    if args.merge and not args.adapter:
        ap.error("--merge needs --adapter")
    with open(args.ids) as f:
        ids = json.load(f)
    if not isinstance(ids, list) or not ids or len({len(s) for s in ids}) != 1:
        raise ValueError("IDS.json must be a non-empty list of equal-length lists")
    logits, loss = run(args.model, ids, args.adapter, args.merge)
    with open(args.out, "w") as f:
        json.dump({"logits": logits.tolist(), "loss": loss}, f)
    return 0


# =============================================================================================
# Self-test: tiny random checkpoints per family, internal consistency checks
# =============================================================================================

def slow_forward(params, spec, ids, lora=None):
    """Loop-per-token/per-head version of forward(): explicit pair rotation (d, d + r/2), explicit mask
    test, explicit GQA head mapping h -> h // (H / KV). Shares only dense/norm/mlp/inv_freq."""
    fam = spec["fam"]
    B, T = ids.shape
    H, KV, D, R = spec["n_heads"], spec["n_kv"], spec["head_dim"], spec["rotary_dim"]
    W = spec["sliding_window"]
    def emb_row(path, i):  # W[i] (+ s * B @ A[:, i] for an embedding LoRA: column i of A, row-wise)
        row = params[path + ".weight"][i]
        if lora and path in lora:
            a = lora[path]
            row = row + (a["B"] @ a["A"][:, i]) * a["scaling"]
        return row

    x = torch.stack([torch.stack([emb_row(fam["embed"], int(ids[b, t])) for t in range(T)]) for b in range(B)])
    if spec["position"] == "learned":
        x = x + torch.stack([emb_row(fam["pos_embed"], t) for t in range(T)])[None]
    inv = rope_inv_freq(spec["rope"], R, T).tolist() if spec["position"] == "rope" else []

    def rotate(vec, pos):
        out = vec.clone()
        half = R // 2
        for d in range(half):
            ang = pos * inv[d]
            c, s = math.cos(ang), math.sin(ang)
            out[d] = vec[d] * c - vec[d + half] * s
            out[d + half] = vec[d + half] * c + vec[d] * s
        return out

    for layer in range(spec["n_layers"]):
        p, names = layer_prefix(spec, layer), fam["attn"]
        h = norm(x, params, spec, p + fam["ln1"])
        q, k, v = project_qkv(h, params, spec, lora, p)
        scale = spec["attn_scale"](layer)
        out = torch.zeros(B, T, H * D, dtype=DT)
        for b in range(B):
            for head in range(H):
                g = head // (H // KV)
                qs, ks, vs = [], [], []
                for t in range(T):
                    qv, kv = q[b, t, head * D:(head + 1) * D], k[b, t, g * D:(g + 1) * D]
                    if "q_norm" in names:
                        qv = rms_norm(qv, params[p + names["q_norm"] + ".weight"], spec["eps"])
                        kv = rms_norm(kv, params[p + names["k_norm"] + ".weight"], spec["eps"])
                    if R:
                        qv, kv = rotate(qv, t), rotate(kv, t)
                    qs.append(qv), ks.append(kv), vs.append(v[b, t, g * D:(g + 1) * D])
                for i in range(T):
                    js = [j for j in range(T) if j <= i and (W is None or i - j < W)]
                    sc = [float(qs[i] @ ks[j]) * scale for j in js]
                    m = max(sc)
                    e = [math.exp(s - m) for s in sc]
                    z = sum(e)
                    out[b, i, head * D:(head + 1) * D] = sum((e_ / z) * vs[j] for e_, j in zip(e, js))
        x = x + dense(out, params, spec, lora, p + names["o"], names["o"])
        x = x + mlp_block(norm(x, params, spec, p + fam["ln2"]), params, spec, lora, layer)
    x = norm(x, params, spec, fam["final_norm"])
    return dense(x, params, spec, lora, fam["head"], "lm_head")


def _rand(gen, *shape, std=0.3):
    return torch.randn(*shape, generator=gen, dtype=DT) * std


def make_checkpoint(directory, config, seed, prefix=True, store_dtype=torch.float32, buffers=False):
    """Write config.json + model.safetensors with HF names and random (non-trivial) weights."""
    os.makedirs(directory, exist_ok=True)
    spec = build_spec(config)
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, shape in _expected_shapes(spec).items():
        if spec["tie"] and name == spec["fam"]["head"] + ".weight":
            continue
        if name.endswith("norm.weight") or ".ln_" in name and name.endswith(".weight") or \
                name.endswith("layernorm.weight") or name.endswith("ln_f.weight"):
            t = 1.0 + _rand(gen, *shape, std=0.2)  # norm weights deliberately not all ones
        elif name.endswith(".bias"):
            t = _rand(gen, *shape, std=0.2)  # biases non-zero so they matter
        elif "embed" in name or "wte" in name or "wpe" in name:
            t = _rand(gen, *shape, std=1.0)
        else:
            t = _rand(gen, *shape, std=0.6 / math.sqrt(shape[-1] if spec["linear"] == "linear" else shape[0]))
        tensors[name] = t.to(store_dtype)
    if spec["family"] == "gpt2":
        if buffers:  # old GPT-2 checkpoints carry the causal-mask buffers; they must be ignored
            P = spec["max_positions"]
            for i in range(spec["n_layers"]):
                tensors[f"transformer.h.{i}.attn.bias"] = torch.tril(torch.ones(P, P)).view(1, 1, P, P).float()
                tensors[f"transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
        if not prefix:
            tensors = {k[len("transformer."):] if k.startswith("transformer.") else k: v for k, v in tensors.items()}
    write_safetensors(os.path.join(directory, "model.safetensors"), tensors, {"format": "pt"})
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    return spec


def make_adapter(directory, spec, params, targets, r, alpha, seed, rank_pattern=None, alpha_pattern=None,
                 use_rslora=False):
    """adapter_config.json + adapter_model.safetensors (keys base_model.model.<path>.lora_A/B.weight)."""
    os.makedirs(directory, exist_ok=True)
    rank_pattern, alpha_pattern = rank_pattern or {}, alpha_pattern or {}
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for path in dense_paths(spec):
        if path.split(".")[-1] not in targets:
            continue
        rr = int(rank_pattern.get(get_pattern_key(rank_pattern.keys(), path), r))
        w = params[path + ".weight"]
        fin, fout = (w.shape[0], w.shape[1]) if linear_kind(spec, path) == "conv1d" else (w.shape[1], w.shape[0])
        tensors[f"base_model.model.{path}.lora_A.weight"] = _rand(gen, rr, fin, std=0.3).float()
        tensors[f"base_model.model.{path}.lora_B.weight"] = _rand(gen, fout, rr, std=0.3).float()  # B != 0
    write_safetensors(os.path.join(directory, "adapter_model.safetensors"), tensors)
    cfg = dict(peft_type="LORA", task_type="CAUSAL_LM", r=r, lora_alpha=alpha, target_modules=sorted(targets),
               rank_pattern=rank_pattern, alpha_pattern=alpha_pattern, use_rslora=use_rslora,
               fan_in_fan_out=spec["linear"] == "conv1d", lora_dropout=0.0, bias="none")
    with open(os.path.join(directory, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=1)


class _Checks:
    def __init__(self):
        self.failed = 0
        self.count = 0

    def close(self, name, a, b, tol):
        diff = (torch.as_tensor(a, dtype=DT) - torch.as_tensor(b, dtype=DT)).abs().max().item()
        self.ok(name, diff <= tol, f"max|diff|={diff:.3e} (tol {tol:.0e})")

    def differ(self, name, a, b, min_diff=1e-6):
        diff = (torch.as_tensor(a, dtype=DT) - torch.as_tensor(b, dtype=DT)).abs().max().item()
        self.ok(name, diff > min_diff, f"max|diff|={diff:.3e} (must exceed {min_diff:.0e})")

    def ok(self, name, cond, detail=""):
        self.count += 1
        if not cond:
            self.failed += 1
        print(f"  [{'PASS' if cond else 'FAIL'}] {name}  {detail}")

    def raises(self, name, fn, exc=Exception):
        try:
            fn()
        except exc as e:
            self.ok(name, True, f"raised {type(e).__name__}: {str(e)[:70]}")
            return
        self.ok(name, False, "did not raise")


def _llama_cfg(**over):
    cfg = dict(model_type="llama", vocab_size=29, hidden_size=40, intermediate_size=56, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5,
               rope_theta=10000.0, max_position_embeddings=64, tie_word_embeddings=False, hidden_act="silu",
               attention_bias=False, mlp_bias=False)
    cfg.update(over)
    return cfg


def selftest():
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    ck = _Checks()
    root = tempfile.mkdtemp(prefix="hf_reference_selftest_")
    T = 12
    ids = torch.tensor([[3, 17, 5, 28, 0, 9, 9, 11, 2, 26, 14, 7],
                        [21, 1, 4, 4, 19, 8, 25, 13, 6, 0, 27, 10]])
    try:
        def model(name, cfg, seed, **kw):
            d = os.path.join(root, name)
            make_checkpoint(d, cfg, seed, **kw)
            spec, params = load_model(d)
            return d, spec, params

        def fwd(spec, params, x=ids, lora=None):
            return forward(params, spec, x, lora)

        print("safetensors I/O")
        gen = torch.Generator().manual_seed(0)
        ts = {"a.f32": torch.randn(3, 5, generator=gen), "b.f16": torch.randn(7, generator=gen).half(),
              "c.bf16": torch.randn(2, 3, generator=gen).bfloat16(), "d.f64": torch.randn(4, generator=gen).double(),
              "e.i64": torch.arange(5), "f.empty": torch.zeros(0, 3)}
        p = os.path.join(root, "io.safetensors")
        write_safetensors(p, ts, {"format": "pt"})
        back, meta = read_safetensors(p)
        ck.ok("roundtrip F32/F16/BF16/F64/I64/empty bit-exact",
              all(back[k].dtype == v.dtype and torch.equal(back[k], v) for k, v in ts.items()))
        ck.ok("metadata roundtrip", meta == {"format": "pt"})
        with open(p, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
        ck.ok("header padded to 8 bytes", (8 + n) % 8 == 0)

        print("llama: GQA, explicit head_dim (16 != 40/4), attention_bias + mlp_bias, untied head")
        _, spec_b, params_b = model("llama_bias", _llama_cfg(attention_bias=True, mlp_bias=True), 1)
        ck.ok("biases loaded for q,k,v,o,gate,up,down", len([k for k in params_b if k.endswith(".bias")]) == 14)
        lb = fwd(spec_b, params_b)
        ck.close("vectorised == per-token loop reference", lb, slow_forward(params_b, spec_b, ids), 1e-11)
        nob = {k: (torch.zeros_like(v) if k.endswith(".bias") else v) for k, v in params_b.items()}
        ck.differ("biases matter", lb, fwd(spec_b, nob))
        ck.close("batch rows are independent", lb[1:], fwd(spec_b, params_b, ids[1:]), 1e-12)

        print("llama: tie_word_embeddings")
        _, spec_t, params_t = model("llama_tied", _llama_cfg(tie_word_embeddings=True), 2)
        ck.ok("lm_head is the embedding", params_t["lm_head.weight"] is params_t["model.embed_tokens.weight"])

        print("llama: rope scaling")
        d_plain, spec_p, params_p = model("llama_plain", _llama_cfg(), 3)
        lp = fwd(spec_p, params_p)
        l3 = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                  original_max_position_embeddings=256)
        spec_l3 = build_spec(_llama_cfg(rope_scaling=l3))
        inv0 = _default_inv_freq(10000.0, 16)
        inv3 = rope_inv_freq(spec_l3["rope"], 16, T)
        wl = (2 * math.pi / inv0).tolist()
        bands = ["high" if w < 256 / 4 else "low" if w > 256 / 1 else "mid" for w in wl]
        ck.ok("llama3 test table covers all three bands", {"high", "mid", "low"} <= set(bands), str(bands))
        expect = []
        for f0, w, band in zip(inv0.tolist(), wl, bands):  # scalar restatement of the rule
            if band == "high":
                expect.append(f0)
            elif band == "low":
                expect.append(f0 / 8.0)
            else:
                s = (256 / w - 1.0) / (4.0 - 1.0)
                expect.append((1 - s) * f0 / 8.0 + s * f0)
        ck.close("llama3 inv_freq == scalar band formula", inv3, torch.tensor(expect, dtype=DT), 1e-16)
        ck.ok("llama3 leaves high band unchanged, divides low band by factor",
              bool(inv3[0] == inv0[0]) and abs(float(inv3[-1]) * 8.0 - float(inv0[-1])) < 1e-18)
        ll3 = forward(params_p, spec_l3, ids)
        ck.close("llama3 vectorised == loop reference", ll3, slow_forward(params_p, spec_l3, ids), 1e-11)
        ck.differ("llama3 changes logits", ll3, lp)

        spec_lin = build_spec(_llama_cfg(rope_scaling=dict(type="linear", factor=4.0)))
        ck.close("linear: inv_freq == default / factor", rope_inv_freq(spec_lin["rope"], 16, T), inv0 / 4.0, 0)
        c_lin, s_lin = rope_cos_sin(rope_inv_freq(spec_lin["rope"], 16, T), torch.arange(T))
        c_pos, s_pos = rope_cos_sin(inv0, torch.arange(T).to(DT) / 4.0)
        ck.close("linear: cos/sin == default at positions / factor", torch.stack([c_lin, s_lin]),
                 torch.stack([c_pos, s_pos]), 1e-15)
        ck.differ("linear changes logits", forward(params_p, spec_lin, ids), lp)

        print("loading: sharded index, BF16 storage")
        full = read_safetensors(os.path.join(d_plain, "model.safetensors"))[0]
        shard_dir = os.path.join(root, "llama_sharded")
        os.makedirs(shard_dir)
        shutil.copy(os.path.join(d_plain, "config.json"), shard_dir)
        names = sorted(full)
        weight_map = {}
        for part, chunk in enumerate((names[: len(names) // 2], names[len(names) // 2:])):
            fname = f"model-{part + 1:05d}-of-00002.safetensors"
            write_safetensors(os.path.join(shard_dir, fname), {n: full[n] for n in chunk})
            weight_map.update({n: fname for n in chunk})
        with open(os.path.join(shard_dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": weight_map}, f)
        spec_s, params_s = load_model(shard_dir)
        ck.close("sharded checkpoint == single file", fwd(spec_s, params_s), lp, 0)
        _, spec_bf, params_bf = model("llama_bf16", _llama_cfg(), 3, store_dtype=torch.bfloat16)
        rounded = {k: v.to(torch.bfloat16).to(DT) for k, v in params_p.items()}
        ck.close("BF16-stored checkpoint == float64 forward of bf16-rounded weights",
                 fwd(spec_bf, params_bf), fwd(spec_p, rounded), 0)

        dyn = dict(rope_type="dynamic", factor=2.0)
        spec_dyn = build_spec(_llama_cfg(rope_scaling=dyn, max_position_embeddings=T))      # seq == mpe
        ck.close("dynamic, seq_len <= max_position_embeddings == default", forward(params_p, spec_dyn, ids), lp, 0)
        spec_dyn8 = build_spec(_llama_cfg(rope_scaling=dyn, max_position_embeddings=8))      # seq 12 > 8
        base = 10000.0 * (2.0 * T / 8 - 1.0) ** (16 / 14)
        ck.close("dynamic, seq_len 12 > mpe 8: base = theta*(f*12/8-(f-1))^(d/(d-2))",
                 rope_inv_freq(spec_dyn8["rope"], 16, T), _default_inv_freq(base, 16), 1e-16)
        ld = forward(params_p, spec_dyn8, ids)
        ck.differ("dynamic (seq > mpe) changes logits", ld, lp)
        ck.close("dynamic vectorised == loop reference", ld, slow_forward(params_p, spec_dyn8, ids), 1e-11)
        ck.raises("yarn refused", lambda: build_spec(_llama_cfg(rope_scaling=dict(rope_type="yarn", factor=2.0))),
                  NotImplementedError)

        print("mistral: sliding window")
        for k_ in ("config.json", "model.safetensors"):
            os.makedirs(os.path.join(root, "mistral_big"), exist_ok=True)
            shutil.copy(os.path.join(d_plain, k_), os.path.join(root, "mistral_big", k_))
        with open(os.path.join(root, "mistral_big", "config.json"), "w") as f:
            json.dump(dict(_llama_cfg(), model_type="mistral", sliding_window=T), f)
        spec_mb, params_mb = load_model(os.path.join(root, "mistral_big"))
        ck.close("mistral, sliding_window (12) >= seq (12) == llama", fwd(spec_mb, params_mb), lp, 0)
        spec_mw = build_spec(dict(_llama_cfg(), model_type="mistral", sliding_window=3))
        lw = forward(params_mb, spec_mw, ids)
        ck.close("mistral window 3: vectorised == loop reference", lw, slow_forward(params_mb, spec_mw, ids), 1e-11)
        ck.differ("window 3 < seq changes logits", lw, lp)
        allowed = attention_allowed(T, 3)
        ck.ok("mask row i allows exactly j in (i-3, i]", all(
            allowed[i].nonzero().flatten().tolist() == list(range(max(0, i - 2), i + 1)) for i in range(T)))
        # Receptive field: with W keys per layer (j > i-W), L layers reach back L*(W-1) tokens. So with
        # W=3, L=2, token 0 can influence position 4 but not position 5 (a W+1-key window would reach it).
        ids2 = ids.clone()
        ids2[:, 0] = (ids2[:, 0] + 1) % 29
        lw2 = forward(params_mb, spec_mw, ids2)
        ck.close("token 0 cannot reach position 5 (2 layers x (W-1)=2)", lw[:, 5:], lw2[:, 5:], 0)
        ck.differ("token 0 does reach position 4", lw[:, 4], lw2[:, 4])
        spec_mn = build_spec(dict(_llama_cfg(), model_type="mistral", sliding_window=None))
        ck.close("mistral sliding_window=null == llama", forward(params_mb, spec_mn, ids), lp, 0)

        print("qwen2: q/k/v bias, o_proj without bias")
        q2 = dict(_llama_cfg(), model_type="qwen2", use_sliding_window=False, sliding_window=4,
                  max_window_layers=1)
        q2.pop("attention_bias"), q2.pop("mlp_bias")
        _, spec_q2, params_q2 = model("qwen2", q2, 4)
        ck.ok("qwen2 has q/k/v biases only",
              sorted({k.split(".")[-2] for k in params_q2 if k.endswith(".bias")}) == ["k_proj", "q_proj", "v_proj"])
        lq2 = fwd(spec_q2, params_q2)
        ck.close("qwen2 vectorised == loop reference", lq2, slow_forward(params_q2, spec_q2, ids), 1e-11)
        ck.ok("qwen2 sliding_window ignored while use_sliding_window=false", spec_q2["sliding_window"] is None)
        zq = dict(params_q2)
        zq["model.layers.0.self_attn.q_proj.bias"] = torch.zeros_like(zq["model.layers.0.self_attn.q_proj.bias"])
        ck.differ("q bias matters", fwd(spec_q2, zq), lq2)
        ck.raises("qwen2 use_sliding_window=true refused",
                  lambda: build_spec(dict(q2, use_sliding_window=True)), NotImplementedError)

        print("qwen3: q_norm/k_norm, head_dim 16 != 40/4")
        q3 = dict(_llama_cfg(), model_type="qwen3", attention_bias=False)
        q3.pop("mlp_bias")
        _, spec_q3, params_q3 = model("qwen3", q3, 5)
        ck.ok("q_norm weights not all ones", not torch.allclose(params_q3["model.layers.0.self_attn.q_norm.weight"],
                                                                 torch.ones(16, dtype=DT)))
        lq3 = fwd(spec_q3, params_q3)
        ck.close("qwen3 vectorised == loop reference", lq3, slow_forward(params_q3, spec_q3, ids), 1e-11)
        ones = {k: (torch.ones_like(v) if "_norm." in k and "self_attn" in k else v) for k, v in params_q3.items()}
        ck.differ("q/k norm weights matter", fwd(spec_q3, ones), lq3)
        _, spec_q3b, params_q3b = model("qwen3_bias", dict(q3, attention_bias=True), 6)
        ck.ok("qwen3 attention_bias=true adds q,k,v,o biases",
              len([k for k in params_q3b if k.endswith(".bias")]) == 8)
        ck.close("qwen3+bias vectorised == loop reference", fwd(spec_q3b, params_q3b),
                 slow_forward(params_q3b, spec_q3b, ids), 1e-11)

        print("phi3: fused qkv_proj / gate_up_proj, partial_rotary_factor")
        p3 = dict(_llama_cfg(), model_type="phi3", sliding_window=None)
        for k_ in ("attention_bias", "mlp_bias"):
            p3.pop(k_)
        d_p3, spec_p3, params_p3 = model("phi3", p3, 7)
        lp3 = fwd(spec_p3, params_p3)
        split = {}
        for k_, v_ in params_p3.items():
            if k_.endswith("qkv_proj.weight"):
                q_, k2, v2 = v_.split([4 * 16, 2 * 16, 2 * 16], dim=0)
                for nm, t in (("q_proj", q_), ("k_proj", k2), ("v_proj", v2)):
                    split[k_.replace("qkv_proj", nm)] = t
            elif k_.endswith("gate_up_proj.weight"):
                g_, u_ = v_.chunk(2, dim=0)
                split[k_.replace("gate_up_proj", "gate_proj")], split[k_.replace("gate_up_proj", "up_proj")] = g_, u_
            else:
                split[k_] = v_
        spec_eq = build_spec(_llama_cfg(rms_norm_eps=1e-5))
        ck.close("phi3 == llama with qkv rows split (q,k,v) and gate_up split (gate first)",
                 lp3, forward(finish_params(split, spec_eq), spec_eq, ids), 1e-12)
        spec_pr = build_spec(dict(p3, partial_rotary_factor=0.5))
        ck.ok("partial_rotary_factor 0.5 -> rotary_dim 8 of head_dim 16", spec_pr["rotary_dim"] == 8)
        lpr = forward(params_p3, spec_pr, ids)
        ck.close("phi3 partial rotary: vectorised == loop reference", lpr,
                 slow_forward(params_p3, spec_pr, ids), 1e-11)
        ck.differ("partial rotary changes logits", lpr, lp3)
        x_ = torch.randn(1, 1, 3, 16, dtype=DT)
        cs_ = rope_cos_sin(rope_inv_freq(spec_pr["rope"], 8, 3), torch.arange(3))
        ck.close("dims beyond rotary_dim pass through", apply_rope(x_, *cs_)[..., 8:], x_[..., 8:], 0)
        spec_p3w = build_spec(dict(p3, sliding_window=4))
        ck.close("phi3 sliding_window applies (Phi3Model = MistralModel)", forward(params_p3, spec_p3w, ids),
                 slow_forward(params_p3, spec_p3w, ids), 1e-11)
        ck.raises("phi3 longrope refused", lambda: build_spec(dict(p3, rope_scaling=dict(
            type="longrope", short_factor=[1.0] * 8, long_factor=[2.0] * 8))), NotImplementedError)

        print("gpt2: wte/wpe, LayerNorm, Conv1D, gelu_new, tied head, key prefixes")
        g2 = dict(model_type="gpt2", vocab_size=29, n_embd=32, n_layer=2, n_head=4, n_positions=16,
                  n_inner=None, layer_norm_epsilon=1e-5, activation_function="gelu_new")
        _, spec_g, params_g = model("gpt2_prefix", g2, 8, prefix=True, buffers=True)
        _, spec_g2, params_g2 = model("gpt2_bare", g2, 8, prefix=False, buffers=False)
        ck.ok("n_inner null -> 4*n_embd", spec_g["intermediate"] == 128)
        lg = fwd(spec_g, params_g)
        ck.close("with and without transformer. prefix (and attn.bias buffers) give same logits",
                 lg, fwd(spec_g2, params_g2), 0)
        ck.close("gpt2 vectorised == loop reference", lg, slow_forward(params_g, spec_g, ids), 1e-11)
        ck.ok("lm_head tied to wte", params_g["lm_head.weight"] is params_g["transformer.wte.weight"])
        spec_gi = build_spec(dict(g2, scale_attn_by_inverse_layer_idx=True))
        lgi = forward(params_g, spec_gi, ids)
        ck.differ("scale_attn_by_inverse_layer_idx matters", lgi, lg)
        ck.close("scale_attn_by_inverse_layer_idx: vectorised == loop", lgi, slow_forward(params_g, spec_gi, ids), 1e-11)
        xg = torch.linspace(-4, 4, 9, dtype=DT)
        ck.close("gelu_new == tanh-approx GELU formula", activation("gelu_new")(xg),
                 torch.tensor([0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))
                               for v in xg.tolist()], dtype=DT), 1e-15)
        ck.raises("sequence longer than n_positions refused",
                  lambda: forward(params_g, spec_g, torch.zeros(1, 17, dtype=torch.long)), ValueError)

        print("PEFT LoRA")
        ck.ok("get_pattern_key: suffix after a dot", get_pattern_key(["q_proj"], "model.layers.0.self_attn.q_proj") == "q_proj")
        ck.ok("get_pattern_key: no partial-name match",
              get_pattern_key(["q_proj"], "model.layers.0.self_attn.xq_proj") == "model.layers.0.self_attn.xq_proj")
        ck.ok("get_pattern_key: first match wins", get_pattern_key(
            ["layers.1.self_attn.q_proj", "q_proj"], "model.layers.1.self_attn.q_proj") == "layers.1.self_attn.q_proj")
        ck.ok("get_pattern_key: key is a regex", get_pattern_key([r"layers\.[01]\.mlp\.down_proj"],
                                                                 "model.layers.1.mlp.down_proj") != "model.layers.1.mlp.down_proj")
        ad = os.path.join(root, "lora_llama")
        make_adapter(ad, spec_b, params_b, {"q_proj", "v_proj", "down_proj", "lm_head"}, r=4, alpha=8.0, seed=9,
                     rank_pattern={"down_proj": 2}, alpha_pattern={"layers.1.self_attn.q_proj": 32.0})
        lora = load_lora(ad, spec_b, params_b)
        ck.ok("rank_pattern/alpha_pattern -> scalings",
              lora["model.layers.0.mlp.down_proj"]["scaling"] == 8.0 / 2
              and lora["model.layers.1.self_attn.q_proj"]["scaling"] == 32.0 / 4
              and lora["model.layers.0.self_attn.q_proj"]["scaling"] == 8.0 / 4, "")
        la = fwd(spec_b, params_b, lora=lora)
        ck.differ("adapter changes logits", la, lb)
        ck.close("adapter: vectorised == loop reference", la, slow_forward(params_b, spec_b, ids, lora), 1e-11)
        manual = dict(params_b)
        for path, a in lora.items():
            manual[path + ".weight"] = manual[path + ".weight"] + a["scaling"] * a["B"] @ a["A"]
        ck.close("unmerged == forward with W + s*B@A", la, fwd(spec_b, manual), 1e-10)
        ck.close("merged == unmerged (llama, untied lm_head LoRA)", fwd(spec_b, merge_lora(params_b, spec_b, lora)), la, 1e-10)
        ad_rs = os.path.join(root, "lora_rslora")
        make_adapter(ad_rs, spec_q3, params_q3, {"q_proj", "k_proj", "o_proj", "gate_proj", "up_proj"}, r=4,
                     alpha=6.0, seed=10, use_rslora=True)
        lrs = load_lora(ad_rs, spec_q3, params_q3)
        ck.ok("use_rslora: scaling = alpha / sqrt(r)", all(abs(a["scaling"] - 3.0) < 1e-15 for a in lrs.values()))
        ck.close("merged == unmerged (qwen3, rslora)", fwd(spec_q3, merge_lora(params_q3, spec_q3, lrs)),
                 fwd(spec_q3, params_q3, lora=lrs), 1e-10)
        ad_p3 = os.path.join(root, "lora_phi3")
        make_adapter(ad_p3, spec_p3, params_p3, {"qkv_proj", "gate_up_proj", "down_proj"}, r=3, alpha=5.0, seed=11)
        lp3l = load_lora(ad_p3, spec_p3, params_p3)
        ck.close("merged == unmerged (phi3 fused)", fwd(spec_p3, merge_lora(params_p3, spec_p3, lp3l)),
                 fwd(spec_p3, params_p3, lora=lp3l), 1e-10)
        ad_g = os.path.join(root, "lora_gpt2")
        make_adapter(ad_g, spec_g, params_g, {"c_attn", "c_fc", "c_proj"}, r=4, alpha=16.0, seed=12,
                     rank_pattern={"mlp.c_proj": 2})
        lg_l = load_lora(ad_g, spec_g, params_g)
        ck.ok("gpt2 Conv1D LoRA shapes: A [r, in], B [out, r]",
              tuple(lg_l["transformer.h.0.attn.c_attn"]["A"].shape) == (4, 32)
              and tuple(lg_l["transformer.h.0.attn.c_attn"]["B"].shape) == (96, 4)
              and tuple(lg_l["transformer.h.0.mlp.c_proj"]["A"].shape) == (2, 128))
        lgl = fwd(spec_g, params_g, lora=lg_l)
        ck.differ("gpt2 adapter changes logits", lgl, lg)
        ck.close("merged ((B@A).T*s into [in,out]) == unmerged (gpt2 fan_in_fan_out)",
                 fwd(spec_g, merge_lora(params_g, spec_g, lg_l)), lgl, 1e-10)
        ck.close("gpt2 adapter on bare-key checkpoint == prefixed", fwd(spec_g2, params_g2, lora=load_lora(
            ad_g, spec_g2, params_g2)), lgl, 0)
        with open(os.path.join(ad, "adapter_config.json")) as f:
            bad = json.load(f)
        bad["rank_pattern"] = {}
        bad_dir = os.path.join(root, "lora_bad")
        os.makedirs(bad_dir, exist_ok=True)
        shutil.copy(os.path.join(ad, "adapter_model.safetensors"), bad_dir)
        with open(os.path.join(bad_dir, "adapter_config.json"), "w") as f:
            json.dump(bad, f)
        ck.raises("rank mismatch vs rank_pattern detected", lambda: load_lora(bad_dir, spec_b, params_b), ValueError)

        print("PEFT DoRA")
        dd = os.path.join(root, "dora_llama")
        paths = write_peft_adapter(dd, os.path.join(root, "llama_bias"), ["q_proj", "v_proj", "down_proj", "lm_head"],
                                   4, 8.0, dora=True, seed=21)
        saved, meta = read_safetensors(os.path.join(dd, "adapter_model.safetensors"))
        want = {f"base_model.model.{p_}.{s_}" for p_ in paths
                for s_ in ("lora_A.weight", "lora_B.weight", "lora_magnitude_vector")}
        want.add("base_model.model.lm_head.base_layer.weight")  # save_embedding_layers="auto": lm_head is targeted
        ck.ok("write: PEFT keys (lora_A.weight, lora_B.weight, lora_magnitude_vector), 7 modules, float32",
              set(saved) == want and len(paths) == 7 and all(t.dtype == torch.float32 for t in saved.values())
              and meta == {"format": "pt"})
        with open(os.path.join(dd, "adapter_config.json")) as f:
            dcfg = json.load(f)
        ck.ok("write: config use_dora, r, int lora_alpha, fan_in_fan_out false for nn.Linear",
              dcfg["use_dora"] is True and dcfg["r"] == 4 and dcfg["lora_alpha"] == 8 and
              isinstance(dcfg["lora_alpha"], int) and dcfg["fan_in_fan_out"] is False and dcfg["peft_type"] == "LORA")
        dl = load_lora(dd, spec_b, params_b)
        ratio = torch.cat([a["m"] / dora_weight_norm(weight_out_in(params_b[p_ + ".weight"], spec_b, p_),
                                                     a["B"] @ a["A"], a["scaling"]) for p_, a in dl.items()])
        ck.ok("write: magnitude / ||W + s B A|| in [0.8, 1.2] and not ~1",
              0.8 - 1e-6 <= ratio.min() and ratio.max() <= 1.2 + 1e-6 and (ratio - 1).abs().max() > 0.1,
              f"min {ratio.min():.4f} max {ratio.max():.4f}")
        # PEFT init: B = 0, magnitude = ||W|| (DoraLinearLayer.update_layer) -> output is exactly the base output
        init = {p_: dict(a, B=torch.zeros_like(a["B"]),
                         m=torch.linalg.norm(weight_out_in(params_b[p_ + ".weight"], spec_b, p_), dim=1))
                for p_, a in dl.items()}
        ck.close("DoRA at PEFT init (B=0, m=||W||) == base model", fwd(spec_b, params_b, lora=init), lb, 0)
        ldora = fwd(spec_b, params_b, lora=dl)
        lplain = fwd(spec_b, params_b, lora={p_: {k: v for k, v in a.items() if k != "m"} for p_, a in dl.items()})
        ck.differ("DoRA changes logits vs base", ldora, lb, 1e-3)
        ck.differ("DoRA differs from plain LoRA with the same A, B", ldora, lplain, 1e-3)
        ck.close("DoRA unmerged == merged (llama, all biases, untied lm_head)",
                 fwd(spec_b, merge_lora(params_b, spec_b, dl)), ldora, 1e-10)
        ck.close("DoRA: vectorised == loop reference", ldora, slow_forward(params_b, spec_b, ids, dl), 1e-11)

        def dora_rowwise(x, w_oi, bias, a):  # scalar restatement: m_j/||W_j + s(BA)_j|| (W_j + s(BA)_j).x + b_j
            ba = a["B"] @ a["A"]
            out = torch.zeros(x.shape[0], w_oi.shape[0], dtype=DT)
            for j in range(w_oi.shape[0]):
                row = w_oi[j] + a["scaling"] * ba[j]
                out[:, j] = float(a["m"][j]) / math.sqrt(float((row * row).sum())) * (x @ row) + \
                    (float(bias[j]) if bias is not None else 0.0)
            return out
        xq = torch.randn(5, 40, generator=torch.Generator().manual_seed(3), dtype=DT)
        pq = "model.layers.1.self_attn.q_proj"
        ck.close("DoRA dense == per-row formula, bias kept outside the magnitude (llama q_proj)",
                 dense(xq, params_b, spec_b, dl, pq, "self_attn.q_proj"),
                 dora_rowwise(xq, params_b[pq + ".weight"], params_b[pq + ".bias"], dl[pq]), 1e-12)

        dq2 = os.path.join(root, "dora_qwen2")
        write_peft_adapter(dq2, os.path.join(root, "qwen2"), ["q_proj", "k_proj", "o_proj", "up_proj"], 3, 5.0,
                           dora=True, seed=22)
        lq2d = load_lora(dq2, spec_q2, params_q2)
        ck.close("DoRA unmerged == merged (qwen2, q/k bias, o without)", fwd(spec_q2, merge_lora(params_q2, spec_q2, lq2d)),
                 fwd(spec_q2, params_q2, lora=lq2d), 1e-10)
        dp3 = os.path.join(root, "dora_phi3")
        write_peft_adapter(dp3, d_p3, ["qkv_proj", "gate_up_proj", "down_proj"], 3, 6.0, dora=True, seed=23)
        lp3d = load_lora(dp3, spec_p3, params_p3)
        ck.close("DoRA unmerged == merged (phi3 fused)", fwd(spec_p3, merge_lora(params_p3, spec_p3, lp3d)),
                 fwd(spec_p3, params_p3, lora=lp3d), 1e-10)

        dg = os.path.join(root, "dora_gpt2")
        gpaths = write_peft_adapter(dg, os.path.join(root, "gpt2_bare"), ["c_attn", "c_proj", "c_fc"], 4, 16.0,
                                    dora=True, seed=24)
        with open(os.path.join(dg, "adapter_config.json")) as f:
            gcfg = json.load(f)
        ck.ok("write gpt2: c_proj suffix hits attn.c_proj and mlp.c_proj; fan_in_fan_out true",
              len(gpaths) == 8 and gcfg["fan_in_fan_out"] is True and "transformer.h.1.mlp.c_proj" in gpaths)
        lgd = load_lora(dg, spec_g, params_g)
        lgdu = fwd(spec_g, params_g, lora=lgd)
        ck.differ("gpt2 DoRA changes logits", lgdu, lg, 1e-3)
        ck.close("DoRA unmerged == merged (gpt2 Conv1D, [in,out] weight, dora_factor as a row)",
                 fwd(spec_g, merge_lora(params_g, spec_g, lgd)), lgdu, 1e-10)
        pc = "transformer.h.0.attn.c_attn"
        xg2 = torch.randn(5, 32, generator=torch.Generator().manual_seed(4), dtype=DT)
        ck.close("DoRA dense == per-row formula (gpt2 Conv1D c_attn, W^T rows, bias)",
                 dense(xg2, params_g, spec_g, lgd, pc, "attn.c_attn"),
                 dora_rowwise(xg2, params_g[pc + ".weight"].t(), params_g[pc + ".bias"], lgd[pc]), 1e-12)
        ck.close("DoRA vs loop reference (gpt2)", lgdu, slow_forward(params_g, spec_g, ids, lgd), 1e-11)
        dgt = os.path.join(root, "dora_gpt2_head")
        write_peft_adapter(dgt, os.path.join(root, "gpt2_bare"), ["lm_head", "c_fc"], 2, 4.0, dora=True, seed=25)
        lgt = load_lora(dgt, spec_g, params_g)
        tied = dict(params_g)  # a separate head tensor: what "merge into lm_head only" would mean
        for p_, a in lgt.items():
            tied[p_ + ".weight"] = dora_merged_weight(params_g[p_ + ".weight"], (a["B"] @ a["A"]) * a["scaling"],
                                                      a["m"], spec_g, p_)
        ck.close("DoRA on tied gpt2 lm_head (nn.Linear) unmerged == merged head, embedding untouched",
                 fwd(spec_g, params_g, lora=lgt), fwd(spec_g, tied), 1e-10)
        ck.raises("merging DoRA into a tied lm_head refused", lambda: merge_lora(params_g, spec_g, lgt),
                  NotImplementedError)

        # both magnitude spellings PEFT loads; refusals
        alt = os.path.join(root, "dora_alt")
        os.makedirs(alt, exist_ok=True)
        shutil.copy(os.path.join(dd, "adapter_config.json"), alt)
        write_safetensors(os.path.join(alt, "adapter_model.safetensors"),
                          {(k + ".weight" if k.endswith("lora_magnitude_vector") else k): v for k, v in saved.items()})
        ck.close("magnitude key with .weight suffix loads the same", fwd(spec_b, params_b, lora=load_lora(
            alt, spec_b, params_b)), ldora, 0)
        write_safetensors(os.path.join(alt, "adapter_model.safetensors"),
                          {k: v for k, v in saved.items() if k != f"base_model.model.{pq}.lora_magnitude_vector"})
        ck.raises("use_dora adapter missing a magnitude refused", lambda: load_lora(alt, spec_b, params_b), ValueError)
        write_safetensors(os.path.join(alt, "adapter_model.safetensors"), saved)
        with open(os.path.join(alt, "adapter_config.json"), "w") as f:
            json.dump(dict(dcfg, use_dora=False), f)
        ck.raises("magnitude with use_dora=false refused", lambda: load_lora(alt, spec_b, params_b), ValueError)
        with open(os.path.join(alt, "adapter_config.json"), "w") as f:
            json.dump(dict(dcfg, lora_bias=True), f)
        ck.raises("lora_bias still refused", lambda: load_lora(alt, spec_b, params_b), NotImplementedError)

        print("CLI end to end")
        ids_path, out_m, out_u = (os.path.join(root, n) for n in ("ids.json", "out_m.json", "out_u.json"))
        with open(ids_path, "w") as f:
            json.dump(ids.tolist(), f)
        main(["--model", os.path.join(root, "gpt2_bare"), "--adapter", ad_g, "--ids", ids_path, "--out", out_u])
        main(["--model", os.path.join(root, "gpt2_bare"), "--adapter", ad_g, "--merge", "--ids", ids_path,
              "--out", out_m])
        with open(out_u) as f:
            ru = json.load(f)
        with open(out_m) as f:
            rm = json.load(f)
        lu = torch.tensor(ru["logits"], dtype=DT)
        ck.ok("OUT.json logits shape [2][12][29]", tuple(lu.shape) == (2, T, 29))
        ck.close("OUT.json logits round-trip float64 exactly", lu, lgl, 0)
        lossref = sum(-torch.log_softmax(lgl[b, t], -1)[int(ids[b, t + 1])].item()
                      for b in range(2) for t in range(T - 1)) / (2 * (T - 1))
        ck.close("loss == mean CE over positions 2..n (loop)", ru["loss"], lossref, 1e-13)
        ck.close("CLI merged vs unmerged", torch.tensor(rm["logits"], dtype=DT), lu, 1e-10)
        cli_dora = os.path.join(root, "cli_dora")
        main(["--write-adapter", cli_dora, "--model", os.path.join(root, "gpt2_bare"), "--targets", "c_attn,c_fc",
              "--rank", "4", "--alpha", "8", "--dora", "--seed", "5"])
        jobs_path = os.path.join(root, "jobs.json")
        with open(jobs_path, "w") as f:
            json.dump([dict(model=os.path.join(root, "gpt2_bare"), adapter=cli_dora, ids=ids.tolist(),
                            out=out_u, merge=False),
                       dict(model=os.path.join(root, "gpt2_bare"), adapter=cli_dora, ids=ids.tolist(),
                            out=out_m, merge=True)], f)
        main(["--jobs", jobs_path])
        with open(out_u) as f:
            du = torch.tensor(json.load(f)["logits"], dtype=DT)
        with open(out_m) as f:
            dm = torch.tensor(json.load(f)["logits"], dtype=DT)
        ck.differ("CLI --write-adapter --dora adapter changes logits", du, lg, 1e-3)
        ck.close("CLI DoRA merged vs unmerged (jobs)", dm, du, 1e-10)

        print("PEFT modules_to_save (ModulesToSaveWrapper, v0.20.0)")
        d_llb = os.path.join(root, "llama_bias")
        mt = os.path.join(root, "mts_llama")
        write_peft_adapter(mt, d_llb, ["q_proj"], 4, 8.0, seed=31, std=0.05, modules_to_save=["lm_head", "model.norm"])
        mts_saved = read_safetensors(os.path.join(mt, "adapter_model.safetensors"))[0]
        with open(os.path.join(mt, "adapter_config.json")) as f:
            mcfg = json.load(f)
        ck.ok("write: modules_to_save saved as base_model.model.<module>.<param>, config lists them",
              {"base_model.model.lm_head.weight", "base_model.model.model.norm.weight"} <= set(mts_saved)
              and len(mts_saved) == 2 + 2 * 2 and mcfg["modules_to_save"] == ["lm_head", "model.norm"])
        ml, msv = load_adapter(mt, spec_b, params_b)
        ck.ok("load: modules lm_head, model.norm; copies differ from base",
              msv["modules"] == ["lm_head", "model.norm"] and not torch.equal(msv["modules_to_save"]["lm_head.weight"],
                                                                            params_b["lm_head.weight"]))
        pm = apply_saved_modules(params_b, msv)
        lmts = fwd(spec_b, pm, lora=ml)
        ck.differ("modules_to_save copies change logits (vs LoRA alone)", lmts, fwd(spec_b, params_b, lora=ml), 1e-3)
        ck.close("modules_to_save + LoRA: merged == unmerged (copies are full weights)",
                 fwd(spec_b, merge_lora(pm, spec_b, ml)), lmts, 1e-10)
        same = dict(mts_saved)
        same["base_model.model.lm_head.weight"] = params_b["lm_head.weight"].float()
        same["base_model.model.model.norm.weight"] = params_b["model.norm.weight"].float()
        for k_ in same:
            if k_.endswith("lora_B.weight"):
                same[k_] = torch.zeros_like(same[k_])
        mt0 = os.path.join(root, "mts_same")
        os.makedirs(mt0, exist_ok=True)
        shutil.copy(os.path.join(mt, "adapter_config.json"), mt0)
        write_safetensors(os.path.join(mt0, "adapter_model.safetensors"), same, {"format": "pt"})
        l0, s0 = load_adapter(mt0, spec_b, params_b)
        ck.close("modules_to_save copy == base (and B = 0) gives base logits", fwd(spec_b, apply_saved_modules(
            params_b, s0), lora=l0), lb, 0)
        ck.ok("_set_trainable suffix match: 'norm' on qwen3 wraps model.norm + 2x2 layernorms + 2x2 q/k_norm",
              len(modules_to_save_targets(spec_q3, params_q3, ["norm"])) == 9)
        ck.raises("modules_to_save overlapping a LoRA target refused",
                  lambda: modules_to_save_targets(spec_b, params_b, ["q_proj"], ["model.layers.0.self_attn.q_proj"]),
                  NotImplementedError)
        write_safetensors(os.path.join(mt0, "adapter_model.safetensors"),
                          {k_: v for k_, v in same.items() if k_ != "base_model.model.model.norm.weight"})
        ck.raises("modules_to_save key missing -> KeyError (as PEFT's load)", lambda: load_adapter(mt0, spec_b, params_b),
                  KeyError)
        ck.raises("combine's load_lora refuses modules_to_save", lambda: load_lora(mt, spec_b, params_b),
                  NotImplementedError)

        q3t = dict(q3, tie_word_embeddings=True)
        d_q3t, spec_q3t, params_q3t = model("qwen3_tied", q3t, 32)
        lq3t = fwd(spec_q3t, params_q3t)
        mtq = os.path.join(root, "mts_qwen3_tied")
        write_peft_adapter(mtq, d_q3t, ["v_proj"], 2, 4.0, seed=33, modules_to_save=["lm_head"])
        lq, sq = load_adapter(mtq, spec_q3t, params_q3t)
        pq3 = apply_saved_modules(params_q3t, sq)
        ck.ok("tied qwen3, modules_to_save lm_head: deepcopy -> head is the saved copy, embedding stays the base",
              pq3["model.embed_tokens.weight"] is params_q3t["model.embed_tokens.weight"]
              and not torch.equal(pq3["lm_head.weight"], pq3["model.embed_tokens.weight"]))
        untied = dict(params_q3t, **{"lm_head.weight": sq["modules_to_save"]["lm_head.weight"]})
        ck.close("tied qwen3 lm_head copy == untied model with head = copy", fwd(spec_q3t, pq3, lora=lq),
                 fwd(spec_q3t, untied, lora=lq), 0)
        mtg = os.path.join(root, "mts_gpt2_wte")
        write_peft_adapter(mtg, os.path.join(root, "gpt2_bare"), ["c_fc"], 2, 4.0, seed=34, modules_to_save=["wte"])
        lgm, sgm = load_adapter(mtg, spec_g, params_g)
        pgm = apply_saved_modules(params_g, sgm)
        ck.ok("tied gpt2, modules_to_save wte: key transformer.wte.weight; lm_head stays on the base wte",
              sgm["modules"] == ["transformer.wte"] and pgm["lm_head.weight"] is params_g["transformer.wte.weight"]
              and "base_model.model.transformer.wte.weight" in read_safetensors(
                  os.path.join(mtg, "adapter_model.safetensors"))[0])
        ck.differ("gpt2 wte copy changes logits", fwd(spec_g, pgm, lora=lgm), fwd(spec_g, params_g, lora=lgm), 1e-3)
        with open(os.path.join(mtq, "adapter_config.json")) as f:
            tcfg = json.load(f)
        with open(os.path.join(mtq, "adapter_config.json"), "w") as f:
            json.dump(dict(tcfg, ensure_weight_tying=True), f)
        ck.raises("ensure_weight_tying on a tied model refused", lambda: load_adapter(mtq, spec_q3t, params_q3t),
                  NotImplementedError)

        print("PEFT LoRA on nn.Embedding (lora.Embedding, v0.20.0)")
        ea = os.path.join(root, "emb_llama")
        write_peft_adapter(ea, d_llb, ["embed_tokens", "q_proj"], 4, 8.0, seed=41, std=0.3)
        esaved = read_safetensors(os.path.join(ea, "adapter_model.safetensors"))[0]
        ek = "base_model.model.model.embed_tokens."
        ck.ok("write: lora_embedding_A [r, vocab] / lora_embedding_B [hidden, r] without .weight; auto saves "
              "embed_tokens.base_layer.weight", tuple(esaved[ek + "lora_embedding_A"].shape) == (4, 29)
              and tuple(esaved[ek + "lora_embedding_B"].shape) == (40, 4)
              and torch.equal(esaved[ek + "base_layer.weight"].double(), params_b["model.embed_tokens.weight"])
              and not any(k_.startswith(ek + "lora_embedding") and k_.endswith(".weight") for k_ in esaved))
        el, es = load_adapter(ea, spec_b, params_b)
        pe = apply_saved_modules(params_b, es)
        le = fwd(spec_b, pe, lora=el)
        ck.differ("embedding LoRA changes logits (vs q_proj LoRA alone)", le, fwd(spec_b, params_b, lora={
            k_: v for k_, v in el.items() if not v.get("embedding")}), 1e-3)
        ck.close("embedding LoRA: vectorised == loop reference", le, slow_forward(pe, spec_b, ids, el), 1e-11)
        ck.close("embedding LoRA (untied llama): merged == unmerged", fwd(spec_b, merge_lora(pe, spec_b, el)), le, 1e-10)
        ea_ = el["model.embed_tokens"]
        mw = merge_lora(pe, spec_b, el)["model.embed_tokens.weight"]
        ck.close("merged row i == W[i] + s * sum_k B[:, k] A[k, i] (delta = (B @ A).T * s)", mw[5],
                 params_b["model.embed_tokens.weight"][5] + ea_["scaling"] * sum(
                     ea_["B"][:, k_] * ea_["A"][k_, 5] for k_ in range(4)), 1e-13)
        zero_b = {k_: (dict(v, B=torch.zeros_like(v["B"])) if v.get("embedding") else v) for k_, v in el.items()}
        zero_a = {k_: (dict(v, A=torch.zeros_like(v["A"])) if v.get("embedding") else v) for k_, v in el.items()}
        lq_only = fwd(spec_b, params_b, lora={k_: v for k_, v in el.items() if not v.get("embedding")})
        ck.close("embedding LoRA with B = 0 gives the logits without it", fwd(spec_b, pe, lora=zero_b), lq_only, 0)
        ck.close("embedding LoRA at PEFT init (A = 0, B ~ N(0,1)) gives the logits without it",
                 fwd(spec_b, pe, lora=zero_a), lq_only, 0)
        ck.raises("combine's load_lora refuses embedding LoRA", lambda: load_lora(ea, spec_b, params_b),
                  NotImplementedError)
        eaw = os.path.join(root, "emb_weight_suffix")
        os.makedirs(eaw, exist_ok=True)
        shutil.copy(os.path.join(ea, "adapter_config.json"), eaw)
        write_safetensors(os.path.join(eaw, "adapter_model.safetensors"), {
            (k_ + ".weight" if "lora_embedding" in k_ else k_): v for k_, v in esaved.items()})
        ck.raises("lora_embedding_A.weight spelling refused (PEFT would not load it)",
                  lambda: load_adapter(eaw, spec_b, params_b), ValueError)

        et = os.path.join(root, "emb_qwen3_tied")
        write_peft_adapter(et, d_q3t, ["embed_tokens"], 3, 6.0, seed=42, std=0.3)
        etl, ets = load_adapter(et, spec_q3t, params_q3t)
        pet = apply_saved_modules(params_q3t, ets)
        let = fwd(spec_q3t, pet, lora=etl)
        a_t = etl["model.embed_tokens"]
        w_new = params_q3t["model.embed_tokens.weight"] + (a_t["B"] @ a_t["A"]).t() * a_t["scaling"]
        ck.close("tied qwen3 embedding LoRA unmerged == embedding W + dW, lm_head still the base W",
                 let, fwd(spec_q3t, dict(params_q3t, **{"model.embed_tokens.weight": w_new})), 1e-12)
        mq = merge_lora(pet, spec_q3t, etl)
        ck.ok("tied qwen3 merge: lm_head shares the merged weight (PEFT merges into the shared Parameter)",
              mq["lm_head.weight"] is mq["model.embed_tokens.weight"])
        lmq = fwd(spec_q3t, mq)
        ck.close("tied qwen3 merged == model whose embedding and head are both W + dW", lmq, fwd(spec_q3t, dict(
            params_q3t, **{"model.embed_tokens.weight": w_new, "lm_head.weight": w_new})), 1e-12)
        ck.differ("tied qwen3: merged differs from unmerged (head changed by the merge)", lmq, let, 1e-6)
        ck.differ("tied qwen3 embedding LoRA changes logits", let, lq3t, 1e-3)

        eg = os.path.join(root, "emb_gpt2")
        write_peft_adapter(eg, os.path.join(root, "gpt2_bare"), ["wte", "wpe", "c_attn"], 4, 8.0, seed=43, std=0.3)
        egs = read_safetensors(os.path.join(eg, "adapter_model.safetensors"))[0]
        with open(os.path.join(eg, "adapter_config.json")) as f:
            egc = json.load(f)
        ck.ok("gpt2 wte/wpe: lora_embedding_A/B keys, no base_layer saved (wte not in EMBEDDING_LAYER_NAMES), "
              "fan_in_fan_out true", "base_model.model.transformer.wte.lora_embedding_A" in egs
              and tuple(egs["base_model.model.transformer.wpe.lora_embedding_A"].shape) == (4, 16)
              and not any("base_layer" in k_ for k_ in egs) and egc["fan_in_fan_out"] is True)
        egl, egsv = load_adapter(eg, spec_g, params_g)
        leg = fwd(spec_g, params_g, lora=egl)
        ck.close("gpt2 wte+wpe embedding LoRA: vectorised == loop reference", leg,
                 slow_forward(params_g, spec_g, ids, egl), 1e-11)
        wpe_only = {k_: v for k_, v in egl.items() if k_ != "transformer.wte"}
        ck.close("gpt2 wpe (untied) + c_attn LoRA: merged == unmerged", fwd(spec_g, merge_lora(params_g, spec_g, wpe_only)),
                 fwd(spec_g, params_g, lora=wpe_only), 1e-10)
        mg = merge_lora(params_g, spec_g, egl)
        ck.ok("gpt2 tied wte merge moves lm_head too", mg["lm_head.weight"] is mg["transformer.wte.weight"])

        print("CLI: --modules-to-save and embedding targets")
        cli_e = os.path.join(root, "cli_emb")
        main(["--write-adapter", cli_e, "--model", d_llb, "--targets", "embed_tokens,q_proj,lm_head", "--rank", "4",
              "--alpha", "8", "--seed", "6", "--std", "0.2", "--modules-to-save", "model.norm"])
        cs = read_safetensors(os.path.join(cli_e, "adapter_model.safetensors"))[0]
        ck.ok("CLI adapter keys: lora_embedding_A/B, base_layer for embed_tokens and lm_head, model.norm copy",
              {ek + "lora_embedding_A", ek + "lora_embedding_B", ek + "base_layer.weight",
               "base_model.model.lm_head.base_layer.weight", "base_model.model.model.norm.weight"} <= set(cs))
        cli_q = os.path.join(root, "cli_emb_q3t")
        main(["--write-adapter", cli_q, "--model", d_q3t, "--targets", "embed_tokens", "--rank", "2", "--alpha", "4",
              "--seed", "7", "--std", "0.2", "--modules-to-save", "lm_head", "--save-embedding-layers", "false"])
        ck.ok("CLI --save-embedding-layers false: no base_layer key", not any(
            "base_layer" in k_ for k_ in read_safetensors(os.path.join(cli_q, "adapter_model.safetensors"))[0]))
        outs = [os.path.join(root, f"cli_o{i}.json") for i in range(4)]
        with open(jobs_path, "w") as f:
            json.dump([dict(model=d_llb, adapter=cli_e, ids=ids.tolist(), out=outs[0]),
                       dict(model=d_llb, adapter=cli_e, ids=ids.tolist(), out=outs[1], merge=True),
                       dict(model=d_q3t, adapter=cli_q, ids=ids.tolist(), out=outs[2]),
                       dict(model=d_q3t, adapter=cli_q, ids=ids.tolist(), out=outs[3], merge=True)], f)
        main(["--jobs", jobs_path])
        co = []
        for o in outs:
            with open(o) as f:
                co.append(torch.tensor(json.load(f)["logits"], dtype=DT))
        ck.differ("CLI llama embedding+q+head LoRA, model.norm copy: changes logits", co[0], lb, 1e-3)
        ck.close("CLI llama: merged vs unmerged (jobs)", co[1], co[0], 1e-10)
        ck.differ("CLI tied qwen3 embedding LoRA + lm_head copy: changes logits", co[2], lq3t, 1e-3)
        ck.close("CLI tied qwen3: head is the saved copy, so merging the embedding leaves it: merged == unmerged",
                 co[3], co[2], 1e-10)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nselftest: {ck.count - ck.failed}/{ck.count} checks passed")
    return 1 if ck.failed else 0


if __name__ == "__main__":
    sys.exit(main())
