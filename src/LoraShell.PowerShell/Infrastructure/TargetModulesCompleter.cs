using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using System.Management.Automation.Runspaces;

namespace LoraShell.PowerShell;

/// <summary>
/// Completes -TargetModules with the Linear module names of the model given by -Model or piped in
/// from a variable ($m | Add-LoraAdapter -TargetModules …), plus all-linear; with no model in sight,
/// the Llama names.
/// </summary>
public sealed class TargetModulesCompleter : IArgumentCompleter
{
    static readonly string[] LlamaNames = { "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj" };

    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var model = ModelFrom(fakeBoundParameters["Model"]) ?? PipedModel(commandAst);
        var names = model is null
            ? LlamaNames.Select(n => (Text: n, Tip: n))
            : model.Loaded.Model.LinearSlots()
                .GroupBy(s => s.Name)
                .Select(g => (Text: g.Key, Tip: $"{g.Key}: {g.Count()} modules, e.g. {g.First().Path}"));
        return names.Append((Text: "all-linear", Tip: "every Linear module except the output head"))
            .Where(n => n.Text.StartsWith(wordToComplete ?? "", StringComparison.OrdinalIgnoreCase))
            .Select(n => new CompletionResult(n.Text, n.Text, CompletionResultType.ParameterValue, n.Tip));
    }

    static LoraModel? ModelFrom(object? value) => value switch
    {
        LoraModel m => m,
        PSObject { BaseObject: LoraModel m } => m,
        _ => null,
    };

    /// <summary>For `$m | Add-LoraAdapter …`, the value of $m.</summary>
    static LoraModel? PipedModel(CommandAst commandAst)
    {
        if (commandAst.Parent is not PipelineAst pipeline) return null;
        int index = pipeline.PipelineElements.IndexOf(commandAst);
        if (index <= 0 || pipeline.PipelineElements[index - 1] is not CommandExpressionAst { Expression: VariableExpressionAst variable }) return null;
        // Completion runs on the pipeline thread, so a nested pipeline in the current runspace may read it.
        try
        {
            using var ps = System.Management.Automation.PowerShell.Create(RunspaceMode.CurrentRunspace);
            var values = ps.AddCommand("Get-Variable").AddParameter("Name", variable.VariablePath.UserPath).AddParameter("ValueOnly").Invoke();
            return values.Count == 1 ? ModelFrom(values[0]) : null;
        }
        catch (Exception e) when (e is PSInvalidOperationException or RuntimeException) { return null; }
    }
}
