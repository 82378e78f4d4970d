namespace LoraShell.Core.Training;

/// <summary>How training windows treat the documents they pack (every .jsonl record, conversation and text file is one).</summary>
public enum PackingMode
{
    /// <summary>
    /// Documents are packed whole into windows (<see cref="DocumentPacker"/>; only one longer than a window is cut)
    /// and each is read as if alone: positions restart at its first token and attention stays inside it (a
    /// block-diagonal causal mask; TRL's padding-free packing). A token never sees another document.
    /// </summary>
    Documents,
    /// <summary>The windows are cuts of one continuous stream: a document attends to the ones before it in its window (LoraShell's behaviour before packing; plain text trained this way reads across file boundaries).</summary>
    Stream,
}
