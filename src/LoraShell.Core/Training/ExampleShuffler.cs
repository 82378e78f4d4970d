namespace LoraShell.Core.Training;

/// <summary>
/// Seeded draws without replacement, a new permutation each epoch. Draws are addressed by their
/// index, so a resumed run (or any jump) replays the permutations up to it and continues identically.
/// </summary>
internal sealed class ExampleShuffler
{
    readonly int _count;
    readonly long _seed;
    Random _random = null!;
    int[] _order = null!;
    int _next;
    long _drawn;

    public ExampleShuffler(int count, long seed) { _count = count; _seed = seed; Restart(); }

    void Restart() { _random = new Random((int)(_seed ^ (_seed >> 32))); _order = Array.Empty<int>(); _next = 0; _drawn = 0; }

    public IReadOnlyList<int> Take(long firstDraw, int n)
    {
        if (firstDraw < _drawn) Restart();
        while (_drawn < firstDraw) Draw();
        var picked = new List<int>(n);
        while (picked.Count < n) picked.Add(Draw());
        return picked;
    }

    int Draw()
    {
        if (_next >= _order.Length) { _order = Enumerable.Range(0, _count).ToArray(); _random.Shuffle(_order); _next = 0; }
        _drawn++;
        return _order[_next++];
    }
}
