using System.Buffers;
using LoraShell.Core.Tokenizers.HuggingFace.Models;
using LoraShell.Core.Tokenizers.HuggingFace.Normalizers;
using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace;

/// <summary>
/// The crate's <c>AddedVocabulary</c>: ids of the added tokens (given the way the crate re-adds them on load), and
/// the two matchers that cut them out of the input: tokens with <c>normalized=false</c> are matched on the raw text
/// first, tokens with <c>normalized=true</c> on the normalized remainder. Matching is leftmost-longest
/// (aho-corasick <c>LeftmostLongest</c>), then <c>single_word</c>/<c>lstrip</c>/<c>rstrip</c> are applied.
/// </summary>
internal sealed class AddedVocabulary
{
    private readonly Dictionary<string, int> _contentToId = new(StringComparer.Ordinal);
    private readonly Dictionary<int, AddedToken> _idToToken = new();
    private readonly HashSet<string> _specialContents = new(StringComparer.Ordinal);
    private readonly List<AddedToken> _ordered = new();
    private readonly Matcher _rawMatcher;
    private readonly Matcher _normalizedMatcher;

    /// <param name="tokens">The <c>added_tokens</c> entries in file order (their <c>Id</c> is the file's id).</param>
    public AddedVocabulary(IReadOnlyList<AddedToken> tokens, BpeModel model, INormalizer? normalizer)
    {
        // Replay the crate's deserialization: each entry is added with add_special_tokens/add_tokens. An entry
        // found in the model vocab keeps that id; otherwise it gets the next free id after the model.
        var specialOrder = new List<AddedToken>();
        var classicOrder = new List<AddedToken>();
        var present = new HashSet<AddedToken>(); // the tokens currently in _idToToken, compared without their id
        int maxId = -1;
        foreach (var file in tokens)
        {
            var token = file with { Id = 0 };
            if (token.Special && token.Content.Length > 0 && _specialContents.Add(token.Content)) specialOrder.Add(token);
            if (token.Content.Length == 0 || present.Contains(token)) continue;

            int newId;
            if (_contentToId.TryGetValue(token.Content, out int existing)) newId = existing;
            else if (model.TokenToId(token.Content) is int modelId) newId = modelId;
            else if (_contentToId.Count == 0) newId = model.VocabCount;
            else newId = maxId >= model.VocabCount || model.VocabCount == 0 ? maxId + 1 : model.VocabCount;

            _contentToId[token.Content] = newId;
            maxId = Math.Max(maxId, newId);
            if (_idToToken.TryGetValue(newId, out var replaced)) present.Remove(replaced with { Id = 0 });
            _idToToken[newId] = token with { Id = newId };
            present.Add(token);
            if (!_specialContents.Contains(token.Content)) classicOrder.Add(token);
        }

        // The matchers: special tokens first, then the others, split by the `normalized` flag.
        var raw = new List<(string Pattern, int Id)>();
        var normalized = new List<(string Pattern, int Id)>();
        foreach (var token in specialOrder.Concat(classicOrder))
        {
            int id = TokenToId(token.Content, model) ?? throw new InvalidOperationException("missing added token");
            if (token.Normalized)
            {
                var n = new NormalizedString(token.Content);
                normalizer?.Normalize(n);
                normalized.Add((n.Normalized, id));
            }
            else raw.Add((token.Content, id));
        }
        _rawMatcher = new Matcher(raw);
        _normalizedMatcher = new Matcher(normalized);

        foreach (var t in _idToToken.Values.OrderBy(t => t.Id)) _ordered.Add(t);
    }

    public IReadOnlyList<AddedToken> Tokens => _ordered;

    public int MaxId => _idToToken.Count == 0 ? -1 : _idToToken.Keys.Max();

    public AddedToken? ById(int id) => _idToToken.GetValueOrDefault(id);

    public int? IdOf(string content) => _contentToId.TryGetValue(content, out int id) ? id : null;

    public bool IsSpecial(string content) => _specialContents.Contains(content);

    private int? TokenToId(string content, BpeModel model) => IdOf(content) ?? model.TokenToId(content);

    /// <summary>The crate's <c>extract_and_normalize</c>.</summary>
    public void ExtractAndNormalize(INormalizer? normalizer, PreTokenizedString text)
    {
        text.SplitWithTokens((piece, output) => SplitWithIndices(piece, _rawMatcher, output));
        text.SplitWithTokens((piece, output) =>
        {
            normalizer?.Normalize(piece);
            SplitWithIndices(piece, _normalizedMatcher, output);
        });
    }

    private void SplitWithIndices(NormalizedString piece, Matcher matcher, List<Split> output)
    {
        string sentence = piece.Normalized;
        if (matcher.IsEmpty || sentence.Length == 0)
        {
            // The crate always re-slices the piece; that recomputes its original span from the alignments.
            output.Add(new Split(piece.Slice(0, sentence.Length)));
            return;
        }
        int startOffset = 0;
        foreach (var (matchStart, matchEnd, id) in matcher.FindAll(sentence))
        {
            int start = matchStart, stop = matchEnd;
            var token = _idToToken[id];
            if (token.SingleWord)
            {
                bool startSpace = start == 0 || !EndsWithWord(sentence, start);
                bool stopSpace = stop == sentence.Length || !StartsWithWord(sentence, stop);
                if (!startSpace || !stopSpace) continue;
            }
            if (token.LStrip)
            {
                int newStart = start;
                while (newStart > 0)
                {
                    int prev = UnicodeProps.CharStart(sentence, newStart - 1);
                    if (!UnicodeProps.IsWhiteSpace(UnicodeProps.CodePointAt(sentence, prev, out _))) break;
                    newStart = prev;
                }
                start = Math.Max(newStart, startOffset);
            }
            if (token.RStrip)
            {
                while (stop < sentence.Length)
                {
                    int cp = UnicodeProps.CodePointAt(sentence, stop, out int len);
                    if (!UnicodeProps.IsWhiteSpace(cp)) break;
                    stop += len;
                }
            }
            if (startOffset < start) output.Add(new Split(piece.Slice(startOffset, start)));
            output.Add(new Split(piece.Slice(start, stop), id));
            startOffset = stop;
        }
        if (startOffset != sentence.Length) output.Add(new Split(piece.Slice(startOffset, sentence.Length)));
    }

    private static bool EndsWithWord(string s, int end)
    {
        int prev = UnicodeProps.CharStart(s, end - 1);
        return UnicodeProps.IsWordChar(UnicodeProps.CodePointAt(s, prev, out _));
    }

    private static bool StartsWithWord(string s, int start) => UnicodeProps.IsWordChar(UnicodeProps.CodePointAt(s, start, out _));

    /// <summary>A trie with leftmost-longest, non-overlapping search (what aho-corasick LeftmostLongest returns).</summary>
    private sealed class Matcher
    {
        private readonly Node _root = new();
        private readonly SearchValues<char>? _firstChars;

        public Matcher(List<(string Pattern, int Id)> patterns)
        {
            var first = new HashSet<char>();
            foreach (var (pattern, id) in patterns)
            {
                if (pattern.Length == 0) continue;
                var node = _root;
                foreach (char c in pattern)
                {
                    node.Children ??= new Dictionary<char, Node>();
                    if (!node.Children.TryGetValue(c, out var child)) node.Children[c] = child = new Node();
                    node = child;
                }
                // With duplicate patterns aho-corasick reports the first one.
                if (node.Id < 0) node.Id = id;
                first.Add(pattern[0]);
            }
            if (first.Count > 0) _firstChars = SearchValues.Create(first.ToArray());
        }

        public bool IsEmpty => _firstChars is null;

        public IEnumerable<(int Start, int End, int Id)> FindAll(string s)
        {
            int i = 0;
            while (i < s.Length)
            {
                int next = s.AsSpan(i).IndexOfAny(_firstChars!);
                if (next < 0) yield break;
                i += next;
                var node = _root;
                int bestEnd = -1, bestId = -1;
                for (int j = i; j < s.Length; j++)
                {
                    if (node.Children is null || !node.Children.TryGetValue(s[j], out node!)) break;
                    if (node.Id >= 0)
                    {
                        bestEnd = j + 1;
                        bestId = node.Id;
                    }
                }
                if (bestEnd < 0)
                {
                    i++;
                    continue;
                }
                yield return (i, bestEnd, bestId);
                i = bestEnd;
            }
        }

        private sealed class Node
        {
            public Dictionary<char, Node>? Children;
            public int Id = -1;
        }
    }
}
