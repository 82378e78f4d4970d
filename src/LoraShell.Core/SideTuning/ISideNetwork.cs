using static TorchSharp.torch;

namespace LoraShell.Core.SideTuning;

/// <summary>A ladder side network of either kind (beside a decoder, or beside T5's two stacks), as training and its files see it.</summary>
public interface ISideNetwork
{
    /// <summary>The network as a module (parameters, training mode, state dict).</summary>
    nn.Module Module { get; }

    /// <summary>Its shape and the backbone it was built for (side_network.json).</summary>
    LadderConfig Config { get; }

    /// <summary>μ of every ladder.</summary>
    double[] GateValues();

    /// <summary>Writes side_network.json and side_network.safetensors into a new folder, atomically.</summary>
    void Save(string folder, bool overwrite);

    /// <summary>Writes the two files into an existing folder (a checkpoint's).</summary>
    void WriteInto(string folder);
}
