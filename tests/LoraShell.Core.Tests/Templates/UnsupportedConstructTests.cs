using LoraShell.Core.Templates;

namespace LoraShell.Core.Tests.Templates;

/// <summary>Constructs outside the implemented subset must fail loudly, naming the construct and its position.</summary>
public sealed class UnsupportedConstructTests
{
    private static readonly Dictionary<string, object?> Empty = new();

    [Theory]
    [InlineData("{% include 'other.jinja' %}", "{% include %}", 1, 1)]
    [InlineData("a\n  {% extends 'base.jinja' %}", "{% extends %}", 2, 3)]
    [InlineData("{% macro greet(name) %}hi {{ name }}{% endmacro %}", "{% macro %}", 1, 1)]
    [InlineData("{% import 'x' as y %}", "{% import %}", 1, 1)]
    [InlineData("{% block body %}{% endblock %}", "{% block %}", 1, 1)]
    [InlineData("{% filter upper %}x{% endfilter %}", "{% filter %}", 1, 1)]
    [InlineData("{% call foo() %}{% endcall %}", "{% call %}", 1, 1)]
    [InlineData("{% with a = 1 %}{% endwith %}", "{% with %}", 1, 1)]
    [InlineData("x {% raw %}{{ y }}{% endraw %}", "{% raw %}", 1, 3)]
    [InlineData("{{ 'a'|wordwrap(10) }}", "filter 'wordwrap'", 1, 8)]
    [InlineData("{{ 1.5|round }}", "filter 'round'", 1, 8)]
    [InlineData("{{ x|indent(2) }}", "filter 'indent'", 1, 6)]
    [InlineData("{{ x|safe }}", "filter 'safe'", 1, 6)]
    [InlineData("{% for x in y recursive %}{% endfor %}", "{% for ... recursive %}", 1, 15)]
    [InlineData("{% set x | upper %}a{% endset %}", "{% set ... | filter %}", 1, 10)]
    [InlineData("{{ f(*args) }}", "*args/**kwargs", 1, 6)]
    [InlineData("{{ 0x1F }}", "integer literal", 1, 4)]
    public void ParseRejectsUnsupportedConstruct(string source, string construct, int line, int column)
    {
        var error = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(source));
        Assert.Equal(ChatTemplateErrorKind.Unsupported, error.Kind);
        Assert.Equal(construct, error.Construct);
        Assert.Equal(line, error.Line);
        Assert.Equal(column, error.Column);
        Assert.Contains(construct, error.Message);
    }

    [Theory]
    [InlineData("{{ messages|no_such_filter }}", "filter 'no_such_filter'")]
    [InlineData("{% if x is frobnicated %}{% endif %}", "test 'frobnicated'")]
    [InlineData("{% do x.append(1) %}", "{% do %}")]
    [InlineData("{% frobnicate %}", "{% frobnicate %}")]
    public void ParseRejectsUnknownNames(string source, string construct)
    {
        var error = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(source));
        Assert.Equal(construct, error.Construct);
        Assert.Contains(construct.Trim('{', '%', '}', ' '), error.Message);
    }

    [Theory]
    [InlineData("{{ 'Hi {}'.format(1) }}", "str.format")]
    [InlineData("{{ 'a'.center(5) }}", "str.center")]
    [InlineData("{{ '%s' % 1 }}", "string % formatting")]
    [InlineData("{{ 'Straße'|upper }}", "str.upper")]
    [InlineData("{{ 'ΣΑΣ'|lower }}", "str.lower")]
    [InlineData("{{ 'x'.strip }}", "printing a builtin_function_or_method")]
    [InlineData("{{ [1]|select('odd') }}", "printing a generator")]
    [InlineData("{{ cycler('a', 'b') }}", "global 'cycler'")]
    [InlineData("{{ loop_ctx }}{% for i in [1] %}{{ loop.changed(i) }}{% endfor %}", "loop.changed")]
    [InlineData("{{ strftime_now('%c') }}", "strftime '%c'")]
    [InlineData("{{ 1.5 // 1 }}", "float //")]
    [InlineData("{{ 9223372036854775807 + 1 }}", "big integer")]
    [InlineData("{{ 1 is sameas 1 }}", "test 'sameas'")]
    [InlineData("{{ (1).real }}", "int.real")]
    public void RenderRejectsUnsupportedConstruct(string source, string construct)
    {
        var template = ChatTemplate.Parse(source);
        var error = Assert.Throws<ChatTemplateException>(() => template.Render(Empty));
        Assert.Equal(ChatTemplateErrorKind.Unsupported, error.Kind);
        Assert.Equal(construct, error.Construct);
        Assert.Equal(1, error.Line);
        Assert.True(error.Column > 0);
    }

    [Fact]
    public void SyntaxErrorsCarryPosition()
    {
        var error = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse("ok\n{% if x %}\nno endif"));
        Assert.Equal(ChatTemplateErrorKind.Syntax, error.Kind);
        Assert.Contains("endif", error.Message);

        error = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse("line1\n  {{ 'unterminated }}"));
        Assert.Equal(2, error.Line);
        Assert.Equal(6, error.Column);
    }

    [Fact]
    public void RuntimeErrorsPointAtTheFailingExpression()
    {
        var template = ChatTemplate.Parse("{% for m in messages %}\n  {{ m.content + 1 }}\n{% endfor %}");
        var context = new Dictionary<string, object?> { ["messages"] = new[] { new Dictionary<string, object?> { ["content"] = "x" } } };
        var error = Assert.Throws<ChatTemplateException>(() => template.Render(context));
        Assert.Equal(ChatTemplateErrorKind.Runtime, error.Kind);
        Assert.Equal(2, error.Line);
        Assert.Equal(6, error.Column);
        Assert.Contains("can only concatenate str", error.Message);
    }

    [Fact]
    public void RaiseExceptionKeepsTheTemplateMessage()
    {
        var template = ChatTemplate.Parse("{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}");
        var error = Assert.Throws<ChatTemplateException>(() => template.Render(Empty));
        Assert.Equal(ChatTemplateErrorKind.Raised, error.Kind);
        Assert.Equal("Conversation roles must alternate user/assistant/user/assistant/...", error.Detail);
        Assert.Equal(1, error.Line);
    }

    [Fact]
    public void UnsupportedContextValuesAreRejected()
    {
        var template = ChatTemplate.Parse("{{ x }}");
        var error = Assert.Throws<ChatTemplateException>(() => template.Render(new Dictionary<string, object?> { ["x"] = DateTime.UnixEpoch }));
        Assert.Equal(ChatTemplateErrorKind.Unsupported, error.Kind);
    }
}

public sealed class HostileTemplateTests
{
    [Fact]
    public void DeepNestingIsRejectedInsteadOfOverflowingTheStack()
    {
        string deep = "{{ " + new string('(', 5000) + "1" + new string(')', 5000) + " }}";
        var error = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(deep));
        Assert.Equal("deep nesting", error.Construct);

        string blocks = string.Concat(Enumerable.Repeat("{% if true %}", 1000)) + string.Concat(Enumerable.Repeat("{% endif %}", 1000));
        Assert.Equal("deep nesting", Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(blocks)).Construct);

        string negations = "{{ " + string.Concat(Enumerable.Repeat("not ", 5000)) + "x }}";
        Assert.Equal("deep nesting", Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(negations)).Construct);
    }

    [Fact]
    public void ModerateNestingStillWorks()
    {
        string nested = "{{ " + new string('(', 190) + "1" + new string(')', 190) + " }}";
        Assert.Equal("1", ChatTemplate.Parse(nested).Render(new Dictionary<string, object?>()));
    }
}
