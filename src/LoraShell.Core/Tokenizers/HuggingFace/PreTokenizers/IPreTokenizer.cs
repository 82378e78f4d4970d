using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.PreTokenizers;

/// <summary>
/// A tokenizer.json <c>pre_tokenizer</c>: splits (and possibly rewrites) one piece, handing the resulting pieces to
/// <c>emit</c> in order. The crate applies each pre-tokenizer to every piece of the whole input before the next one
/// runs; since every pre-tokenizer treats each piece on its own, running the chain depth-first on one piece at a
/// time gives the same pieces in the same order, and keeps memory flat for long inputs.
/// </summary>
internal interface IPreTokenizer
{
    void PreTokenize(NormalizedString piece, Action<NormalizedString> emit);
}

/// <summary>A chain of pre-tokenizers; empty pieces are dropped between stages, as the crate's PreTokenizedString does.</summary>
internal sealed class SequencePreTokenizer : IPreTokenizer
{
    private readonly IPreTokenizer[] _items;

    public SequencePreTokenizer(IReadOnlyList<IPreTokenizer> preTokenizers) => _items = preTokenizers.ToArray();

    public void PreTokenize(NormalizedString piece, Action<NormalizedString> emit) => new Stage(_items, 0, emit).Accept(piece);

    /// <summary>Runs one piece through pre-tokenizer <c>index</c> and forwards its pieces to the next stage.</summary>
    private sealed class Stage
    {
        private readonly IPreTokenizer? _current;
        private readonly Action<NormalizedString> _forward;

        public Stage(IPreTokenizer[] items, int index, Action<NormalizedString> sink)
        {
            if (index < items.Length)
            {
                _current = items[index];
                _forward = new Stage(items, index + 1, sink).Accept;
            }
            else _forward = sink;
        }

        public void Accept(NormalizedString piece)
        {
            if (piece.IsEmpty) return;
            if (_current is null) _forward(piece);
            else _current.PreTokenize(piece, _forward);
        }
    }
}
