#!/usr/bin/env python3
"""Reads an exported LoraShell training job the way its users' tools would, and prints what it found as JSON.

Written for the tests of Export-LoraTrainingJob, with Debian's python3 and python3-yaml only (no torch,
transformers, TRL or PEFT): train.py must compile and import without the training stack; its settings are
read from the module as Python evaluates them; the Accelerate config is parsed with yaml.safe_load and its
keys are checked against Accelerate 1.14.0's ClusterConfig (src/accelerate/commands/config/config_args.py),
which refuses unknown keys; every data line must be a JSON object.

usage: training_job_check.py JOB_FOLDER TOTAL_STEPS
"""
import importlib.util
import json
import py_compile
import sys

import yaml

# accelerate 1.14.0: BaseConfig + ClusterConfig dataclass fields (from_yaml_file raises on any other key).
CLUSTER_CONFIG_FIELDS = {
    "compute_environment", "distributed_type", "mixed_precision", "use_cpu", "debug",
    "num_processes", "machine_rank", "num_machines", "gpu_ids", "main_process_ip", "main_process_port",
    "rdzv_backend", "same_network", "main_training_function", "enable_cpu_affinity", "fp8_config",
    "deepspeed_config", "fsdp_config", "parallelism_config", "megatron_lm_config", "mpirun_config",
    "downcast_bf16", "tpu_name", "tpu_zone", "tpu_use_cluster", "tpu_use_sudo", "command_file", "commands",
    "tpu_vm", "tpu_env", "dynamo_config",
}
DISTRIBUTED_TYPES = {"NO", "MULTI_GPU", "FSDP", "DEEPSPEED", "MULTI_CPU", "XLA", "MEGATRON_LM", "MULTI_NPU", "MULTI_XPU", "MULTI_MLU", "MULTI_SDAA", "MULTI_MUSA", "MULTI_HPU", "MULTI_NEURON"}


def main():
    job, total_steps = sys.argv[1], int(sys.argv[2])
    py_compile.compile(f"{job}/train.py", doraise=True)
    spec = importlib.util.spec_from_file_location("lorashell_job_train", f"{job}/train.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)  # the heavy imports live in main(); this must work without them

    with open(f"{job}/accelerate_config.yaml", encoding="utf-8") as f:
        accelerate = yaml.safe_load(f)
    unknown = sorted(set(accelerate) - CLUSTER_CONFIG_FIELDS)
    if unknown:
        raise SystemExit(f"accelerate_config.yaml has keys Accelerate refuses: {unknown}")
    if "distributed_type" not in accelerate or accelerate["distributed_type"] not in DISTRIBUTED_TYPES:
        raise SystemExit(f"accelerate_config.yaml needs a distributed_type of {sorted(DISTRIBUTED_TYPES)}")

    data = {}
    for split, path in train.DATA_FILES.items():
        with open(f"{job}/{path}", encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
        if not all(isinstance(r, dict) for r in records):
            raise SystemExit(f"{path} holds a line that is not a JSON object")
        data[split] = records

    print(json.dumps({
        "model": train.MODEL,
        "lora_config": train.LORA_CONFIG,
        "quantization": train.QUANTIZATION,
        "model_init_kwargs": train.MODEL_INIT_KWARGS,
        "training_args": train.TRAINING_ARGS,
        "chat_template_file": train.CHAT_TEMPLATE_FILE,
        "learning_rate_factors": [train.learning_rate_factor(s, total_steps) for s in range(total_steps)],
        "accelerate": accelerate,
        "data": data,
    }))


if __name__ == "__main__":
    main()
