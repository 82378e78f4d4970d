using System.Collections.Concurrent;
using System.Text;
using Xunit.Abstractions;
using RustTokenizer = Tokenizers.DotNet.Tokenizer;

using LoraShell.Core.Tokenizers.HuggingFace;

namespace LoraShell.Core.Tests.HuggingFaceTokenizers;

/// <summary>
/// Differential tests against Tokenizers.DotNet 1.4.1, a wrapper of the Rust crate itself (0.22.2). Its
/// <c>Encode</c> uses add_special_tokens=true and applies the file's truncation; its <c>Decode</c> uses
/// skip_special_tokens=true (established by <see cref="Oracle_api_semantics"/>).
/// gpt2's file carries truncation max_length=128, so for gpt2 the oracle only shows the first 128 ids: long texts are
/// compared through chunks that cannot change the pre-tokenization (see <see cref="SafeChunks"/>).
/// </summary>
public class OracleTests(ITestOutputHelper output)
{
    private static readonly int RandomCount = int.TryParse(Environment.GetEnvironmentVariable("HFTOK_RANDOM_COUNT"), out int n) ? n : 2000;
    private const int Gpt2Truncation = 128;
    private static readonly ConcurrentDictionary<string, RustTokenizer> s_oracles = new();

    private static RustTokenizer Oracle(string key) => s_oracles.GetOrAdd(key, k => new RustTokenizer(vocabPath: Paths.TokenizerJson(k)));

    public static IEnumerable<object[]> Keys() => Paths.TokenizerKeys.Select(k => new object[] { k });

    [Fact]
    public void Oracle_api_semantics()
    {
        var oracle = Oracle("llama2");
        Assert.Equal([1u], oracle.Encode(""));                  // add_special_tokens = true
        Assert.Equal("Hello", oracle.Decode([1, 22557, 2]));    // skip_special_tokens = true
        var gpt2 = Oracle("gpt2");
        Assert.Equal(Gpt2Truncation, gpt2.Encode(File.ReadAllText(Paths.TinyShakespeare)).Length); // file truncation applied
    }

    [Theory]
    [MemberData(nameof(Keys))]
    public void TinyShakespeare_matches_oracle(string key)
    {
        string text = File.ReadAllText(Paths.TinyShakespeare);
        var mine = Fixtures.Tokenizer(key);
        var oracle = Oracle(key);
        int[] ours = mine.EncodeIds(text);
        int[] theirs = oracle.Encode(text).Select(i => (int)i).ToArray();
        if (key != "gpt2")
        {
            AssertSameIds(ours, theirs, key, "tinyshakespeare");
            output.WriteLine($"{key}: {ours.Length} ids identical");
            return;
        }
        Assert.Equal(ours.Take(Gpt2Truncation), theirs);
        int chunks = 0, compared = 0;
        var concatenated = new List<int>();
        foreach (var chunk in SafeChunks(text, 300))
        {
            int[] a = mine.EncodeIds(chunk);
            concatenated.AddRange(a);
            chunks++;
            if (a.Length > Gpt2Truncation) continue;
            compared++;
            AssertSameIds(a, oracle.Encode(chunk).Select(i => (int)i).ToArray(), key, $"chunk {chunks}");
        }
        // Chunking did not change our own tokenization, so the chunk comparisons cover the whole text.
        Assert.Equal(ours, concatenated);
        output.WriteLine($"gpt2: first {Gpt2Truncation} of {ours.Length} ids identical; {compared}/{chunks} chunks compared, all identical");
    }

    [Theory]
    [MemberData(nameof(Keys))]
    public void Random_strings_match_oracle(string key)
    {
        var mine = Fixtures.Tokenizer(key);
        var oracle = Oracle(key);
        var specials = mine.AddedTokens.Select(t => t.Content).Take(200).ToList();
        var texts = RandomText.Generate(StableSeed(key) + (int.TryParse(Environment.GetEnvironmentVariable("HFTOK_RANDOM_SEED"), out int s) ? s : 0), RandomCount, specials);
        var failures = new List<string>();
        int decodeFailures = 0;
        foreach (var text in texts)
        {
            int[] ours = mine.EncodeIds(text);
            int[] theirs = oracle.Encode(text).Select(i => (int)i).ToArray();
            int[] expected = key == "gpt2" ? ours.Take(Gpt2Truncation).ToArray() : ours;
            // The detailed path gives the same ids, and offsets that are UTF-16 ranges on character boundaries.
            var full = mine.Encode(text);
            Assert.Equal(ours, full.Ids);
            foreach (var (start, end) in full.Offsets)
            {
                Assert.True(0 <= start && start <= end && end <= text.Length, $"offset ({start},{end}) outside the text");
                Assert.False(start > 0 && start < text.Length && char.IsLowSurrogate(text[start]) && char.IsHighSurrogate(text[start - 1]));
                Assert.False(end > 0 && end < text.Length && char.IsLowSurrogate(text[end]) && char.IsHighSurrogate(text[end - 1]));
            }
            if (!expected.SequenceEqual(theirs))
            {
                failures.Add($"{Escape(text)}\n  ours:   [{string.Join(",", ours)}]\n  theirs: [{string.Join(",", theirs)}]");
                continue;
            }
            // Same ids: the decoded text must match too (oracle decodes with skip_special_tokens=true).
            var theirText = oracle.Decode(theirs.Select(i => (uint)i).ToArray());
            if (mine.Decode(theirs, skipSpecialTokens: true) != theirText)
            {
                decodeFailures++;
                if (failures.Count < 5) failures.Add($"decode {Escape(text)}: ours '{Escape(mine.Decode(theirs, true))}' theirs '{Escape(theirText)}'");
            }
        }
        foreach (var f in failures.Take(10)) output.WriteLine(f);
        Assert.True(failures.Count == 0, $"{key}: {failures.Count} of {RandomCount} random strings differ ({decodeFailures} in decode). First:\n{string.Join("\n", failures.Take(5))}");
        output.WriteLine($"{key}: {RandomCount}/{RandomCount} random strings identical (encode and decode)");
    }

    private static int StableSeed(string key)
    {
        int h = 17;
        foreach (char c in key) h = unchecked(h * 31 + c);
        return h & 0x7FFFFFFF;
    }

    /// <summary>
    /// Cuts text before a space that sits between two ASCII letters. GPT-2's regex always starts a pre-token at
    /// such a space (" ?\p{L}+") and ends the previous one at the letter before it, so encoding the chunks one by one
    /// gives the same ids as encoding the whole text (checked by the caller anyway).
    /// </summary>
    internal static IEnumerable<string> SafeChunks(string text, int targetLength)
    {
        int start = 0;
        while (start < text.Length)
        {
            int cut = Math.Min(text.Length, start + targetLength);
            while (cut < text.Length && !(text[cut] == ' ' && char.IsAsciiLetter(text[cut - 1]) && cut + 1 < text.Length && char.IsAsciiLetter(text[cut + 1]))) cut++;
            yield return text[start..cut];
            start = cut;
        }
    }

    private static void AssertSameIds(int[] ours, int[] theirs, string key, string what)
    {
        if (ours.SequenceEqual(theirs)) return;
        int i = 0;
        while (i < Math.Min(ours.Length, theirs.Length) && ours[i] == theirs[i]) i++;
        Assert.Fail($"{key} {what}: first difference at id #{i} (ours {ours.Length} ids, theirs {theirs.Length}): ours [{string.Join(",", ours.Skip(Math.Max(0, i - 3)).Take(8))}] theirs [{string.Join(",", theirs.Skip(Math.Max(0, i - 3)).Take(8))}]");
    }

    internal static string Escape(string s)
    {
        var sb = new StringBuilder();
        foreach (var r in s.EnumerateRunes())
        {
            if (r.Value < 0x20 || r.Value > 0x7E) sb.Append($"\\u{{{r.Value:X}}}");
            else sb.Append((char)r.Value);
        }
        return sb.ToString();
    }
}
