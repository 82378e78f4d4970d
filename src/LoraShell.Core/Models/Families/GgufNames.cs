namespace LoraShell.Core.Models.Families;

/// <summary>
/// How llama.cpp names a family's tensors: one table from what a tensor is (its role in
/// <see cref="FamilyLayout"/>) to llama.cpp's name, shared by every family because the layouts already
/// say which HF module plays which role. Export maps HF → GGUF with it, import GGUF → HF.
/// </summary>
public static class GgufNames
{
    public const string TokenEmbedding = "token_embd";
    public const string PositionEmbedding = "position_embd";
    public const string OutputNorm = "output_norm";
    public const string Output = "output";
    public const string RopeFrequencies = "rope_freqs";

    static string Projection(ProjectionRole role) => role switch
    {
        ProjectionRole.Query => "attn_q",
        ProjectionRole.Key => "attn_k",
        ProjectionRole.Value => "attn_v",
        ProjectionRole.QueryKeyValue => "attn_qkv",
        ProjectionRole.Output => "attn_output",
        ProjectionRole.Gate => "ffn_gate",
        // Phi-3's fused gate_up is llama.cpp's ffn_up of twice the width, gate half first (its fused SwiGLU).
        ProjectionRole.Up or ProjectionRole.GateUp => "ffn_up",
        _ => "ffn_down",
    };

    /// <summary>Every HF module path of a model of this config with its GGUF base name (no .weight/.bias).</summary>
    public static IReadOnlyDictionary<string, string> ModuleMap(ModelConfig c)
    {
        var l = c.Family.Layout;
        var map = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [$"{l.Backbone}.{l.Embedding}"] = TokenEmbedding,
            [$"{l.Backbone}.{l.FinalNorm}"] = OutputNorm,
            [FamilyLayout.Head] = Output,
        };
        if (l.PositionEmbedding is string wpe) map[$"{l.Backbone}.{wpe}"] = PositionEmbedding;
        for (int i = 0; i < c.NumHiddenLayers; i++)
        {
            string p = l.LayerPrefix(i), b = $"blk.{i}.";
            map[p + l.InputNorm] = b + "attn_norm";
            map[p + l.PostAttentionNorm] = b + "ffn_norm";
            foreach (var proj in l.AttentionProjections) map[$"{p}{l.Attention}.{proj.Name}"] = b + Projection(proj.Role);
            foreach (var proj in l.FeedForwardProjections) map[$"{p}{l.FeedForward}.{proj.Name}"] = b + Projection(proj.Role);
            if (l.QueryKeyNorm)
            {
                map[$"{p}{l.Attention}.{FamilyLayout.QueryNorm}"] = b + "attn_q_norm";
                map[$"{p}{l.Attention}.{FamilyLayout.KeyNorm}"] = b + "attn_k_norm";
            }
        }
        return map;
    }

    /// <summary>The GGUF name of an HF tensor (<c>model.layers.0.self_attn.q_proj.weight</c> → <c>blk.0.attn_q.weight</c>).</summary>
    public static string? TensorName(IReadOnlyDictionary<string, string> moduleMap, string hfTensor)
    {
        int dot = hfTensor.LastIndexOf('.');
        return dot > 0 && moduleMap.TryGetValue(hfTensor[..dot], out var g) ? g + hfTensor[dot..] : null;
    }
}
