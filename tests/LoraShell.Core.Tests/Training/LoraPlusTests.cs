using LoraShell.Core.Lora;
using LoraShell.Core.Training;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

/// <summary>LoRA+ (issue 28): B learns at ratio × the learning rate, A at the learning rate, as PEFT's optimizer groups do.</summary>
public class LoraPlusTests
{
    static TrainingOptions Options(string data, double? ratio, int steps = 1, double lr = 1e-3) => new()
    {
        DataPaths = new[] { data }, MaxSteps = steps, BatchSize = 2, SequenceLength = 32, LearningRate = lr, WarmupSteps = 0,
        MinLearningRateRatio = 1, MaxGradNorm = 0, MaxEvalWindows = 8, Seed = 1, LoraPlusRatio = ratio,
    };

    static string Shakespeare(TempFolder dir)
    {
        string path = dir.File("s.txt");
        File.WriteAllText(path, File.ReadAllText(SharedData.TinyShakespeare)[..20_000]);
        return path;
    }

    /// <summary>Adam's first step moves every parameter with a gradient by exactly its learning rate (m/√v = ±1).</summary>
    [Fact]
    public void TheFirstStepMovesBByRatioTimesTheLearningRateAndAByTheLearningRate()
    {
        using var dir = new TempFolder();
        using var m = SharedData.LoadStories();
        m.Adapters.Add("default", new LoraConfig { Init = LoraInit.Random, UseDora = true }, seed: 2);
        var layer = m.Adapters.Layers().First().Layer;
        var a0 = layer.lora_A["default"].weight!.clone();
        var b0 = layer.lora_B["default"].weight!.clone();
        var m0 = layer.lora_magnitude_vector["default"].weight.clone();
        var result = Trainer.Run(m, Options(Shakespeare(dir), ratio: 16));
        Assert.Equal(16, result.LoraPlusRatio);
        double Moved(Tensor before, Tensor after) => (after - before).abs().max().item<float>() / 1e-3;
        Assert.InRange(Moved(a0, layer.lora_A["default"].weight!), 0.99, 1.001);
        Assert.InRange(Moved(b0, layer.lora_B["default"].weight!), 15.9, 16.01);
        Assert.InRange(Moved(m0, layer.lora_magnitude_vector["default"].weight), 15.9, 16.01); // one-dimensional: group B, as in PEFT
    }

    [Fact]
    public void ARatioOfOneIsPlainLoraToTheLastBitAndLoraPlusTrains()
    {
        using var dir = new TempFolder();
        string data = Shakespeare(dir);
        double[] Run(double? ratio, int steps)
        {
            using var m = SharedData.LoadStories();
            m.Adapters.Add("default", new LoraConfig { TargetRegex = LoraConfig.AllLinear }, seed: 3);
            var r = Trainer.Run(m, Options(data, ratio, steps, lr: 2e-3));
            return r.Losses.Append(r.FinalValidationLoss!.Value).Prepend(r.InitialValidationLoss!.Value).ToArray();
        }
        Assert.Equal(Run(null, 5), Run(1, 5));
        var plus = Run(16, 20);
        Assert.True(plus[^1] < plus[0] - 0.05, $"validation {plus[0]} → {plus[^1]}");
    }

    [Fact]
    public void LoraPlusIsRefusedForMethodsWithoutB()
    {
        var e = Assert.Throws<LoraShellException>(() => new TrainingOptions { DataPaths = new[] { "x" }, MaxSteps = 1, Method = TrainingMethod.Full, LoraPlusRatio = 16 }.Validate());
        Assert.Equal("LoraPlusNeedsLora", e.ErrorId);
        e = Assert.Throws<LoraShellException>(() => new TrainingOptions { DataPaths = new[] { "x" }, MaxSteps = 1, LoraPlusRatio = -1 }.Validate());
        Assert.Equal("InvalidLoraPlusRatio", e.ErrorId);
    }
}
