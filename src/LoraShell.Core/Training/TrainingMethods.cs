using LoraShell.Core.IO;
using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Training;

/// <summary>
/// What each training method (Full, Lora, Ladder) trains and how: which parameters are set trainable
/// (and the side network built), where the final hidden states come from, and how its weights are
/// saved at the end, checkpointed and restored. The task-independent half of a training run.
/// </summary>
internal static class TrainingMethods
{
    /// <summary>What the optimizer updates: the side network's parameters (named side.*) for Ladder, else the model's that require grad.</summary>
    internal static List<(string name, Parameter parameter)> TrainableOf(LlamaForCausalLM model, SideTuning.LadderSideNetwork? side)
        => (side is null ? model.named_parameters() : side.named_parameters().Select(p => ($"side.{p.name}", p.parameter)))
            .Where(p => p.Item2.requires_grad).Select(p => (name: p.Item1, parameter: p.Item2)).ToList();

    /// <summary>Final hidden states [batch, seq, hidden]: the backbone's, or for Ladder the backbone's plus the side network's.</summary>
    internal static Func<Tensor, Tensor> HiddenStatesOf(LlamaForCausalLM model, SideTuning.LadderSideNetwork? side)
        => side is null ? ids => model.model.Forward(ids) : ids => side.Hidden(model, ids);

    /// <summary>Writes what a finished run trained: the PEFT adapter, the side network or the whole model.</summary>
    internal static (string? Adapter, string? Model, string? Side) SaveTrained(LoadedModel loaded, TrainingMethod method, string output, string? adapter)
    {
        switch (method)
        {
            case TrainingMethod.Lora:
                return (PeftAdapterFormat.Save(loaded.Adapters, adapter!, Path.Combine(output, Trainer.AdapterFolder), true, loaded.SourcePath).Folder.FullName, null, null);
            case TrainingMethod.Ladder:
                loaded.SideNetwork!.Save(Path.Combine(output, Trainer.SideNetworkFolder), true);
                return (null, null, Path.Combine(output, Trainer.SideNetworkFolder));
            default:
                return (null, loaded.SaveHuggingFace(Path.Combine(output, Trainer.ModelFolder), true).FullName, null);
        }
    }

    /// <summary>
    /// Sets what trains; returns the adapter name for Method Lora. <paramref name="fisherData"/> feeds Fisher
    /// pruning and is asked for only then (building it costs a pass over the data for classification).
    /// </summary>
    internal static string? Prepare(LoadedModel loaded, TrainingOptions o, Func<TokenStream> fisherData, Action<string>? log)
    {
        var set = loaded.Adapters;
        switch (o.Method)
        {
            case TrainingMethod.Lora:
            {
                string? name = o.AdapterName ?? set.ActiveNames.FirstOrDefault();
                if (name is null)
                {
                    name = "default";
                    set.Add(name, new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = new[] { "q_proj", "v_proj" }, BaseModelNameOrPath = loaded.SourcePath }, o.Seed);
                    log?.Invoke("The model had no adapter; added 'default' (r 8, alpha 16, q_proj and v_proj).");
                }
                if (!set.Contains(name)) throw LoraShellException.NotFound("AdapterNotFound", $"The model has no adapter named '{name}'.", name);
                if (set.MergedNames.Contains(name))
                    throw new LoraShellException(LoraErrorKind.InvalidOperation, "AdapterMerged", $"Adapter '{name}' is merged into the base weights; unmerge it before training it.", name);
                set.Enable();
                set.SetActive(name);
                set.MarkTrainable(name);
                return name;
            }
            case TrainingMethod.Full:
                if (set.Names.Count > 0)
                    throw new LoraShellException(LoraErrorKind.InvalidOperation, "FullWithAdapters",
                        $"Full fine-tuning trains the base weights, but the model holds adapter(s) {string.Join(", ", set.Names)}. Merge or remove them first, or use -Method Lora.");
                foreach (var p in loaded.Model.parameters()) p.requires_grad = true;
                return null;
            case TrainingMethod.Ladder:
            {
                if (set.ActiveNames.Except(set.MergedNames).Any() && !set.Disabled)
                    throw new LoraShellException(LoraErrorKind.InvalidOperation, "LadderWithAdapters",
                        "Ladder side-tuning keeps the backbone frozen as it is; merge, disable or remove the active adapters first.");
                foreach (var p in loaded.Model.parameters()) p.requires_grad = false;
                if (loaded.SideNetwork is null)
                {
                    var config = o.Ladder ?? new SideTuning.LadderConfig();
                    manual_seed(o.Seed);
                    var side = new SideTuning.LadderSideNetwork(config, loaded.Model.Config);
                    side.to(loaded.Model.Device);
                    if (config.Init == SideTuning.LadderInit.Magnitude) side.InitFromBackbone(loaded.Model);
                    else if (config.Init == SideTuning.LadderInit.Fisher) side.InitFromBackbone(loaded.Model, FisherImportance(loaded.Model, fisherData(), o));
                    loaded.SideNetwork = side;
                    log?.Invoke($"Side network: width {side.SideConfig.HiddenSize}, {side.Layers.Count} blocks, {side.parameters().Sum(p => p.numel()):N0} parameters, init {config.Init}.");
                }
                foreach (var p in loaded.SideNetwork.parameters()) p.requires_grad = true;
                return null;
            }
            default:
                throw LoraShellException.InvalidArgument("MethodNotAvailable", $"Training method {o.Method} is not available.", o.Method);
        }
    }

    /// <summary>
    /// Fisher information of each backbone weight, estimated as Σ (w · ∂L/∂w)² over a few training
    /// batches: the importance used to prune the backbone into the side network's initial weights.
    /// </summary>
    static Func<string, Tensor, Tensor> FisherImportance(LlamaForCausalLM model, TokenStream data, TrainingOptions o)
    {
        var sampler = new BatchSampler(data, o.SequenceLength, o.Seed + 1);
        var named = model.named_parameters().ToList();
        var scores = named.ToDictionary(p => p.name, p => zeros_like(p.parameter, dtype: ScalarType.Float32).DetachFromDisposeScope());
        foreach (var (_, p) in named) p.requires_grad = true;
        try
        {
            for (int b = 0; b < o.FisherBatches; b++)
            {
                using var scope = NewDisposeScope();
                var (inputs, targets) = sampler.Batch((long)b * o.BatchSize, o.BatchSize, model.Device);
                var logits = model.forward(inputs);
                nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]).to(ScalarType.Float32), targets.reshape(-1), ignore_index: BatchSampler.IgnoreIndex).backward();
                using (no_grad())
                    foreach (var (name, p) in named)
                        if (p.grad is Tensor g) { scores[name].add_((p.to(ScalarType.Float32) * g.to(ScalarType.Float32)).pow(2)); g.zero_(); }
            }
        }
        finally
        {
            foreach (var (_, p) in named) { p.requires_grad = false; p.grad?.Dispose(); p.grad = null; }
        }
        return (name, _) => scores[name];
    }

    /// <summary>Writes the weights a method trains into a checkpoint folder (read back by <see cref="RestoreWeights"/>).</summary>
    internal static void WriteWeights(LoadedModel loaded, TrainingMethod method, string? adapter, string folder)
    {
        if (method == TrainingMethod.Ladder)
        {
            Directory.CreateDirectory(Path.Combine(folder, Trainer.SideNetworkFolder));
            loaded.SideNetwork!.WriteInto(Path.Combine(folder, Trainer.SideNetworkFolder));
        }
        else if (method == TrainingMethod.Lora)
        {
            var tensors = PeftAdapterFormat.StateDict(loaded.Adapters, adapter!);
            Directory.CreateDirectory(Path.Combine(folder, Trainer.AdapterFolder));
            File.WriteAllText(Path.Combine(folder, Trainer.AdapterFolder, PeftAdapterFormat.ConfigFile), loaded.Adapters.ConfigOf(adapter!).ToJson());
            SafetensorsWriter.Write(Path.Combine(folder, Trainer.AdapterFolder, PeftAdapterFormat.WeightsFile), tensors, HuggingFaceWriter.PtMetadata);
        }
        else
        {
            Directory.CreateDirectory(Path.Combine(folder, Trainer.ModelFolder));
            HuggingFaceWriter.WriteInto(loaded.Model, Path.Combine(folder, Trainer.ModelFolder));
        }
    }

    internal static void RestoreWeights(LoadedModel loaded, string checkpoint, TrainingMethod method, string? adapter)
    {
        if (method == TrainingMethod.Ladder)
        {
            var restored = SideTuning.LadderSideNetwork.Load(Path.Combine(checkpoint, Trainer.SideNetworkFolder), loaded.Model);
            using var _ = no_grad();
            foreach (var (name, t) in loaded.SideNetwork!.state_dict()) t.copy_(restored.state_dict()[name]);
            restored.Dispose();
            return;
        }
        if (method == TrainingMethod.Lora)
        {
            using var file = SafetensorsFile.Open(Path.Combine(checkpoint, Trainer.AdapterFolder, PeftAdapterFormat.WeightsFile));
            var expected = PeftAdapterFormat.StateDict(loaded.Adapters, adapter!);
            using var _ = no_grad();
            foreach (var (key, tensor) in expected)
            {
                if (!file.Contains(key) || !file[key].Shape.SequenceEqual(tensor.shape))
                    throw LoraShellException.InvalidData("CheckpointMismatch", $"Checkpoint '{checkpoint}' has no tensor '{key}' of shape [{string.Join(", ", tensor.shape)}].", checkpoint);
                using var value = file.ReadTensor(key);
                tensor.copy_(value);
            }
        }
        else
        {
            using var weights = SafetensorsCheckpoint.Open(Path.Combine(checkpoint, Trainer.ModelFolder));
            var shapes = weights.Names.ToDictionary(n => n, n => weights.Entry(n).Shape);
            StateDictLoader.Load(loaded.Model, checkpoint, shapes, weights.Read, loaded.Model.Config.TieWordEmbeddings ? new HashSet<string> { "lm_head.weight" } : null);
        }
    }
}
