using LoraShell.Core.IO;

namespace LoraShell.Core.Jobs;

/// <summary>What an exported job folder holds.</summary>
public sealed record TrainingJobResult(DirectoryInfo Folder, IReadOnlyList<string> Files, JobDataSummary Data, string ModelNameOrPath, bool CarriesModel)
{
    public string LaunchCommand => $"accelerate launch --config_file {AccelerateConfig.FileName} {TrainingJobScript.FileName}";
}

/// <summary>
/// Writes a runnable job folder (train.py, accelerate_config.yaml, requirements.txt, README.md, data/,
/// the chat template and, when asked, the model itself) all at once: it is filled beside the target and
/// renamed into place, so a failure (a bad data line halfway) leaves nothing behind.
/// </summary>
public static class TrainingJobWriter
{
    public const string ModelFolder = "model";

    /// <param name="writeModel">writes the model as a Hugging Face folder into the path it is given; the job then loads it from model/</param>
    public static TrainingJobResult Write(TrainingJobOptions o, string folder, bool overwrite, Action<string>? writeModel = null)
    {
        o.Validate();
        string modelNameOrPath = writeModel is null ? o.ModelNameOrPath : ModelFolder;
        JobDataSummary? data = null;
        var dir = AtomicFile.WriteDirectory(folder, overwrite, temp =>
        {
            data = TrainingJobData.Write(o.Training, o.ChatTemplate is not null, Path.Combine(temp, TrainingJobScript.DataFolder));
            bool hasValidation = data.ValidationDocuments > 0;
            File.WriteAllText(Path.Combine(temp, TrainingJobScript.FileName), TrainingJobScript.Render(o, data.Kind, hasValidation, modelNameOrPath));
            File.WriteAllText(Path.Combine(temp, AccelerateConfig.FileName), AccelerateConfig.Render(o));
            File.WriteAllText(Path.Combine(temp, TrainingJobRequirements.FileName), TrainingJobRequirements.Render(o));
            File.WriteAllText(Path.Combine(temp, TrainingJobReadme.FileName), TrainingJobReadme.Render(o, data, modelNameOrPath, writeModel is not null));
            if (o.ChatTemplate is not null) File.WriteAllText(Path.Combine(temp, TrainingJobScript.ChatTemplateFile), o.ChatTemplate);
            if (writeModel is not null)
            {
                string model = Path.Combine(temp, ModelFolder);
                Directory.CreateDirectory(model);
                writeModel(model);
            }
        });
        var files = Directory.EnumerateFiles(dir.FullName, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(dir.FullName, f).Replace('\\', '/')).OrderBy(f => f, StringComparer.Ordinal).ToList();
        return new TrainingJobResult(dir, files, data!, modelNameOrPath, writeModel is not null);
    }
}
