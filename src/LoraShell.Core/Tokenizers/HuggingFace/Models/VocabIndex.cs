using System.Runtime.CompilerServices;

namespace LoraShell.Core.Tokenizers.HuggingFace.Models;

/// <summary>
/// Token string to id map with span look-ups (open addressing, hash stored in the slot). Used instead of
/// <see cref="Dictionary{TKey,TValue}"/> because loading performs ~0.5 M look-ups right after process start, when the
/// runtime-instantiated <c>Dictionary.AlternateLookup&lt;ReadOnlySpan&lt;char&gt;&gt;</c> code still runs unoptimized
/// (tier 0); these methods are compiled fully optimized on first call.
/// </summary>
internal sealed class VocabIndex
{
    private string[] _tokens;
    private int[] _ids;
    private long[] _slots; // (hash << 32) | (entry + 1); 0 = empty
    private int _mask;

    public VocabIndex(int capacity = 1024)
    {
        _tokens = new string[Math.Max(16, capacity)];
        _ids = new int[_tokens.Length];
        int slots = 32;
        while (slots < _tokens.Length * 2) slots <<= 1;
        _slots = new long[slots];
        _mask = slots - 1;
    }

    public int Count { get; private set; }

    /// <summary>The token of entry <paramref name="index"/> (0 &lt;= index &lt; Count, insertion order).</summary>
    public string TokenAt(int index) => _tokens[index];

    /// <summary>The id of entry <paramref name="index"/>.</summary>
    public int IdAt(int index) => _ids[index];

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int Hash(ReadOnlySpan<char> s)
    {
        uint h = 2166136261;
        foreach (char c in s) h = (h ^ c) * 16777619;
        h ^= h >> 15;
        h *= 0x2C1B3C6D;
        h ^= h >> 12;
        return (int)h;
    }

    /// <summary>Sets the id of <paramref name="token"/> (a later entry for the same token replaces the earlier id).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Set(string token, int id)
    {
        int hash = Hash(token);
        int i = hash & _mask;
        while (true)
        {
            long slot = _slots[i];
            if (slot == 0) break;
            if ((int)(slot >> 32) == hash)
            {
                int entry = (int)slot - 1;
                if (string.Equals(_tokens[entry], token, StringComparison.Ordinal))
                {
                    _ids[entry] = id;
                    return;
                }
            }
            i = (i + 1) & _mask;
        }
        if (Count == _tokens.Length)
        {
            Array.Resize(ref _tokens, Count * 2);
            Array.Resize(ref _ids, Count * 2);
        }
        _tokens[Count] = token;
        _ids[Count] = id;
        _slots[i] = ((long)hash << 32) | (uint)(Count + 1);
        Count++;
        if (Count * 2 > _slots.Length) Rehash();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool TryGetValue(ReadOnlySpan<char> token, out int id)
    {
        int hash = Hash(token);
        var slots = _slots;
        int i = hash & _mask;
        while (true)
        {
            long slot = slots[i];
            if (slot == 0)
            {
                id = -1;
                return false;
            }
            if ((int)(slot >> 32) == hash)
            {
                int entry = (int)slot - 1;
                if (token.SequenceEqual(_tokens[entry]))
                {
                    id = _ids[entry];
                    return true;
                }
            }
            i = (i + 1) & _mask;
        }
    }

    private void Rehash()
    {
        var old = _slots;
        _slots = new long[old.Length * 2];
        _mask = _slots.Length - 1;
        foreach (long slot in old)
        {
            if (slot == 0) continue;
            int i = (int)(slot >> 32) & _mask;
            while (_slots[i] != 0) i = (i + 1) & _mask;
            _slots[i] = slot;
        }
    }
}
