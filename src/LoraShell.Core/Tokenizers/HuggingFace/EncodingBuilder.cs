namespace LoraShell.Core.Tokenizers.HuggingFace;

/// <summary>
/// The encoding being built: ids always, and (unless only ids were asked for) token strings, offsets and the
/// special-tokens mask. Post-processors edit it in place.
/// </summary>
internal sealed class EncodingBuilder
{
    public EncodingBuilder(string text, bool withDetails)
    {
        Text = text;
        WithDetails = withDetails;
        if (withDetails)
        {
            Tokens = new List<string>();
            Offsets = new List<(int, int)>();
            SpecialMask = new List<int>();
        }
    }

    /// <summary>The input text (offsets are UTF-16 indices into it).</summary>
    public string Text { get; }

    public bool WithDetails { get; }

    public List<int> Ids { get; } = new();

    public List<string>? Tokens { get; }

    public List<(int Start, int End)>? Offsets { get; }

    public List<int>? SpecialMask { get; }

    public int Count => Ids.Count;

    public void Add(int id, string? token, int start, int end, bool special)
    {
        Ids.Add(id);
        if (!WithDetails) return;
        Tokens!.Add(token ?? string.Empty);
        Offsets!.Add((start, end));
        SpecialMask!.Add(special ? 1 : 0);
    }

    /// <summary>Inserts a post-processor token at <paramref name="index"/> (offsets (0, 0), special mask 1).</summary>
    public void Insert(int index, int id, string token)
    {
        Ids.Insert(index, id);
        if (!WithDetails) return;
        Tokens!.Insert(index, token);
        Offsets!.Insert(index, (0, 0));
        SpecialMask!.Insert(index, 1);
    }

    public TokenEncoding ToEncoding() => new(
        Ids.ToArray(),
        Tokens?.ToArray() ?? [],
        Offsets?.ToArray() ?? [],
        SpecialMask?.ToArray() ?? []);
}
