using static TorchSharp.torch;

namespace LoraShell.Core.Models.Families;

/// <summary>The MLP activations (config.json hidden_act / activation_function) LoraShell computes.</summary>
public static class Activations
{
    public static readonly IReadOnlyList<string> Supported = new[] { "silu", "swish", "gelu", "gelu_new", "gelu_pytorch_tanh", "relu" };

    public static string Check(string name, string source)
        => Supported.Contains(name) ? name
            : throw LoraShellException.InvalidData("UnsupportedActivation", $"'{source}' names activation '{name}'; LoraShell computes {string.Join(", ", Supported)}.", source);

    public static Tensor Apply(string name, Tensor x) => name switch
    {
        "silu" or "swish" => nn.functional.silu(x),
        // transformers' NewGELUActivation is the tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
        "gelu_new" or "gelu_pytorch_tanh" => nn.functional.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh),
        "gelu" => nn.functional.gelu(x),
        _ => nn.functional.relu(x),
    };
}
