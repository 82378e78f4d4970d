namespace LoraShell.PowerShell;

/// <summary>
/// Help kept next to the code: the MAML file in module/LoraShell/en-US is generated from these
/// attributes and from each parameter's HelpMessage (module/build-help.ps1), never edited by hand.
/// </summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class CmdletHelpAttribute : Attribute
{
    public CmdletHelpAttribute(string synopsis, string description)
    {
        Synopsis = synopsis;
        Description = description;
    }
    public string Synopsis { get; }
    public string Description { get; }
}

/// <summary>
/// One help example: the code a user types (several lines where a pipeline is long), what it does and,
/// where it is deterministic, the output it prints. Tests run every example and compare the output.
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true)]
public sealed class CmdletExampleAttribute : Attribute
{
    public CmdletExampleAttribute(string code, string remarks)
    {
        Code = code;
        Remarks = remarks;
    }
    public string Code { get; }
    public string Remarks { get; }
    /// <summary>
    /// What the example prints at 80 columns, as Get-Help shows it after the remarks. Tests compare it
    /// with a fresh run: text exactly, numbers to within 1% (float results differ in the last digits
    /// between CPUs), so only deterministic examples carry one.
    /// </summary>
    public string? Output { get; set; }
}
