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

/// <summary>One help example: the code a user types and what it does. Tests run these pipelines.</summary>
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
}
