using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using LoraShell.Core.Models;

namespace LoraShell.PowerShell;

/// <summary>Completes -Device with cpu and the CUDA devices this process can see.</summary>
public sealed class DeviceCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
        => DeviceSpec.AvailableDevices()
            .Where(d => d.StartsWith(wordToComplete ?? "", StringComparison.OrdinalIgnoreCase))
            .Select(d => new CompletionResult(d, d, CompletionResultType.ParameterValue, d));
}
