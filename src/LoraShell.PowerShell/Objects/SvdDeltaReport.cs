namespace LoraShell;

/// <summary>One tensor's outcome from Invoke-SvdDelta (type name LoraShell.SvdDeltaReport).</summary>
public sealed class SvdDeltaReport
{
    internal SvdDeltaReport(Core.Delta.SvdDeltaReport r) => Core = r;
    internal Core.Delta.SvdDeltaReport Core { get; }
    public string Name => Core.Name;
    public Core.Delta.DeltaStatus Status => Core.Status;
    /// <summary>The tensor's dimensions (out, in for a matrix); the table view shows them as "out x in".</summary>
    public int[] Shape => Core.Shape.Select(d => checked((int)d)).ToArray();
    public int Rank => Core.Rank;
    public double RelativeError => Core.RelativeError;
    public double? OptimalError => Core.OptimalError;
    public double EnergyKept => Core.EnergyKept;
    public double DeltaNorm => Core.DeltaNorm;
    public double MaxAbsDelta => Core.MaxAbsDelta;
    public long BytesBefore => Core.BytesBefore;
    public long BytesAfter => Core.BytesAfter;
    public double Seconds => Core.Seconds;
    /// <summary>How the delta was factorised; null for a tensor that is missing on one side.</summary>
    public Core.Delta.SvdMethod? Method => Enum.TryParse<Core.Delta.SvdMethod>(Core.Method, out var m) ? m : null;
    public double[] Spectrum => Core.Spectrum;
    public bool StoredExactly => Core.StoredExactly;
}

/// <summary>The closing summary of Invoke-SvdDelta (type name LoraShell.SvdDeltaSummary).</summary>
public sealed class SvdDeltaSummary
{
    internal SvdDeltaSummary(Core.Delta.SvdDeltaSummary s) => Core = s;
    internal Core.Delta.SvdDeltaSummary Core { get; }
    public int Matrices => Core.Matrices;
    public int ZeroDeltas => Core.ZeroDeltas;
    public int NonMatrixChanged => Core.NonMatrixChanged;
    public int Missing => Core.Missing;
    public long BytesBefore => Core.BytesBefore;
    public long BytesAfter => Core.BytesAfter;
    public double CompressionRatio => Core.CompressionRatio;
    public double WorstRelativeError => Core.WorstRelativeError;
    public string? WorstMatrix => Core.WorstMatrix;
    public int MaxRank => Core.MaxRank;
    public string? OutputPath => Core.OutputPath;
    public long AdapterFileBytes => Core.AdapterFileBytes;
    public double Seconds => Core.Seconds;
}
