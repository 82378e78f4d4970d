namespace LoraShell.Core.Lora;

/// <summary>
/// Which biases an adapter trains and saves (PEFT's <c>bias</c>). The members are spelled as PEFT's
/// values, so <c>-Bias lora_only</c> binds and the value is written to adapter_config.json as is.
/// </summary>
public enum LoraBias
{
    /// <summary>No bias trains (PEFT's default).</summary>
    none,
    /// <summary>Every bias of the model trains and is saved with the adapter.</summary>
    all,
    /// <summary>Only the biases of the layers the adapter wraps.</summary>
    lora_only,
}
