"""`dfc lsp` end to end: a pytest-lsp client starts the server as a user's editor would and
talks to it over stdio about files of examples/ (issue 14).

Timings are printed, not asserted (tests are not benchmarks): run with ``-s`` to see them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DFC = [sys.executable, "-m", "dfc"]

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=[*DFC, "lsp"]))
async def client(lsp_client: LanguageClient) -> AsyncIterator[None]:
    await lsp_client.initialize_session(
        types.InitializeParams(capabilities=types.ClientCapabilities(), root_uri=ROOT.as_uri())
    )
    yield
    await lsp_client.shutdown_session()


async def _open(client: LanguageClient, path: Path, text: str | None = None) -> str:
    """Open ``path`` (with ``text`` instead of what the file holds) and wait for its
    diagnostics; returns the URI."""
    uri = path.resolve().as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri, "dfc", 1, text if text is not None else path.read_text())
        )
    )
    await _diagnostics_of(client, uri)
    return uri


async def _diagnostics_of(client: LanguageClient, uri: str) -> list[types.Diagnostic]:
    while True:
        await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        if uri in client.diagnostics:
            return list(client.diagnostics.pop(uri))


def _close(client: LanguageClient, uri: str) -> None:
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri))
    )


def _position(text: str, needle: str, delta: int = 0) -> types.Position:
    offset = text.index(needle) + delta
    line = text.count("\n", 0, offset)
    return types.Position(line, offset - (text.rfind("\n", 0, offset) + 1))


def _dfc_check_json(text: str, tmp_path: Path, name: str) -> list[dict[str, object]]:
    """What ``dfc check --format json`` reports for ``text`` (written as ``name``)."""
    file = tmp_path / name
    file.write_text(text)
    out = subprocess.run(
        [*DFC, "check", "--format", "json", str(file)],
        capture_output=True,
        text=True,
        check=False,
    )
    return [d for d in json.loads(out.stdout) if d["file"] == str(file)]


def _as_check(d: types.Diagnostic) -> tuple[object, ...]:
    # dfc check counts lines and columns from 1; the protocol from 0 (ASCII text: same units).
    first = d.message.split("\nhelp: ")[0].split("\nnote: ")[0]
    r = d.range
    return (d.code, first, r.start.line + 1, r.start.character + 1, r.end.line + 1)


def _check_key(d: dict[str, object]) -> tuple[object, ...]:
    return (d["code"], d["message"], d["line"], d["column"], d["end_line"])


@pytest.mark.usefixtures("client")
async def test_a_typo_in_a_reference_gets_the_diagnostic_of_dfc_check(
    client: LanguageClient, tmp_path: Path
) -> None:
    path = EXAMPLES / "order_approval.df"
    text = path.read_text()
    uri = path.resolve().as_uri()
    t0 = time.perf_counter()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "dfc", 1, text))
    )
    assert await _diagnostics_of(client, uri) == []
    opened = time.perf_counter() - t0

    at = _position(text, "$order.id", 1)
    end = types.Position(at.line, at.character + len("order"))
    typo = "ordr"
    t0 = time.perf_counter()
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(version=2, uri=uri),
            [types.TextDocumentContentChangePartial(types.Range(at, end), typo)],
        )
    )
    got = await _diagnostics_of(client, uri)
    changed = time.perf_counter() - t0
    print(
        f"\norder_approval.df: open→diagnostics {opened * 1000:.0f} ms, "
        f"typo→diagnostics {changed * 1000:.0f} ms"
    )

    edited = text.replace("$order.id", "$ordr.id", 1)
    expected = _dfc_check_json(edited, tmp_path, "order_approval.df")
    assert [d["code"] for d in expected] == ["DFC201"]
    assert sorted(map(_as_check, got)) == sorted(map(_check_key, expected))
    assert got[0].severity == types.DiagnosticSeverity.Error
    assert "did you mean `$order`?" in got[0].message
    _close(client, uri)


@pytest.mark.usefixtures("client")
async def test_go_to_definition_of_a_reference_is_its_binding(client: LanguageClient) -> None:
    path = EXAMPLES / "order_approval.df"
    text = path.read_text()
    uri = await _open(client, path)
    result = await client.text_document_definition_async(
        types.DefinitionParams(
            types.TextDocumentIdentifier(uri), _position(text, "$late_decision::", 3)
        )
    )
    assert isinstance(result, list) and len(result) == 1
    bound = _position(text, "|=> 'late_decision'", len("|=> '"))
    assert result[0].uri == uri
    assert result[0].range.start == bound
    assert result[0].range.end.character == bound.character + len("late_decision")

    # A template call goes to its `def`, a param reference to its declaration.
    path = EXAMPLES / "embed_documents.df"
    text = path.read_text()
    uri2 = await _open(client, path)
    result = await client.text_document_definition_async(
        types.DefinitionParams(
            types.TextDocumentIdentifier(uri2), _position(text, "with_backoff(\n", 2)
        )
    )
    assert isinstance(result, list)
    assert [r.range.start for r in result] == [_position(text, "with_backoff(step")]
    result = await client.text_document_definition_async(
        types.DefinitionParams(
            types.TextDocumentIdentifier(uri2), _position(text, "{batch_size}", 2)
        )
    )
    assert isinstance(result, list)
    assert [r.range.start for r in result] == [_position(text, "batch_size int", 0)]
    _close(client, uri)
    _close(client, uri2)


@pytest.mark.usefixtures("client")
async def test_hover_on_a_reference_shows_the_statement_and_its_columns(
    client: LanguageClient,
) -> None:
    path = EXAMPLES / "order_approval.df"
    text = path.read_text()
    uri = await _open(client, path)
    hover = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), _position(text, "$order.id", 2))
    )
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    shown = hover.contents.value
    assert "SELECT id, customer, amount FROM orders" in shown
    assert "Columns: `id`, `customer`, `amount`" in shown

    hover = await client.text_document_hover_async(
        types.HoverParams(
            types.TextDocumentIdentifier(uri), _position(text, "df.wait_for_signal", 4)
        )
    )
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert "df.wait_for_signal(name [, timeout])" in hover.contents.value
    assert "wait for a signal" in hover.contents.value
    _close(client, uri)


@pytest.mark.usefixtures("client")
async def test_completion_after_a_dollar_offers_the_names_bound_at_that_step(
    client: LanguageClient,
) -> None:
    path = EXAMPLES / "order_approval.df"
    text = path.read_text()
    # Type `$` inside the SQL of the step that reads the late decision.
    needle = "SELECT ($late_decision::jsonb"
    edited = text.replace(needle, "SELECT $, ($late_decision::jsonb", 1)
    uri = await _open(client, path, edited)
    at = _position(edited, "SELECT $, ($late", len("SELECT $"))
    result = await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier(uri), at)
    )
    assert isinstance(result, types.CompletionList)
    labels = {i.label: i.detail for i in result.items}
    assert set(labels) == {"order", "decision", "late_decision"}
    assert labels["order"] == "bound on every path to this step"

    # After `$order.` the columns of the bound statement.
    edited2 = text.replace(needle, "SELECT $order., ($late_decision::jsonb", 1)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(version=2, uri=uri),
            [types.TextDocumentContentChangeWholeDocument(edited2)],
        )
    )
    at = _position(edited2, "$order., ($late", len("$order."))
    result = await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier(uri), at)
    )
    assert isinstance(result, types.CompletionList)
    assert [i.label for i in result.items] == ["id", "customer", "amount", "*"]

    # After `df.` the built-ins, as snippets.
    at = _position(edited2, "df.wait_for_signal", len("df."))
    result = await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier(uri), at)
    )
    assert isinstance(result, types.CompletionList)
    sleep = next(i for i in result.items if i.label == "sleep")
    assert sleep.insert_text == "sleep(${1:seconds})"
    assert sleep.insert_text_format == types.InsertTextFormat.Snippet
    _close(client, uri)


@pytest.mark.usefixtures("client")
async def test_partial_bindings_are_marked_in_completion(client: LanguageClient) -> None:
    text = (
        "('SELECT 1 AS a' |=> 'a' | 'SELECT 2 AS b' |=> 'b') ~> 'SELECT 3' |=> 'c'\n"
        "~> 'SELECT 4 WHERE true'\n"
    )
    path = EXAMPLES / "partial_demo.df"  # never written: the text comes from the editor
    uri = await _open(client, path, text)
    at = _position(text, "WHERE true", 0)
    result = await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier(uri), at)
    )
    assert isinstance(result, types.CompletionList)
    assert (
        list(result.items) == []
    )  # not after a `$`: built-ins and templates only in node positions
    edited = text.replace("WHERE true", "WHERE $", 1)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(version=2, uri=uri),
            [types.TextDocumentContentChangeWholeDocument(edited)],
        )
    )
    at = _position(edited, "WHERE $", len("WHERE $"))
    result = await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier(uri), at)
    )
    assert isinstance(result, types.CompletionList)
    assert [(i.label, i.insert_text) for i in result.items] == [
        ("c", None),
        ("a?", "a?"),
        ("b?", "b?"),
    ]
    _close(client, uri)


@pytest.mark.usefixtures("client")
async def test_formatting_gives_what_dfc_fmt_prints(client: LanguageClient) -> None:
    path = EXAMPLES / "payment_race.df"
    text = path.read_text()
    squeezed = text.replace("\n    ~> ", " ~> ").replace("    ", "  ")
    uri = await _open(client, path, squeezed)
    edits = await client.text_document_formatting_async(
        types.DocumentFormattingParams(
            types.TextDocumentIdentifier(uri), types.FormattingOptions(4, True)
        )
    )
    assert edits is not None and len(edits) == 1
    fmt = subprocess.run(
        [*DFC, "fmt", "-"], input=squeezed, capture_output=True, text=True, check=True
    ).stdout
    assert edits[0].new_text == fmt
    assert edits[0].range.start == types.Position(0, 0)
    _close(client, uri)


@pytest.mark.usefixtures("client")
async def test_rename_of_a_binding_changes_every_use(client: LanguageClient) -> None:
    path = EXAMPLES / "order_approval.df"
    text = path.read_text()
    uri = await _open(client, path)
    edit = await client.text_document_rename_async(
        types.RenameParams(
            types.TextDocumentIdentifier(uri), _position(text, "$decision::", 2), "verdict"
        )
    )
    assert edit is not None and edit.changes is not None
    edits = edit.changes[uri]
    assert len(edits) == text.count("$decision") + text.count("'decision'")
    expected = text.replace("$decision", "$verdict").replace("|=> 'decision'", "|=> 'verdict'")
    assert _apply(text, edits) == expected
    _close(client, uri)


def _apply(text: str, edits: list[types.TextEdit]) -> str:
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def off(p: types.Position) -> int:
        return starts[p.line] + p.character

    for e in sorted(edits, key=lambda e: off(e.range.start), reverse=True):
        text = text[: off(e.range.start)] + e.new_text + text[off(e.range.end) :]
    return text


@pytest.mark.usefixtures("client")
async def test_symbols_folding_and_semantic_tokens(client: LanguageClient) -> None:
    path = EXAMPLES / "embed_documents.df"
    uri = await _open(client, path)
    ident = types.TextDocumentIdentifier(uri)
    syms = await client.text_document_document_symbol_async(types.DocumentSymbolParams(ident))
    assert syms is not None
    names = [s.name for s in syms if isinstance(s, types.DocumentSymbol)]
    assert names == ["api_url", "batch_size", "with_backoff", "embed-documents"]
    workflow = syms[-1]
    assert isinstance(workflow, types.DocumentSymbol) and workflow.children is not None
    assert [c.name for c in workflow.children] == ["batch", "emb"]

    folds = await client.text_document_folding_range_async(types.FoldingRangeParams(ident))
    assert folds is not None
    assert types.FoldingRange(0, 11, kind=types.FoldingRangeKind.Comment) in folds

    tokens = await client.text_document_semantic_tokens_full_async(
        types.SemanticTokensParams(ident)
    )
    assert tokens is not None and len(tokens.data) % 5 == 0 and tokens.data
    _close(client, uri)


@pytest.mark.usefixtures("client")
async def test_a_2000_node_file_stays_responsive(client: LanguageClient) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from bench.check import generate
    finally:
        sys.path.remove(str(ROOT))
    text = generate(650)  # about 2,000 plan nodes (bench/check.py)
    path = EXAMPLES / "big_generated.df"
    uri = path.resolve().as_uri()
    t0 = time.perf_counter()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "dfc", 1, text))
    )
    got = await _diagnostics_of(client, uri)
    opened = time.perf_counter() - t0
    assert not [d for d in got if d.severity == types.DiagnosticSeverity.Error]
    # A hover while the file is open is answered from the analysis already made.
    t0 = time.perf_counter()
    hover = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), _position(text, "'SELECT $r", 9))
    )
    hovered = time.perf_counter() - t0
    assert hover is not None
    at = _position(text, "'SELECT $r", len("'SELECT $r"))
    t0 = time.perf_counter()
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(version=2, uri=uri),
            [types.TextDocumentContentChangePartial(types.Range(at, at), "x")],
        )
    )
    got = await _diagnostics_of(client, uri)
    changed = time.perf_counter() - t0
    assert [d.code for d in got if d.severity == types.DiagnosticSeverity.Error] == ["DFC201"]
    print(
        f"\n2,000-node file: open→diagnostics {opened * 1000:.0f} ms, hover {hovered * 1000:.0f} ms, "
        f"typo→diagnostics {changed * 1000:.0f} ms"
    )
    _close(client, uri)
