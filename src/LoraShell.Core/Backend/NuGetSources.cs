using System.Xml.Linq;

namespace LoraShell.Core.Backend;

/// <summary>One package source: a v3 feed's service index URL, or a local folder; a company feed may carry credentials.</summary>
public sealed record NuGetSource(string Name, string Location, NuGetCredential? Credential = null)
{
    public bool IsLocal => !Location.StartsWith("http://", StringComparison.OrdinalIgnoreCase) && !Location.StartsWith("https://", StringComparison.OrdinalIgnoreCase);
}

/// <summary>A feed's user name and password (or token), from NuGet.Config's packageSourceCredentials.</summary>
public sealed record NuGetCredential(string UserName, string Password)
{
    public override string ToString() => $"{UserName} (password hidden)";
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
        return sources.Where(s => !disabled.Contains(s.Name)).Select(s => s with { Credential = CredentialFor(doc, s.Name, configPath) }).ToList();
    }

    /// <summary>
    /// packageSourceCredentials/&lt;name&gt;: Username with ClearTextPassword (a password or a token). The
    /// encrypted Password form is Windows DPAPI, readable only by NuGet on the machine that wrote it:
    /// refused by name rather than sent wrong.
    /// </summary>
    static NuGetCredential? CredentialFor(XDocument doc, string sourceName, string configPath)
    {
        // NuGet writes a source name that is not a valid XML name with its spaces encoded as _x0020_.
        var section = doc.Root?.Element("packageSourceCredentials")?.Elements()
            .FirstOrDefault(e => System.Xml.XmlConvert.DecodeName(e.Name.LocalName) == sourceName);
        if (section is null) return null;
        string? Value(string key) => (string?)section.Elements("add").FirstOrDefault(e => (string?)e.Attribute("key") == key)?.Attribute("value");
        string? user = Value("Username"), clear = Value("ClearTextPassword");
        if (user is not null && clear is not null) return new NuGetCredential(user, clear);
        if (Value("Password") is not null)
            throw LoraShellException.InvalidData("EncryptedNuGetPassword",
                $"'{configPath}' stores the password of source '{sourceName}' encrypted (Windows DPAPI), which only NuGet itself can read. Store it with dotnet nuget update source {sourceName} --store-password-in-clear-text, or use Install-LoraBackend -Path.", configPath);
        return null;
    }
}
