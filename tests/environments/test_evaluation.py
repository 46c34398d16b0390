"""The definition language, without a database: parsing, positions, imports, references, secrets."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from environments import parser, syntax
from environments.evaluator import Evaluation, Source, evaluate, no_imports
from environments.sealing import seal, unseal
from environments.syntax import (
    Diagnostic,
    format_path,
    normalize_import,
    parse_path,
    valid_name,
)
from kernel.secretbox import DecryptFailed


def plain_decrypt(ciphertext: str) -> str:
    if not ciphertext.startswith("enc:"):
        raise DecryptFailed("not ours")
    return ciphertext[4:]


def run(text: str, environments: dict[str, str] | None = None, name: str = "app/dev") -> Evaluation:
    sources = environments or {}

    def load(wanted: str) -> Source | str:
        if wanted not in sources:
            return "environment not found"
        return Source(wanted, sources[wanted], plain_decrypt)

    return evaluate(Source(name, text, plain_decrypt), load)


def values(text: str, environments: dict[str, str] | None = None) -> Any:
    result = run(text, environments)
    assert result.diagnostics == (), result.diagnostics
    assert result.value is not None
    return result.value.plain(reveal=True)


def summaries(result: Evaluation) -> list[str]:
    return [d.summary for d in result.diagnostics]


def only(result: Evaluation) -> Diagnostic:
    assert len(result.diagnostics) == 1, result.diagnostics
    return result.diagnostics[0]


# --- values -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("", {}),
        ("values:\n", {}),
        ("values: {}\n", {}),
        ("values:\n  a: 1\n  b: 1.5\n  c: true\n  d: null\n  e: text\n", None),
        ("values:\n  on: yes\n  off: no\n", {"on": "yes", "off": "no"}),  # YAML 1.2 booleans
        ("values:\n  hex: 0x1F\n  big: 1_000\n", {"hex": 31, "big": "1_000"}),
        ("values:\n  nan: .nan\n  when: 2024-01-02\n", {"nan": ".nan", "when": "2024-01-02"}),
        (
            "values:\n  m:\n    n:\n      o: [1, [2, {p: q}]]\n",
            {"m": {"n": {"o": [1, [2, {"p": "q"}]]}}},
        ),
        ("values:\n  lit: $${not.a.ref}\n", {"lit": "${not.a.ref}"}),
    ],
)
def test_plain_values(yaml_text: str, expected: Any) -> None:
    if expected is None:
        expected = {"a": 1, "b": 1.5, "c": True, "d": None, "e": "text"}
    assert values(yaml_text) == expected


def test_interpolation_keeps_types_for_whole_references_and_stringifies_inside_text() -> None:
    result = values(
        "values:\n"
        "  app: {name: web, port: 8080, tls: true, ports: [80, 443]}\n"
        "  url: https://${app.name}:${app.port}/?tls=${app.tls}\n"
        "  copy: ${app}\n"
        "  second: ${app.ports[1]}\n"
        '  quoted: ${app["name"]}\n'
        "  chained: ${url}\n"
        "  nothing: x${missing_is_not_here_but_null}\n"
        "  missing_is_not_here_but_null: null\n"
    )
    assert result["url"] == "https://web:8080/?tls=true"
    assert result["copy"] == {"name": "web", "port": 8080, "tls": True, "ports": [80, 443]}
    assert result["second"] == 443
    assert result["quoted"] == "web" and result["chained"] == result["url"]
    assert result["nothing"] == "x"


def test_imports_merge_in_order_and_values_win() -> None:
    environments = {
        "base/common": "values:\n  region: eu\n  app: {name: base, replicas: 1}\n  x: ${region}\n",
        "base/eu": "imports: [base/common]\nvalues:\n  app: {replicas: 3}\n  zone: ${region}-1\n",
    }
    result = values(
        "imports:\n  - base/eu\nvalues:\n  app: {name: web}\n  url: ${app.name}.${zone}\n",
        environments,
    )
    assert result["app"] == {"name": "web", "replicas": 3}
    assert result["url"] == "web.eu-1" and result["x"] == "eu" and result["region"] == "eu"


def test_a_bare_import_name_means_the_default_project() -> None:
    assert normalize_import("shared") == "default/shared"
    assert (
        values("imports: [shared]\nvalues: {a: '${b}'}\n", {"default/shared": "values: {b: 1}"})[
            "a"
        ]
        == 1
    )


def test_diamond_imports_load_once() -> None:
    loads: list[str] = []
    sources = {
        "p/a": "imports: [p/c]\nvalues: {a: 1}\n",
        "p/b": "imports: [p/c]\nvalues: {b: 2}\n",
        "p/c": "values: {c: 3}\n",
    }

    def load(name: str) -> Source | str:
        loads.append(name)
        return Source(name, sources[name], plain_decrypt)

    result = evaluate(Source("p/root", "imports: [p/a, p/b]\n", plain_decrypt), load)
    assert result.ok and result.value is not None
    assert result.value.plain(reveal=True) == {"a": 1, "b": 2, "c": 3}
    assert loads == ["p/a", "p/c", "p/b"]


# --- diagnostics --------------------------------------------------------------------------------
def test_import_cycles_are_refused_with_the_cycle_spelled_out() -> None:
    environments = {
        "p/a": "imports: [p/b]\nvalues: {a: 1}\n",
        "p/b": "imports:\n  - p/a\nvalues: {b: 1}\n",
    }
    result = run("imports: [p/a]\n", environments, name="p/root")
    assert result.value is None
    cycle = result.diagnostics[0]
    assert cycle.summary == "import cycle: p/a -> p/b -> p/a"
    assert cycle.range is not None and cycle.range.environment == "p/b"
    assert (cycle.range.begin.line, cycle.range.begin.column) == (2, 5)
    assert 'the imported environment "p/b" has errors' in summaries(result)


def test_importing_itself_is_a_cycle() -> None:
    result = run("imports: [app/dev]\n")
    assert summaries(result) == ["import cycle: app/dev -> app/dev"]


def test_unknown_imports_and_loader_refusals_are_diagnostics() -> None:
    result = run("imports: [p/nope, 'bad name!']\n")
    assert summaries(result) == [
        '"bad name!" is not an environment name (`project/env`)',
    ]
    result = run("imports: [p/nope]\n")
    assert summaries(result) == ['cannot import "p/nope": environment not found']


@pytest.mark.parametrize(
    ("yaml_text", "summary", "line", "column"),
    [
        ("values:\n  a: ${missing}\n", 'unknown property "missing"', 2, 6),
        ("values:\n  a: x-${b.c}\n  b: {d: 1}\n", 'unknown property "b.c"', 2, 8),
        ("values:\n  l: [1]\n  a: '${l[3]}'\n", 'unknown property "l[3]"', 3, 7),
        ("values:\n  a: ${b}\n  b: ${a}\n", 'cyclic reference: "${a}" leads back to itself', 3, 6),
        ("values:\n  a: x ${b\n", '"${" is not closed by "}"', 2, 8),
        (
            "values:\n  a: ${b c}\n",
            "invalid reference \"${b c}\": unexpected ' ' at offset 1",
            2,
            6,
        ),
        (
            "values:\n  l: [1]\n  a: x${l}\n",
            '"${l}" is a list: only a whole string can be a map or list',
            3,
            7,
        ),
        (
            "values:\n  a: {fn::nope: x}\n",
            'unsupported function "fn::nope": the functions are fn::secret, '
            "fn::open::<provider>, fn::rotate::<rotator> and fn::concat, fn::final, "
            "fn::fromBase64, fn::fromJSON, fn::join, fn::split, fn::toBase64, fn::toJSON, "
            "fn::toString",
            2,
            6,
        ),
        (
            "values:\n  a: {fn::secret: x, b: 1}\n",
            '"fn::secret" must be the only key of its mapping',
            2,
            6,
        ),
        (
            "values:\n  a: {fn::secret: [1]}\n",
            "fn::secret takes a string (or {ciphertext: …} as the portal stores it)",
            2,
            6,
        ),
        ("values:\n  a: 1\n  a: 2\n", 'duplicate key "a"', 3, 3),
        (
            "values:\n  b: &x {c: 1}\n  a:\n    <<: *x\n",
            "YAML merge keys (<<) are not supported",
            4,
            5,
        ),
        ("values:\n  k: !!binary aGk=\n", "unsupported YAML tag tag:yaml.org,2002:binary", 2, 6),
        ("values: [1]\n", "`values` must be a mapping", 1, 9),
        ("- a\n", "the definition must be a mapping with `imports` and `values`", 1, 1),
        (
            "vals: {}\n",
            'unknown top-level key "vals": a definition has `imports` and `values`',
            1,
            7,
        ),
        ("imports: p/a\n", "`imports` must be a list of environment names", 1, 10),
    ],
)
def test_diagnostics_have_a_summary_and_a_position(
    yaml_text: str, summary: str, line: int, column: int
) -> None:
    diagnostic = only(run(yaml_text))
    assert diagnostic.summary == summary
    assert diagnostic.range is not None
    assert (diagnostic.range.begin.line, diagnostic.range.begin.column) == (line, column)
    assert diagnostic.range.environment == "app/dev"


@pytest.mark.parametrize(
    ("yaml_text", "line", "column", "problem"),
    [
        ("values:\n  a: [1, 2\n", 3, 1, "expected ',' or ']'"),
        ("values:\n  a: 'open\n", 3, 1, "found unexpected end of stream"),
        ("values:\n a: 1\n  b: 2\n", 3, 4, "mapping values are not allowed"),
        ("values:\n\ta: 1\n", 2, 1, "cannot start any token"),
        ("a: 1\n---\nb: 2\n", 2, 1, "but found another document"),
    ],
)
@pytest.mark.parametrize("loader", ["libyaml", "pure"])
def test_bad_yaml_is_a_diagnostic_with_line_and_column(
    yaml_text: str, line: int, column: int, problem: str, loader: str, monkeypatch: Any
) -> None:
    if loader == "pure":  # PyYAML without libyaml: the fallback must report the same places
        monkeypatch.setattr(parser, "_LOADER", yaml.SafeLoader)
    diagnostic = only(run(yaml_text))
    assert diagnostic.summary.startswith("invalid YAML: ")
    assert problem in diagnostic.summary
    assert diagnostic.range is not None
    assert (diagnostic.range.begin.line, diagnostic.range.begin.column) == (line, column)


def test_byte_offsets_count_utf8_bytes() -> None:
    diagnostic = only(run("values:\n  é: 'ü ${nope}'\n"))
    assert diagnostic.range is not None
    begin = diagnostic.range.begin
    assert (begin.line, begin.column) == (2, 9)
    assert begin.byte == len("values:\n  é: 'ü ".encode())


def test_references_into_an_erroneous_value_report_once() -> None:
    result = run("values:\n  a: ${nope}\n  b: ${a}\n  c: x${b}\n")
    assert summaries(result) == ['unknown property "nope"']


def test_several_problems_are_all_reported() -> None:
    result = run("values:\n  a: ${x}\n  b: ${y}\n")
    assert summaries(result) == ['unknown property "x"', 'unknown property "y"']


# --- limits -------------------------------------------------------------------------------------
def test_alias_bombs_are_stopped_by_the_node_budget() -> None:
    lines = ["values:", "  a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"  a{i}: &a{i} [{refs}]")
    result = run("\n".join(lines) + "\n")
    assert summaries(result) == [
        f"the definition has more than {syntax.MAX_NODES} values (YAML aliases count each "
        "time they are used)"
    ]


def test_reference_bombs_are_stopped_by_the_weight_budget() -> None:
    lines = ["values:", "  a0: x"] + [f"  a{i + 1}: ['${{a{i}}}', '${{a{i}}}']" for i in range(30)]
    result = run("\n".join(lines) + "\n")
    assert result.value is None
    assert any("expands to more than" in s for s in summaries(result))


def test_string_bombs_are_stopped_by_the_length_budget() -> None:
    lines = ["values:", "  a0: xxxxxxxxxx"] + [f"  a{i + 1}: ${{a{i}}}${{a{i}}}" for i in range(30)]
    result = run("\n".join(lines) + "\n")
    assert any("longer than" in s for s in summaries(result))


@pytest.mark.parametrize(
    "yaml_text",
    [
        "values:\n  a: " + "[" * 3000 + "]" * 3000 + "\n",
        "values:\n  a: &x [*x]\n",
        "values:\n"
        + "".join(f"  a{i + 1}: ${{a{i}}}\n" for i in reversed(range(300)))
        + "  a0: 1\n",
        "values:\n  a: " + "x" * (syntax.MAX_DEFINITION_BYTES + 1) + "\n",
    ],
)
def test_deep_or_huge_definitions_are_refused_not_crashed(yaml_text: str) -> None:
    result = run(yaml_text)
    assert result.value is None and result.diagnostics


# --- secrets ------------------------------------------------------------------------------------
def test_secrets_are_marked_and_taint_interpolations() -> None:
    head = "values:\n  pw:\n    fn::secret: {ciphertext: 'enc:s3cret'}\n  dsn: "
    result = run(head + "db://u:${pw}@h\n  plain: ${pw}\n  other: x\n")
    assert result.value is not None
    props = result.properties
    assert props["pw"].secret and props["dsn"].secret and props["plain"].secret
    assert not props["other"].secret
    assert result.value.plain(reveal=False) == {
        "pw": "[secret]",
        "dsn": "[secret]",
        "plain": "[secret]",
        "other": "x",
    }
    assert props["dsn"].plain(reveal=True) == "db://u:s3cret@h"
    wire = props["dsn"].to_wire(reveal=False)
    assert wire["value"] == "[secret]" and wire["secret"] is True
    assert wire["trace"]["def"]["begin"] == {"line": 4, "column": 8, "byte": len(head)}


def test_a_secret_that_cannot_be_decrypted_is_a_diagnostic() -> None:
    diagnostic = only(run("values:\n  pw: {fn::secret: {ciphertext: other}}\n"))
    assert diagnostic.summary == "cannot decrypt this secret: not ours"


def test_secret_plaintext_is_taken_literally() -> None:
    result = run("values:\n  pw: {fn::secret: '${not.a.ref}'}\n  n: {fn::secret: 0777}\n")
    assert result.value is not None
    assert result.value.plain(reveal=True) == {"pw": "${not.a.ref}", "n": "0777"}


def test_seal_replaces_only_the_secret_and_keeps_comments() -> None:
    text = (
        "# top comment\n"
        "values:\n"
        "  a: 1  # keep me\n"
        "  pw:\n"
        "    fn::secret: hunter2\n"
        "  inline: {fn::secret: 'two words'}\n"
        "  block:\n"
        "    fn::secret: |\n"
        "      line one\n"
        "      line two\n"
        "  after: ${a}\n"
    )
    sealed, problems = seal(text, "app/dev", lambda plaintext: f"c{len(plaintext)}")
    assert problems == ()
    assert sealed == (
        "# top comment\n"
        "values:\n"
        "  a: 1  # keep me\n"
        "  pw:\n"
        "    fn::secret: {ciphertext: c7}\n"
        "  inline: {fn::secret: {ciphertext: c9}}\n"
        "  block:\n"
        "    fn::secret: {ciphertext: c18}\n"
        "  after: ${a}\n"
    )


def test_seal_then_unseal_round_trips() -> None:
    text = "values:\n  pw:\n    fn::secret: 'it''s \"quoted\"'\n  x: 1\n"
    vault = {"enc13": 'it\'s "quoted"'}
    sealed, problems = seal(text, "app/dev", lambda plaintext: "enc" + str(len(plaintext)))
    assert problems == () and "quoted" not in sealed
    opened = unseal(sealed, "app/dev", vault.__getitem__)
    assert values(opened) == {"pw": 'it\'s "quoted"', "x": 1}


def test_seal_refuses_secrets_behind_anchors_or_aliases() -> None:
    _sealed, problems = seal("values:\n  a: {fn::secret: &p pw}\n", "app/dev", str.upper)
    assert [p.summary for p in problems] == ["YAML anchors and tags are not allowed on a secret"]
    _sealed, problems = seal("values:\n  a: &s {fn::secret: pw}\n  b: *s\n", "app/dev", str.upper)
    assert [p.summary for p in problems] == ["a secret may not be reused through a YAML alias"]


# --- paths and names ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "accessors"),
    [
        ("a", ("a",)),
        ("a.b", ("a", "b")),
        ("a[0].b", ("a", 0, "b")),
        ('a["b.c"][2]', ("a", "b.c", 2)),
        ('["x y"]', ("x y",)),
        ("environmentVariables.AWS_REGION", ("environmentVariables", "AWS_REGION")),
    ],
)
def test_property_paths(path: str, accessors: tuple[str | int, ...]) -> None:
    assert parse_path(path) == accessors
    assert parse_path(format_path(accessors)) == accessors


@pytest.mark.parametrize("bad", ["", "a..b", "a[", "a[x]", "a b", 'a["x]', ".a"])
def test_bad_property_paths(bad: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (the message varies by problem)
        parse_path(bad)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("dev", True),
        ("my-env_1.2", True),
        ("...", False),
        ("", False),
        ("a/b", False),
        ("x" * 101, False),
    ],
)
def test_names(name: str, ok: bool) -> None:
    assert valid_name(name) is ok


def test_no_imports_loader_refuses_everything() -> None:
    assert no_imports("a/b") == "environment not found"


def test_references_cannot_stack_nesting_without_bound() -> None:
    """Each value nests 30 levels around the previous one: the result would be 300 deep."""
    lines = ["values:", "  v0: x"]
    for i in range(1, 11):
        lines.append(f"  v{i}: " + "[" * 30 + f"'${{v{i - 1}}}'" + "]" * 30)
    result = run("\n".join(lines) + "\n")
    assert result.value is None
    assert any(
        f"nests deeper than {syntax.MAX_VALUE_DEPTH} levels" in s for s in summaries(result)
    )


def test_lone_surrogate_escapes_are_refused_by_either_parser(monkeypatch: Any) -> None:
    assert summaries(run('values: {a: "\\ud800"}\n'))[0].startswith("invalid YAML")
    monkeypatch.setattr(parser, "_LOADER", yaml.SafeLoader)
    assert (
        summaries(run('values: {a: "\\ud800", "\\udfff": 1, s: {fn::secret: "\\ud800"}}\n'))
        == ["a lone UTF-16 surrogate escape is not valid text"] * 3
    )
