using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.Normalization;

internal enum NormalizationForm
{
    Nfc,
    Nfd,
    Nfkc,
    Nfkd,
}

/// <summary>
/// NFC/NFD/NFKC/NFKD exactly as the Rust crate computes them: the algorithm of <c>unicode-normalization-alignments</c>
/// 0.1.12 over its Unicode 9.0 tables, producing the (character, change) stream that <c>NormalizedString::transform</c>
/// turns into alignments.
///
/// .NET's <c>string.Normalize</c> cannot be used: it follows a newer Unicode version and, above all, gives no
/// alignment. The change rules of the crate: a decomposed character emits its first character with change 0 and the
/// rest with 1; canonical reordering stable-sorts each run of non-starters with the changes travelling along; a
/// composition of a composee (change a) with a character (change b) has change a + b - 1. This is why
/// <c>e</c>+U+0301 becomes <c>é</c> with change -1, i.e. the alignment of <c>e</c> only.
/// </summary>
internal static class UnicodeNormalization
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private static readonly Dictionary<int, byte> s_ccc = BuildCcc();
    private static readonly Dictionary<int, int[]> s_canonical = BuildDecompositions(Unicode9Tables.CanonicalDecompositions);
    private static readonly Dictionary<int, int[]> s_compatibility = BuildDecompositions(Unicode9Tables.CompatibilityDecompositions);
    private static readonly Dictionary<long, int> s_compositions = BuildCompositions();

    /// <summary>Lowest code point whose CCC is non-zero (U+0300); below it nothing reorders or composes.</summary>
    private const int FirstInteresting = 0x300;

    public static int CombiningClass(int cp) => cp < FirstInteresting ? 0 : s_ccc.GetValueOrDefault(cp);

    /// <summary>
    /// Computes the change stream for <paramref name="text"/>, or returns null when the crate's result would leave the
    /// text and its alignments untouched (every change 0 and every character unchanged).
    /// </summary>
    public static ChangeBuffer? Compute(string text, NormalizationForm form)
    {
        // Fast exits: below these code points no character decomposes differently / composes / reorders, and the
        // crate's output is the input with all changes 0.
        int limit = form switch
        {
            NormalizationForm.Nfc => 0x300,
            NormalizationForm.Nfd => 0xC0,
            _ => 0xA0,
        };
        if (!text.AsSpan().ContainsAnyExceptInRange('\0', (char)(limit - 1))) return null;

        bool compat = form is NormalizationForm.Nfkc or NormalizationForm.Nfkd;
        bool compose = form is NormalizationForm.Nfc or NormalizationForm.Nfkc;

        var decomposed = new ChangeBuffer(text.Length + 8);
        Decompose(text, compat, decomposed);
        var result = compose ? Recompose(decomposed) : decomposed;

        // Identity check: same characters, all changes 0.
        var cps = result.CodePoints;
        var changes = result.Changes;
        int pos = 0, k = 0;
        for (; k < cps.Length && pos < text.Length; k++)
        {
            if (changes[k] != 0) return result;
            int cp = UnicodeProps.CodePointAt(text, pos, out int len);
            if (cp != cps[k]) return result;
            pos += len;
        }
        return k == cps.Length && pos == text.Length ? null : result;
    }

    private static void Decompose(string text, bool compat, ChangeBuffer output)
    {
        // Non-starters are buffered and stably sorted by combining class whenever a starter (or the end) arrives.
        var run = new List<(int Cp, int Change, int Ccc)>();
        Span<int> hangul = stackalloc int[3];
        for (int i = 0; i < text.Length;)
        {
            int cp = UnicodeProps.CodePointAt(text, i, out int len);
            i += len;
            scoped ReadOnlySpan<int> parts;
            if (cp < 0x80)
            {
                parts = default;
            }
            else if (cp >= SBase && cp < SBase + SCount)
            {
                int s = cp - SBase;
                hangul[0] = LBase + s / NCount;
                hangul[1] = VBase + (s % NCount) / TCount;
                int t = s % TCount;
                if (t != 0)
                {
                    hangul[2] = TBase + t;
                    parts = hangul;
                }
                else parts = hangul[..2];
            }
            else if (compat && s_compatibility.TryGetValue(cp, out var kd)) parts = kd;
            else if (s_canonical.TryGetValue(cp, out var d)) parts = d;
            else parts = default;

            if (parts.IsEmpty)
            {
                Push(cp, 0, run, output);
                continue;
            }
            for (int p = 0; p < parts.Length; p++) Push(parts[p], p == 0 ? 0 : 1, run, output);
        }
        FlushRun(run, output);
    }

    private static void Push(int cp, int change, List<(int Cp, int Change, int Ccc)> run, ChangeBuffer output)
    {
        int ccc = CombiningClass(cp);
        if (ccc == 0)
        {
            FlushRun(run, output);
            output.Add(cp, change);
        }
        else run.Add((cp, change, ccc));
    }

    private static void FlushRun(List<(int Cp, int Change, int Ccc)> run, ChangeBuffer output)
    {
        if (run.Count == 0) return;
        if (run.Count > 1)
        {
            // Stable insertion sort by combining class (runs are short).
            for (int i = 1; i < run.Count; i++)
            {
                var item = run[i];
                int j = i - 1;
                while (j >= 0 && run[j].Ccc > item.Ccc)
                {
                    run[j + 1] = run[j];
                    j--;
                }
                run[j + 1] = item;
            }
        }
        foreach (var item in run) output.Add(item.Cp, item.Change);
        run.Clear();
    }

    /// <summary>The crate's recomposition state machine (composee, last combining class, buffer).</summary>
    private static ChangeBuffer Recompose(ChangeBuffer decomposed)
    {
        var output = new ChangeBuffer(decomposed.Count);
        var buffer = new List<(int Cp, int Change)>();
        bool hasComposee = false;
        int composee = 0, composeeChange = 0;
        int lastCcc = -1; // -1 = none
        var cps = decomposed.CodePoints;
        var changes = decomposed.Changes;
        for (int i = 0; i < cps.Length; i++)
        {
            int ch = cps[i], change = changes[i];
            int cls = CombiningClass(ch);
            if (!hasComposee)
            {
                if (cls != 0)
                {
                    output.Add(ch, change);
                    continue;
                }
                composee = ch;
                composeeChange = change;
                hasComposee = true;
                continue;
            }
            if (lastCcc < 0)
            {
                int r = Compose(composee, ch);
                if (r >= 0)
                {
                    composee = r;
                    composeeChange = composeeChange + change - 1;
                    continue;
                }
                if (cls == 0)
                {
                    output.Add(composee, composeeChange);
                    composee = ch;
                    composeeChange = change;
                    continue;
                }
                buffer.Add((ch, change));
                lastCcc = cls;
            }
            else if (lastCcc >= cls)
            {
                if (cls == 0)
                {
                    output.Add(composee, composeeChange);
                    foreach (var b in buffer) output.Add(b.Cp, b.Change);
                    buffer.Clear();
                    composee = ch;
                    composeeChange = change;
                    lastCcc = -1;
                    continue;
                }
                buffer.Add((ch, change));
                lastCcc = cls;
            }
            else
            {
                int r = Compose(composee, ch);
                if (r >= 0)
                {
                    composee = r;
                    composeeChange = composeeChange + change - 1;
                    continue;
                }
                buffer.Add((ch, change));
                lastCcc = cls;
            }
        }
        if (hasComposee) output.Add(composee, composeeChange);
        foreach (var b in buffer) output.Add(b.Cp, b.Change);
        return output;
    }

    private static int Compose(int a, int b)
    {
        if (a >= LBase && a < LBase + LCount && b >= VBase && b < VBase + VCount)
        {
            return SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
        }
        if (a >= SBase && a < SBase + SCount && b > TBase && b < TBase + TCount && (a - SBase) % TCount == 0)
        {
            return a + (b - TBase);
        }
        return s_compositions.TryGetValue(((long)a << 32) | (uint)b, out int c) ? c : -1;
    }

    /// <summary>General_Category=Mark in Unicode 9.0 (StripAccents).</summary>
    public static bool IsMark(int cp) => UnicodeProps.InRanges(Unicode9Tables.MarkRanges, cp);

    private static Dictionary<int, byte> BuildCcc()
    {
        var t = Unicode9Tables.CombiningClasses;
        var d = new Dictionary<int, byte>(t.Length / 2);
        for (int i = 0; i < t.Length; i += 2) d[t[i]] = (byte)t[i + 1];
        return d;
    }

    private static Dictionary<int, int[]> BuildDecompositions(int[] table)
    {
        var d = new Dictionary<int, int[]>();
        for (int i = 0; i < table.Length;)
        {
            int cp = table[i], len = table[i + 1];
            d[cp] = table.AsSpan(i + 2, len).ToArray();
            i += 2 + len;
        }
        return d;
    }

    private static Dictionary<long, int> BuildCompositions()
    {
        var t = Unicode9Tables.Compositions;
        var d = new Dictionary<long, int>(t.Length / 3);
        for (int i = 0; i < t.Length; i += 3) d[((long)t[i] << 32) | (uint)t[i + 1]] = t[i + 2];
        return d;
    }
}
