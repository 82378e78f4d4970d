using LoraShell.Core.Lora;

namespace LoraShell.Core.Tests;

/// <summary>PEFT's target-module rules, one test per rule, on stories260K's 5 layers × 7 Linear modules.</summary>
public class TargetMatcherTests
{
    static List<string> Selected(LoraConfig config) => TargetMatcher.Select(SharedData.Stories.Model, config).Select(s => s.Path).ToList();

    static LoraConfig From(params string[] values)
    {
        var (names, regex) = TargetMatcher.FromUserValues(values);
        return new LoraConfig { TargetModules = names, TargetRegex = regex };
    }

    [Fact]
    public void ANameMatchesEveryPathThatEndsWithIt()
        => Assert.Equal(Enumerable.Range(0, 5).Select(i => $"model.layers.{i}.self_attn.q_proj"), Selected(From("q_proj")));

    [Fact]
    public void ADottedNameIsASuffixNotARegex()
    {
        // A dot in a target is part of the name, as in PEFT: `self_attn.q_proj` selects the five query projections.
        Assert.Equal(Enumerable.Range(0, 5).Select(i => $"model.layers.{i}.self_attn.q_proj"), Selected(From("self_attn.q_proj")));
        Assert.Null(TargetMatcher.FromUserValues(new[] { "self_attn.q_proj" }).Regex);
    }

    [Fact]
    public void SeveralNamesAndSuffixesCombine()
    {
        var paths = Selected(From("mlp.down_proj", "q_proj"));
        Assert.Equal(10, paths.Count);
        Assert.Equal(5, paths.Count(p => p.EndsWith(".mlp.down_proj")));
        Assert.Equal(5, paths.Count(p => p.EndsWith(".self_attn.q_proj")));
    }

    [Fact]
    public void ANameMatchesWholeSegmentsOnly()
    {
        // "proj" is not a module name (every name ends with "_proj"), and "_proj" is not a segment either.
        var e = Assert.Throws<LoraShellException>(() => Selected(From("proj")));
        Assert.Equal("NoTargetModulesMatched", e.ErrorId);
        Assert.Contains("q_proj", e.Message);
    }

    [Fact]
    public void AnExactPathMatchesItself()
        => Assert.Equal(new[] { "model.layers.3.mlp.up_proj" }, Selected(From("model.layers.3.mlp.up_proj")));

    [Fact]
    public void ARegexMustMatchTheWholePath()
    {
        Assert.Equal(new[] { "model.layers.0.self_attn.k_proj", "model.layers.1.self_attn.k_proj" }, Selected(From(@"model\.layers\.[01]\.self_attn\.k_proj")));
        // re.fullmatch: a pattern that matches only part of a path selects nothing.
        Assert.Throws<LoraShellException>(() => Selected(new LoraConfig { TargetModules = null, TargetRegex = @"k_pro" }));
    }

    [Fact]
    public void AllLinearIsEveryDecoderLinearAndIsSavedExpanded()
    {
        Assert.Equal(35, Selected(From("all-linear")).Count);
        using var m = SharedData.LoadStories();
        m.Adapters.Add("default", From("ALL-LINEAR") with { R = 2 });
        var saved = m.Adapters.ConfigOf("default");
        Assert.Null(saved.TargetRegex);
        Assert.Equal(new[] { "down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj" }, saved.TargetModules);
    }

    [Fact]
    public void LayersToTransformKeepsTheListedLayers()
    {
        var paths = Selected(From("q_proj", "v_proj") with { LayersToTransform = new[] { 1, 4 } });
        Assert.Equal(new[] { "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj", "model.layers.4.self_attn.q_proj", "model.layers.4.self_attn.v_proj" }, paths);
        var withPattern = Selected(From("q_proj") with { LayersToTransform = new[] { 2 }, LayersPattern = "layers" });
        Assert.Equal(new[] { "model.layers.2.self_attn.q_proj" }, withPattern);
        Assert.Throws<LoraShellException>(() => Selected(From("q_proj") with { LayersToTransform = new[] { 2 }, LayersPattern = "blocks" }));
    }

    [Fact]
    public void LayerIndexFollowsPeft()
    {
        Assert.Equal(3, TargetMatcher.LayerIndex("model.layers.3.self_attn.q_proj", null));
        Assert.Equal(7, TargetMatcher.LayerIndex("transformer.h.7.attn.c_attn", "h"));
        Assert.Null(TargetMatcher.LayerIndex("transformer.h.7.attn.c_attn", "layers"));
        Assert.Null(TargetMatcher.LayerIndex("lm_head", null));
    }

    [Fact]
    public void LayersToTransformDoesNotApplyToARegexAsInPeft()
        => Assert.Equal(5, Selected(new LoraConfig { TargetModules = null, TargetRegex = @".*\.q_proj", LayersToTransform = new[] { 0 } }).Count);

    [Fact]
    public void UserValuesAreNamesOrOneRegex()
    {
        Assert.Equal(new[] { "q_proj", "v_proj" }, TargetMatcher.FromUserValues(new[] { "q_proj", " v_proj " }).Names);
        Assert.Equal(@"model\.layers\.[0-2]\..*_proj", TargetMatcher.FromUserValues(new[] { @"model\.layers\.[0-2]\..*_proj" }).Regex);
        Assert.Equal("RegexAmongNames", Assert.Throws<LoraShellException>(() => TargetMatcher.FromUserValues(new[] { "q_proj", ".*v_proj" })).ErrorId);
        Assert.Equal("InvalidTargetRegex", Assert.Throws<LoraShellException>(() => TargetMatcher.FromUserValues(new[] { "q_proj(" })).ErrorId);
        Assert.Equal("NoTargetModules", Assert.Throws<LoraShellException>(() => TargetMatcher.FromUserValues(new[] { " " })).ErrorId);
    }

    [Fact]
    public void SvdDeltaTargetsUseTheSameRules()
    {
        var config = From("self_attn.q_proj");
        Assert.True(TargetMatcher.Matches(config, "model.layers.0.self_attn.q_proj"));
        Assert.False(TargetMatcher.Matches(config, "model.layers.0.self_attn.k_proj"));
        Assert.False(TargetMatcher.Matches(From("all-linear"), "lm_head", isLinear: false));
    }
}
