using System.Text.RegularExpressions;

namespace LoraShell.Core.Tests;

/// <summary>
/// The house plan of LoraShell.Core (README, "Repository layout"): each folder is a layer and may use
/// only folders of lower layers, so the arrows run one way. These tests read the sources and fail on a
/// reference that runs against the plan, a folder the plan does not place, or a plotting or PowerShell
/// dependency in the core.
/// </summary>
public class LayeringTests
{
    // Lower numbers sit lower. Folders of one layer do not use each other.
    static readonly Dictionary<string, int> Plan = new(StringComparer.Ordinal)
    {
        ["(root)"] = 0, ["IO"] = 0, ["Templates"] = 0,
        ["Tokenizers"] = 1, ["Backend"] = 1,
        ["Models"] = 2,
        ["Lora"] = 3, ["SideTuning"] = 3,
        ["Training"] = 4, ["Delta"] = 4, ["Inference"] = 4, ["Export"] = 4,
        ["Memory"] = 5, ["Jobs"] = 5,
        ["Session"] = 6,
        ["Experiments"] = 7,
    };

    static string CoreFolder => Path.Combine(RepositoryRoot(), "src", "LoraShell.Core");

    static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "LoraShell.sln"))) return dir.FullName;
        throw new InvalidOperationException("LoraShell.sln not found above the test binaries.");
    }

    static IEnumerable<(string Folder, string File)> Sources()
        => Directory.EnumerateFiles(CoreFolder, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
            .Select(f =>
            {
                var parts = Path.GetRelativePath(CoreFolder, f).Split(Path.DirectorySeparatorChar);
                return (parts.Length == 1 ? "(root)" : parts[0], f);
            });

    /// <summary>The core folders a source file refers to: by using directive, full name, or a name qualified from inside LoraShell.Core.</summary>
    internal static HashSet<string> ReferencedFolders(string source, IEnumerable<string> folders)
    {
        var code = Regex.Replace(source, @"//.*$", "", RegexOptions.Multiline);
        code = Regex.Replace(code, "\"(?:[^\"\\\\\\n]|\\\\.)*\"", "\"\"");
        var found = new HashSet<string>(StringComparer.Ordinal);
        foreach (Match m in Regex.Matches(code, @"LoraShell\.Core\.([A-Z]\w*)")) found.Add(m.Groups[1].Value);
        var alternatives = string.Join("|", folders.Where(f => f != "(root)").Select(Regex.Escape));
        foreach (Match m in Regex.Matches(code, $@"(?<![\w.])({alternatives})\.[A-Z]\w*")) found.Add(m.Groups[1].Value);
        return found;
    }

    [Fact]
    public void EveryReferenceRunsDownTheLayers()
    {
        var wrong = new List<string>();
        foreach (var (folder, file) in Sources())
        {
            if (!Plan.TryGetValue(folder, out int layer)) continue; // reported by the next test
            foreach (var used in ReferencedFolders(File.ReadAllText(file), Plan.Keys))
                if (used != folder && Plan.TryGetValue(used, out int usedLayer) && usedLayer >= layer)
                    wrong.Add($"{Path.GetRelativePath(CoreFolder, file)} ({folder}, layer {layer}) uses {used} (layer {usedLayer})");
        }
        Assert.True(wrong.Count == 0, "References against the house plan:\n" + string.Join("\n", wrong));
    }

    [Fact]
    public void EveryFolderIsPlaced()
    {
        var folders = Directory.GetDirectories(CoreFolder).Select(Path.GetFileName).Where(n => n is not ("bin" or "obj")).ToList();
        Assert.Empty(folders.Where(f => !Plan.ContainsKey(f!)));
    }

    [Fact]
    public void TheCoreCarriesNoPlottingOrPowerShell()
    {
        var references = Regex.Matches(File.ReadAllText(Path.Combine(CoreFolder, "LoraShell.Core.csproj")), "(?:PackageReference|ProjectReference) Include=\"([^\"]+)\"")
            .Select(m => m.Groups[1].Value).ToList();
        Assert.Contains("TorchSharp", references);
        Assert.DoesNotContain(references, r => r.Contains("Plotly") || r.Contains("PowerShell") || r.Contains("Management.Automation") || r.Contains("LoraShell."));
        foreach (var (_, file) in Sources())
        {
            string text = File.ReadAllText(file);
            Assert.False(text.Contains("using Plotly") || text.Contains("System.Management.Automation"), file);
        }
    }

    [Fact]
    public void TheCheckSeesEachKindOfReference()
    {
        var folders = Plan.Keys;
        Assert.Contains("Session", ReferencedFolders("using LoraShell.Core.Session;", folders));
        Assert.Contains("Training", ReferencedFolders("var x = new LoraShell.Core.Training.TrainingOptions();", folders));
        Assert.Contains("SideTuning", ReferencedFolders("SideTuning.LadderSideNetwork? side;", folders));
        Assert.Empty(ReferencedFolders("var p = System.IO.Path.Combine(a, b); // Models.Foo in a comment\nvar s = \"Lora.Bar\";", folders));
    }
}
