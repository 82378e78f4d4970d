using LoraShell.Core.IO;
using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using LoraShell.Core.Session;
using LoraShell.Core.Tests.Families;
using static TorchSharp.torch;
using static LoraShell.Core.Tests.LogitChecks;

namespace LoraShell.Core.Tests;

/// <summary>
/// Join-LoraAdapter (issue 28) against the independent reference's add_weighted_adapter (written from
/// PEFT v0.20.0's model.py and merge_utils.py): for each deterministic combination type and fixed weights,
/// the adapter combined here gives the logits of the adapter the reference combined from the same files;
/// DARE, random by design, is checked by what it must do.
/// </summary>
public class AdapterCombinationTests
{
    const double Tolerance = 2e-5; // max |Δlogit| relative to the largest logit

    /// <summary>Two random adapters of the family (the second with another alpha and rank when <paramref name="sameRank"/> is false), saved.</summary>
    static (LoadedModel Model, string Folder, string A, string B) Setup(TempFolder dir, string family, bool sameRank)
    {
        var c = TinyFamilies.All.Single(x => x.Name == family);
        string folder = dir.File("model");
        using (var written = TinyFamilies.Create(c)) HuggingFaceWriter.Save(written, folder, overwrite: false);
        var m = LoadedModel.Load(new ModelLoadOptions { Path = folder });
        var targets = m.Model.LinearSlots().Select(s => s.Name).Distinct().Where(n => n != "lm_head").Take(3).ToList();
        m.Adapters.Add("a", new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = targets, Init = LoraInit.Random }, seed: 1);
        m.Adapters.Add("b", new LoraConfig { R = sameRank ? 4 : 2, LoraAlpha = 3, TargetModules = targets.Take(2).ToList(), Init = LoraInit.Random }, seed: 2);
        PeftAdapterFormat.Save(m.Adapters, "a", dir.File("a"), overwrite: false, baseModelNameOrPath: folder);
        PeftAdapterFormat.Save(m.Adapters, "b", dir.File("b"), overwrite: false, baseModelNameOrPath: folder);
        return (m, folder, dir.File("a"), dir.File("b"));
    }

    [Theory]
    [InlineData("llama-linear", "Linear", "linear", null, null, null)]
    [InlineData("llama-linear", "Cat", "cat", null, null, null)]
    [InlineData("llama-linear", "Svd", "svd", null, null, null)]
    [InlineData("llama-linear", "Svd", "svd", null, 3, null)]
    [InlineData("llama-linear", "Ties", "ties", 0.5, null, null)]
    [InlineData("llama-linear", "MagnitudePrune", "magnitude_prune", 0.3, null, null)]
    [InlineData("llama-linear", "TiesSvd", "ties_svd", 0.6, null, null)]
    [InlineData("llama-linear", "MagnitudePruneSvd", "magnitude_prune_svd", 0.5, 2, null)]
    [InlineData("qwen3", "Linear", "linear", null, null, null)]
    [InlineData("qwen3", "Svd", "svd", null, null, null)]
    [InlineData("gpt2", "Cat", "cat", null, null, null)]
    [InlineData("gpt2", "Svd", "svd", null, null, null)]
    [InlineData("gpt2", "Ties", "ties", 0.5, null, null)]
    public void ACombinationGivesTheLogitsOfTheReferencesCombination(string family, string type, string peftType, double? density, int? svdRank, double? svdClamp)
    {
        using var dir = new TempFolder();
        var (m, folder, a, b) = Setup(dir, family, sameRank: !type.EndsWith("Svd") && type != "Cat");
        using (m)
        {
            var weights = new[] { 0.7, -0.4 };
            var warnings = AdapterCombiner.Combine(m.Adapters, "ab", new AdapterCombination
            {
                Adapters = new[] { "a", "b" }, Weights = weights, Type = Enum.Parse<CombinationType>(type), Density = density, SvdRank = svdRank, SvdClamp = svdClamp,
            });
            Assert.Empty(warnings);
            Assert.DoesNotContain("ab", m.Adapters.ActiveNames); // as in PEFT, the new adapter is not made active
            m.Adapters.SetActive("ab");
            using var ours = Logits(m);
            PeftAdapterFormat.Save(m.Adapters, "ab", dir.File("ours"), overwrite: false, baseModelNameOrPath: folder);

            PythonReference.Combine(folder, dir.File("theirs"), new[] { a, b }, weights, peftType, density, svdRank, svdClamp);
            var reference = PythonReference.Run(new PythonReference.Job[] { new(folder, dir.File("theirs")), new(folder, dir.File("ours")) }, TinyFamilies.Ids, dir.Path);
            Assert.True(RelativeError(reference[0], ours) < Tolerance, $"{family} {type}: {RelativeError(reference[0], ours):E2} against the reference's combination (ours in the reference: {RelativeError(reference[1], ours):E2})");
            Assert.True(RelativeError(reference[1], ours) < Tolerance, $"{family} {type}: our saved combination in the reference {RelativeError(reference[1], ours):E2}");
            m.Adapters.SetActive("a");
            using var onlyA = Logits(m);
            Assert.True(RelativeError(reference[0], onlyA) > 100 * Tolerance, "the combination should differ from its first source");

            var config = LoraConfig.FromJson(File.ReadAllText(Path.Combine(dir.File("ours"), PeftAdapterFiles.ConfigFile)), "ours");
            var theirs = LoraConfig.FromJson(File.ReadAllText(Path.Combine(dir.File("theirs"), PeftAdapterFiles.ConfigFile)), "theirs");
            Assert.Equal(theirs.R, config.R);
            Assert.Equal(theirs.LoraAlpha, config.LoraAlpha);
            Assert.Equal(theirs.TargetModules!.Order(), config.TargetModules!.Order());
        }
    }

    [Fact]
    public void CatIsExactlyTheWeightedSumOfTheDeltas()
    {
        using var dir = new TempFolder();
        var (m, _, _, _) = Setup(dir, "llama-linear", sameRank: false);
        using (m)
        {
            AdapterCombiner.Combine(m.Adapters, "ab", new AdapterCombination { Adapters = new[] { "a", "b" }, Weights = new[] { 0.7, -0.4 }, Type = CombinationType.Cat });
            foreach (var (path, layer) in m.Adapters.Layers().Where(l => l.Layer.Adapters.Contains("ab")))
            {
                using var expected = layer.DeltaWeight("a") * 0.7 + (layer.Adapters.Contains("b") ? layer.DeltaWeight("b") * -0.4 : zeros(1));
                Assert.True((layer.DeltaWeight("ab") - expected).abs().max().item<float>() < 1e-5, path);
            }
        }
    }

    /// <summary>
    /// -SvdClamp cuts both factors at the quantile of their signed entries, as PEFT does. Which entries that
    /// is depends on the SVD's sign convention (LAPACK's float32 and float64 paths differ), so this is
    /// checked on LoraShell's own factors rather than against the reference.
    /// </summary>
    [Fact]
    public void SvdClampCutsTheFactorsAtTheQuantileOfTheirEntries()
    {
        using var dir = new TempFolder();
        var (m, _, _, _) = Setup(dir, "llama-linear", sameRank: false);
        using (m)
        {
            var c = new AdapterCombination { Adapters = new[] { "a", "b" }, Weights = new[] { 0.7, -0.4 }, Type = CombinationType.Svd };
            AdapterCombiner.Combine(m.Adapters, "free", c);
            AdapterCombiner.Combine(m.Adapters, "clamped", c with { SvdClamp = 0.9 });
            foreach (var (path, layer) in m.Adapters.Layers().Where(l => l.Layer.Adapters.Contains("free")))
            {
                var a = layer.lora_A["free"].weight!;
                var b = layer.lora_B["free"].weight!;
                var values = cat(new[] { b.flatten(), a.flatten() }).sort().Values;
                double position = 0.9 * (values.numel() - 1);
                long low = (long)position;
                double high = values[low].item<float>() + (values[low + 1].item<float>() - values[low].item<float>()) * (position - low);
                Assert.True((layer.lora_A["clamped"].weight! - a.clamp(-high, high)).abs().max().item<float>() < 1e-6, path);
                Assert.True((layer.lora_B["clamped"].weight! - b.clamp(-high, high)).abs().max().item<float>() < 1e-6, path);
                Assert.True(Math.Max(a.abs().max().item<float>(), b.abs().max().item<float>()) > high, "the clamp should cut something");
            }
        }
    }

    [Fact]
    public void DareKeepsTheDensityInExpectationAndAtDensityOneIsLinear()
    {
        using var dir = new TempFolder();
        var (m, _, _, _) = Setup(dir, "llama-linear", sameRank: true);
        using (m)
        {
            var weights = new[] { 0.5, 0.5 };
            AdapterCombiner.Combine(m.Adapters, "linear", new AdapterCombination { Adapters = new[] { "a", "b" }, Weights = weights, Type = CombinationType.Linear });
            AdapterCombiner.Combine(m.Adapters, "dare1", new AdapterCombination { Adapters = new[] { "a", "b" }, Weights = weights, Type = CombinationType.DareLinear, Density = 1 });
            AdapterCombiner.Combine(m.Adapters, "dare", new AdapterCombination { Adapters = new[] { "a", "b" }, Weights = weights, Type = CombinationType.DareLinear, Density = 0.5, Seed = 3 });
            AdapterCombiner.Combine(m.Adapters, "dareAgain", new AdapterCombination { Adapters = new[] { "a", "b" }, Weights = weights, Type = CombinationType.DareLinear, Density = 0.5, Seed = 3 });
            long zeros = 0, both = 0;
            foreach (var (_, layer) in m.Adapters.Layers().Where(l => l.Layer.Adapters.Contains("b")))
            {
                Assert.True(layer.lora_A["dare1"].weight!.eq(layer.lora_A["linear"].weight!).all().item<bool>());
                Assert.True(layer.lora_A["dare"].weight!.eq(layer.lora_A["dareAgain"].weight!).all().item<bool>(), "one seed, one mask");
                // An entry of A is zero only where both sources' entries were dropped: (1 - 0.5)² of them.
                zeros += layer.lora_A["dare"].weight!.eq(0).sum().item<long>();
                both += layer.lora_A["dare"].weight!.numel();
            }
            Assert.InRange((double)zeros / both, 0.2, 0.3);
        }
    }

    [Fact]
    public void WhatPeftRefusesIsRefusedAndNothingIsLeftBehind()
    {
        using var dir = new TempFolder();
        var (m, _, _, _) = Setup(dir, "llama-linear", sameRank: false);
        using (m)
        {
            LoraShellException Refused(AdapterCombination c) => Assert.Throws<LoraShellException>(() => AdapterCombiner.Combine(m.Adapters, "ab", c));
            Assert.Equal("RanksDiffer", Refused(new AdapterCombination { Adapters = new[] { "a", "b" }, Weights = new[] { 1.0, 1.0 }, Type = CombinationType.Linear }).ErrorId);
            Assert.Equal("DensityRequired", Refused(new AdapterCombination { Adapters = new[] { "a", "b" }, Weights = new[] { 1.0, 1.0 }, Type = CombinationType.TiesSvd }).ErrorId);
            Assert.Equal("WeightCountMismatch", Refused(new AdapterCombination { Adapters = new[] { "a", "b" }, Weights = new[] { 1.0 }, Type = CombinationType.Cat }).ErrorId);
            Assert.Equal("AdapterNotFound", Refused(new AdapterCombination { Adapters = new[] { "a", "c" }, Weights = new[] { 1.0, 1.0 } }).ErrorId);
            Assert.Equal("InvalidDensity", Refused(new AdapterCombination { Adapters = new[] { "a", "b" }, Weights = new[] { 1.0, 1.0 }, Type = CombinationType.DareLinearSvd, Density = 0 }).ErrorId);
            Assert.Equal(new[] { "a", "b" }, m.Adapters.Names);
        }
    }
}
