using System.Text.Json.Nodes;
using LoraShell.Core.Export;
using LoraShell.Core.IO.Gguf;
using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using LoraShell.Core.Session;
using LoraShell.Core.Tests.Families;
using LoraShell.Core.Training;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests.Gguf;

/// <summary>
/// LoraShell's GGUF files judged by the real llama.cpp (tests/LlamaCppOracle): the exported model decodes
/// and scores as LoraShell does, exported adapters apply as LoraShell applies them, files llama.cpp
/// quantized itself load into the weights llama.cpp dequantizes them to, and llama.cpp tokenizes the
/// exported vocabularies as LoraShell does.
/// </summary>
[Collection(nameof(ReproducibleTrainingCollection))]
public class GgufLlamaCppTests
{
    const double F32Tolerance = 1e-4; // max |Δlogit| over the largest |logit|

    internal static double RelativeError(float[][] llama, Tensor logits)
    {
        var ours = logits.squeeze(0).to(ScalarType.Float32).cpu();
        double max = 0, scale = 0;
        for (int p = 0; p < llama.Length; p++)
        {
            var row = ours[p].data<float>().ToArray();
            for (int v = 0; v < row.Length; v++)
            {
                max = Math.Max(max, Math.Abs(row[v] - llama[p][v]));
                scale = Math.Max(scale, Math.Abs(row[v]));
            }
        }
        return max / scale;
    }

    internal static Tensor Logits(LoadedModel m, long[] ids)
    {
        using var _ = no_grad();
        return m.Logits(tensor(ids).unsqueeze(0));
    }

    /// <summary>
    /// A tiny family checkpoint written as an HF folder and loaded with a real tokenizer: stories260K's 512
    /// SentencePiece tokens, or for Phi-3 and GPT-2 GPT-2's byte-level BPE (llama.cpp's phi3 refuses a
    /// vocabulary without its &lt;|endoftext|&gt; token; GPT-2 is GPT-2's own), the embedding widened to fit.
    /// </summary>
    internal static LoadedModel TinyWithTokenizer(TinyFamilies.Case c, TempFolder dir, bool keepSlidingWindow = false)
    {
        string folder = dir.File(c.Name);
        bool bpe = c.Name == "gpt2";
        var config = (JsonObject)c.Config.DeepClone();
        // llama.cpp runs Phi-3 without its window (see SlidingWindowsAreWarnedAbout…): compare full attention.
        if (c.Name == "phi3" && !keepSlidingWindow) config["sliding_window"] = null;
        if (bpe) { config["vocab_size"] = Gpt2Vocab; config["bos_token_id"] = 50256; config["eos_token_id"] = 50256; }
        using (var written = TinyFamilies.Create(c with { Config = config })) HuggingFaceWriter.Save(written, folder, overwrite: false);
        string tokenizer = bpe ? SharedData.Path_("tokenizers", "gpt2") : c.Name == "phi3" ? Phi3Vocabulary(dir) : SharedData.Tok512;
        return LoadedModel.Load(new ModelLoadOptions { Path = folder, TokenizerPath = tokenizer });
    }

    /// <summary>
    /// tok512 with its last piece replaced by "&lt;|endoftext|&gt;": llama.cpp's phi3 looks that token up
    /// when it loads a vocabulary and refuses one without it, as a real Phi-3 tokenizer always has it.
    /// </summary>
    static string Phi3Vocabulary(TempFolder dir)
    {
        var bytes = File.ReadAllBytes(SharedData.Tok512).ToList();
        int at = 4, last = 0;
        for (int id = 0; at < bytes.Count; id++) { last = at; at += 8 + BitConverter.ToInt32(bytes.ToArray(), at + 4); }
        var piece = System.Text.Encoding.UTF8.GetBytes("<|endoftext|>");
        bytes.RemoveRange(last + 4, bytes.Count - last - 4);
        bytes.AddRange(BitConverter.GetBytes(piece.Length));
        bytes.AddRange(piece);
        bytes.RemoveRange(0, 4);
        bytes.InsertRange(0, BitConverter.GetBytes(Math.Max(piece.Length, BitConverter.ToInt32(File.ReadAllBytes(SharedData.Tok512), 0))));
        string path = dir.File("tok512-phi3.bin");
        File.WriteAllBytes(path, bytes.ToArray());
        return path;
    }

    const int Gpt2Vocab = 50257;

    [Fact]
    public void Stories260KDecodesGreedilyInLlamaCppAsLlama2cDoes()
    {
        using var dir = new TempFolder();
        string gguf = dir.File("stories260K.gguf");
        var result = SharedData.Stories.SaveGguf(gguf, GgmlType.F32);
        Assert.Empty(result.Warnings);
        // llama2.c stops at BOS as well as EOS; 200 tokens from BOS as its run.c printed them.
        var (tokens, text) = LlamaCpp.Greedy(gguf, new long[] { 1 }, 200, 1, 2);
        Assert.Equal(200, tokens.Length);
        // llama.cpp's pieces keep SentencePiece's space before the first word (its detokenizer drops it); run.c ends with a newline.
        Assert.StartsWith(" ", text);
        Assert.Equal(File.ReadAllText(SharedData.Greedy200), text[1..] + "\n");
        Assert.True(File.Exists(dir.File("stories260K.Modelfile")));
    }

    public static IEnumerable<object[]> Families => TinyFamilies.All.Where(c => c.Name is not ("llama-dynamic" or "mistral")).Select(c => new object[] { c.Name });

    [Theory]
    [MemberData(nameof(Families))]
    public void EveryFamilyScoresInLlamaCppAsInLoraShell(string name)
    {
        var c = TinyFamilies.All.Single(x => x.Name == name);
        using var dir = new TempFolder();
        using var m = TinyWithTokenizer(c, dir);
        string gguf = dir.File("model.gguf");
        var result = m.SaveGguf(gguf, GgmlType.F32);
        Assert.Empty(result.Warnings);
        var ids = TinyFamilies.Ids[0];
        double error = RelativeError(LlamaCpp.Logits(gguf, ids), Logits(m, ids));
        // llama.cpp's CPU GELU looks its result up in a table indexed by the input rounded to F16
        // (GGML_GELU_FP16), so GPT-2's MLP is off by up to F16's rounding there (measured 2.2e-4).
        double tolerance = c.Config["model_type"]!.GetValue<string>() == "gpt2" ? 1e-3 : F32Tolerance;
        Assert.True(error < tolerance, $"{name}: llama.cpp's logits differ from LoraShell's by {error:E2} of the largest");

        // And the file reads back into LoraShell as the same model.
        using var back = LoadedModel.Load(new ModelLoadOptions { Path = gguf });
        Assert.Equal(m.Model.Config.ModelType == "mistral" ? "llama" : m.Model.Config.ModelType, back.Model.Config.ModelType);
        // Llama 3's rope scaling comes back from rope_freqs as numbers that give the same frequencies to float
        // rounding, so that case is equal to rounding rather than bit for bit.
        Assert.True(TensorAssert.MaxAbsDiff(Logits(m, ids), Logits(back, ids)) <= (name == "llama-llama3" ? 1e-5 : 0), $"{name} read back from GGUF");
        Assert.Equal(m.Tokenizer!.Encode("Once upon a time, Tom ran."), back.Tokenizer!.Encode("Once upon a time, Tom ran."));
    }

    [Theory]
    [InlineData("llama-llama3", "F16", 2e-3)]
    [InlineData("llama-llama3", "BF16", 2e-2)]
    // llama.cpp multiplies Q8_0 weights with activations it rounds to Q8_0 blocks too, so Q8_0 files
    // score farther from float32 than their weights alone are (a random model amplifies it; measured 2.6-2.9e-2).
    [InlineData("llama-llama3", "Q8_0", 5e-2)]
    [InlineData("qwen3", "F16", 2e-3)]
    [InlineData("qwen3", "Q8_0", 5e-2)]
    [InlineData("qwen2", "Q4_0", 0.3)] // 4 bits a weight: the rounding is 16 times Q8_0's
    [InlineData("gpt2", "BF16", 2e-2)]
    public void SmallerTensorTypesScoreWithinTheirRounding(string name, string type, double tolerance)
    {
        var c = TinyFamilies.All.Single(x => x.Name == name);
        using var dir = new TempFolder();
        using var m = TinyWithTokenizer(c, dir);
        string gguf = dir.File("model.gguf");
        m.SaveGguf(gguf, Enum.Parse<GgufTensorType>(type).ToGgmlType());
        var ids = TinyFamilies.Ids[1];
        double error = RelativeError(LlamaCpp.Logits(gguf, ids), Logits(m, ids));
        Assert.True(error < tolerance, $"{name} {type}: llama.cpp's logits differ from LoraShell's float32 ones by {error:E2} (allowed {tolerance:E0})");
        Assert.True(error > 0, $"{name} {type}: the file should hold rounded weights");
        using var f = GgufFile.Open(gguf);
        Assert.Contains(f.Tensors, t => t.Type.ToString() == type);
    }

    [Theory]
    [InlineData("mistral", 3)] // llama.cpp's llama architecture has no window
    [InlineData("phi3", 5)]    // llama.cpp's phi3 has its window disabled
    public void SlidingWindowsAreWarnedAboutAndAreWhatLlamaCppLeavesOut(string name, int window)
    {
        var c = TinyFamilies.All.Single(x => x.Name == name);
        using var dir = new TempFolder();
        using var m = TinyWithTokenizer(c, dir, keepSlidingWindow: true);
        string gguf = dir.File("model.gguf");
        var result = m.SaveGguf(gguf, GgmlType.F32);
        Assert.Contains(result.Warnings, w => w.Contains($"sliding_window {window}"));
        var ids = TinyFamilies.Ids[0]; // 12 tokens
        var llama = LlamaCpp.Logits(gguf, ids);
        var ours = Logits(m, ids);
        // Within the window the two agree; past it llama.cpp attends to every earlier token.
        Assert.True(RelativeError(llama[..window], ours.narrow(1, 0, window)) < F32Tolerance);
        Assert.True(RelativeError(llama[window..], ours.narrow(1, window, ours.shape[1] - window)) > 100 * F32Tolerance);
    }

    [Fact]
    public void DynamicRopeScalingIsRefusedByName()
    {
        var c = TinyFamilies.All.Single(x => x.Name == "llama-dynamic");
        using var dir = new TempFolder();
        using var m = TinyWithTokenizer(c, dir);
        var e = Assert.Throws<LoraShellException>(() => m.SaveGguf(dir.File("model.gguf"), GgmlType.F32));
        Assert.Equal("GgufUnsupportedFeature", e.ErrorId);
        Assert.Contains("dynamic", e.Message);
        Assert.False(File.Exists(dir.File("model.gguf")));
    }

    [Theory]
    [InlineData("llama-llama3")]
    [InlineData("qwen2")]
    [InlineData("phi3")]
    public void AnAdapterAppliesInLlamaCppAsInLoraShellAndAsTheMergedModel(string name)
    {
        var c = TinyFamilies.All.Single(x => x.Name == name);
        using var dir = new TempFolder();
        using var m = TinyWithTokenizer(c, dir);
        string baseFile = dir.File("base.gguf"), adapterFile = dir.File("adapter.gguf"), mergedFile = dir.File("merged.gguf");
        m.SaveGguf(baseFile, GgmlType.F32);
        // Every linear layer (q, k, v, o and the MLP, or the fused ones), a rank and an alpha of their own for two of them.
        m.Adapters.Add("default", TinyFamilies.Adapter(m.Model), seed: 3);
        var saved = GgufAdapterExport.Save(m.Adapters, "default", adapterFile);
        Assert.Empty(saved.Warnings);
        var ids = TinyFamilies.Ids[0];
        using var adapted = Logits(m, ids);
        m.Adapters.Merge(null, safe: true);
        m.SaveGguf(mergedFile, GgmlType.F32);

        var withAdapter = LlamaCpp.Logits(baseFile, ids, (adapterFile, 1.0));
        var merged = LlamaCpp.Logits(mergedFile, ids);
        var plain = LlamaCpp.Logits(baseFile, ids);
        Assert.True(RelativeError(withAdapter, adapted) < F32Tolerance, $"{name}: base + GGUF adapter in llama.cpp vs LoraShell with the adapter: {RelativeError(withAdapter, adapted):E2}");
        Assert.True(RelativeError(merged, adapted) < F32Tolerance, $"{name}: merged GGUF in llama.cpp vs LoraShell with the adapter: {RelativeError(merged, adapted):E2}");
        Assert.True(RelativeError(plain, adapted) > 100 * F32Tolerance, $"{name}: the adapter should change llama.cpp's logits");

        using var f = GgufFile.Open(adapterFile);
        Assert.Equal("adapter", f.Metadata["general.type"].Value);
        Assert.Equal(GgufValueType.Float32, f.Metadata["adapter.lora.alpha"].Type);
    }

    [Fact]
    public void TokenizationInLlamaCppEqualsLoraShellsForSentencePieceAndByteLevelBpe()
    {
        using var dir = new TempFolder();
        const string mixed = Mixed;
        string stories = dir.File("stories.gguf");
        SharedData.Stories.SaveGguf(stories, GgmlType.F32);
        Assert.Equal(SharedData.Stories.Tokenizer!.EncodeWithSpecialTokens(mixed).Select(i => (long)i), LlamaCpp.Tokenize(stories, mixed, addSpecial: true, parseSpecial: false, dir.Path));

        // A tiny random Qwen3 with Qwen3's real byte-level BPE tokenizer (151,669 tokens, pre-tokenizer qwen2, chat template).
        using var q = TinyWithRealTokenizer("qwen3", 151_680, SharedData.Path_("tokenizers", "qwen3"), dir);
        string qwenFile = dir.File("qwen3.gguf");
        q.SaveGguf(qwenFile, GgmlType.F32);
        string chat = "<|im_start|>user\n" + mixed + "<|im_end|>\n<|im_start|>assistant\n";
        foreach (var text in new[] { mixed, "  leading spaces, 1234567 digits and  's contractions'll", chat })
            Assert.Equal(q.Tokenizer!.EncodeWithSpecialTokens(text).Select(i => (long)i), LlamaCpp.Tokenize(qwenFile, text, addSpecial: true, parseSpecial: true, dir.Path));

        // The tokenizer LoraShell rebuilds from the GGUF's metadata is the same tokenizer, chat template included.
        using var back = LoadedModel.Load(new ModelLoadOptions { Path = qwenFile });
        Assert.Equal(q.Tokenizer!.EncodeWithSpecialTokens(chat), back.Tokenizer!.EncodeWithSpecialTokens(chat));
        var messages = new[] { new Tokenizers.ChatMessage("user", "Hi") };
        Assert.Equal(q.Tokenizer.Chat!.Render(messages, true), back.Tokenizer.Chat!.Render(messages, true));
        Assert.Equal(q.Tokenizer.StopIds.OrderBy(i => i), back.Tokenizer.StopIds.OrderBy(i => i));
    }

    /// <summary>
    /// Llama 2's tokenizer.json (SentencePiece converted to BPE with byte fallback) becomes llama.cpp's
    /// SentencePiece vocabulary with scores from the merge ranks; Llama 3's is byte-level BPE with the
    /// llama-bpe pre-tokenizer. llama.cpp tokenizes both as LoraShell does, and so does the tokenizer
    /// LoraShell rebuilds from each file.
    /// </summary>
    [Theory]
    [InlineData("llama2", 32_000)]
    [InlineData("llama3", 128_256)]
    public void LlamaTokenizerJsonFilesTokenizeInLlamaCppAsInLoraShell(string key, int vocab)
    {
        using var dir = new TempFolder();
        string tokenizer = HuggingFaceTokenizers.Paths.TokenizerJson(key);
        using var m = TinyWithRealTokenizer("llama", vocab, tokenizer, dir);
        string gguf = dir.File($"{key}.gguf");
        m.SaveGguf(gguf, GgmlType.F32);
        using var back = LoadedModel.Load(new ModelLoadOptions { Path = gguf });
        foreach (var text in new[] { Mixed, "  leading spaces, 1234567 digits,\n\nnewlines and  's contractions'll", File.ReadAllText(SharedData.TinyShakespeare)[..3000] })
        {
            var ours = m.Tokenizer!.EncodeWithSpecialTokens(text).Select(i => (long)i).ToArray();
            Assert.Equal(ours, LlamaCpp.Tokenize(gguf, text, addSpecial: true, parseSpecial: false, dir.Path));
            Assert.Equal(ours, back.Tokenizer!.EncodeWithSpecialTokens(text).Select(i => (long)i));
        }
    }

    const string Mixed = "Once upon a time, Tom & Lily found 12,345 shells!\nThey said: \"Wow\" — café, naïve, 東京, 🙂 done.  Two  spaces\tand a tab.";

    /// <summary>A one-layer random model of <paramref name="type"/> with a real tokenizer's vocabulary size.</summary>
    static LoadedModel TinyWithRealTokenizer(string type, int vocab, string tokenizer, TempFolder dir)
    {
        var config = (JsonObject)TinyFamilies.All.First(x => x.Config["model_type"]!.GetValue<string>() == type).Config.DeepClone();
        config["vocab_size"] = vocab; config["hidden_size"] = 16; config["num_attention_heads"] = 2; config["num_key_value_heads"] = 1; config["head_dim"] = 8;
        config["num_hidden_layers"] = 1; config["intermediate_size"] = 32; config["rope_scaling"] = null;
        config["bos_token_id"] = 1; config["eos_token_id"] = 2;
        string folder = dir.File(type + "-" + vocab);
        using (var model = new CausalLM(ModelConfig.FromJson(config.ToJsonString(), $"tiny {type}"))) HuggingFaceWriter.Save(model, folder, overwrite: false);
        return LoadedModel.Load(new ModelLoadOptions { Path = folder, TokenizerPath = tokenizer });
    }
}
