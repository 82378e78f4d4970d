namespace LoraShell.Core.Models.Blocks;

/// <summary>
/// RoPE inverse frequencies per <c>rope_scaling</c> type, as transformers' modeling_rope_utils defines
/// them: default 1/θ^(2i/d); <c>linear</c> divides them by the factor (positions / factor);
/// <c>dynamic</c> (NTK) raises the base once a sequence is longer than max_position_embeddings,
/// θ' = θ·(f·L/max − (f − 1))^(d/(d−2)) with L the sequence length; <c>llama3</c> keeps high
/// frequencies, divides low ones by the factor and blends the band between by wavelength.
/// </summary>
public static class RopeFrequencies
{
    public static double[] InverseFrequencies(ModelConfig c, long sequenceLength)
    {
        int dim = c.RotaryDim;
        double theta = c.RopeTheta;
        var scaling = c.RopeScaling;
        if (scaling?.Type == RopeScaling.Dynamic)
        {
            double length = Math.Max(sequenceLength, c.MaxPositionEmbeddings);
            theta *= Math.Pow(scaling.Factor * length / c.MaxPositionEmbeddings - (scaling.Factor - 1), dim / (dim - 2.0));
        }
        var inv = Enumerable.Range(0, dim / 2).Select(i => 1.0 / Math.Pow(theta, 2.0 * i / dim)).ToArray();
        return scaling?.Type switch
        {
            RopeScaling.Linear => inv.Select(f => f / scaling.Factor).ToArray(),
            RopeScaling.Llama3 => inv.Select(f => Llama3(f, scaling)).ToArray(),
            _ => inv,
        };
    }

    static double Llama3(double invFreq, RopeScaling s)
    {
        double wavelength = 2 * Math.PI / invFreq;
        double lowWavelength = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;   // longer waves: scaled
        double highWavelength = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor; // shorter waves: kept
        if (wavelength < highWavelength) return invFreq;
        if (wavelength > lowWavelength) return invFreq / s.Factor;
        double smooth = (s.OriginalMaxPositionEmbeddings / wavelength - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
        return (1 - smooth) * invFreq / s.Factor + smooth * invFreq;
    }
}
