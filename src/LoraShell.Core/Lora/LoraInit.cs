namespace LoraShell.Core.Lora;

/// <summary>
/// How a new adapter's factors start (PEFT's <c>init_lora_weights</c>). All but <see cref="Random"/>
/// start with B·A = 0 or, for PiSSA, with the base weight rewritten so the layer output is unchanged.
/// </summary>
public enum LoraInit
{
    /// <summary>PEFT's default (<c>true</c>): A kaiming-uniform (a = √5), B = 0.</summary>
    Default,
    /// <summary><c>"gaussian"</c>: A ~ N(0, std 1/r), B = 0.</summary>
    Gaussian,
    /// <summary><c>"pissa"</c>: A, B from the top-r singular triplets of W0; W0 becomes the residual.</summary>
    Pissa,
    /// <summary><c>false</c>: A and B both random (B·A ≠ 0); for tests and debugging, as in PEFT.</summary>
    Random,
}
