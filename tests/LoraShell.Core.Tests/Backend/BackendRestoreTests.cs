using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using LoraShell.Core.Backend;

namespace LoraShell.Core.Tests.Backend;

/// <summary>
/// Restoring libtorch the way Install-LoraBackend does, on synthetic packages laid out as TorchSharp's
/// (a head package whose .nuspec depends on its parts; a large library as a primary with a .sha and
/// fragment packages): NuGet.Config reading, local and v3 (HTTP) feeds, fragment joining and its check,
/// the per-user cache, and a local libtorch's version. The real package is restored by the Pester test
/// (tests/pester/Backend.Tests.ps1).
/// </summary>
[Collection(nameof(BackendCacheCollection))]
public class BackendRestoreTests
{
    static string Config(TempFolder dir, string body)
    {
        string path = dir.File("NuGet.Config");
        File.WriteAllText(path, $"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<configuration>\n{body}\n</configuration>");
        return path;
    }

    [Fact]
    public void SourcesAreReadAsNuGetReadsThem()
    {
        using var dir = new TempFolder();
        Assert.Equal(new[] { NuGetSources.Gallery }, NuGetSources.Read(dir.File("none.config")).Select(s => s.Location));
        Assert.Equal(new[] { NuGetSources.Gallery }, NuGetSources.Read(Config(dir, "<config />")).Select(s => s.Location));
        var sources = NuGetSources.Read(Config(dir, """
            <packageSources>
              <add key="old" value="https://old.example/v3/index.json" />
              <clear />
              <add key="company" value="https://pkgs.example/feed/v3/index.json" />
              <add key="local" value="feed" />
              <add key="off" value="https://off.example/v3/index.json" />
            </packageSources>
            <disabledPackageSources><add key="off" value="true" /></disabledPackageSources>
            <packageSourceCredentials>
              <company><add key="Username" value="ci" /><add key="ClearTextPassword" value="t0ken" /></company>
            </packageSourceCredentials>
            """));
        Assert.Equal(new[] { "company", "local" }, sources.Select(s => s.Name));
        Assert.Equal(new NuGetCredential("ci", "t0ken"), sources[0].Credential);
        Assert.Null(sources[1].Credential);
        var encrypted = Assert.Throws<LoraShellException>(() => NuGetSources.Read(Config(dir, """
            <packageSources><add key="my feed" value="https://pkgs.example/v3/index.json" /></packageSources>
            <packageSourceCredentials><my_x0020_feed><add key="Username" value="ci" /><add key="Password" value="AQAAANCMnd8B" /></my_x0020_feed></packageSourceCredentials>
            """)));
        Assert.Equal("EncryptedNuGetPassword", encrypted.ErrorId);
        Assert.Contains("'my feed'", encrypted.Message);
        Assert.Equal(Path.Combine(dir.Path, "feed"), sources[1].Location);
        Assert.True(sources[1].IsLocal && !sources[0].IsLocal);
        File.WriteAllText(dir.File("bad.config"), "<configuration><packageSources>");
        Assert.Equal("InvalidNuGetConfig", Assert.Throws<LoraShellException>(() => NuGetSources.Read(dir.File("bad.config"))).ErrorId);
    }

    [Theory]
    [InlineData(BackendKind.Cpu, "linux-x64", "libtorch-cpu-linux-x64", "2.10.0-cpu-linux-x64", "libtorch.so")]
    [InlineData(BackendKind.Cpu, "win-x64", "libtorch-cpu-win-x64", "2.10.0-cpu-win-x64", "torch.dll")]
    [InlineData(BackendKind.Cpu, "osx-arm64", "libtorch-cpu-osx-arm64", "2.10.0-cpu-osx-arm64", "libtorch.dylib")]
    [InlineData(BackendKind.Cuda, "linux-x64", "libtorch-cuda-12.8-linux-x64", "2.10.0-cuda-12.8-linux-x64", "libtorch.so")]
    [InlineData(BackendKind.Cuda, "win-x64", "libtorch-cuda-12.8-win-x64", "2.10.0-cuda-12.8-win-x64", "torch.dll")]
    public void EachBuildHasItsPackageCacheFolderAndMainLibrary(BackendKind kind, string rid, string package, string cacheKey, string main)
    {
        var flavor = new LibTorchFlavor(kind, rid);
        Assert.Equal((package, cacheKey, main), (flavor.PackageId, flavor.CacheKey, flavor.MainLibrary));
    }

    /// <summary>Writes a .nupkg with a nuspec depending on <paramref name="dependencies"/> and the given entries.</summary>
    static void Package(string folder, string id, IEnumerable<string> dependencies, params (string Path, byte[] Bytes)[] entries)
    {
        string target = Path.Combine(folder, id, "2.10.0");
        Directory.CreateDirectory(target);
        using var zip = ZipFile.Open(Path.Combine(target, $"{id}.2.10.0.nupkg"), ZipArchiveMode.Create);
        var deps = string.Concat(dependencies.Select(d => $"<dependency id=\"{d}\" version=\"[2.10.0]\" />"));
        using (var w = new StreamWriter(zip.CreateEntry($"{id}.nuspec").Open()))
            w.Write($"<?xml version=\"1.0\"?><package xmlns=\"http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd\"><metadata><id>{id}</id><version>2.10.0</version><dependencies><group targetFramework=\".NETStandard2.0\">{deps}</group></dependencies></metadata></package>");
        foreach (var (path, bytes) in entries)
            using (var s = zip.CreateEntry(path).Open()) s.Write(bytes);
    }

    static byte[] Bytes(int n, int seed) { var b = new byte[n]; new Random(seed).NextBytes(b); return b; }

    /// <summary>A CUDA-like build for linux-x64: libtorch.so whole, libbig.so in a primary and two fragments.</summary>
    static byte[] WriteFragmentedBuild(string feed, bool corrupt = false)
    {
        var big = Bytes(300_000, 1);
        string sha = Convert.ToHexString(SHA256.HashData(big)).ToLowerInvariant();
        const string head = "libtorch-cuda-12.8-linux-x64";
        Package(feed, head, new[] { $"{head}-part1", $"{head}-part2-primary", $"{head}-part2-fragment1", $"{head}-part2-fragment2", "TorchSharp" });
        Package(feed, $"{head}-part1", Array.Empty<string>(), ("runtimes/linux-x64/native/libtorch.so", Bytes(1000, 2)), ("runtimes/linux-x64/native/libtorch_python.so", Bytes(10, 3)));
        Package(feed, $"{head}-part2-primary", Array.Empty<string>(), ("runtimes/linux-x64/native/libbig.so", big[..100_000]), ("runtimes/linux-x64/native/libbig.so.sha", Encoding.ASCII.GetBytes(sha)));
        Package(feed, $"{head}-part2-fragment1", Array.Empty<string>(), ("fragments/linux-x64/native/libbig.so.fragment1", big[100_000..200_000]));
        var last = big[200_000..];
        if (corrupt) last[17] ^= 0xff;
        Package(feed, $"{head}-part2-fragment2", Array.Empty<string>(), ("fragments/linux-x64/native/libbig.so.fragment2", last));
        return big;
    }

    [Fact]
    public void FragmentsAreJoinedCheckedAndCachedFromAFolderFeed()
    {
        using var dir = new TempFolder();
        using var cache = new CacheHome(dir.File("cache"));
        var big = WriteFragmentedBuild(dir.File("feed"));
        var flavor = new LibTorchFlavor(BackendKind.Cuda, "linux-x64");
        var feed = new NuGetFeed(new[] { new NuGetSource("missing", dir.File("nowhere")), new NuGetSource("feed", dir.File("feed")) });
        var downloads = new List<PackageDownload>();
        string folder = LibTorchCache.Install(flavor, feed, downloads.Add, null, default);

        Assert.Equal(Path.Combine(dir.File("cache"), "LoraShell", "libtorch", "2.10.0-cuda-12.8-linux-x64"), folder);
        Assert.Equal(big, File.ReadAllBytes(Path.Combine(folder, "libbig.so")));
        Assert.Equal(new[] { "libbig.so", "libtorch.so", LibTorchCache.ManifestFile }, Directory.GetFiles(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(5, downloads.Select(d => d.PackageId).Distinct().Count()); // the head and its four parts; TorchSharp is not a libtorch part
        var manifest = LibTorchCache.ReadManifest(folder)!;
        Assert.Null(LibTorchCache.Damage(folder, manifest));
        File.WriteAllBytes(Path.Combine(folder, "libbig.so"), big[..5000]);
        Assert.Equal("libbig.so is 5,000 bytes, 300,000 were installed", LibTorchCache.Damage(folder, manifest));
        Assert.DoesNotContain(Directory.GetDirectories(Path.GetDirectoryName(folder)!), d => d != folder); // no download or old folder left beside it
    }

    [Fact]
    public void AFragmentThatDoesNotMatchItsShaIsRefusedAndNothingIsCached()
    {
        using var dir = new TempFolder();
        using var cache = new CacheHome(dir.File("cache"));
        WriteFragmentedBuild(dir.File("feed"), corrupt: true);
        var flavor = new LibTorchFlavor(BackendKind.Cuda, "linux-x64");
        var e = Assert.Throws<LoraShellException>(() => LibTorchCache.Install(flavor, new NuGetFeed(new[] { new NuGetSource("feed", dir.File("feed")) }), null, null, default));
        Assert.Equal("BackendFragmentMismatch", e.ErrorId);
        Assert.Contains("libbig.so joined from 3 pieces", e.Message);
        Assert.False(Directory.Exists(LibTorchCache.FolderFor(flavor)));
        Assert.Empty(Directory.GetFileSystemEntries(LibTorchCache.Root()));
    }

    [Fact]
    public async Task AV3FeedIsReadThroughItsServiceIndexAndMissingPackagesNameEverySource()
    {
        using var dir = new TempFolder();
        using var cache = new CacheHome(dir.File("cache"));
        WriteFragmentedBuild(dir.File("feed"));
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0)) { probe.Start(); port = ((IPEndPoint)probe.LocalEndpoint).Port; }
        string root = $"http://127.0.0.1:{port}/";
        using var server = new HttpListener();
        server.Prefixes.Add(root);
        server.Start();
        var served = new List<string>();
        var serving = Task.Run(() =>
        {
            while (server.IsListening)
            {
                HttpListenerContext context;
                try { context = server.GetContext(); } catch (HttpListenerException) { return; } catch (ObjectDisposedException) { return; }
                string path = context.Request.Url!.AbsolutePath;
                lock (served) served.Add(path);
                // /private/… is the same feed behind basic authentication, as a company feed is.
                if (path.StartsWith("/private/", StringComparison.Ordinal))
                {
                    if (context.Request.Headers["Authorization"] != "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("ci:t0ken")))
                    {
                        context.Response.StatusCode = 401;
                        context.Response.Close();
                        continue;
                    }
                    path = path["/private".Length..];
                }
                string prefix = context.Request.Url!.AbsolutePath.StartsWith("/private/", StringComparison.Ordinal) ? $"{root}private/" : root;
                byte[]? body = null;
                if (path == "/v3/index.json")
                    body = Encoding.UTF8.GetBytes($"{{\"version\":\"3.0.0\",\"resources\":[{{\"@id\":\"{prefix}search\",\"@type\":\"SearchQueryService\"}},{{\"@id\":\"{prefix}flat/\",\"@type\":\"PackageBaseAddress/3.0.0\"}}]}}");
                else if (path.StartsWith("/flat/", StringComparison.Ordinal))
                {
                    var parts = path["/flat/".Length..].Split('/'); // id/version/id.version.nupkg, lower case
                    string file = Directory.EnumerateFiles(dir.File("feed"), "*.nupkg", SearchOption.AllDirectories)
                        .FirstOrDefault(f => Path.GetFileName(f).Equals(parts[^1], StringComparison.OrdinalIgnoreCase)) ?? "";
                    if (file.Length > 0) body = File.ReadAllBytes(file);
                }
                context.Response.StatusCode = body is null ? 404 : 200;
                if (body is not null) { context.Response.ContentLength64 = body.Length; context.Response.OutputStream.Write(body); }
                context.Response.Close();
            }
        });
        try
        {
            var flavor = new LibTorchFlavor(BackendKind.Cuda, "linux-x64");
            var downloads = new List<PackageDownload>();
            var feed = new NuGetFeed(new[] { new NuGetSource("web", $"{root}v3/index.json") });
            string folder = LibTorchCache.Install(flavor, feed, downloads.Add, null, default);
            Assert.True(File.Exists(Path.Combine(folder, "libbig.so")));
            Assert.Contains("/flat/libtorch-cuda-12.8-linux-x64/2.10.0/libtorch-cuda-12.8-linux-x64.2.10.0.nupkg", served);
            Assert.Equal(1, served.Count(p => p == "/v3/index.json")); // the service index is read once per source
            Assert.All(downloads.Where(d => d.DoneBytes > 0), d => Assert.Equal(d.TotalBytes, d.DoneBytes));

            var missing = Assert.Throws<LoraShellException>(() => new NuGetFeed(new[] { new NuGetSource("web", $"{root}v3/index.json"), new NuGetSource("folder", dir.File("empty")) })
                .Fetch("libtorch-cpu-win-x64", "2.10.0", dir.Path, null, default));
            Assert.Equal("BackendPackageNotFound", missing.ErrorId);
            Assert.Contains($"web ({root}v3/index.json): no libtorch-cpu-win-x64 2.10.0", missing.Message);
            Assert.Contains($"folder ({dir.File("empty")}): folder '{dir.File("empty")}' does not exist", missing.Message);
            Assert.Contains("Install-LoraBackend -Path", missing.Message);

            // A feed behind authentication: the configured credentials are sent; without them the error says what is missing.
            string fetched = new NuGetFeed(new[] { new NuGetSource("company", $"{root}private/v3/index.json", new NuGetCredential("ci", "t0ken")) })
                .Fetch("libtorch-cuda-12.8-linux-x64-part1", "2.10.0", dir.Path, null, default);
            Assert.True(new FileInfo(fetched).Length > 0);
            var refused = Assert.Throws<LoraShellException>(() => new NuGetFeed(new[] { new NuGetSource("company", $"{root}private/v3/index.json") })
                .Fetch("libtorch-cuda-12.8-linux-x64-part1", "2.10.0", dir.File("x"), null, default));
            Assert.Contains("401", refused.Message);
            Assert.Contains("packageSourceCredentials", refused.Message);
        }
        finally { server.Stop(); await serving.WaitAsync(TimeSpan.FromSeconds(5)); }
    }

    [Fact]
    public void ALocalLibTorchIsFoundWhereverItsLibrariesAreAndOnlyVersion2100Passes()
    {
        using var dir = new TempFolder();
        var flavor = new LibTorchFlavor(BackendKind.Cpu, "linux-x64");
        // pytorch.org's zip layout: libtorch/lib and libtorch/build-version.
        Directory.CreateDirectory(dir.File("zip/libtorch/lib"));
        File.WriteAllBytes(dir.File("zip/libtorch/lib/libtorch.so"), new byte[10]);
        File.WriteAllText(dir.File("zip/libtorch/build-version"), "2.10.0+cpu\n");
        var info = LocalLibTorch.Inspect(dir.File("zip"), flavor);
        Assert.Equal((dir.File("zip/libtorch/lib"), "2.10.0+cpu", BackendKind.Cpu), (info.LibFolder, info.Version, info.Kind));
        // A PyTorch installation: torch/lib beside torch/version.py.
        Directory.CreateDirectory(dir.File("site/torch/lib"));
        File.WriteAllBytes(dir.File("site/torch/lib/libtorch.so"), new byte[10]);
        File.WriteAllText(dir.File("site/torch/version.py"), "from typing import Optional\n__all__ = ['__version__']\n__version__ = '2.10.0+cu128'\ncuda: Optional[str] = '12.8'\n");
        Assert.Equal(("2.10.0+cu128", BackendKind.Cuda), (LocalLibTorch.Inspect(dir.File("site/torch/lib"), flavor).Version, LocalLibTorch.Inspect(dir.File("site"), flavor).Kind));
        foreach (var other in new[] { "2.9.1+cpu", "2.10.01", "2.1.0" })
        {
            File.WriteAllText(dir.File("zip/libtorch/build-version"), other);
            var e = Assert.Throws<LoraShellException>(() => LocalLibTorch.Inspect(dir.File("zip"), flavor));
            Assert.Equal("LibTorchVersionMismatch", e.ErrorId);
            Assert.Contains($"version {other}", e.Message);
        }
        // A zip from pytorch.org is unpacked into the cache (checked before it is kept) and used from there.
        File.WriteAllText(dir.File("zip/libtorch/build-version"), "2.10.0+cpu");
        using (var cache = new CacheHome(dir.File("cache")))
        {
            ZipFile.CreateFromDirectory(dir.File("zip"), dir.File("libtorch-shared-with-deps-2.10.0+cpu.zip"));
            var unpacked = LocalLibTorch.UnpackZip(dir.File("libtorch-shared-with-deps-2.10.0+cpu.zip"), flavor);
            Assert.Equal((Path.Combine(LibTorchCache.Root(), "local-libtorch-shared-with-deps-2.10.0+cpu", "libtorch", "lib"), "2.10.0+cpu"), (unpacked.LibFolder, unpacked.Version));
            File.WriteAllText(dir.File("zip/libtorch/build-version"), "2.8.0+cpu");
            ZipFile.CreateFromDirectory(dir.File("zip"), dir.File("libtorch-2.8.zip"));
            Assert.Equal("LibTorchVersionMismatch", Assert.Throws<LoraShellException>(() => LocalLibTorch.UnpackZip(dir.File("libtorch-2.8.zip"), flavor)).ErrorId);
            Assert.DoesNotContain(Directory.GetDirectories(LibTorchCache.Root()), d => Path.GetFileName(d).Contains("2.8")); // nothing of the refused zip stays
            File.WriteAllText(dir.File("not-a.zip"), "text");
            Assert.Equal("LibTorchZipInvalid", Assert.Throws<LoraShellException>(() => LocalLibTorch.UnpackZip(dir.File("not-a.zip"), flavor)).ErrorId);
        }
        File.Delete(dir.File("zip/libtorch/build-version"));
        Assert.Equal("LibTorchVersionUnknown", Assert.Throws<LoraShellException>(() => LocalLibTorch.Inspect(dir.File("zip"), flavor)).ErrorId);
        Assert.Equal("LibTorchNotInPath", Assert.Throws<LoraShellException>(() => LocalLibTorch.Inspect(dir.Path, flavor)).ErrorId);
        Assert.Equal("LibTorchPathNotFound", Assert.Throws<LoraShellException>(() => LocalLibTorch.Inspect(dir.File("nothing"), flavor)).ErrorId);
    }
}

/// <summary>Points the per-user cache (XDG_CACHE_HOME) at a test folder for the test's duration.</summary>
sealed class CacheHome : IDisposable
{
    readonly string? _saved = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
    public CacheHome(string folder) { Directory.CreateDirectory(folder); Environment.SetEnvironmentVariable("XDG_CACHE_HOME", folder); }
    public void Dispose() => Environment.SetEnvironmentVariable("XDG_CACHE_HOME", _saved);
}

/// <summary>Tests that move the process's cache folder run one at a time.</summary>
[CollectionDefinition(nameof(BackendCacheCollection), DisableParallelization = true)]
public sealed class BackendCacheCollection;
