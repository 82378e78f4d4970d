using LoraShell.Core.Models;
using LoraShell.Core.Models.Families;

namespace LoraShell.Core.Lora;

/// <summary>
/// Which embedding rows an adapter's <c>trainable_token_indices</c> trains on this model, by PEFT's rules
/// (utils/other.py, _set_trainable with TrainableTokensWrapper): the list form means the input embedding; a
/// dict names modules by path suffix; on a tied model an entry for the head with the embedding's indices is
/// the same rows (PEFT ties the head's token adapter to the embedding's). What LoraShell does not do is
/// refused by name: rows of an untied head, and an embedding that is also trained another way.
/// </summary>
public static class TrainableTokenTargets
{
    /// <summary>The embedding rows to train, in the order given (the adapter's rows follow it), or null when the config trains none.</summary>
    public static long[]? Resolve(IAdaptableModel model, LoraConfig config)
    {
        if (config.TrainableTokenIndices is not { Count: > 0 } map) return null;
        var embedding = model.EmbeddingSlot();
        bool tied = model.TieWordEmbeddings;
        IReadOnlyList<int>? rows = null;
        var headEntries = new List<(string Module, IReadOnlyList<int> Indices)>();
        foreach (var (module, indices) in map)
        {
            if (module.Length == 0 || embedding.Path.EndsWith(module, StringComparison.Ordinal))
            {
                if (rows is not null)
                    throw LoraShellException.InvalidArgument("InvalidTokenIndices", $"trainable_token_indices names the embedding '{embedding.Path}' twice; give its token ids once.", module);
                rows = indices;
            }
            else if (FamilyLayout.Head.EndsWith(module, StringComparison.Ordinal))
            {
                if (!tied)
                    throw LoraShellException.InvalidArgument("TrainableTokensOnUntiedHead",
                        $"trainable_token_indices names the output head '{module}', which this model does not tie to its embedding; LoraShell trains embedding rows only. Train the head with modules_to_save (-ModulesToSave {FamilyLayout.Head}), or leave the entry out.", module);
                headEntries.Add((module, indices));
            }
            else
                throw LoraShellException.InvalidArgument("TrainableTokensModuleNotFound",
                    $"trainable_token_indices names '{module}', which is not this model's embedding ('{embedding.Path}'){(tied ? $" or its tied head ('{FamilyLayout.Head}')" : "")}.", module);
        }
        if (rows is null)
            throw LoraShellException.InvalidArgument("TrainableTokensModuleNotFound",
                $"trainable_token_indices names only the tied head; its rows are the embedding's ('{embedding.Path}'), so name the embedding (or give a plain list of token ids).", headEntries[0].Module);
        foreach (var (module, indices) in headEntries)
            if (!indices.SequenceEqual(rows))
                throw LoraShellException.InvalidArgument("TiedTokenIndicesDiffer",
                    $"trainable_token_indices gives the tied head '{module}' other token ids than the embedding; they are one weight here, so give both the same ids.", module);

        long vocabulary = embedding.Base.weight!.shape[0];
        var outside = rows.Where(i => i >= vocabulary).ToList();
        if (outside.Count > 0)
            throw LoraShellException.InvalidArgument("TokenIndexOutOfRange",
                $"trainable_token_indices holds {string.Join(", ", outside.Take(5))}{(outside.Count > 5 ? ", …" : "")}, outside this model's {vocabulary} embedding rows (0..{vocabulary - 1}).", outside[0]);
        if (LoraConfig.SavesModule(config.ModulesToSave, embedding.Path))
            throw LoraShellException.InvalidArgument("TrainableTokensOverlap",
                $"The embedding '{embedding.Path}' is in modules_to_save (trained whole) and in trainable_token_indices (some rows); PEFT refuses both, so choose one.", embedding.Path);
        if (TargetMatcher.SelectsEmbedding(model, config))
            throw LoraShellException.InvalidArgument("TrainableTokensOverlap",
                $"The embedding '{embedding.Path}' is a LoRA target and has trainable_token_indices; the trained rows would bypass its LoRA. Leave it out of the targets, or leave out the token ids.", embedding.Path);
        return rows.Select(i => (long)i).ToArray();
    }
}
