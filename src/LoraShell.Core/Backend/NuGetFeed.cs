using System.IO.Compression;
using System.Net.Http;
using System.Text.Json;
using System.Xml.Linq;

namespace LoraShell.Core.Backend;

/// <summary>A package download under way: which, from where, how big (null when the feed does not say), how far.</summary>
public sealed record PackageDownload(string PackageId, string Version, string Source, long? TotalBytes, long DoneBytes);

/// <summary>
/// Fetches .nupkg files from NuGet sources as the dotnet client does: a local folder (the hierarchical
/// id/version/id.version.nupkg layout of a global packages folder or a feed, or a flat folder) or a v3
/// feed, through its service index's PackageBaseAddress (flat container) resource. Sources are tried in
/// order; the first that has the package serves it.
/// </summary>
public sealed class NuGetFeed(IReadOnlyList<NuGetSource> sources, HttpClient? http = null)
{
    readonly HttpClient _http = http ?? new HttpClient { Timeout = TimeSpan.FromMinutes(30) };
    readonly Dictionary<string, string?> _flatContainers = new(StringComparer.Ordinal);

    public IReadOnlyList<NuGetSource> Sources => sources;

    /// <summary>Downloads (or copies) the package into <paramref name="folder"/> and returns the file's path.</summary>
    public string Fetch(string id, string version, string folder, Action<PackageDownload>? progress, CancellationToken cancel)
    {
        var failures = new List<string>();
        string fileName = $"{id.ToLowerInvariant()}.{version}.nupkg";
        foreach (var source in sources)
        {
            cancel.ThrowIfCancellationRequested();
            try
            {
                string target = Path.Combine(folder, fileName);
                if (source.IsLocal ? CopyFromFolder(source, id, version, target, progress, cancel) : Download(source, id, version, target, progress, cancel))
                    return target;
                failures.Add($"{source.Name} ({source.Location}): no {id} {version}");
            }
            catch (Exception e) when (e is HttpRequestException or IOException or JsonException or TaskCanceledException && !cancel.IsCancellationRequested)
            {
                failures.Add($"{source.Name} ({source.Location}): {e.Message.Split('\n')[0]}");
            }
        }
        throw new LoraShellException(LoraErrorKind.ResourceUnavailable, "BackendPackageNotFound",
            $"{id} {version} could not be fetched from the package sources of your NuGet configuration ({NuGetSources.UserConfigPath()}): {string.Join("; ", failures)}. " +
            "Add a source that serves it (dotnet nuget add source), run Install-LoraBackend where one is reachable, or give a local libtorch 2.10 with Install-LoraBackend -Path.", id);
    }

    static bool CopyFromFolder(NuGetSource source, string id, string version, string target, Action<PackageDownload>? progress, CancellationToken cancel)
    {
        string lower = id.ToLowerInvariant();
        var candidates = new[]
        {
            Path.Combine(source.Location, lower, version, $"{lower}.{version}.nupkg"),
            Path.Combine(source.Location, id, version, $"{id}.{version}.nupkg"),
            Path.Combine(source.Location, $"{id}.{version}.nupkg"),
            Path.Combine(source.Location, $"{lower}.{version}.nupkg"),
        };
        if (!Directory.Exists(source.Location)) throw new IOException($"folder '{source.Location}' does not exist");
        string? found = candidates.FirstOrDefault(File.Exists);
        if (found is null) return false;
        using var input = File.OpenRead(found);
        Copy(input, target, new PackageDownload(id, version, source.Location, input.Length, 0), progress, cancel);
        return true;
    }

    bool Download(NuGetSource source, string id, string version, string target, Action<PackageDownload>? progress, CancellationToken cancel)
    {
        string? flat = FlatContainer(source, cancel);
        if (flat is null) throw new IOException("its service index lists no PackageBaseAddress/3.0.0 resource");
        string lower = id.ToLowerInvariant();
        string url = $"{flat.TrimEnd('/')}/{lower}/{version.ToLowerInvariant()}/{lower}.{version.ToLowerInvariant()}.nupkg";
        using var response = _http.Send(Request(source, url), HttpCompletionOption.ResponseHeadersRead, cancel);
        if (response.StatusCode == System.Net.HttpStatusCode.NotFound) return false;
        Succeeded(response, source);
        using var input = response.Content.ReadAsStream(cancel);
        Copy(input, target, new PackageDownload(id, version, url, response.Content.Headers.ContentLength, 0), progress, cancel);
        return true;
    }

    /// <summary>The feed's flat-container base address, read once per source from its service index.</summary>
    string? FlatContainer(NuGetSource source, CancellationToken cancel)
    {
        if (_flatContainers.TryGetValue(source.Location, out var known)) return known;
        using var response = _http.Send(Request(source, source.Location), HttpCompletionOption.ResponseContentRead, cancel);
        Succeeded(response, source);
        using var doc = JsonDocument.Parse(response.Content.ReadAsStream(cancel));
        string? address = null;
        if (doc.RootElement.TryGetProperty("resources", out var resources))
            foreach (var r in resources.EnumerateArray())
                if (r.TryGetProperty("@type", out var type) && type.GetString() is string t && t.StartsWith("PackageBaseAddress/3.0.0", StringComparison.Ordinal)
                    && r.TryGetProperty("@id", out var at)) { address = at.GetString(); break; }
        return _flatContainers[source.Location] = address;
    }

    /// <summary>A GET with the source's credentials (basic authentication, as NuGet sends them).</summary>
    static HttpRequestMessage Request(NuGetSource source, string url)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (source.Credential is { } c)
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Basic",
                Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{c.UserName}:{c.Password}")));
        return request;
    }

    static void Succeeded(HttpResponseMessage response, NuGetSource source)
    {
        if (response.StatusCode is System.Net.HttpStatusCode.Unauthorized or System.Net.HttpStatusCode.Forbidden)
            throw new HttpRequestException(source.Credential is null
                ? $"the feed answered {(int)response.StatusCode} {response.ReasonPhrase}: it needs credentials (packageSourceCredentials in NuGet.Config, e.g. dotnet nuget update source {source.Name} -u USER -p TOKEN --store-password-in-clear-text)"
                : $"the feed refused the credentials of user {source.Credential.UserName} ({(int)response.StatusCode} {response.ReasonPhrase})");
        response.EnsureSuccessStatusCode();
    }

    static void Copy(Stream input, string target, PackageDownload state, Action<PackageDownload>? progress, CancellationToken cancel)
    {
        progress?.Invoke(state);
        var buffer = new byte[1 << 20];
        long done = 0, reported = 0;
        using (var output = File.Create(target))
        {
            int n;
            while ((n = input.Read(buffer, 0, buffer.Length)) > 0)
            {
                cancel.ThrowIfCancellationRequested();
                output.Write(buffer, 0, n);
                done += n;
                if (done - reported >= 8 << 20) { progress?.Invoke(state with { DoneBytes = done }); reported = done; }
            }
        }
        if (state.TotalBytes is long total && done != total)
            throw new IOException($"the download of {state.PackageId} stopped at {done:N0} of {total:N0} bytes");
        progress?.Invoke(state with { DoneBytes = done, TotalBytes = state.TotalBytes ?? done });
    }

    /// <summary>The libtorch packages a package depends on (its parts), from its .nuspec.</summary>
    public static IReadOnlyList<(string Id, string Version)> LibTorchDependencies(string nupkg)
    {
        using var zip = ZipFile.OpenRead(nupkg);
        var nuspec = zip.Entries.FirstOrDefault(e => !e.FullName.Contains('/') && e.FullName.EndsWith(".nuspec", StringComparison.OrdinalIgnoreCase))
            ?? throw LoraShellException.InvalidData("InvalidPackage", $"'{nupkg}' has no .nuspec; it is not a NuGet package.", nupkg);
        using var stream = nuspec.Open();
        var doc = XDocument.Load(stream);
        return doc.Descendants().Where(e => e.Name.LocalName == "dependency")
            .Select(e => ((string?)e.Attribute("id") ?? "", ((string?)e.Attribute("version") ?? "").Trim('[', ']', '(', ')').Split(',')[0].Trim()))
            .Where(d => d.Item1.StartsWith("libtorch-", StringComparison.OrdinalIgnoreCase) && d.Item2.Length > 0)
            .Distinct().ToList();
    }
}
