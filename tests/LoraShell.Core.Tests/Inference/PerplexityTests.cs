using LoraShell.Core.Inference;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

public class PerplexityTests
{
    static double DirectLoss(IReadOnlyList<int> tokens)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var ids = tensor(tokens.Select(t => (long)t).ToArray()).unsqueeze(0);
        var logits = SharedData.Stories.Model.forward(ids)[0];
        var logProbs = nn.functional.log_softmax(logits.to(ScalarType.Float64), 1);
        double sum = 0;
        for (int i = 0; i + 1 < tokens.Count; i++) sum -= logProbs[i, tokens[i + 1]].item<double>();
        return sum / (tokens.Count - 1);
    }

    [Fact]
    public void LossIsMeanCrossEntropyOfTokensAfterBos()
    {
        string text = "Tom and Sue went to the park. They played with a red ball.";
        var tokens = new List<int> { 1 };
        tokens.AddRange(SharedData.Stories.Tokenizer!.Encode(text));
        var result = SharedData.Stories.Perplexity(text);
        Assert.Equal(tokens.Count - 1, result.Tokens);
        Assert.Equal(1, result.Windows);
        Assert.Equal(DirectLoss(tokens), result.Loss, 4);
        Assert.Equal(Math.Exp(result.Loss), result.Perplexity, 6);
    }

    [Fact]
    public void LongTextIsCutIntoWindowsThatPredictEveryTokenOnce()
    {
        string text = File.ReadAllText(SharedData.Greedy200);
        var tokens = new List<int> { 1 };
        tokens.AddRange(SharedData.Stories.Tokenizer!.Encode(text));
        var result = SharedData.Stories.Perplexity(text, windowLength: 64, batchSize: 3);
        Assert.Equal(tokens.Count - 1, result.Tokens);
        Assert.Equal((int)Math.Ceiling((tokens.Count - 1) / 63.0), result.Windows);

        // The same number computed window by window.
        double sum = 0;
        for (int s = 0; s < tokens.Count - 1; s += 63)
        {
            var window = tokens.Skip(s).Take(64).ToList();
            sum += DirectLoss(window) * (window.Count - 1);
        }
        Assert.Equal(sum / (tokens.Count - 1), result.Loss, 4);
    }

    [Fact]
    public void InDomainTextScoresFarBetterThanShakespeare()
    {
        var stories = SharedData.Stories.Perplexity(File.ReadAllText(SharedData.Greedy200));
        var shakespeare = SharedData.Stories.Perplexity(File.ReadAllText(SharedData.TinyShakespeare)[..4000]);
        Assert.True(stories.Loss < 1.0, $"greedy text loss {stories.Loss}");
        Assert.True(shakespeare.Loss > stories.Loss + 1.0, $"shakespeare {shakespeare.Loss} vs stories {stories.Loss}");
    }

    [Fact]
    public void EmptyTextIsRejected()
    {
        var e = Assert.Throws<LoraShellException>(() => SharedData.Stories.Perplexity(""));
        Assert.Equal("TextTooShort", e.ErrorId);
    }
}
