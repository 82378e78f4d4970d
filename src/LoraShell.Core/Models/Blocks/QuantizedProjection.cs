using LoraShell.Core.Models.Quantization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Models.Blocks;

/// <summary>
/// A frozen projection whose weight is stored quantized (<see cref="Nf4Weight"/>, <see cref="Int8Weight"/>)
/// and dequantized one layer at a time, in forward and again in backward (<see cref="QuantizedLinear"/>),
/// so no dense copy outlives the matmul that needs it. The weight is [out, in] whatever the family's file
/// layout (GPT-2's Conv1D files hold [in, out]; they are transposed on load, as transformers does for
/// bitsandbytes). Only the bias, when there is one, is a registered parameter.
/// </summary>
/// <remarks>
/// Setting a dense weight (merging a LoRA adapter into it) makes the layer compute with a dense weight in
/// the compute dtype, dequantized base + delta rounded once to that dtype (not re-quantized, which would
/// round again). The quantized weight is kept beside it, so <see cref="DropDense"/> (unmerging) returns the
/// layer to exactly the quantized base it was loaded as.
/// </remarks>
public sealed class QuantizedProjection : Projection
{
    QuantizedWeight? _quantized;
    public Parameter? weight; // only once a dense weight was set
    public Parameter? bias;
    readonly long _in, _out;
    readonly BaseQuantization _kind;
    readonly bool _doubleQuant;
    ScalarType _dtype;
    Device _device;

    public QuantizedProjection(long inFeatures, long outFeatures, bool hasBias, WeightFormat format, bool fileTransposed) : base("QuantizedLinear")
    {
        _in = inFeatures;
        _out = outFeatures;
        _kind = format.Quantization;
        _doubleQuant = format.DoubleQuant;
        _dtype = format.DType;
        _device = CPU;
        FileTransposed = fileTransposed;
        if (hasBias)
        {
            bias = nn.Parameter(zeros(outFeatures, dtype: format.DType), requires_grad: false);
            register_parameter(nameof(bias), bias);
        }
    }

    // Children are registered explicitly under the family's HF names; TorchSharp's registration by
    // field name (which runs when this module is registered in its parent) would add them twice.
    protected override void RegisterComponents() { }

    public override long InFeatures => _in;
    public override long OutFeatures => _out;
    public override Parameter? Bias => bias;
    public override Device WeightDevice => _device;
    public override ScalarType ComputeDType => _dtype;

    /// <summary>The checkpoint holds this weight as [in, out] (a Conv1D family).</summary>
    public bool FileTransposed { get; }

    /// <summary>The weight's shape in the checkpoint file.</summary>
    public long[] FileShape => FileTransposed ? new[] { _in, _out } : new[] { _out, _in };

    public BaseQuantization Kind => _kind;

    /// <summary>True while the layer computes from the quantized weight (false while a merged dense weight stands in for it).</summary>
    public bool IsQuantized => weight is null;

    /// <summary>Bytes of the quantized weight (codes and statistics), kept while merged too; 0 before loading.</summary>
    public long QuantizedBytes => _quantized?.Bytes ?? 0;

    /// <summary>Quantizes a weight read from the checkpoint (in its file layout, any float dtype).</summary>
    public void LoadFromFile(Tensor fileWeight)
    {
        using var scope = NewDisposeScope();
        var outIn = FileTransposed ? fileWeight.t() : fileWeight;
        if (!outIn.shape.SequenceEqual(new[] { _out, _in }))
            throw LoraShellException.InvalidData("ShapeMismatch", $"A quantized {_out} x {_in} projection needs a weight of [{string.Join(", ", FileShape)}] from the checkpoint; it holds [{string.Join(", ", fileWeight.shape)}].");
        var quantized = QuantizedWeight.Quantize(outIn.to(_device), _kind, _doubleQuant);
        _quantized?.Dispose();
        _quantized = quantized;
    }

    QuantizedWeight Stored => _quantized ?? throw new LoraShellException(LoraErrorKind.InvalidOperation, "QuantizedWeightMissing",
        $"This {_kind} {_out} x {_in} projection holds no weight: quantized models are made by loading a checkpoint (Import-LoraModel -Quantization), not built empty.");

    /// <summary>The dequantized weight [out, in] in the compute dtype (a fresh tensor).</summary>
    public Tensor Dequantized() => weight is not null ? weight.detach().clone() : Stored.Dequantize(_dtype);

    public override Tensor forward(Tensor x)
    {
        if (weight is not null) return nn.functional.linear(x, weight, bias);
        var y = QuantizedLinear.Apply(x, this);
        return bias is null ? y : y + bias;
    }

    public override Tensor DenseWeight() => weight is not null ? weight.detach().to(ScalarType.Float32) : Stored.Dequantize(ScalarType.Float32);

    public override void SetDenseWeight(Tensor outIn)
    {
        using var _ = no_grad();
        var dense = outIn.detach().to(_dtype, _device).clone();
        if (weight is null)
        {
            weight = (Parameter)nn.Parameter(dense, requires_grad: false).DetachFromDisposeScope(); // lives with the layer
            register_parameter(nameof(weight), weight);
        }
        else weight.copy_(dense);
    }

    /// <summary>Drops a dense weight set by a merge: the layer computes from its quantized weight again, exactly as loaded.</summary>
    public void DropDense()
    {
        if (weight is null) return;
        ConditionallyRegisterParameter(nameof(weight), (Parameter?)null);
        weight.Dispose();
        weight = null;
    }

    protected override nn.Module _to(DeviceType deviceType, int deviceIndex, bool non_blocking)
    {
        _device = new Device(deviceType, deviceIndex);
        _quantized?.MoveTo(_device);
        return base._to(deviceType, deviceIndex, non_blocking);
    }

    // A dtype change is the compute dtype's; the codes and their float32 statistics stay as they are.
    protected override nn.Module _to(ScalarType dtype, bool non_blocking)
    {
        _dtype = dtype;
        return base._to(dtype, non_blocking);
    }

    protected override nn.Module _to(Device device, ScalarType dtype, bool non_blocking)
    {
        _device = device;
        _dtype = dtype;
        _quantized?.MoveTo(device);
        return base._to(device, dtype, non_blocking);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) { _quantized?.Dispose(); _quantized = null; }
        base.Dispose(disposing);
    }
}
