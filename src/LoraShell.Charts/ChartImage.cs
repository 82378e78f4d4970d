using LoraShell.Core;
using System.Diagnostics;
using Plotly.NET;

namespace LoraShell.Charts;

/// <summary>
/// Renders a chart to PNG with headless Chromium (Debian's <c>chromium</c> package, or the browser named by
/// LORASHELL_CHROMIUM): the offline HTML from <see cref="ChartHtml"/> is loaded from disk and screenshotted,
/// so no network and no extra .NET packages are involved.
/// </summary>
public static class ChartImage
{
    public static string? FindBrowser()
        => new[] { Environment.GetEnvironmentVariable("LORASHELL_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome" }
            .FirstOrDefault(p => !string.IsNullOrEmpty(p) && File.Exists(p));

    public static FileInfo SavePng(GenericChart chart, string path, int width = 960, int height = 540)
    {
        string browser = FindBrowser() ?? throw new LoraShellException(LoraErrorKind.ResourceUnavailable, "BrowserNotFound",
            "Rendering a chart to PNG needs headless Chromium: install Debian's 'chromium' package or set LORASHELL_CHROMIUM to a Chrome/Chromium binary. The offline HTML chart (ChartHtml.Save) needs no browser.");
        string full = Path.GetFullPath(path);
        string work = Path.Combine(Path.GetTempPath(), "lorashell-chart-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(work);
        try
        {
            // A still image has no use for the mode bar (zoom, pan, download buttons) that interactive HTML shows.
            var config = new Plotly.NET.Config();
            config.SetProperty("displayModeBar", false);
            var still = Plotly.NET.Chart.withConfig(config).Invoke(Plotly.NET.Chart.withSize((double)width, (double)height).Invoke(chart));
            string html = ChartHtml.Save(still, Path.Combine(work, "chart.html")).FullName;
            string png = Path.Combine(work, "chart.png");
            // Flags as for any headless Chromium on a closed network: no sandbox (root in CI), no GPU,
            // no background connections, a fresh profile.
            var start = new ProcessStartInfo(browser)
            {
                RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false,
                ArgumentList =
                {
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--hide-scrollbars", $"--user-data-dir={Path.Combine(work, "profile")}",
                    $"--window-size={width + 20},{height + 20}", "--virtual-time-budget=5000", $"--screenshot={png}", new Uri(html).AbsoluteUri,
                },
            };
            using var process = Process.Start(start)!;
            process.StandardOutput.ReadToEndAsync();
            string errors = process.StandardError.ReadToEndAsync().Result;
            if (!process.WaitForExit(120_000)) { process.Kill(true); throw new TimeoutException("Chromium did not finish the screenshot within 120 s."); }
            if (!File.Exists(png))
                throw new LoraShellException(LoraErrorKind.ResourceUnavailable, "ChartRenderFailed", $"Chromium ({browser}) wrote no screenshot (exit code {process.ExitCode}): {errors.Trim()}");
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            File.Move(png, full, overwrite: true);
            return new FileInfo(full);
        }
        finally { try { Directory.Delete(work, recursive: true); } catch (IOException) { } }
    }
}
