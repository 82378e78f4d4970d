using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using System.Management.Automation.Runspaces;

namespace LoraShell.PowerShell;

/// <summary>
/// The model a completer should look at: the value of -Model when it is already bound, or the
/// variable piped into the command ($m | Set-LoraAdapter -Name …).
/// </summary>
static class CompletionModel
{
    public static LoraModel? Find(IDictionary fakeBoundParameters, CommandAst commandAst)
    {
        var model = From(fakeBoundParameters["Model"]) ?? Piped(commandAst);
        return model is { Removed: false } ? model : null;
    }

    static LoraModel? From(object? value) => value switch
    {
        LoraModel m => m,
        PSObject { BaseObject: LoraModel m } => m,
        _ => null,
    };

    /// <summary>For `$m | Add-LoraAdapter …`, the value of $m.</summary>
    static LoraModel? Piped(CommandAst commandAst)
    {
        if (commandAst.Parent is not PipelineAst pipeline) return null;
        int index = pipeline.PipelineElements.IndexOf(commandAst);
        if (index <= 0 || pipeline.PipelineElements[index - 1] is not CommandExpressionAst { Expression: VariableExpressionAst variable }) return null;
        // Completion runs on the pipeline thread, so a nested pipeline in the current runspace may read it.
        try
        {
            using var ps = System.Management.Automation.PowerShell.Create(RunspaceMode.CurrentRunspace);
            var values = ps.AddCommand("Get-Variable").AddParameter("Name", variable.VariablePath.UserPath).AddParameter("ValueOnly").Invoke();
            return values.Count == 1 ? From(values[0]) : null;
        }
        catch (Exception e) when (e is PSInvalidOperationException or RuntimeException) { return null; }
    }
}
