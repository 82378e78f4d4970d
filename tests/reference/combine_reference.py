#!/usr/bin/env python3
"""Independent reference for PEFT's LoraModel.add_weighted_adapter (combining LoRA adapters into one).

    /usr/bin/python3 hf_reference.py --combine OUTDIR --model DIR --adapters DIR1,DIR2[,...]
        --weights 0.7,0.3 --combination-type linear|cat|svd|ties|dare_linear|dare_ties|magnitude_prune|
                                              ties_svd|dare_linear_svd|dare_ties_svd|magnitude_prune_svd
        [--density 0.5] [--majority-sign-method total|frequency] [--svd-rank R] [--svd-clamp C] [--seed S]
    /usr/bin/python3 combine_reference.py --selftest

(The CLI lives in hf_reference.py; this module holds the math and is imported from there.)
Reads PEFT adapter folders (adapter_config.json + adapter_model.safetensors, via hf_reference.load_lora, so
rank_pattern / alpha_pattern / use_rslora give each source module its own r and scaling s_i) and writes the
combined adapter folder as PEFT's save_pretrained would: adapter_config.json + float32
adapter_model.safetensors with keys base_model.model.<path>.lora_A.weight [r, in] / .lora_B.weight [out, r]
(and .lora_magnitude_vector [out] when the first adapter is DoRA, see below), metadata {"format": "pt"}.

FOLLOWED: huggingface/peft release v0.20.0 (tag object dcb81da6ad92be5a9f4e07795c09d55cf35a19d1, commit
a5526d27a9d47d1e8264d5e1b1f96c0fdc79464e, 2026-07-28), the latest release tag; main at
5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40 (2026-08-21) has byte-identical add_weighted_adapter code and
merge_utils.py. Line numbers are v0.20.0's:
  src/peft/tuners/lora/model.py
    585-662  _check_add_weighted_adapter  (refusals, new_rank, new target_modules)
    664-799  add_weighted_adapter         (new config 727-734, zeroing 753-754, cat 755-774, dispatch)
    801-867  _svd_generalized_task_arithmetic_weighted_adapter
    869-919  _generalized_task_arithmetic_weighted_adapter
  src/peft/utils/merge_utils.py (whole file, 268 lines): reshape_weight_task_tensors, magnitude_based_pruning,
    random_pruning, prune, calculate_majority_sign_mask, disjoint_merge, task_arithmetic, magnitude_prune,
    ties, dare_linear, dare_ties
  src/peft/tuners/lora/layer.py 1000-1028 Linear.get_delta_weight = transpose(B @ A, fan_in_fan_out) * scaling
  src/peft/tuners/tuners_utils.py 1894-1965 check_target_module_exists (which modules get the new adapter)
  src/peft/config.py 126-163 to_dict / save_pretrained (sets written as lists, json indent=2, sort_keys)
  src/peft/tuners/lora/dora.py 101-  DoraLinearLayer.update_layer (magnitude at inject time)

Notation: adapters i = 1..n with user weights w_i, per-module A_i [r_i, in], B_i [out, r_i],
s_i = scaling of adapter i on that module (alpha_i / r_i, or alpha_i / sqrt(r_i) with use_rslora).
delta_i = s_i B_i A_i (what the adapter adds to W, in [out, in]).

NEW CONFIG (model.py 727-734): replace(peft_config[adapters[0]], r=new_rank, lora_alpha=new_rank,
target_modules=new_target_modules, alpha_pattern={}, rank_pattern={}) -- every other field (use_dora,
use_rslora, fan_in_fan_out, layers_to_transform, exclude_modules, bias, ...) comes from the FIRST adapter.
So the new adapter's own scaling is s_new = new_rank / new_rank = 1, but with use_rslora inherited from
adapter 1 it is new_rank / sqrt(new_rank) = sqrt(new_rank) (bug fixed by PR #3449 AFTER the release;
followed as released: the combined delta is then s_new * B A with s_new = sqrt(new_rank)).
  new_rank (_check_add_weighted_adapter, 618-642; svd split 853-867, A/B weights 889-897), with R_i = r_i, or max(r_i, *rank_pattern_i.values()):
    one adapter only  -> combination_type is forced to "linear" (line 618)
    linear, ties, dare_ties, dare_linear, magnitude_prune -> all R_i must be equal (else ValueError); R_1
    cat   -> sum R_i
    *svd  -> svd_rank or max R_i
  target_modules (644-660): all adapters' target_modules must be the same type (list/set vs str regex, else
    ValueError); sets -> union; strings -> "(t1)|(t2)|...". Which modules then carry the new adapter is
    check_target_module_exists with the new config (union target_modules plus adapter 1's exclude_modules /
    layers_to_transform / layers_pattern). A module in that set that NO source adapter has makes PEFT raise
    ("No matching LoRAs found", or an IndexError in the non-svd path); a source module outside it is dropped.

PER MODULE (new A, B start as zeros, lines 753-754), with g_i = w_i * s_i:
  cat (755-774):     A_new = concat_rows(g_i * A_i)  [sum r_i, in];  B_new = concat_cols(B_i)  [out, sum r_i]
                     (adapters lacking the module are skipped, the rest packed from row/col 0, the remainder
                     stays zero).  delta = s_new * B_new A_new = s_new * sum_i w_i delta_i  -- exact.
  linear / ties / dare_linear / dare_ties / magnitude_prune (869-919): A's and B's are merged SEPARATELY:
                     a_i = sign(g_i) * sqrt(|g_i|),  b_i = sqrt(|g_i|)   (sign on the A side only)
                     A_new = MERGE([A_i], a),  B_new = MERGE([B_i], b)     [r, in], [out, r]
                     linear: A_new = sum a_i A_i, B_new = sum b_i B_i, so
                     delta = s_new * (sum_i b_i B_i)(sum_j a_j A_j) = s_new * (sum_i w_i delta_i + cross terms
                     sqrt|g_i g_j| sign(g_j) B_i A_j, i != j) -- NOT the sum of deltas; weights [1, 0] give
                     exactly delta_1 (times s_new).
  svd family (801-867): D = MERGE([transpose(B_i A_i, fifo) * s_i], [w_i * s_i])   <- s_i applied TWICE
                     (valid_weights.append(weight * target.scaling[adapter]) at line 822, and get_delta_weight
                     at 827 already multiplies by s_i).  D = D.T for fan_in_fan_out (Conv1D), so D is [out, in];
                     U, S, Vh = torch.linalg.svd(D, full_matrices=True); U = U[:, :k] @ diag(S[:k]);
                     Vh = Vh[:k]; optional clamp: hi = torch.quantile(cat(U.flatten(), Vh.flatten()), clamp),
                     U, Vh clamped to [-hi, hi];  B_new = U, A_new = Vh.
                     svd at full rank:  delta = s_new * sum_i w_i s_i delta_i  (= sum_i w_i s_i^2 B_i A_i).
                     PEFT PR #3111 ("FIX Several bugs when adding merged LoRA weights", opened 2026-03-18,
                     merged only after the snapshot of main above) changes line 822 to append(weight), giving
                     sum_i w_i delta_i. Not in v0.20.0: the RELEASE is followed here.
  MERGE(T_i, v) (merge_utils.py), T stacked on dim 0, v broadcast over the rest:
    task_arithmetic:  sum_i v_i T_i
    magnitude_prune:  sum_i v_i P(T_i)       P = keep the top int(density * numel) |entries| of each T_i
    ties:             P each T_i; elect sign: sgn(sum_i P(T_i)) ("total") or sgn(sum_i sgn P(T_i))
                      ("frequency"), >= 0 -> +1; mask M_i = (sgn P(T_i) == elected) (a 0 entry never agrees);
                      sum_i M_i v_i P(T_i) / max(1, sum_i M_i)     (sign elected on the UNweighted tensors)
    dare_linear:      sum_i v_i R(T_i),  R = T * bernoulli(density) / density
    dare_ties:        ties with R instead of P
    prune() with density >= 1 returns the tensor unchanged (no RNG draw); density < 0 raises.
  dare masks: torch.bernoulli(torch.full_like(T, density)) drawn (float32 here, as a float32 PeftModel would)
  from torch's global CPU generator, seeded with --seed right before combining; modules in named_modules
  order (layers in order, lm_head last), A's (adapters in order) before B's. ANOTHER IMPLEMENTATION CANNOT
  REPRODUCE THESE MASKS (nor can PEFT itself with the same seed: inject_adapter's kaiming init of the new
  adapter draws from the generator first); compare dare results statistically / structurally only.

DoRA: PEFT v0.20.0 does not refuse DoRA sources. The combined adapter gets use_dora from adapter 1; all
source magnitudes are ignored (only A, B and s_i are read), and the new adapter's magnitude is what
DoraLinearLayer.update_layer computed at inject time, when lora_B is still zero (init_lora_weights True or
"gaussian"): m = ||W||_row (row norms of the base weight in [out, in]). Followed, with a warning.

REFUSED (ValueError) as PEFT does: different R_i for linear/ties/dare_*/magnitude_prune; target_modules
of mixed types (list vs str); target_parameters; a new-adapter module no source adapter has; unknown
combination_type. Refused HERE although PEFT would go on (each reason noted at the check): weights count
!= adapters count (PEFT zips, silently dropping the extra); density missing for a pruning type (PEFT: a
TypeError deep inside prune); density <= 0 for dare (v0.20.0 divides by 0 -> NaN); svd rank above
min(out, in); per-module ranks that differ from R in the non-svd/non-cat path (PEFT writes tensors that do
not match the r it saves, or fails in torch.stack); init_lora_weights schemes that would rewrite base
weights when the new adapter is injected (pissa, olora, corda, loftq, ...); modules_to_save; embedding
LoRA (not supported by hf_reference).

Precision: computed in float64, saved as float32. PEFT computes in the model dtype (float32 usually) and
builds its weight tensors with torch.tensor(list) (float32), so expect ~1e-7 relative differences; SVD
factors may differ in sign per singular pair between implementations (compare B @ A, not B, A), and with
--svd-clamp the quantile of the signed entries depends on that sign choice.
"""

import json
import math
import os
import re
import sys
import tempfile
from functools import reduce

import torch

if "hf_reference" in sys.modules:
    H = sys.modules["hf_reference"]
else:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import hf_reference as H  # noqa: E402

DT = torch.float64

NON_SVD = ("linear", "ties", "dare_linear", "dare_ties", "magnitude_prune")
SVD = ("svd", "ties_svd", "dare_linear_svd", "dare_ties_svd", "magnitude_prune_svd")
ALL_TYPES = NON_SVD + ("cat",) + SVD
_PRUNING = ("ties", "dare_linear", "dare_ties", "magnitude_prune",
            "ties_svd", "dare_linear_svd", "dare_ties_svd", "magnitude_prune_svd")


# =============================================================================================
# merge_utils.py (v0.20.0), float64
# =============================================================================================

def _reshape_weights(task_tensors, weights):
    # reshape_weight_task_tensors: weights.view(weights.shape + (1,) * (task_tensors.dim() - weights.dim()))
    return weights.view(weights.shape + (1,) * (task_tensors.dim() - weights.dim()))


def magnitude_based_pruning(tensor, density):
    # mask 1 at topk(|t|.flatten(), k=int(density * numel)) indices
    mask = torch.zeros_like(tensor).reshape(-1)
    k = int(density * tensor.numel())
    top_k = torch.topk(tensor.abs().reshape(-1), k=k, largest=True)
    mask[top_k[1]] = 1
    return tensor * mask.reshape(tensor.shape)


def random_pruning(tensor, density, rescale):
    # torch.bernoulli(torch.full_like(input=tensor, fill_value=density)); drawn on a float32 tensor, as a
    # float32 model would, so the generator is consumed the same way.
    mask = torch.bernoulli(torch.full(tuple(tensor.shape), density, dtype=torch.float32)).to(tensor.dtype)
    pruned = tensor * mask
    if rescale:
        pruned = pruned / density
    return pruned


def prune(tensor, density, method, rescale=False):
    if density >= 1:  # "no pruning will be performed" (warning), no RNG draw
        return tensor
    if density < 0:
        raise ValueError(f"Density should be >= 0, got {density}")
    if method == "magnitude":
        return magnitude_based_pruning(tensor, density)
    if method == "random":
        return random_pruning(tensor, density, rescale=rescale)
    raise ValueError(f"Unknown method {method}")


def calculate_majority_sign_mask(tensor, method="total"):
    sign = tensor.sign()
    if method == "total":
        sign_magnitude = tensor.sum(dim=0)
    elif method == "frequency":
        sign_magnitude = sign.sum(dim=0)
    else:
        raise RuntimeError(f'Unimplemented mask method "{method}"')
    majority_sign = torch.where(sign_magnitude >= 0, 1, -1)
    return sign == majority_sign


def disjoint_merge(task_tensors, majority_sign_mask):
    mixed = (task_tensors * majority_sign_mask).sum(dim=0)
    num_preserved = majority_sign_mask.sum(dim=0)
    return mixed / torch.clamp(num_preserved, min=1.0)


def _weighted_sum(task_tensors, weights):
    return (task_tensors * _reshape_weights(task_tensors, weights)).sum(dim=0)


def task_arithmetic(task_tensors, weights):
    return _weighted_sum(torch.stack(task_tensors, dim=0), weights)


def magnitude_prune(task_tensors, weights, density):
    return _weighted_sum(torch.stack([prune(t, density, "magnitude") for t in task_tensors], dim=0), weights)


def ties(task_tensors, weights, density, majority_sign_method="total"):
    stacked = torch.stack([prune(t, density, "magnitude") for t in task_tensors], dim=0)
    mask = calculate_majority_sign_mask(stacked, method=majority_sign_method)  # on the UNweighted tensors
    return disjoint_merge(stacked * _reshape_weights(stacked, weights), mask)


def dare_linear(task_tensors, weights, density):
    return _weighted_sum(torch.stack([prune(t, density, "random", rescale=True) for t in task_tensors], 0),
                         weights)


def dare_ties(task_tensors, weights, density, majority_sign_method="total"):
    stacked = torch.stack([prune(t, density, "random", rescale=True) for t in task_tensors], dim=0)
    mask = calculate_majority_sign_mask(stacked, method=majority_sign_method)
    return disjoint_merge(stacked * _reshape_weights(stacked, weights), mask)


def _merge(kind, tensors, weights, density, majority_sign_method):
    """kind without the _svd suffix; 'svd' itself is task_arithmetic (model.py 829-830)."""
    if kind in ("linear", "svd"):
        return task_arithmetic(tensors, weights)
    if kind == "ties":
        return ties(tensors, weights, density, majority_sign_method)
    if kind == "dare_linear":
        return dare_linear(tensors, weights, density)
    if kind == "dare_ties":
        return dare_ties(tensors, weights, density, majority_sign_method)
    if kind == "magnitude_prune":
        return magnitude_prune(tensors, weights, density)
    raise ValueError(f"Invalid combination type: {kind}")


# =============================================================================================
# which modules carry the new adapter: tuners_utils.check_target_module_exists (v0.20.0 1894-1965)
# =============================================================================================

def _as_target_set(value):
    # LoraConfig.__post_init__: list -> set (target_modules and exclude_modules); str stays a regex
    return set(value) if isinstance(value, list) else value


def target_module_exists(cfg, key):
    exclude = _as_target_set(cfg.get("exclude_modules"))
    if exclude:
        if isinstance(exclude, str):
            if re.fullmatch(exclude, key):
                return False
        elif key in exclude or any(key.endswith(f".{e}") for e in exclude):
            return False
    tm = cfg["target_modules"]
    if isinstance(tm, str):
        return re.fullmatch(tm, key) is not None
    if key in tm:
        return True  # listed directly: layers_to_transform is NOT applied (as in PEFT)
    found = any(key.endswith(f".{t}") for t in tm)
    layer_indexes, layers_pattern = cfg.get("layers_to_transform"), cfg.get("layers_pattern")
    using = layer_indexes is not None and (len(layer_indexes) != 0 if isinstance(layer_indexes, list) else True)
    if using and found:
        if not layers_pattern:
            m = re.match(r".*?\.[^.]*\.(\d+)\.", key)
        else:
            m = None
            for pat in ([layers_pattern] if isinstance(layers_pattern, str) else layers_pattern):
                m = re.match(rf".*?\.{pat}\.(\d+)\.", key)
                if m is not None:
                    break
        if m is None:
            found = False
        else:
            idx = int(m.group(1))
            found = idx == layer_indexes if isinstance(layer_indexes, int) else idx in layer_indexes
    return found


def _module_order(spec):
    """named_modules order: the decoder layers' projections in registration order, lm_head last."""
    paths = H.dense_paths(spec)
    head = spec["fam"]["head"]
    return [p for p in paths if p != head] + [head]


# =============================================================================================
# add_weighted_adapter
# =============================================================================================

_SAFE_INITS = (True, False, "gaussian")


def check_add_weighted_adapter(cfgs, combination_type, svd_rank):
    """_check_add_weighted_adapter (model.py 585-662): (combination_type, new_rank, new_target_modules)."""
    for i, c in enumerate(cfgs):
        if c.get("target_parameters"):
            raise ValueError(f"add_weighted_adapter does not support targeting nn.Parameter (adapter {i + 1})")
    # "if there is only one adapter, we can only use linear merging"
    combination_type = "linear" if len(cfgs) == 1 else combination_type
    ranks = [int(c["r"]) if not c.get("rank_pattern") else max(int(c["r"]), *map(int, c["rank_pattern"].values()))
             for c in cfgs]
    if combination_type in NON_SVD:
        if len(set(ranks)) != 1:
            raise ValueError("PEFT refuses: all adapters must have the same r value when using combination_type "
                             f"linear, ties, dare_ties, dare_linear or magnitude_prune (got r = {ranks})")
        new_rank = ranks[0]
    elif combination_type == "cat":
        new_rank = sum(ranks)
    elif combination_type.endswith("svd") and combination_type in SVD:
        new_rank = svd_rank or max(ranks)
    else:
        raise ValueError(f"Invalid combination_type: {combination_type}")
    tms = [_as_target_set(c.get("target_modules")) for c in cfgs]
    types = {type(t) for t in tms}
    if len(types) > 1:
        raise ValueError("PEFT refuses: all adapter configs should follow the same target modules type; a mix of "
                         "list/set and string target_modules is not supported")
    if isinstance(tms[0], str):
        new_tm = "|".join(f"({t})" for t in tms)
    elif isinstance(tms[0], set):
        new_tm = reduce(lambda a, b: a | b, tms)
    else:
        raise TypeError(f"Invalid type {type(tms[0])} found in target_modules")
    return combination_type, new_rank, new_tm


def combine_adapters(model_dir, adapter_dirs, weights, combination_type, density=None,
                     majority_sign_method="total", svd_rank=None, svd_clamp=None, seed=1, loaded=None):
    """Returns (config dict, {key: float32 tensor}) of the combined adapter. loaded=(spec, params) skips
    reloading the model."""
    if not adapter_dirs:
        raise ValueError("need at least one adapter")
    if len(weights) != len(adapter_dirs):
        # PEFT zip()s adapters with weights and silently drops the surplus; refused here.
        raise ValueError(f"{len(adapter_dirs)} adapters but {len(weights)} weights")
    if combination_type not in ALL_TYPES:
        raise ValueError(f"Invalid combination_type: {combination_type}")
    if majority_sign_method not in ("total", "frequency"):
        raise ValueError(f"majority_sign_method must be total or frequency, got {majority_sign_method}")
    spec, params = loaded if loaded is not None else H.load_model(model_dir)
    cfgs, loras = [], []
    for d in adapter_dirs:
        with open(os.path.join(d, "adapter_config.json")) as f:
            cfgs.append(json.load(f))
        loras.append(H.load_lora(d, spec, params))
    for d, c in zip(adapter_dirs, cfgs):
        if c.get("modules_to_save"):
            raise NotImplementedError(f"{d}: modules_to_save is not supported by this reference")
    combination_type, new_rank, new_tm = check_add_weighted_adapter(cfgs, combination_type, svd_rank)
    if combination_type in _PRUNING:
        if density is None:
            # PEFT passes density=None on into prune(), which fails with a TypeError ('>=' on None)
            raise ValueError(f"combination_type {combination_type} needs --density")
        if combination_type.startswith("dare") and density <= 0:
            # v0.20.0 random_pruning divides by density: density 0 gives NaN everywhere
            raise ValueError("dare with density <= 0: PEFT v0.20.0 divides by the density (NaN adapter)")
    cfg0 = cfgs[0]
    init = cfg0.get("init_lora_weights", True)
    if init not in _SAFE_INITS:
        # inject_adapter of the new adapter would run this init on the base model (pissa/olora/corda/loftq
        # rewrite W) -- a saved combined adapter cannot express that.
        raise NotImplementedError(f"adapter 1 has init_lora_weights={init!r}; the new adapter inherits it and PEFT "
                                  "would re-initialise from the base weights when injecting it")
    use_dora = bool(cfg0.get("use_dora"))
    if use_dora and init is False:
        raise NotImplementedError("use_dora with init_lora_weights=false: the new magnitude would depend on "
                                  "PEFT's random B at inject time")
    if any(bool(c.get("use_dora")) for c in cfgs):
        H.warn("DoRA source adapter(s): add_weighted_adapter ignores every source magnitude; the combined adapter "
               f"{'is DoRA (from adapter 1) with magnitude ||W|| per row (its inject-time init)' if use_dora else 'is plain LoRA (adapter 1 is not DoRA)'}")
    new_scaling = new_rank / math.sqrt(new_rank) if cfg0.get("use_rslora") else 1.0
    if cfg0.get("use_rslora"):
        H.warn(f"adapter 1 uses rslora: the combined adapter inherits use_rslora with r = lora_alpha = {new_rank}, "
               f"so its scaling is sqrt({new_rank}) = {new_scaling:.6g}, not 1 (as released in v0.20.0)")

    new_cfg = dict(cfg0, r=new_rank, lora_alpha=new_rank, alpha_pattern={}, rank_pattern={})
    new_cfg["target_modules"] = sorted(new_tm) if isinstance(new_tm, set) else new_tm
    if isinstance(new_cfg.get("exclude_modules"), list):
        new_cfg["exclude_modules"] = sorted(set(new_cfg["exclude_modules"]))
    # PeftModel.from_pretrained(..., is_trainable=False) loads every source with inference_mode=True
    new_cfg["inference_mode"] = True
    match_cfg = dict(new_cfg, target_modules=new_tm)

    new_paths = [p for p in _module_order(spec) if target_module_exists(match_cfg, p)]
    all_src = set().union(*[set(lo) for lo in loras])
    dropped = sorted(all_src - set(new_paths))
    if dropped:
        H.warn(f"source modules outside the new adapter's targets (adapter 1's layers_to_transform / "
               f"exclude_modules) are dropped, as PEFT does: {dropped}")
    if not new_paths:
        raise ValueError("the combined target_modules match no module of this model")

    torch.manual_seed(seed)
    out = {}
    for path in new_paths:
        present = [(i, lo[path]) for i, lo in enumerate(loras) if path in lo]
        if not present:
            raise ValueError(f"PEFT refuses: No matching LoRAs found for {path} (targeted by the combined "
                             "target_modules but by none of the source adapters)")
        fan_in, fan_out = H.lora_fan(params, spec, path)
        fifo = H.linear_kind(spec, path) == "conv1d"
        if combination_type == "cat":
            A = torch.zeros(new_rank, fan_in, dtype=DT)
            B = torch.zeros(fan_out, new_rank, dtype=DT)
            As = torch.cat([a["A"] * weights[i] * a["scaling"] for i, a in present], dim=0)
            Bs = torch.cat([a["B"] for _, a in present], dim=1)
            A[:As.shape[0], :] = As
            B[:, :Bs.shape[1]] = Bs
        elif combination_type in SVD:
            k = new_rank
            if k > min(fan_in, fan_out):
                raise ValueError(f"{path}: svd rank {k} exceeds min(out, in) = {min(fan_in, fan_out)} "
                                 "(PEFT would produce mis-shaped factors)")
            # valid_weights.append(weight * target.scaling[adapter])  -- s_i here ...
            vw = torch.tensor([weights[i] * a["scaling"] for i, a in present], dtype=DT)
            # ... and again in get_delta_weight: transpose(B @ A, fan_in_fan_out) * scaling
            deltas = [((a["B"] @ a["A"]).t() if fifo else a["B"] @ a["A"]) * a["scaling"] for _, a in present]
            D = _merge(combination_type[:-4] if combination_type != "svd" else "svd", deltas, vw,
                       density, majority_sign_method)
            if fifo:
                D = D.T
            U, S, Vh = torch.linalg.svd(D, full_matrices=True)
            U = U[:, :k] @ torch.diag(S[:k])
            Vh = Vh[:k, :]
            if svd_clamp is not None:
                dist = torch.cat([U.flatten(), Vh.flatten()])
                hi = torch.quantile(dist, svd_clamp)
                U, Vh = U.clamp(-hi, hi), Vh.clamp(-hi, hi)
            A, B = Vh, U
        else:
            for i, a in present:
                if a["A"].shape[0] != new_rank:
                    raise ValueError(f"{path}: adapter {i + 1} has rank {a['A'].shape[0]} here (rank_pattern) but the "
                                     f"combined r is {new_rank}; PEFT would save mis-shaped tensors or fail in "
                                     "torch.stack")
            wa, wb = [], []
            for i, a in present:
                g = weights[i] * a["scaling"]
                sgn = 1 if g >= 0 else -1  # sign only on the A side
                wa.append(math.sqrt(abs(g)) * sgn)
                wb.append(math.sqrt(abs(g)))
            A = _merge(combination_type, [a["A"] for _, a in present], torch.tensor(wa, dtype=DT),
                       density, majority_sign_method)
            B = _merge(combination_type, [a["B"] for _, a in present], torch.tensor(wb, dtype=DT),
                       density, majority_sign_method)
        key = f"base_model.model.{path}"
        out[key + ".lora_A.weight"] = A.contiguous().float()
        out[key + ".lora_B.weight"] = B.contiguous().float()
        if use_dora:
            # DoraLinearLayer.update_layer at inject: ||W + s * B0 A0|| with B0 = 0 -> ||W|| per output row
            w = H.weight_out_in(params[path + ".weight"], spec, path)
            out[key + ".lora_magnitude_vector"] = torch.linalg.norm(w, dim=1).float()
    return new_cfg, out, dict(combination_type=combination_type, new_rank=new_rank, new_scaling=new_scaling)


def write_combined(out_dir, model_dir, adapter_dirs, weights, combination_type, **kw):
    cfg, tensors, info = combine_adapters(model_dir, adapter_dirs, weights, combination_type, **kw)
    os.makedirs(out_dir, exist_ok=True)
    H.write_safetensors(os.path.join(out_dir, "adapter_model.safetensors"), tensors, {"format": "pt"})
    with open(os.path.join(out_dir, "adapter_config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True))  # PeftConfigMixin.save_pretrained
    return info


# =============================================================================================
# self-check
# =============================================================================================

def _delta(lora, path, spec):
    a = lora[path]
    return (a["B"] @ a["A"]) * a["scaling"]


def selftest():
    ck = H._Checks()
    root = tempfile.mkdtemp(prefix="combine_reference_selftest_")
    ids = [[3, 17, 5, 28, 0, 9, 9, 11], [21, 1, 4, 4, 19, 8, 25, 13]]
    llama = H._llama_cfg()
    gpt2 = dict(model_type="gpt2", vocab_size=29, n_embd=32, n_layer=2, n_head=4, n_positions=16,
                n_inner=None, layer_norm_epsilon=1e-5, activation_function="gelu_new")
    for name, cfg, t1, t2 in [("llama", llama, ["q_proj", "v_proj"], ["q_proj", "down_proj"]),
                              ("gpt2", gpt2, ["c_attn", "c_proj"], ["c_attn", "c_fc"])]:
        print(f"== {name}")
        mdir = os.path.join(root, name)
        H.make_checkpoint(mdir, cfg, seed=3)
        spec, params = H.load_model(mdir)
        a1, a2, a3 = (os.path.join(root, f"{name}_a{i}") for i in (1, 2, 3))
        H.write_peft_adapter(a1, mdir, t1, 4, 8, seed=11, std=0.2)    # s = 2
        H.write_peft_adapter(a2, mdir, t2, 4, 12, seed=12, std=0.2)   # s = 3
        H.write_peft_adapter(a3, mdir, t1, 2, 2, seed=13, std=0.2)    # r = 2, s = 1
        l1, l2 = H.load_lora(a1, spec, params), H.load_lora(a2, spec, params)
        paths = sorted(set(l1) | set(l2))
        w = [0.7, -0.4]

        def comb(ct, ads=(a1, a2), ws=w, **kw):
            out = os.path.join(root, f"{name}_{ct}_{len(os.listdir(root))}")
            info = write_combined(out, mdir, list(ads), list(ws), ct, loaded=(spec, params), **kw)
            return out, H.load_lora(out, spec, params), info

        def target(coef, p):
            return sum(c * _delta(lo, p, spec) for c, lo in zip(coef, (l1, l2)) if p in lo)

        def maxdiff(lc, coef):
            return max((_delta(lc, p, spec) - target(coef, p)).abs().max().item() for p in paths)

        # cat: delta = sum w_i delta_i exactly
        d, lc, info = comb("cat")
        ck.ok("cat: r = 4 + 4, alpha = 8, modules = union", info["new_rank"] == 8 and set(lc) == set(paths),
              f"{info}")
        ck.ok("cat: delta == sum w_i delta_i", maxdiff(lc, w) < 2e-6, f"max|diff|={maxdiff(lc, w):.2e}")
        with open(os.path.join(d, "adapter_config.json")) as f:
            c = json.load(f)
        ck.ok("config r = lora_alpha = new_rank, union targets", c["r"] == 8 and c["lora_alpha"] == 8 and
              c["target_modules"] == sorted(set(t1) | set(t2)), f"{c['r']} {c['lora_alpha']} {c['target_modules']}")
        # linear [1, 0] -> delta_1 exactly
        _, lc, info = comb("linear", ws=(1.0, 0.0))
        ck.ok("linear [1,0]: delta == delta_1 (modules only in adapter 2 become 0)",
              maxdiff(lc, [1.0, 0.0]) < 2e-6, f"max|diff|={maxdiff(lc, [1.0, 0.0]):.2e}")
        # linear [0.7, -0.4]: cross terms
        _, lc, _ = comb("linear")
        shared = [p for p in paths if p in l1 and p in l2]
        p0 = shared[0]
        s1, s2 = l1[p0]["scaling"], l2[p0]["scaling"]
        g1, g2 = w[0] * s1, w[1] * s2
        Bn = math.sqrt(abs(g1)) * l1[p0]["B"] + math.sqrt(abs(g2)) * l2[p0]["B"]
        An = math.copysign(math.sqrt(abs(g1)), g1) * l1[p0]["A"] + math.copysign(math.sqrt(abs(g2)), g2) * l2[p0]["A"]
        ck.close("linear: B A == (sum sqrt|g|B)(sum sgn sqrt|g| A) incl. cross terms", _delta(lc, p0, spec), Bn @ An,
                 2e-6)
        ck.differ("linear != sum of deltas on a shared module", _delta(lc, p0, spec), target(w, p0), 1e-3)
        only1 = [p for p in paths if p in l1 and p not in l2]
        ck.close("linear on a module only adapter 1 has: w1 delta_1", _delta(lc, only1[0], spec),
                 w[0] * _delta(l1, only1[0], spec), 2e-6)
        # svd full rank (8 >= rank of the sum) reproduces sum w_i s_i delta_i (scaling twice, as released)
        _, lc, info = comb("svd", svd_rank=8)
        md_twice = max((_delta(lc, p, spec) - sum(wi * lo[p]["scaling"] * _delta(lo, p, spec)
                                                  for wi, lo in zip(w, (l1, l2)) if p in lo)).abs().max().item()
                       for p in paths)
        md_once = maxdiff(lc, w)
        ck.ok("svd rank 8: delta == sum w_i s_i delta_i (release applies s twice)", md_twice < 2e-6,
              f"max|diff|={md_twice:.2e}; vs sum w_i delta_i: {md_once:.2e}")
        _, lc, info = comb("svd")
        ck.ok("svd default rank = max r = 4", info["new_rank"] == 4 and lc[p0]["A"].shape[0] == 4)
        _, lcc, _ = comb("svd", svd_clamp=0.9)
        ck.differ("svd clamp 0.9 changes the factors", lcc[p0]["B"], lc[p0]["B"], 1e-6)
        # ties / magnitude_prune / dare with density 1
        _, lt, _ = comb("magnitude_prune", density=1.0)
        _, ll, _ = comb("linear")
        ck.close("magnitude_prune density 1 == linear", _delta(lt, p0, spec), _delta(ll, p0, spec), 1e-6)
        _, ld, _ = comb("dare_linear", density=1.0)
        ck.close("dare_linear density 1 == linear", _delta(ld, p0, spec), _delta(ll, p0, spec), 1e-6)
        _, lti, _ = comb("ties", density=1.0)
        # ties density 1, 2 adapters, elementwise: agree -> (a1 x1 + a2 x2)/2, disagree -> the one whose sign
        # matches sgn(x1 + x2) (>= 0 -> +)
        def ties2(x1, x2, v1, v2):
            maj = torch.where(x1 + x2 >= 0, 1.0, -1.0)
            m1, m2 = (x1.sign() == maj).to(DT), (x2.sign() == maj).to(DT)
            return (m1 * v1 * x1 + m2 * v2 * x2) / torch.clamp(m1 + m2, min=1.0)
        ta = ties2(l1[p0]["A"], l2[p0]["A"], math.copysign(math.sqrt(abs(g1)), g1), math.copysign(math.sqrt(abs(g2)), g2))
        tb = ties2(l1[p0]["B"], l2[p0]["B"], math.sqrt(abs(g1)), math.sqrt(abs(g2)))
        ck.close("ties density 1 == closed form (A)", lti[p0]["A"], ta, 1e-6)
        ck.close("ties density 1 == closed form (B)", lti[p0]["B"], tb, 1e-6)
        _, ldt, _ = comb("dare_ties", density=1.0)
        ck.close("dare_ties density 1 == ties density 1", _delta(ldt, p0, spec), _delta(lti, p0, spec), 1e-6)
        # pruning at density 0.5: half the entries of each source kept (checked via magnitude_prune)
        _, lm, _ = comb("magnitude_prune", density=0.5)
        pa = magnitude_based_pruning(l1[p0]["A"], 0.5) * math.copysign(math.sqrt(abs(g1)), g1) + \
            magnitude_based_pruning(l2[p0]["A"], 0.5) * math.copysign(math.sqrt(abs(g2)), g2)
        ck.close("magnitude_prune density 0.5 (A)", lm[p0]["A"], pa, 1e-6)
        # dare reproducible with the seed, different with another seed
        _, dA, _ = comb("dare_linear", density=0.5, seed=5)
        _, dB, _ = comb("dare_linear", density=0.5, seed=5)
        _, dC, _ = comb("dare_linear", density=0.5, seed=6)
        ck.close("dare_linear same seed -> same adapter", dA[p0]["A"], dB[p0]["A"], 0)
        ck.differ("dare_linear other seed -> other adapter", dA[p0]["A"], dC[p0]["A"], 1e-6)
        for ct in ("ties_svd", "dare_linear_svd", "dare_ties_svd", "magnitude_prune_svd"):
            _, lx, info = comb(ct, density=0.5, majority_sign_method="frequency")
            ck.ok(f"{ct}: rank 4, finite", info["new_rank"] == 4 and all(torch.isfinite(v["A"]).all() and
                                                                        torch.isfinite(v["B"]).all() for v in lx.values()))
        _, lx, _ = comb("ties_svd", density=1.0, svd_rank=8)
        # refusals
        ck.raises("linear with r 4 and r 2 refused", lambda: comb("linear", ads=(a1, a3)), ValueError)
        ck.raises("ties without density refused", lambda: comb("ties"), ValueError)
        ck.raises("weights count mismatch refused", lambda: comb("linear", ws=(1.0,)), ValueError)
        _, lc3, info = comb("cat", ads=(a1, a3))
        ck.ok("cat r 4 + r 2 -> r 6", info["new_rank"] == 6)
        _, l1only, info = comb("svd", ads=(a1,), ws=(1.0,))
        ck.ok("one adapter -> forced to linear", info["combination_type"] == "linear")
        # logits through --jobs with the combined adapter
        d, lc, _ = comb("cat")
        jobs = os.path.join(root, f"{name}_jobs.json")
        outs = [os.path.join(root, f"{name}_{k}.json") for k in ("base", "comb", "merged")]
        with open(jobs, "w") as f:
            json.dump([dict(model=mdir, ids=ids, out=outs[0]), dict(model=mdir, adapter=d, ids=ids, out=outs[1]),
                       dict(model=mdir, adapter=d, merge=True, ids=ids, out=outs[2])], f)
        rc = H.main(["--jobs", jobs])
        res = []
        for o in outs:
            with open(o) as f:
                res.append(torch.tensor(json.load(f)["logits"], dtype=DT))
        ck.ok("--jobs ran with the combined adapter", rc == 0)
        ck.differ("combined adapter changes logits", res[1], res[0], 1e-4)
        ck.close("combined adapter unmerged == merged", res[1], res[2], 1e-9)
        # same logits as merging sum w_i delta_i by hand
        merged = dict(params)
        for p in paths:
            dd = target(w, p)
            merged[p + ".weight"] = params[p + ".weight"] + (dd.t() if H.linear_kind(spec, p) == "conv1d" else dd)
        ref = H.forward(merged, spec, torch.tensor(ids))
        ck.close("cat adapter logits == base + sum w_i delta_i (float32-saved factors)", res[1], ref, 1e-5)
    # DoRA: follows PEFT (magnitude = ||W|| rows), warns
    mdir = os.path.join(root, "llama")
    spec, params = H.load_model(mdir)
    ad1, ad2 = os.path.join(root, "dora1"), os.path.join(root, "dora2")
    H.write_peft_adapter(ad1, mdir, ["q_proj"], 4, 8, dora=True, seed=21)
    H.write_peft_adapter(ad2, mdir, ["q_proj"], 4, 8, dora=True, seed=22)
    cfg, t, _ = combine_adapters(mdir, [ad1, ad2], [0.5, 0.5], "linear", loaded=(spec, params))
    p = "model.layers.0.self_attn.q_proj"
    ck.close("DoRA combine: magnitude == ||W|| rows (PEFT inject-time init)",
             t[f"base_model.model.{p}.lora_magnitude_vector"], torch.linalg.norm(params[p + ".weight"], dim=1), 1e-6)
    ck.ok("DoRA combine: config use_dora from adapter 1", cfg["use_dora"] is True)
    print(f"{ck.count - ck.failed}/{ck.count} checks passed; files in {root}")
    return 1 if ck.failed else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--selftest"]:
        sys.exit(selftest())
    sys.exit(H.main(sys.argv[1:]))
