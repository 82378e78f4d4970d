namespace LoraShell.Core.Tokenizers.HuggingFace.Models;

/// <summary>
/// Open-addressing hash map from a token-id pair to a packed (rank, new id) value: the BPE merge table.
/// A dedicated table because <see cref="long.GetHashCode"/> of <c>(a &lt;&lt; 32) | b</c> is <c>a ^ b</c>, which collides
/// massively for pairs of small ids and made both loading and encoding slow through <see cref="Dictionary{TKey,TValue}"/>.
/// </summary>
internal sealed class PairMap
{
    private long[] _keys = [];
    private long[] _values = [];
    private int _shift;
    private int _mask;

    public PairMap(int expectedCount)
    {
        int capacity = 16;
        while (capacity < expectedCount * 2) capacity <<= 1;
        Allocate(capacity);
    }

    public int Count { get; private set; }

    private void Allocate(int capacity)
    {
        _keys = new long[capacity];
        Array.Fill(_keys, -1L);
        _values = new long[capacity];
        _mask = capacity - 1;
        _shift = 64 - System.Numerics.BitOperations.Log2((uint)capacity);
    }

    private int Slot(long key) => (int)((ulong)(key * unchecked((long)0x9E3779B97F4A7C15)) >> _shift);

    /// <summary>Sets the value for (a, b); a later value replaces an earlier one (like collecting into a HashMap).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public void Set(int a, int b, long value)
    {
        if ((Count + 1) * 2 > _keys.Length) Grow();
        long key = ((long)a << 32) | (uint)b;
        int i = Slot(key);
        while (true)
        {
            long k = _keys[i];
            if (k == key)
            {
                _values[i] = value;
                return;
            }
            if (k == -1)
            {
                _keys[i] = key;
                _values[i] = value;
                Count++;
                return;
            }
            i = (i + 1) & _mask;
        }
    }

    public bool TryGetValue(int a, int b, out long value)
    {
        long key = ((long)a << 32) | (uint)b;
        var keys = _keys;
        int i = Slot(key);
        while (true)
        {
            long k = keys[i];
            if (k == key)
            {
                value = _values[i];
                return true;
            }
            if (k == -1)
            {
                value = 0;
                return false;
            }
            i = (i + 1) & _mask;
        }
    }

    private void Grow()
    {
        var oldKeys = _keys;
        var oldValues = _values;
        Allocate(oldKeys.Length * 2);
        Count = 0;
        for (int i = 0; i < oldKeys.Length; i++)
        {
            if (oldKeys[i] != -1) Set((int)(oldKeys[i] >> 32), (int)oldKeys[i], oldValues[i]);
        }
    }
}
