using LoraShell.Core.Lora;

namespace LoraShell;

/// <summary>One adapter of a model, as Get-LoraAdapter lists it (type name LoraShell.LoraAdapter).</summary>
public sealed class LoraAdapter
{
    internal LoraAdapter(LoraModel model, AdapterInfo info)
    {
        Owner = model;
        Model = model.Name;
        Name = info.Name;
        Rank = info.Rank;
        Alpha = info.Alpha;
        Scaling = info.Scaling;
        Targets = info.TargetModules.ToArray();
        Modules = info.ModulePaths.ToArray();
        TrainableParameters = info.TrainableParameters;
        TotalParameters = info.TotalParameters;
        Merged = info.Merged;
        Active = info.Active;
        UseRsLora = info.Config.UseRsLora;
        Dropout = info.Config.LoraDropout;
        Bias = info.Config.Bias;
        RankPattern = info.Config.RankPattern.ToDictionary(p => p.Key, p => p.Value);
        UseDora = info.Config.UseDora;
        ModulesToSave = info.Config.ModulesToSave?.ToArray() ?? Array.Empty<string>();
        TrainableTokenIndices = info.Config.TrainableTokenIndices?.Values.SelectMany(v => v).Distinct().ToArray() ?? Array.Empty<int>();
    }

    /// <summary>The model the adapter belongs to, so Remove-, Save- and Set-LoraAdapter can take an adapter from the pipeline.</summary>
    internal LoraModel Owner { get; }

    public string Model { get; }
    public string Name { get; }
    public int Rank { get; }
    public double Alpha { get; }
    public double Scaling { get; }
    /// <summary>Short names of the wrapped modules (q_proj, v_proj, …).</summary>
    public string[] Targets { get; }
    /// <summary>Full paths of the wrapped modules.</summary>
    public string[] Modules { get; }
    public long TrainableParameters { get; }
    public long TotalParameters { get; }
    public double TrainablePercent => TotalParameters == 0 ? 0 : 100.0 * TrainableParameters / TotalParameters;
    public bool Merged { get; }
    public bool Active { get; }
    public bool UseRsLora { get; }
    public double Dropout { get; }
    public string Bias { get; }
    public Dictionary<string, int> RankPattern { get; }
    public bool UseDora { get; }
    /// <summary>Modules the adapter keeps a trained copy of (modules_to_save).</summary>
    public string[] ModulesToSave { get; }
    /// <summary>Token ids whose embedding rows the adapter trains (trainable_token_indices).</summary>
    public int[] TrainableTokenIndices { get; }
    public override string ToString() => $"{Name} (r={Rank}, alpha={Alpha}, {Targets.Length} targets)";

    /// <summary>An adapter stands for its model where a cmdlet takes one (`Get-LoraAdapter x | Save-LoraAdapter …`).</summary>
    public static implicit operator LoraModel(LoraAdapter adapter) => adapter.Owner;
}
