using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;

namespace LoraShell.PowerShell;

/// <summary>
/// Completes an adapter -Name with the adapters of the model given by -Model or piped in from a
/// variable, each with its rank, targets and state as the tooltip. Without a model in sight it offers
/// nothing rather than file names (PowerShell's fallback when a completer returns null).
/// </summary>
public sealed class AdapterNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var model = CompletionModel.Find(fakeBoundParameters, commandAst);
        if (model is null) return Array.Empty<CompletionResult>();
        var prefix = (wordToComplete ?? "").Trim('\'', '"');
        lock (model.Gate)
            return model.Loaded.Adapters.Names
                .Where(n => n.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
                .Select(n => (Name: n, Info: model.Loaded.Adapters.Info(n)))
                .Select(a => new CompletionResult(Quoted(a.Name), a.Name, CompletionResultType.ParameterValue, Tip(a.Info)))
                .ToList();
    }

    static string Tip(LoraShell.Core.Lora.AdapterInfo info) =>
        $"r {info.Rank}, alpha {info.Alpha}, {string.Join(", ", info.TargetModules)}{(info.Merged ? ", merged" : "")}{(info.Active ? ", active" : "")}";

    /// <summary>Names with spaces or other characters PowerShell would split on come back quoted.</summary>
    static string Quoted(string name) =>
        name.Any(c => char.IsWhiteSpace(c) || "'\"`$,;(){}|&@#<>".Contains(c)) ? $"'{name.Replace("'", "''")}'" : name;
}
