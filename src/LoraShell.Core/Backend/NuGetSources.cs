using System.Xml.Linq;

namespace LoraShell.Core.Backend;

/// <summary>One package source: a v3 feed's service index URL, or a local folder.</summary>
public sealed record NuGetSource(string Name, string Location)
{
    public bool IsLocal => !Location.StartsWith("http://", StringComparison.OrdinalIgnoreCase) && !Location.StartsWith("https://", StringComparison.OrdinalIgnoreCase);
}

/// <summary>
/// The package sources of the user's NuGet configuration, as dotnet reads them: the user-wide
/// NuGet.Config (~/.nuget/NuGet/NuGet.Config; %APPDATA%\NuGet\NuGet.Config on Windows), its
/// &lt;packageSources&gt; with &lt;clear/&gt; and &lt;add&gt;, less &lt;disabledPackageSources&gt;; without a
/// file, the public NuGet gallery. A user behind a company feed is served by it.
/// </summary>
public static class NuGetSources
{
    public const string Gallery = "https://api.nuget.org/v3/index.json";

    public static string UserConfigPath()
    {
        string root = OperatingSystem.IsWindows()
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.ApplicationData), "NuGet")
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "NuGet");
        return Path.Combine(root, "NuGet.Config");
    }

    public static IReadOnlyList<NuGetSource> FromUserConfig() => Read(UserConfigPath());

    /// <summary>The enabled sources of a NuGet.Config (the gallery when the file does not exist).</summary>
    public static IReadOnlyList<NuGetSource> Read(string configPath)
    {
        if (!File.Exists(configPath)) return new[] { new NuGetSource("nuget.org", Gallery) };
        XDocument doc;
        try { doc = XDocument.Load(configPath); }
        catch (System.Xml.XmlException e)
        {
            throw LoraShellException.InvalidData("InvalidNuGetConfig", $"'{configPath}' is not a valid NuGet.Config: {e.Message}", configPath);
        }
        var sources = new List<NuGetSource>();
        var sourcesElement = doc.Root?.Element("packageSources");
        foreach (var e in sourcesElement?.Elements() ?? Enumerable.Empty<XElement>())
        {
            if (e.Name.LocalName == "clear") { sources.Clear(); continue; }
            if (e.Name.LocalName != "add") continue;
            string? key = (string?)e.Attribute("key"), value = (string?)e.Attribute("value");
            if (key is null || value is null) continue;
            // A relative folder is relative to the config file, as NuGet reads it.
            string location = new NuGetSource(key, value).IsLocal ? Path.GetFullPath(value, Path.GetDirectoryName(configPath)!) : value;
            sources.RemoveAll(s => s.Name == key);
            sources.Add(new NuGetSource(key, location));
        }
        var disabled = doc.Root?.Element("disabledPackageSources")?.Elements("add")
            .Where(e => string.Equals((string?)e.Attribute("value"), "true", StringComparison.OrdinalIgnoreCase))
            .Select(e => (string?)e.Attribute("key")).ToHashSet() ?? new HashSet<string?>();
        // A config without a packageSources section still gets the gallery (NuGet's default source).
        if (sourcesElement is null) sources.Add(new NuGetSource("nuget.org", Gallery));
        return sources.Where(s => !disabled.Contains(s.Name)).ToList();
    }
}
