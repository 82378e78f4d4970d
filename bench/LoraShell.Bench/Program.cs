using LoraShell.Bench;
using static TorchSharp.torch;

// Usage: LoraShell.Bench <scenario> [--quick] [--threads N]   |   LoraShell.Bench --list
if (args.Length == 0 || args[0] == "--list")
{
    foreach (var name in Scenarios.All.Keys) Console.WriteLine(name);
    return args.Length == 0 ? 2 : 0;
}
string scenario = args[0];
bool quick = args.Contains("--quick");
int threadsAt = Array.IndexOf(args, "--threads");
if (threadsAt >= 0) set_num_threads(int.Parse(args[threadsAt + 1]));
if (!Scenarios.All.TryGetValue(scenario, out var run))
{
    Console.Error.WriteLine($"Unknown scenario '{scenario}'. Known: {string.Join(", ", Scenarios.All.Keys)}");
    return 2;
}
var result = run(quick);
result.Settings["threads"] = get_num_threads().ToString();
Console.WriteLine(result.ToJson());
return 0;
