using System.Globalization;
using System.Text;

namespace LoraShell.Core.Jobs;

/// <summary>
/// The Accelerate config file (<c>accelerate launch --config_file</c>) for a job: the keys of Accelerate's
/// ClusterConfig, laid out as <c>accelerate config</c> writes them, for one GPU, FSDP (PEFT's recommended
/// settings: full shard, frozen and trainable weights wrapped apart, use_orig_params false) or ZeRO-3.
/// </summary>
public static class AccelerateConfig
{
    public const string FileName = "accelerate_config.yaml";

    /// <summary>The config as ordered key/value pairs (a nested section is a list of pairs).</summary>
    public static List<KeyValuePair<string, object>> Entries(TrainingJobOptions o)
    {
        var e = new List<KeyValuePair<string, object>>();
        void Add(string key, object value) => e.Add(new(key, value));
        Add("compute_environment", "LOCAL_MACHINE");
        Add("debug", false);
        Add("distributed_type", o.Strategy switch
        {
            DistributedStrategy.Fsdp => "FSDP",
            DistributedStrategy.DeepSpeedZero3 => "DEEPSPEED",
            _ => "NO",
        });
        Add("downcast_bf16", "no");
        if (o.Strategy == DistributedStrategy.Fsdp)
            Add("fsdp_config", new List<KeyValuePair<string, object>>
            {
                new("fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP"),
                new("fsdp_backward_prefetch", "BACKWARD_PRE"),
                new("fsdp_cpu_ram_efficient_loading", true),
                new("fsdp_forward_prefetch", false),
                new("fsdp_offload_params", false),
                new("fsdp_sharding_strategy", "FULL_SHARD"),
                new("fsdp_state_dict_type", "SHARDED_STATE_DICT"),
                new("fsdp_sync_module_states", true),
                // PEFT: only with use_orig_params false does FSDP save memory on the frozen weights; train.py
                // then wraps trainable and frozen weights apart (peft.utils.other.fsdp_auto_wrap_policy).
                new("fsdp_use_orig_params", false),
            });
        if (o.Strategy == DistributedStrategy.DeepSpeedZero3)
            Add("deepspeed_config", new List<KeyValuePair<string, object>>
            {
                new("deepspeed_multinode_launcher", "standard"),
                new("offload_optimizer_device", "none"),
                new("offload_param_device", "none"),
                new("zero3_init_flag", true),
                new("zero3_save_16bit_model", true),
                new("zero_stage", 3),
            });
        Add("machine_rank", 0);
        Add("main_training_function", "main");
        Add("mixed_precision", "bf16");
        Add("num_machines", o.Machines);
        Add("num_processes", o.Gpus);
        Add("rdzv_backend", "static");
        Add("same_network", true);
        Add("use_cpu", false);
        return e;
    }

    public static string Render(TrainingJobOptions o)
    {
        var b = new StringBuilder();
        b.Append("# Accelerate launch config written by LoraShell's Export-LoraTrainingJob (").Append(Describe(o)).Append(").\n");
        if (o.Machines > 1)
            b.Append("# On each of the ").Append(o.Machines).Append(" machines: accelerate launch --config_file ").Append(FileName).Append(" --machine_rank <0..").Append(o.Machines - 1)
             .Append("> --main_process_ip <machine 0's address> --main_process_port 29500 train.py (README.md).\n");
        foreach (var (key, value) in Entries(o)) Write(b, key, value, "");
        return b.ToString();
    }

    public static string Describe(TrainingJobOptions o) => o.Strategy switch
    {
        DistributedStrategy.Fsdp => $"FSDP over {o.Gpus} GPU{(o.Gpus == 1 ? "" : "s")}",
        DistributedStrategy.DeepSpeedZero3 => $"DeepSpeed ZeRO-3 over {o.Gpus} GPU{(o.Gpus == 1 ? "" : "s")}",
        _ => "one GPU",
    } + (o.Machines > 1 ? $" on {o.Machines} machines" : "");

    static void Write(StringBuilder b, string key, object value, string indent)
    {
        if (value is List<KeyValuePair<string, object>> section)
        {
            b.Append(indent).Append(key).Append(":\n");
            foreach (var (k, v) in section) Write(b, k, v, indent + "  ");
            return;
        }
        b.Append(indent).Append(key).Append(": ").Append(Scalar(value)).Append('\n');
    }

    // YAML 1.1 readers (PyYAML, which Accelerate uses) read NO, no, Off, y … as booleans: such strings are quoted.
    static readonly HashSet<string> Yaml11Booleans = new(StringComparer.OrdinalIgnoreCase) { "y", "n", "yes", "no", "on", "off", "true", "false" };

    static string Scalar(object value) => value switch
    {
        bool v => v ? "true" : "false",
        int i => i.ToString(CultureInfo.InvariantCulture),
        string s when Yaml11Booleans.Contains(s) => $"'{s}'",
        string s => s,
        _ => throw new ArgumentException($"No YAML scalar for {value}."),
    };
}
