namespace LoraShell.Core.Templates;

/// <summary>Python slice.indices(): which positions a slice selects, including negative steps.</summary>
internal static class PySlice
{
    public static IEnumerable<int> Indices(int length, long? start, long? stop, long? step)
    {
        long st = step ?? 1;
        if (st == 0)
        {
            throw JinjaError.Value("slice step cannot be zero");
        }

        long lower = st < 0 ? -1 : 0;
        long upper = st < 0 ? length - 1 : length;
        long Clamp(long? v, long dflt)
        {
            if (v is null)
            {
                return dflt;
            }

            long x = v.Value;
            if (x < 0)
            {
                x += length;
                return x < lower ? lower : x;
            }

            return x > upper ? upper : x;
        }

        long a = Clamp(start, st < 0 ? upper : lower);
        long b = Clamp(stop, st < 0 ? lower : upper);
        var result = new List<int>();
        if (st > 0)
        {
            for (long i = a; i < b; i += st)
            {
                result.Add((int)i);
            }
        }
        else
        {
            for (long i = a; i > b; i += st)
            {
                result.Add((int)i);
            }
        }

        return result;
    }
}
