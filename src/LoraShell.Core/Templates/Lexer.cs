using System.Globalization;
using System.Text;

namespace LoraShell.Core.Templates;

internal enum TokenKind
{
    Data,
    VariableBegin,
    VariableEnd,
    BlockBegin,
    BlockEnd,
    Name,
    String,
    Integer,
    Float,
    Operator,
    Eof,
}

internal readonly record struct Token(TokenKind Kind, string Text, object? Value, int Line, int Column)
{
    public bool IsOperator(string op) => Kind == TokenKind.Operator && Text == op;
    public bool IsName(string name) => Kind == TokenKind.Name && Text == name;

    public string Describe() => Kind switch
    {
        TokenKind.Eof => "end of template",
        TokenKind.Data => "template text",
        TokenKind.VariableEnd => "'}}'",
        TokenKind.BlockEnd => "'%}'",
        _ => $"'{Text}'",
    };
}

/// <summary>
/// Splits a template into text and tag tokens with the whitespace rules transformers enables:
/// trim_blocks, lstrip_blocks, '-'/'+' markers, and Jinja's removal of one trailing newline.
/// </summary>
internal sealed class Lexer
{
    // Longest first so "//" wins over "/", "**" over "*", "==" over "=".
    private static readonly string[] Operators =
    [
        "//", "**", "==", "!=", ">=", "<=",
        "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";",
    ];

    private readonly string _src;
    private readonly int[] _lineStarts;
    private readonly List<Token> _tokens = [];
    private int _pos;

    private Lexer(string source)
    {
        _src = NormalizeNewlines(source);
        var starts = new List<int> { 0 };
        for (int i = 0; i < _src.Length; i++)
        {
            if (_src[i] == '\n')
            {
                starts.Add(i + 1);
            }
        }

        _lineStarts = starts.ToArray();
    }

    public static List<Token> Tokenize(string source)
    {
        var lexer = new Lexer(source);
        lexer.Run();
        return lexer._tokens;
    }

    // Jinja treats \r\n, \r and \n as line breaks, emits them as \n, and drops one trailing newline
    // because transformers leaves keep_trailing_newline off.
    private static string NormalizeNewlines(string source)
    {
        var sb = new StringBuilder(source.Length);
        for (int i = 0; i < source.Length; i++)
        {
            char c = source[i];
            if (c == '\r')
            {
                if (i + 1 < source.Length && source[i + 1] == '\n')
                {
                    i++;
                }

                sb.Append('\n');
            }
            else
            {
                sb.Append(c);
            }
        }

        if (sb.Length > 0 && sb[^1] == '\n')
        {
            sb.Length--;
        }

        return sb.ToString();
    }

    private (int Line, int Column) Position(int offset)
    {
        int idx = Array.BinarySearch(_lineStarts, offset);
        if (idx < 0)
        {
            idx = ~idx - 1;
        }

        return (idx + 1, offset - _lineStarts[idx] + 1);
    }

    private void Add(TokenKind kind, string text, object? value, int offset)
    {
        var (line, col) = Position(offset);
        _tokens.Add(new Token(kind, text, value, line, col));
    }

    private ChatTemplateException Error(string message, int offset)
    {
        var (line, col) = Position(offset);
        return new ChatTemplateException(ChatTemplateErrorKind.Syntax, message, line, col);
    }

    private void Run()
    {
        bool lineStarting = true;
        int n = _src.Length;
        while (_pos < n)
        {
            int tagStart = FindTagStart(_pos);
            if (tagStart < 0)
            {
                Add(TokenKind.Data, _src[_pos..], null, _pos);
                break;
            }

            char kind = _src[tagStart + 1];
            int after = tagStart + 2;
            char sign = after < n && (_src[after] == '-' || _src[after] == '+') ? _src[after] : '\0';
            if (sign != '\0')
            {
                after++;
            }

            string text = _src[_pos..tagStart];
            if (sign == '-')
            {
                text = PyString.RStripWhitespace(text);
            }
            else if (sign != '+' && kind != '{')
            {
                // lstrip_blocks: indentation before a block or comment tag on its own line is dropped.
                int lineBegin = text.LastIndexOf('\n') + 1;
                if ((lineBegin > 0 || lineStarting) && text.Length > lineBegin && AllWhitespace(text, lineBegin))
                {
                    text = text[..lineBegin];
                }
            }

            if (text.Length > 0)
            {
                Add(TokenKind.Data, text, null, _pos);
            }

            switch (kind)
            {
                case '#':
                    _pos = SkipComment(tagStart, after);
                    break;
                case '{':
                    Add(TokenKind.VariableBegin, "{{", null, tagStart);
                    _pos = after;
                    LexTag(isBlock: false);
                    break;
                default:
                    if (IsRawBlock(after))
                    {
                        var (line, col) = Position(tagStart);
                        throw new ChatTemplateException(
                            ChatTemplateErrorKind.Unsupported, "raw blocks are not supported", line, col, "{% raw %}");
                    }

                    Add(TokenKind.BlockBegin, "{%", null, tagStart);
                    _pos = after;
                    LexTag(isBlock: true);
                    break;
            }

            lineStarting = _pos > 0 && _src[_pos - 1] == '\n';
        }

        Add(TokenKind.Eof, "", null, _src.Length);
    }

    private int FindTagStart(int from)
    {
        for (int i = from; i < _src.Length - 1; i++)
        {
            if (_src[i] == '{')
            {
                char next = _src[i + 1];
                if (next == '{' || next == '%' || next == '#')
                {
                    return i;
                }
            }
        }

        return -1;
    }

    private static bool AllWhitespace(string text, int from)
    {
        for (int i = from; i < text.Length; i++)
        {
            if (!PyString.IsSpace(text[i]))
            {
                return false;
            }
        }

        return true;
    }

    private bool IsRawBlock(int after)
    {
        int i = after;
        while (i < _src.Length && PyString.IsSpace(_src[i]))
        {
            i++;
        }

        if (string.CompareOrdinal(_src, i, "raw", 0, 3) != 0)
        {
            return false;
        }

        i += 3;
        while (i < _src.Length && PyString.IsSpace(_src[i]))
        {
            i++;
        }

        return string.CompareOrdinal(_src, i, "%}", 0, 2) == 0 || string.CompareOrdinal(_src, i, "-%}", 0, 3) == 0;
    }

    private int SkipComment(int tagStart, int after)
    {
        int end = _src.IndexOf("#}", after, StringComparison.Ordinal);
        if (end < 0)
        {
            throw Error("Missing end of comment tag", tagStart);
        }

        int pos = end + 2;
        char before = end - 1 >= after ? _src[end - 1] : '\0';
        if (before == '-')
        {
            pos = SkipWhitespace(pos);
        }
        else if (before != '+' && pos < _src.Length && _src[pos] == '\n')
        {
            pos++;
        }

        return pos;
    }

    private int SkipWhitespace(int pos)
    {
        while (pos < _src.Length && PyString.IsSpace(_src[pos]))
        {
            pos++;
        }

        return pos;
    }

    private void LexTag(bool isBlock)
    {
        var brackets = new Stack<char>();
        int n = _src.Length;
        while (true)
        {
            if (_pos >= n)
            {
                throw Error(isBlock ? "Unexpected end of template: missing '%}'" : "Unexpected end of template: missing '}}'", _pos);
            }

            // End delimiters only count outside brackets, so "{{ {'a': {'b': 1}} }}" lexes as Jinja does.
            if (brackets.Count == 0 && TryLexTagEnd(isBlock))
            {
                return;
            }

            char c = _src[_pos];
            if (PyString.IsSpace(c))
            {
                _pos++;
                continue;
            }

            int start = _pos;
            if (TryLexNumber())
            {
                continue;
            }

            if (c == '_' || char.IsLetter(c))
            {
                while (_pos < n && (_src[_pos] == '_' || char.IsLetterOrDigit(_src[_pos])))
                {
                    _pos++;
                }

                string name = _src[start.._pos];
                Add(TokenKind.Name, name, name, start);
                continue;
            }

            if (c == '\'' || c == '"')
            {
                LexString(c);
                continue;
            }

            string? op = null;
            foreach (string candidate in Operators)
            {
                if (string.CompareOrdinal(_src, _pos, candidate, 0, candidate.Length) == 0)
                {
                    op = candidate;
                    break;
                }
            }

            if (op is null)
            {
                throw Error($"Unexpected character '{c}' in tag", _pos);
            }

            switch (op)
            {
                case "(":
                    brackets.Push(')');
                    break;
                case "[":
                    brackets.Push(']');
                    break;
                case "{":
                    brackets.Push('}');
                    break;
                case ")":
                case "]":
                case "}":
                    if (brackets.Count == 0 || brackets.Pop() != op[0])
                    {
                        throw Error($"Unexpected '{op}'", _pos);
                    }

                    break;
            }

            Add(TokenKind.Operator, op, null, _pos);
            _pos += op.Length;
        }
    }

    private bool TryLexTagEnd(bool isBlock)
    {
        int start = _pos;
        if (isBlock)
        {
            if (Matches("+%}"))
            {
                _pos += 3;
            }
            else if (Matches("-%}"))
            {
                _pos = SkipWhitespace(_pos + 3);
            }
            else if (Matches("%}"))
            {
                _pos += 2;
                if (_pos < _src.Length && _src[_pos] == '\n')
                {
                    _pos++; // trim_blocks
                }
            }
            else
            {
                return false;
            }

            Add(TokenKind.BlockEnd, "%}", null, start);
            return true;
        }

        if (Matches("-}}"))
        {
            _pos = SkipWhitespace(_pos + 3);
        }
        else if (Matches("}}"))
        {
            _pos += 2;
        }
        else
        {
            return false;
        }

        Add(TokenKind.VariableEnd, "}}", null, start);
        return true;
    }

    private bool Matches(string s) => string.CompareOrdinal(_src, _pos, s, 0, s.Length) == 0;

    private bool TryLexNumber()
    {
        int n = _src.Length;
        int start = _pos;
        if (!char.IsAsciiDigit(_src[start]))
        {
            return false;
        }

        // Jinja's float rule refuses to start right after a '.', so "x.0.1" is attribute 0 then 1.
        bool afterDot = start > 0 && _src[start - 1] == '.';
        int i = ScanDigits(start);
        bool isFloat = false;
        if (!afterDot)
        {
            int j = i;
            if (j < n && _src[j] == '.' && j + 1 < n && char.IsAsciiDigit(_src[j + 1]))
            {
                j = ScanDigits(j + 1);
                isFloat = true;
            }

            if (j < n && (_src[j] == 'e' || _src[j] == 'E'))
            {
                int k = j + 1;
                if (k < n && (_src[k] == '+' || _src[k] == '-'))
                {
                    k++;
                }

                if (k < n && char.IsAsciiDigit(_src[k]))
                {
                    j = ScanDigits(k);
                    isFloat = true;
                }
            }

            if (isFloat)
            {
                i = j;
            }
        }

        if (isFloat)
        {
            string text = _src[start..i];
            double value = double.Parse(text.Replace("_", ""), NumberStyles.Float, CultureInfo.InvariantCulture);
            Add(TokenKind.Float, text, value, start);
            _pos = i;
            return true;
        }

        // Integers: plain decimal only; Jinja also lexes 0x/0o/0b and leading zeros, which chat templates never use.
        string digits = _src[start..i];
        if ((digits.Length > 1 && digits[0] == '0' && digits.Trim('0', '_').Length > 0)
            || (i < n && (char.IsAsciiLetter(_src[i]) || _src[i] == '_')))
        {
            var (line, col) = Position(start);
            throw new ChatTemplateException(
                ChatTemplateErrorKind.Unsupported, "only plain decimal integer literals are supported", line, col, "integer literal");
        }

        if (!long.TryParse(digits.Replace("_", ""), NumberStyles.None, CultureInfo.InvariantCulture, out long number))
        {
            var (line, col) = Position(start);
            throw new ChatTemplateException(
                ChatTemplateErrorKind.Unsupported, "integer literal does not fit in 64 bits", line, col, "integer literal");
        }

        Add(TokenKind.Integer, digits, number, start);
        _pos = i;
        return true;
    }

    // Digits with single underscores between them, as Jinja's number rules allow.
    private int ScanDigits(int i)
    {
        int n = _src.Length;
        while (i < n && char.IsAsciiDigit(_src[i]))
        {
            i++;
            if (i + 1 < n && _src[i] == '_' && char.IsAsciiDigit(_src[i + 1]))
            {
                i++;
            }
        }

        return i;
    }

    private void LexString(char quote)
    {
        int start = _pos;
        int i = _pos + 1;
        while (i < _src.Length && _src[i] != quote)
        {
            i += _src[i] == '\\' ? 2 : 1;
        }

        if (i >= _src.Length)
        {
            throw Error("Unterminated string literal", start);
        }

        string raw = _src[(start + 1)..i];
        _pos = i + 1;
        string value;
        try
        {
            value = PyString.DecodeLiteral(raw);
        }
        catch (JinjaError e)
        {
            var (line, col) = Position(start);
            throw new ChatTemplateException(e.Kind, e.Message, line, col, e.Construct);
        }

        Add(TokenKind.String, _src[start.._pos], value, start);
    }
}
