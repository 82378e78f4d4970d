namespace LoraShell.Core.Tokenizers.HuggingFace.Text;

/// <summary>
/// The argument of the crate's <c>transform</c>: the new characters (code points), each with a change:
/// 0 = replaces the next old character, 1 = inserted, -N = replaces the next old character and removes N more.
/// </summary>
internal sealed class ChangeBuffer
{
    private int[] _cps;
    private int[] _changes;

    public ChangeBuffer(int capacity = 16)
    {
        _cps = new int[Math.Max(4, capacity)];
        _changes = new int[_cps.Length];
    }

    public int Count { get; private set; }

    public ReadOnlySpan<int> CodePoints => _cps.AsSpan(0, Count);
    public ReadOnlySpan<int> Changes => _changes.AsSpan(0, Count);

    public void Add(int cp, int change)
    {
        if (Count == _cps.Length)
        {
            Array.Resize(ref _cps, Count * 2);
            Array.Resize(ref _changes, Count * 2);
        }
        _cps[Count] = cp;
        _changes[Count] = change;
        Count++;
    }

    public void Clear() => Count = 0;
}
