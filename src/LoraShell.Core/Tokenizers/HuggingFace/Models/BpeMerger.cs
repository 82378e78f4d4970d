namespace LoraShell.Core.Tokenizers.HuggingFace.Models;

/// <summary>
/// The crate's <c>Word::merge_all</c> (dropout off): a min-heap of candidate merges ordered by (rank, position).
/// It is reproduced as is, including how stale heap entries are recognised (only by the id the pair would merge
/// into), because that detail can change results compared with a textbook BPE loop.
/// </summary>
internal sealed class BpeMerger
{
    private int[] _c = new int[64];
    private int[] _prev = new int[64];
    private int[] _next = new int[64];
    private int[] _len = new int[64];
    private HeapEntry[] _heap = new HeapEntry[64];
    private int _heapCount;

    public int Count { get; private set; }

    private struct HeapEntry
    {
        public int Rank;
        public int Pos;
        public int NewId;
    }

    public void Reset() => Count = 0;

    /// <summary>The crate's <c>Word::add</c>.</summary>
    public void Add(int id, int byteLength)
    {
        if (Count == _c.Length)
        {
            int n = Count * 2;
            Array.Resize(ref _c, n);
            Array.Resize(ref _prev, n);
            Array.Resize(ref _next, n);
            Array.Resize(ref _len, n);
        }
        if (Count > 0) _next[Count - 1] = Count;
        _c[Count] = id;
        _prev[Count] = Count - 1;
        _next[Count] = -1;
        _len[Count] = byteLength;
        Count++;
    }

    public void MergeAll(PairMap merges)
    {
        // Initial candidates, then one O(n) heapify (pop order depends only on the (rank, pos) keys).
        _heapCount = 0;
        if (_heap.Length < Count) _heap = new HeapEntry[Count];
        for (int i = 0; i + 1 < Count; i++)
        {
            if (merges.TryGetValue(_c[i], _c[i + 1], out long m)) _heap[_heapCount++] = new HeapEntry { Rank = (int)(m >> 32), Pos = i, NewId = (int)m };
        }
        for (int i = _heapCount / 2 - 1; i >= 0; i--) SiftDown(i, _heap[i]);
        while (_heapCount > 0)
        {
            var top = Pop();
            int pos = top.Pos;
            if (_len[pos] == 0) continue;
            if (_next[pos] == -1) continue;
            int nextPos = _next[pos];
            // An entry is stale unless the current pair still merges into the same id.
            if (!merges.TryGetValue(_c[pos], _c[nextPos], out long current) || (int)current != top.NewId) continue;

            int rightNext = _next[nextPos];
            _c[pos] = top.NewId;
            _len[pos] += _len[nextPos];
            _next[pos] = rightNext;
            _len[nextPos] = 0;
            if (rightNext > -1 && rightNext < Count) _prev[rightNext] = pos;

            int prev = _prev[pos];
            if (prev >= 0 && merges.TryGetValue(_c[prev], _c[pos], out long mp)) Push((int)(mp >> 32), prev, (int)mp);
            int next = _next[pos];
            if (next >= 0 && next < Count && merges.TryGetValue(_c[pos], _c[next], out long mn)) Push((int)(mn >> 32), pos, (int)mn);
        }
    }

    /// <summary>The surviving symbols, in order.</summary>
    public BpeWord ToWord()
    {
        int n = 0;
        for (int i = 0; i < Count; i++) if (_len[i] != 0) n++;
        var ids = new int[n];
        var lens = new int[n];
        int k = 0;
        for (int i = 0; i < Count; i++)
        {
            if (_len[i] == 0) continue;
            ids[k] = _c[i];
            lens[k++] = _len[i];
        }
        return new BpeWord(ids, lens);
    }

    private void Push(int rank, int pos, int newId)
    {
        if (_heapCount == _heap.Length) Array.Resize(ref _heap, _heapCount * 2);
        int i = _heapCount++;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            ref var p = ref _heap[parent];
            if (p.Rank < rank || (p.Rank == rank && p.Pos <= pos)) break;
            _heap[i] = p;
            i = parent;
        }
        _heap[i] = new HeapEntry { Rank = rank, Pos = pos, NewId = newId };
    }

    private HeapEntry Pop()
    {
        var top = _heap[0];
        var last = _heap[--_heapCount];
        if (_heapCount > 0) SiftDown(0, last);
        return top;
    }

    /// <summary>Places <paramref name="item"/> at or below index <paramref name="i"/>.</summary>
    private void SiftDown(int i, HeapEntry item)
    {
        while (true)
        {
            int child = 2 * i + 1;
            if (child >= _heapCount) break;
            if (child + 1 < _heapCount && Less(_heap[child + 1], _heap[child])) child++;
            if (!Less(_heap[child], item)) break;
            _heap[i] = _heap[child];
            i = child;
        }
        _heap[i] = item;
    }

    private static bool Less(in HeapEntry a, in HeapEntry b) => a.Rank < b.Rank || (a.Rank == b.Rank && a.Pos < b.Pos);
}
