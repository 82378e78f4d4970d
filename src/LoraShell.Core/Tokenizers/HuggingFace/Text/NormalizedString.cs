using System.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.Text;

/// <summary>
/// A piece of the input as the Rust crate's <c>NormalizedString</c> models it: the current (normalized) text plus,
/// for every normalized character, the span of the original text it comes from. Token offsets are read from these
/// alignments, so every transformation reproduces the crate's alignment rules exactly (see <see cref="TransformRange"/>).
///
/// Differences of representation (not of behaviour): the crate keeps one alignment per UTF-8 byte, relative to the
/// piece; this keeps one per UTF-16 unit, absolute in the whole original text (an alignment never splits a character,
/// so the two carry the same information). While a piece has the same character structure as the original text
/// (no transformation changed lengths), its alignments are not stored at all ("identity mode").
/// </summary>
internal sealed class NormalizedString
{
    private readonly string _original;
    private string _normalized;

    // Two ints (absolute original start, end) per normalized UTF-16 unit, starting at unit _alignBase.
    // Null means identity: unit i is original unit OriginalShift + i.
    private int[]? _align;
    private int _alignBase;

    public NormalizedString(string original)
    {
        _original = original;
        _normalized = original;
        OriginalShift = 0;
        OriginalLength = original.Length;
    }

    private NormalizedString(string original, string normalized, int[]? align, int alignBase, int shift, int length)
    {
        _original = original;
        _normalized = normalized;
        _align = align;
        _alignBase = alignBase;
        OriginalShift = shift;
        OriginalLength = length;
    }

    /// <summary>The crate's <c>original_shift</c>: where this piece starts in the whole original text.</summary>
    public int OriginalShift { get; private set; }

    /// <summary>The crate's <c>len_original</c> (in UTF-16 units here).</summary>
    public int OriginalLength { get; private set; }

    public string Normalized => _normalized;

    public int Length => _normalized.Length;

    public bool IsEmpty => _normalized.Length == 0;

    /// <summary>The original span (absolute) aligned with normalized unit <paramref name="unit"/>.</summary>
    public void GetAlignment(int unit, out int start, out int end)
    {
        if (_align is { } a)
        {
            int k = 2 * (_alignBase + unit);
            start = a[k];
            end = a[k + 1];
            return;
        }
        string o = _original;
        int p = OriginalShift + unit;
        p = UnicodeProps.CharStart(o, p);
        start = p;
        end = p + UnicodeProps.CharLength(o, p);
    }

    /// <summary>
    /// The crate's <c>convert_offsets(Range::Normalized(..))</c> followed by adding <c>original_shift</c>, as
    /// <c>PreTokenizedString::into_encoding</c> does for every token.
    /// </summary>
    public (int Start, int End) ToOriginal(int start, int end)
    {
        if (start == end) return (OriginalShift + start, OriginalShift + end);
        if (start > end || end > Length) return (start, end);
        GetAlignment(start, out int s, out _);
        GetAlignment(end - 1, out _, out int e);
        return (s, e);
    }

    /// <summary>The crate's <c>slice(Range::Normalized(start..end))</c>.</summary>
    public NormalizedString Slice(int start, int end)
    {
        if (start == end)
        {
            // The crate converts an empty normalized range to itself and uses it as the original range.
            return new NormalizedString(_original, string.Empty, null, 0, OriginalShift + start, 0);
        }
        GetAlignment(start, out int os, out _);
        GetAlignment(end - 1, out _, out int oe);
        string text = start == 0 && end == _normalized.Length ? _normalized : _normalized.Substring(start, end - start);
        return _align is null
            ? new NormalizedString(_original, text, null, 0, OriginalShift + start, oe - os)
            : new NormalizedString(_original, text, _align, _alignBase + start, os, oe - os);
    }

    /// <summary>
    /// Replaces the text by one of identical UTF-16 structure whose every character keeps the alignment of the one
    /// it replaces. This is what the crate's transform computes for a one-for-one character map (all changes 0);
    /// it is kept as a fast path.
    /// </summary>
    public void ReplaceSameShape(string text)
    {
        if (text.Length != _normalized.Length) throw new InvalidOperationException("shape changed");
        _normalized = text;
    }

    /// <summary>
    /// The crate's <c>transform_range(Range::Normalized(start..end), dest, initial_offset)</c>:
    /// skip <paramref name="initialOffset"/> old characters, then for each new character: change 0 takes the
    /// alignment of the next old character and consumes it; change -N also consumes N more; change 1 (an insertion)
    /// takes the alignment of the old unit just before the current position (or an empty span at the start).
    /// </summary>
    public void TransformRange(int start, int end, ChangeBuffer dest, int initialOffset)
    {
        string n = _normalized;
        int pos = start;
        for (int k = 0; k < initialOffset && pos < end; k++) pos += CharLength(n, pos);

        var cps = dest.CodePoints;
        var changes = dest.Changes;
        var text = new StringBuilder(cps.Length + 8);
        var align = new List<int>(2 * cps.Length + 8);
        for (int i = 0; i < cps.Length; i++)
        {
            int change = changes[i];
            int s, e;
            if (change > 0)
            {
                if (pos < 1) { s = e = OriginalShift; }
                else GetAlignment(pos - 1, out s, out e);
            }
            else
            {
                if (pos >= n.Length) throw new InvalidOperationException("transformation consumes more characters than it has");
                GetAlignment(pos, out s, out e);
                if (pos < end) pos += CharLength(n, pos);
                for (int r = 0; r < -change && pos < end; r++) pos += CharLength(n, pos);
            }
            int cp = cps[i];
            if (cp < 0x10000)
            {
                text.Append((char)cp);
                align.Add(s); align.Add(e);
            }
            else
            {
                text.Append(char.ConvertFromUtf32(cp));
                align.Add(s); align.Add(e); align.Add(s); align.Add(e);
            }
        }

        int newLength = start + text.Length + (n.Length - end);
        var newAlign = new int[2 * newLength];
        CopyAlignments(0, start, newAlign, 0);
        for (int i = 0; i < align.Count; i++) newAlign[2 * start + i] = align[i];
        CopyAlignments(end, n.Length, newAlign, 2 * (start + text.Length));

        _normalized = string.Concat(n.AsSpan(0, start), text.ToString(), n.AsSpan(end));
        _align = newAlign;
        _alignBase = 0;
    }

    /// <summary>
    /// The crate's <c>transform(dest, initial_offset)</c>: <see cref="TransformRange"/> over the normalized range
    /// that corresponds to the whole original piece (the crate converts <c>Range::Original(..)</c>).
    /// </summary>
    public void Transform(ChangeBuffer dest, int initialOffset)
    {
        var range = FullOriginalRangeInNormalized();
        if (range is null) return;
        TransformRange(range.Value.Start, range.Value.End, dest, initialOffset);
    }

    /// <summary>
    /// <c>convert_offsets(Range::Original(0..len_original))</c>: normally the whole normalized text, except that
    /// leading characters with an empty alignment are left out (the crate never starts a range on one).
    /// </summary>
    public (int Start, int End)? FullOriginalRangeInNormalized()
    {
        if (OriginalLength == 0) return (0, 0);
        if (_align is null) return (0, _normalized.Length);
        int targetStart = OriginalShift, targetEnd = OriginalShift + OriginalLength;
        int start = -1, end = -1;
        for (int i = 0; i < _normalized.Length; i++)
        {
            GetAlignment(i, out int s, out int e);
            if (targetEnd < e) break;
            if (start < 0 && targetStart <= s && s != e) start = i;
            end = i + 1;
        }
        if (start >= 0 && end >= 0) return (start, end);
        if (end >= 0) return (end, end);
        if (start >= 0) return (start, start);
        return null;
    }

    private void CopyAlignments(int from, int to, int[] target, int targetIndex)
    {
        if (to <= from) return;
        if (_align is { } a)
        {
            Array.Copy(a, 2 * (_alignBase + from), target, targetIndex, 2 * (to - from));
            return;
        }
        for (int i = from; i < to; i++)
        {
            GetAlignment(i, out int s, out int e);
            target[targetIndex++] = s;
            target[targetIndex++] = e;
        }
    }

    internal static int CharLength(string s, int i) => UnicodeProps.CharLength(s, i);

    // ---------------------------------------------------------------------------------------------------------
    // The NormalizedString operations the normalizers and pre-tokenizers use, each mirroring the crate's method.
    // ---------------------------------------------------------------------------------------------------------

    /// <summary>The crate's <c>prepend</c>: the new text and the old first character all share its alignment.</summary>
    public void Prepend(string s)
    {
        if (_normalized.Length == 0 || s.Length == 0) return;
        int firstLen = CharLength(_normalized, 0);
        int first = UnicodeProps.CodePointAt(_normalized, 0, out _);
        var dest = new ChangeBuffer(s.Length + 1);
        bool isFirst = true;
        for (int i = 0; i < s.Length;)
        {
            int cp = UnicodeProps.CodePointAt(s, i, out int len);
            dest.Add(cp, isFirst ? 0 : 1);
            isFirst = false;
            i += len;
        }
        dest.Add(first, 1);
        TransformRange(0, firstLen, dest, 0);
    }

    /// <summary>The crate's <c>append</c>: the new text shares the alignment of the old last character.</summary>
    public void Append(string s)
    {
        if (_normalized.Length == 0 || s.Length == 0) return;
        int lastStart = UnicodeProps.CharStart(_normalized, _normalized.Length - 1);
        int last = UnicodeProps.CodePointAt(_normalized, lastStart, out _);
        var dest = new ChangeBuffer(s.Length + 1);
        dest.Add(last, 0);
        for (int i = 0; i < s.Length;)
        {
            dest.Add(UnicodeProps.CodePointAt(s, i, out int len), 1);
            i += len;
        }
        TransformRange(lastStart, _normalized.Length, dest, 0);
    }

    /// <summary>
    /// Applies a whole-text change list (as the crate's <c>transform(dest, 0)</c>), taking the fast path when it is a
    /// one-for-one map of characters with unchanged UTF-16 lengths.
    /// </summary>
    public void ApplyTransform(ChangeBuffer dest, int initialOffset)
    {
        if (initialOffset == 0 && IsSameShape(dest, out var text))
        {
            var range = FullOriginalRangeInNormalized();
            if (range is { } r && r.Start == 0 && r.End == _normalized.Length)
            {
                _normalized = text!;
                return;
            }
        }
        Transform(dest, initialOffset);
    }

    private bool IsSameShape(ChangeBuffer dest, out string? text)
    {
        text = null;
        var cps = dest.CodePoints;
        var changes = dest.Changes;
        string n = _normalized;
        int pos = 0;
        bool identical = true;
        for (int i = 0; i < cps.Length; i++)
        {
            if (changes[i] != 0 || pos >= n.Length) return false;
            int len = CharLength(n, pos);
            int cp = cps[i];
            if ((cp >= 0x10000 ? 2 : 1) != len) return false;
            if (identical && UnicodeProps.CodePointAt(n, pos, out _) != cp) identical = false;
            pos += len;
        }
        if (pos != n.Length) return false;
        if (identical)
        {
            text = n;
            return true;
        }
        var sb = new StringBuilder(n.Length);
        foreach (var cp in cps) UnicodeProps.AppendCodePoint(sb, cp);
        text = sb.ToString();
        return true;
    }

    /// <summary>The crate's <c>filter</c>: removed characters fold into the preceding kept one as a negative change.</summary>
    public void Filter(Func<int, bool> keep)
    {
        var kept = new List<(int Cp, int Removed)>(_normalized.Length);
        int removed = 0;
        // Walk backwards like the crate so that each kept character carries the count of removed ones after it.
        var cps = new List<int>(_normalized.Length);
        for (int i = 0; i < _normalized.Length;)
        {
            cps.Add(UnicodeProps.CodePointAt(_normalized, i, out int len));
            i += len;
        }
        for (int i = cps.Count - 1; i >= 0; i--)
        {
            if (keep(cps[i]))
            {
                kept.Add((cps[i], removed > 0 ? -removed : 0));
                removed = 0;
            }
            else removed++;
        }
        if (kept.Count == cps.Count) return;
        var dest = new ChangeBuffer(kept.Count);
        for (int i = kept.Count - 1; i >= 0; i--) dest.Add(kept[i].Cp, kept[i].Removed);
        Transform(dest, removed);
    }

    /// <summary>
    /// The crate's <c>lrstrip</c>: leading whitespace is dropped through the initial offset, trailing whitespace is
    /// folded into the last kept character as a negative change.
    /// (The crate's source compares a character index with the byte length here; the Rust oracle strips trailing
    /// whitespace from multi-byte text all the same, so the character count is used.)
    /// </summary>
    public void Strip(bool left, bool right)
    {
        var cps = new List<int>(_normalized.Length);
        for (int i = 0; i < _normalized.Length;)
        {
            cps.Add(UnicodeProps.CodePointAt(_normalized, i, out int len));
            i += len;
        }
        int leading = 0, trailing = 0;
        if (left) while (leading < cps.Count && UnicodeProps.IsWhiteSpace(cps[leading])) leading++;
        if (right) while (trailing < cps.Count && UnicodeProps.IsWhiteSpace(cps[cps.Count - 1 - trailing])) trailing++;
        if (leading == 0 && trailing == 0) return;
        var dest = new ChangeBuffer(cps.Count);
        for (int i = 0; i < cps.Count; i++)
        {
            if (i < leading || i >= cps.Count - trailing) continue;
            dest.Add(cps[i], i == cps.Count - trailing - 1 ? -trailing : 0);
        }
        Transform(dest, leading);
    }

    /// <summary>Lowercase with Rust's <c>char::to_lowercase</c> (full mapping: U+0130 becomes two characters).</summary>
    public void Lowercase()
    {
        var dest = new ChangeBuffer(_normalized.Length);
        for (int i = 0; i < _normalized.Length;)
        {
            int cp = UnicodeProps.CodePointAt(_normalized, i, out int len);
            i += len;
            if (cp == 0x130)
            {
                dest.Add('i', 0);
                dest.Add(0x307, 1);
                continue;
            }
            dest.Add(UnicodeProps.ToLowerSingle(cp), 0);
        }
        ApplyTransform(dest, 0);
    }

    /// <summary>
    /// The crate's <c>replace(pattern, content)</c>. Each match is removed and the content inserted; all inserted
    /// characters take the alignment of the last removed character (or of the character before an empty match).
    /// </summary>
    public void Replace(SplitPattern pattern, string content)
    {
        var spans = new List<MatchSpan>();
        pattern.FindMatches(_normalized, spans);
        bool any = false, sameShape = content.Length == 1 && !char.IsSurrogate(content[0]);
        foreach (var span in spans)
        {
            if (!span.IsMatch) continue;
            any = true;
            if (span.End - span.Start != 1) sameShape = false;
        }
        if (!any) return;
        string n = _normalized;
        if (sameShape)
        {
            // Every match is one BMP character replaced by one BMP character: alignments stay as they are.
            var chars = n.ToCharArray();
            foreach (var span in spans)
            {
                if (span.IsMatch) chars[span.Start] = content[0];
            }
            _normalized = new string(chars);
            return;
        }

        var text = new StringBuilder(n.Length + 16);
        var align = new int[2 * (n.Length + spans.Count * Math.Max(content.Length, 1))];
        int a = 0;
        foreach (var span in spans)
        {
            if (!span.IsMatch)
            {
                text.Append(n, span.Start, span.End - span.Start);
                CopyAlignments(span.Start, span.End, align, a);
                a += 2 * (span.End - span.Start);
                continue;
            }
            int s, e;
            if (span.End > span.Start) GetAlignment(span.End - 1, out s, out e);
            else if (text.Length < 1) { s = e = OriginalShift; }
            else { s = align[a - 2]; e = align[a - 1]; }
            text.Append(content);
            for (int i = 0; i < content.Length; i++)
            {
                align[a++] = s;
                align[a++] = e;
            }
        }
        _normalized = text.ToString();
        if (align.Length != 2 * _normalized.Length) Array.Resize(ref align, 2 * _normalized.Length);
        _align = align;
        _alignBase = 0;
    }

    /// <summary>The crate's <c>split(pattern, behavior)</c>; pieces are handed to <paramref name="emit"/> in order.</summary>
    public void Split(SplitPattern pattern, SplitBehavior behavior, bool invert, Action<NormalizedString> emit)
    {
        var matches = new List<MatchSpan>();
        pattern.FindMatches(_normalized, matches);
        if (invert)
        {
            for (int i = 0; i < matches.Count; i++) matches[i] = matches[i] with { IsMatch = !matches[i].IsMatch };
        }
        SplitOnSpans(matches, behavior, emit);
    }

    /// <summary>Emits the pieces (empty ones included; the caller drops them, as the crate's PreTokenizedString does).</summary>
    public void SplitOnSpans(List<MatchSpan> matches, SplitBehavior behavior, Action<NormalizedString> emit)
    {
        // (start, end, remove) after applying the behaviour, exactly as the crate folds them.
        var splits = new List<(int Start, int End, bool Remove)>(matches.Count);
        switch (behavior)
        {
            case SplitBehavior.Isolated:
                foreach (var m in matches) splits.Add((m.Start, m.End, false));
                break;
            case SplitBehavior.Removed:
                foreach (var m in matches) splits.Add((m.Start, m.End, m.IsMatch));
                break;
            case SplitBehavior.Contiguous:
            {
                bool previous = false;
                foreach (var m in matches)
                {
                    if (m.IsMatch == previous && splits.Count > 0)
                    {
                        var last = splits[^1];
                        splits[^1] = (last.Start, m.End, false);
                    }
                    else splits.Add((m.Start, m.End, false));
                    previous = m.IsMatch;
                }
                break;
            }
            case SplitBehavior.MergedWithPrevious:
            {
                bool previous = false;
                foreach (var m in matches)
                {
                    if (m.IsMatch && !previous && splits.Count > 0)
                    {
                        var last = splits[^1];
                        splits[^1] = (last.Start, m.End, false);
                    }
                    else splits.Add((m.Start, m.End, false));
                    previous = m.IsMatch;
                }
                break;
            }
            case SplitBehavior.MergedWithNext:
            {
                bool previous = false;
                for (int i = matches.Count - 1; i >= 0; i--)
                {
                    var m = matches[i];
                    if (m.IsMatch && !previous && splits.Count > 0)
                    {
                        var last = splits[^1];
                        splits[^1] = (m.Start, last.End, false);
                    }
                    else splits.Add((m.Start, m.End, false));
                    previous = m.IsMatch;
                }
                splits.Reverse();
                break;
            }
        }
        foreach (var (start, end, remove) in splits)
        {
            if (!remove) emit(Slice(start, end));
        }
    }
}
