using LoraShell.Core.IO;
using static TorchSharp.torch;

namespace LoraShell.Core.Models.T5;

/// <summary>
/// Loads a T5 checkpoint from a Hugging Face folder (config.json + model.safetensors, single or sharded),
/// under the checkpoint's own names. The stacks' embed_tokens copies and, when tied, lm_head are the shared
/// embedding again in transformers' files: they are not loaded twice.
/// </summary>
public static class T5Loader
{
    public static bool IsT5Folder(string folder)
    {
        string config = Path.Combine(folder, HuggingFaceLoader.ConfigFileName);
        if (!File.Exists(config)) return false;
        try { return System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(config)) is System.Text.Json.Nodes.JsonObject o && T5Config.IsT5(o); }
        catch (System.Text.Json.JsonException) { return false; }
    }

    public static T5ForConditionalGeneration Load(string folder, Action<string>? warn = null)
    {
        string full = Path.GetFullPath(folder);
        if (!Directory.Exists(full)) throw LoraShellException.NotFound("ModelFolderNotFound", $"Model folder '{full}' does not exist.", full);
        string configPath = Path.Combine(full, HuggingFaceLoader.ConfigFileName);
        if (!File.Exists(configPath))
            throw LoraShellException.NotFound("ModelConfigNotFound", $"'{full}' has no config.json; a Hugging Face model folder needs one. Found: {SafetensorsCheckpoint.ListFolder(full)}.", full);
        var config = T5Config.FromJson(File.ReadAllText(configPath), configPath);
        var model = new T5ForConditionalGeneration(config);
        try { LoadWeights(model, full, warn); }
        catch { model.Dispose(); throw; }
        model.eval();
        return model;
    }

    /// <summary>Reads a folder's weights into <paramref name="model"/> (a checkpoint of full fine-tuning, or the model's own folder).</summary>
    public static void LoadWeights(T5ForConditionalGeneration model, string folder, Action<string>? warn = null)
    {
        using var checkpoint = SafetensorsCheckpoint.Open(folder);
        var ignore = new HashSet<string>(StringComparer.Ordinal) { "encoder.embed_tokens.weight", "decoder.embed_tokens.weight" };
        if (model.Config.TieWordEmbeddings && checkpoint.Contains("lm_head.weight"))
        {
            ignore.Add("lm_head.weight");
            warn?.Invoke($"'{folder}' ties the output head to the shared embedding (tie_word_embeddings is true), so the file's lm_head.weight is not used, as in transformers.");
        }
        var shapes = checkpoint.Names.ToDictionary(n => n, n => checkpoint.Entry(n).Shape, StringComparer.Ordinal);
        foreach (var name in shapes.Keys)
            if (checkpoint.Entry(name).DType is not ("F32" or "F16" or "BF16"))
                throw LoraShellException.InvalidData("UnsupportedWeightDType", $"Tensor '{name}' in '{folder}' is {checkpoint.Entry(name).DType}; model weights must be F32, F16 or BF16.", name);
        StateDictLoader.Load(model, folder, shapes, name => checkpoint.Read(name), ignore);
    }
}
