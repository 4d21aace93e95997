"""The language server: pygls over stdio, answering from `dfc.lsp.features`.

Each open document is analysed (`dfc.lsp.document.analyze`, which is ``dfc check``) when it
opens and, after edits stop for `DEBOUNCE` seconds, when it changes; the analysis runs in a
worker thread so that requests keep being answered while a large file is checked, and its
diagnostics are published only if no newer edit arrived meanwhile. A request about a document
uses its analysis when that is of the current text, and analyses the text first otherwise.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from dfc import __version__
from dfc.lsp import features
from dfc.lsp.document import Document, analyze
from dfc.lsp.positions import Positions

DEBOUNCE = 0.075
"""Seconds without edits before a changed document is checked again: one check per pause in
typing, not one per key, while diagnostics still follow within a fraction of a second."""


@dataclass(frozen=True, slots=True)
class _Analysed:
    text: str
    doc: Document
    pos: Positions


class DfcServer(LanguageServer):
    """The server and the analyses of its open documents."""

    def __init__(self) -> None:
        super().__init__("dfc", __version__)
        self.analysed: dict[str, _Analysed] = {}
        self.pending: dict[str, asyncio.Task[None]] = {}

    def _encoding(self) -> str:
        return str(self.workspace.position_encoding or types.PositionEncodingKind.Utf16)

    def analysis(self, uri: str) -> _Analysed:
        """The analysis of the document's current text (made now if the last one is older)."""
        text = self.workspace.get_text_document(uri).source
        done = self.analysed.get(uri)
        if done is None or done.text != text:
            done = self._analyse(uri, text)
        return done

    def _analyse(self, uri: str, text: str) -> _Analysed:
        done = _Analysed(text, analyze(text, _name(uri)), Positions(text, self._encoding()))
        self.analysed[uri] = done
        return done

    def schedule(self, uri: str, delay: float) -> None:
        """Check the document after ``delay`` seconds unless it changes again before."""
        old = self.pending.pop(uri, None)
        if old is not None:
            old.cancel()
        self.pending[uri] = asyncio.get_running_loop().create_task(self._publish(uri, delay))

    async def _publish(self, uri: str, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        document = self.workspace.get_text_document(uri)
        text, version = document.source, document.version
        done = await asyncio.to_thread(self._analyse, uri, text)
        current = self.workspace.get_text_document(uri)
        if current.source != text:
            return  # a newer edit has its own check coming
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(
                uri=uri, version=version, diagnostics=features.diagnostics(done.doc, done.pos)
            )
        )


def _name(uri: str) -> str:
    """The file name diagnostics and imports use: the path of a ``file:`` URI."""
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else f"<{uri}>"


def make_server() -> DfcServer:
    """A server with every feature registered."""
    server = DfcServer()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: DfcServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri, 0)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: DfcServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri, DEBOUNCE)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: DfcServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        task = ls.pending.pop(uri, None)
        if task is not None:
            task.cancel()
        ls.analysed.pop(uri, None)
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=[])
        )

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: DfcServer, params: types.DefinitionParams) -> list[types.Location]:
        a = ls.analysis(params.text_document.uri)
        return features.definition(a.doc, a.pos, a.pos.offset(params.position))

    @server.feature(types.TEXT_DOCUMENT_REFERENCES)
    def references(ls: DfcServer, params: types.ReferenceParams) -> list[types.Location]:
        a = ls.analysis(params.text_document.uri)
        return features.references(
            a.doc, a.pos, a.pos.offset(params.position), params.context.include_declaration
        )

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: DfcServer, params: types.HoverParams) -> types.Hover | None:
        a = ls.analysis(params.text_document.uri)
        return features.hover(a.doc, a.pos, a.pos.offset(params.position))

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=["$", ".", "{"]),
    )
    def completion(ls: DfcServer, params: types.CompletionParams) -> types.CompletionList:
        a = ls.analysis(params.text_document.uri)
        items = features.completion(a.doc, a.pos.offset(params.position))
        return types.CompletionList(is_incomplete=False, items=items)

    @server.feature(types.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls: DfcServer, params: types.DocumentFormattingParams) -> list[types.TextEdit]:
        a = ls.analysis(params.text_document.uri)
        return features.formatting(a.doc, a.pos)

    @server.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)
    def prepare_rename(ls: DfcServer, params: types.PrepareRenameParams) -> types.Range | None:
        a = ls.analysis(params.text_document.uri)
        return features.prepare_rename(a.doc, a.pos, a.pos.offset(params.position))

    @server.feature(types.TEXT_DOCUMENT_RENAME, types.RenameOptions(prepare_provider=True))
    def rename(ls: DfcServer, params: types.RenameParams) -> types.WorkspaceEdit | None:
        a = ls.analysis(params.text_document.uri)
        return features.rename(a.doc, a.pos, a.pos.offset(params.position), params.new_name)

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def symbols(ls: DfcServer, params: types.DocumentSymbolParams) -> list[types.DocumentSymbol]:
        a = ls.analysis(params.text_document.uri)
        return features.symbols(a.doc, a.pos)

    @server.feature(types.TEXT_DOCUMENT_FOLDING_RANGE)
    def folding(ls: DfcServer, params: types.FoldingRangeParams) -> list[types.FoldingRange]:
        a = ls.analysis(params.text_document.uri)
        return features.folding(a.doc, a.pos)

    @server.feature(
        types.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL,
        types.SemanticTokensLegend(
            token_types=features.TOKEN_TYPES, token_modifiers=features.TOKEN_MODIFIERS
        ),
    )
    def semantic_tokens(ls: DfcServer, params: types.SemanticTokensParams) -> types.SemanticTokens:
        a = ls.analysis(params.text_document.uri)
        return types.SemanticTokens(data=features.semantic_tokens(a.doc, a.pos))

    return server


def serve() -> None:
    """Run the server on standard input and output until the client exits."""
    make_server().start_io()
