namespace LoraShell.Core.Training;

/// <summary>A run of a token stream placed in a training window: inputs Tokens[Start .. Start + Length).</summary>
public readonly record struct Segment(int Start, int Length);

/// <summary>
/// Packs whole documents into windows of <c>length</c> input tokens, best-fit decreasing (TRL's "bfd"
/// packing), so a document shorter than a window is never split across two and read without its beginning
/// (a chat reply without its question). A document longer than a window is cut as the stream always was, into
/// windows of <c>length</c> inputs with stride <c>length</c>; its remainder is packed like a short document.
/// Windows are returned in data order (by their earliest segment), so a prefix of them is a prefix of the data.
/// </summary>
public static class DocumentPacker
{
    public static IReadOnlyList<Segment[]> Pack(TokenStream stream, int length)
    {
        var pieces = new List<Segment>();
        int start = 0;
        for (int i = 1; i <= stream.Length; i++)
        {
            if (i < stream.Length && !stream.Starts[i]) continue;
            int n = i - start, full = (n - 1) / length;
            for (int k = 0; k < full; k++) pieces.Add(new Segment(start + k * length, length));
            int rest = n - full * length;
            if (rest >= 2) pieces.Add(new Segment(start + full * length, rest)); // one token alone predicts nothing
            start = i;
        }

        var bins = new List<List<Segment>>();
        var open = new SortedSet<(int Free, int Bin)>();
        foreach (var piece in pieces.OrderByDescending(p => p.Length).ThenBy(p => p.Start))
        {
            // The fullest window the piece still fits in (smallest free space ≥ its length).
            var fits = open.GetViewBetween((piece.Length, -1), (length, int.MaxValue));
            int bin;
            if (fits.Count > 0)
            {
                var best = fits.Min;
                open.Remove(best);
                bin = best.Bin;
                if (best.Free > piece.Length) open.Add((best.Free - piece.Length, bin));
            }
            else
            {
                bin = bins.Count;
                bins.Add(new List<Segment>());
                if (piece.Length < length) open.Add((length - piece.Length, bin));
            }
            bins[bin].Add(piece);
        }
        return bins.Select(b => b.OrderBy(s => s.Start).ToArray()).OrderBy(b => b[0].Start).ToList();
    }
}
