"""Character offsets (what spans hold) ↔ LSP positions (line and column in the client's units).

A client counts columns in UTF-16 code units unless it agreed to another encoding; a span counts
characters. Lines end at ``\\n`` as in `dfc.source.SourceFile` (a ``\\r`` before it is part of the
line's text, which changes no column before it).
"""

from __future__ import annotations

import bisect

from lsprotocol import types

from dfc.source import Span


class Positions:
    """Converts between offsets into ``text`` and positions in ``encoding`` units."""

    def __init__(self, text: str, encoding: str = types.PositionEncodingKind.Utf16) -> None:
        self.text = text
        self.encoding = encoding
        self.starts = [0]
        for i, ch in enumerate(text):
            if ch == "\n":
                self.starts.append(i + 1)

    def _width(self, s: str) -> int:
        if s.isascii() or self.encoding == types.PositionEncodingKind.Utf32:
            return len(s)
        if self.encoding == types.PositionEncodingKind.Utf8:
            return len(s.encode("utf-8", errors="surrogatepass"))
        return len(s) + sum(1 for ch in s if ord(ch) > 0xFFFF)

    def position(self, offset: int) -> types.Position:
        """The position of a character offset."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self.starts, offset) - 1
        return types.Position(line, self._width(self.text[self.starts[line] : offset]))

    def offset(self, pos: types.Position) -> int:
        """The character offset of a position (clamped to its line and to the text)."""
        if pos.line >= len(self.starts):
            return len(self.text)
        start = self.starts[pos.line]
        end = self.starts[pos.line + 1] - 1 if pos.line + 1 < len(self.starts) else len(self.text)
        line = self.text[start:end]
        if line.isascii() or self.encoding == types.PositionEncodingKind.Utf32:
            return start + min(pos.character, len(line))
        units = 0
        for i, ch in enumerate(line):
            if units >= pos.character:
                return start + i
            units += self._width(ch)
        return end

    def range(self, start: int, end: int) -> types.Range:
        """The range of the characters ``[start, end)``."""
        return types.Range(self.position(start), self.position(end))

    def span_range(self, span: Span) -> types.Range:
        """The range of a span of this text."""
        return self.range(span.start, span.end)
