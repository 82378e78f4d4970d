// MSBuild inline task (RoslynCodeTaskFactory; compiled against netstandard, so only BitConverter and
// friends). Marks one ELF version need (Vernaux) as weak in a copy of a shared library.
// See Directory.Build.targets for why.
using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class LoraShellWeakenGlibcxxNeed : Task
{
    [Required] public string LibraryPath { get; set; }
    [Required] public string VersionName { get; set; }

    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 2;

    static readonly string[] SystemLibstdcxx =
    {
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
        "/usr/lib64/libstdc++.so.6",
        "/usr/lib/libstdc++.so.6",
        "/lib/x86_64-linux-gnu/libstdc++.so.6",
    };

    public override bool Execute()
    {
        if (SystemProvides(VersionName))
        {
            Log.LogMessage(MessageImportance.Low, "System libstdc++ provides " + VersionName + "; no patch needed.");
            return true;
        }

        byte[] image = File.ReadAllBytes(LibraryPath);
        long flagsOffset;
        string problem = FindVernauxFlags(image, VersionName, out flagsOffset);
        if (problem != null)
        {
            // Not an error: a future TorchSharp may not need this version at all.
            Log.LogMessage(MessageImportance.Low, LibraryPath + ": " + problem + "; left as it is.");
            return true;
        }

        ushort flags = BitConverter.ToUInt16(image, (int)flagsOffset);
        if ((flags & VerFlgWeak) != 0)
        {
            Log.LogMessage(MessageImportance.Low, LibraryPath + ": " + VersionName + " already weak.");
            return true;
        }

        byte[] patched = BitConverter.GetBytes((ushort)(flags | VerFlgWeak));
        image[flagsOffset] = patched[0];
        image[flagsOffset + 1] = patched[1];

        // New file + rename: never write through a hard link into the NuGet cache.
        string temp = LibraryPath + ".lorashell-tmp";
        File.WriteAllBytes(temp, image);
        File.Delete(LibraryPath);
        File.Move(temp, LibraryPath);
        Log.LogMessage(MessageImportance.High, "LoraShell: marked " + VersionName + " weak in " + LibraryPath);
        return true;
    }

    static bool SystemProvides(string versionName)
    {
        byte[] needle = Encoding.ASCII.GetBytes(versionName + "\0");
        foreach (string candidate in SystemLibstdcxx)
        {
            if (!File.Exists(candidate)) continue;
            byte[] lib = File.ReadAllBytes(candidate);
            return IndexOf(lib, needle) >= 0;
        }
        return false;
    }

    static int IndexOf(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= haystack.Length; i++)
        {
            int j = 0;
            while (j < needle.Length && haystack[i + j] == needle[j]) j++;
            if (j == needle.Length) return i;
        }
        return -1;
    }

    // Returns null and the file offset of vna_flags on success, else a reason.
    static string FindVernauxFlags(byte[] elf, string versionName, out long flagsOffset)
    {
        flagsOffset = -1;
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            return "not an ELF file";
        if (elf[4] != 2 || elf[5] != 1) return "not a little-endian ELF64 file";

        long shoff = BitConverter.ToInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);
        if (shoff <= 0 || shoff + (long)shentsize * shnum > elf.Length) return "section headers out of range";

        for (int s = 0; s < shnum; s++)
        {
            long sh = shoff + (long)s * shentsize;
            uint type = BitConverter.ToUInt32(elf, (int)sh + 4);
            if (type != ShtGnuVerneed) continue;

            long offset = BitConverter.ToInt64(elf, (int)sh + 0x18);
            uint link = BitConverter.ToUInt32(elf, (int)sh + 0x28);
            uint count = BitConverter.ToUInt32(elf, (int)sh + 0x2C);
            long strtab = BitConverter.ToInt64(elf, (int)(shoff + (long)link * shentsize) + 0x18);

            long vn = offset;
            for (uint n = 0; n < count; n++)
            {
                int auxCount = BitConverter.ToUInt16(elf, (int)vn + 2);
                long aux = vn + BitConverter.ToUInt32(elf, (int)vn + 8);
                for (int a = 0; a < auxCount; a++)
                {
                    uint nameOffset = BitConverter.ToUInt32(elf, (int)aux + 8);
                    if (ReadCString(elf, strtab + nameOffset) == versionName)
                    {
                        flagsOffset = aux + 4;
                        return null;
                    }
                    aux += BitConverter.ToUInt32(elf, (int)aux + 12);
                }
                vn += BitConverter.ToUInt32(elf, (int)vn + 12);
            }
            return "no version need named " + versionName;
        }
        return "no .gnu.version_r section";
    }

    static string ReadCString(byte[] data, long start)
    {
        long end = start;
        while (end < data.Length && data[end] != 0) end++;
        return Encoding.ASCII.GetString(data, (int)start, (int)(end - start));
    }
}
