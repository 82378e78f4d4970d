using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

/// <summary>
/// TorchSharp overloads that compile and do something else. <c>t.sum(0)</c> binds to <c>sum(ScalarType? type)</c>
/// (the literal 0 converts to any enum, and that overload needs no default filled in), so it sums every
/// element into a Byte scalar instead of summing dimension 0: it silently broke the ladder side network's
/// magnitude pruning (only the sum(1) terms ranked the dimensions). The sources must spell the dimension.
/// </summary>
public class TorchSharpPitfallTests
{
    [Fact]
    public void SumOfTheLiteralZeroIsATypeNotADimension()
    {
        using var t = ones(3, 4);
        Assert.Equal(ScalarType.Byte, t.sum(0).dtype);
        Assert.Empty(t.sum(0).shape);
        Assert.Equal(new long[] { 4 }, t.sum(new long[] { 0 }).shape);
        Assert.Equal(new long[] { 3 }, t.sum(1).shape);
    }

    [Fact]
    public void NoSourceReducesOverTheLiteralZero()
    {
        string core = Path.Combine(RepositoryRoot(), "src");
        var offenders = Directory.EnumerateFiles(core, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}"))
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (f, i, line)))
            .Where(x => Regex.IsMatch(x.line, @"\.(sum|mean|prod|nansum|std|var)\(\s*0\s*[,)]"))
            .Select(x => $"{Path.GetRelativePath(core, x.f)}:{x.i + 1}: {x.line.Trim()}")
            .ToList();
        Assert.True(offenders.Count == 0, "reductions over the literal 0 (use new long[] { 0 }):\n" + string.Join("\n", offenders));
    }

    static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "LoraShell.sln"))) return dir.FullName;
        throw new InvalidOperationException("LoraShell.sln not found above the test binaries.");
    }
}
