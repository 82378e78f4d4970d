using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;

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
        var model = CompletionModel.Find(fakeBoundParameters, commandAst);
        var names = model is null
            ? LlamaNames.Select(n => (Text: n, Tip: n))
            : model.Loaded.Network.LinearSlots()
                .GroupBy(s => s.Name)
                .Select(g => (Text: g.Key, Tip: $"{g.Key}: {g.Count()} modules, e.g. {g.First().Path}"));
        return names.Append((Text: "all-linear", Tip: "every Linear module except the output head"))
            .Where(n => n.Text.StartsWith(wordToComplete ?? "", StringComparison.OrdinalIgnoreCase))
            .Select(n => new CompletionResult(n.Text, n.Text, CompletionResultType.ParameterValue, n.Tip));
    }
}
