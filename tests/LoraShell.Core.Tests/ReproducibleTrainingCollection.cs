using Xunit;

namespace LoraShell.Core.Tests;

/// <summary>
/// Tests that compare two training runs for equality (resume reproduces the uninterrupted loss curve) run
/// alone. The CPU matmul kernels choose their thread split at run time, so a CPU kept busy by tests running
/// in parallel changes the summation order in the last bits; AdamW's first steps, which move every weight by
/// about the learning rate whatever the gradient's size, turn that into loss differences near 1e-3.
/// </summary>
[CollectionDefinition(nameof(ReproducibleTrainingCollection), DisableParallelization = true)]
public sealed class ReproducibleTrainingCollection { }
