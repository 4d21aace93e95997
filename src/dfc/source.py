"""Source files and spans: the positions every AST node, plan node and diagnostic carries.

A span is a half-open range of *character* offsets into one `SourceFile`. Lines and columns are
computed only when something is displayed, so spans stay cheap and exact.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class SourceFile:
    """The text of one input (a file, stdin, or a graph sent from SQL) and its display name."""

    name: str
    text: str
    _line_starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts = [0]
        for i, ch in enumerate(self.text):
            if ch == "\n":
                starts.append(i + 1)
        object.__setattr__(self, "_line_starts", tuple(starts))

    @classmethod
    def read(cls, path: str | Path) -> SourceFile:
        """Read a file as UTF-8 (a BOM is dropped); undecodable bytes become U+FFFD."""
        p = Path(path)
        text = p.read_bytes().decode("utf-8", errors="replace")
        if text.startswith("\ufeff"):
            text = text[1:]
        return cls(str(path), text)

    @property
    def stem(self) -> str:
        """The file name without directory and extension (the default workflow name)."""
        return Path(self.name).stem

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset; columns count characters."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    def line_text(self, line: int) -> str:
        """The text of a 1-based line without its newline."""
        start = self._line_starts[line - 1]
        end = self._line_starts[line] - 1 if line < len(self._line_starts) else len(self.text)
        return self.text[start:end]

    @property
    def line_count(self) -> int:
        return len(self._line_starts)

    def span(self, start: int, end: int) -> Span:
        """A span of this file."""
        return Span(self, start, end)


@dataclass(frozen=True, slots=True)
class Span:
    """Half-open character range ``[start, end)`` of a source file."""

    file: SourceFile = field(repr=False)
    start: int
    end: int

    @property
    def start_line_col(self) -> tuple[int, int]:
        return self.file.line_col(self.start)

    @property
    def end_line_col(self) -> tuple[int, int]:
        """1-based line/column just past the last character (an empty span ends where it starts)."""
        return self.file.line_col(self.end)

    @property
    def text(self) -> str:
        return self.file.text[self.start : self.end]

    def cover(self, other: Span) -> Span:
        """The smallest span containing both."""
        return Span(self.file, min(self.start, other.start), max(self.end, other.end))

    def at(self, start: int, end: int | None = None) -> Span:
        """A span of the same file at other offsets."""
        return Span(self.file, start, start if end is None else end)

    def to_dict(self) -> dict[str, object]:
        """The span as JSON-ready data (1-based lines and columns, 0-based offsets)."""
        line, col = self.start_line_col
        end_line, end_col = self.end_line_col
        return {
            "file": self.file.name,
            "line": line,
            "column": col,
            "end_line": end_line,
            "end_column": end_col,
            "start": self.start,
            "end": self.end,
        }

    def __str__(self) -> str:
        line, col = self.start_line_col
        return f"{self.file.name}:{line}:{col}"


@dataclass(frozen=True, slots=True)
class TextMap:
    """Maps each character of a decoded string value back to its offset in the file.

    A literal's value differs from its source text wherever escapes were decoded (``''``,
    ``E'\\n'``) or literals were concatenated across lines. The map stores the value as runs
    where value index and file offset advance together: ``runs[k] = (value_index, file_offset)``
    starts run k, which lasts until the next run starts.
    """

    runs: tuple[tuple[int, int], ...]
    length: int

    def offset(self, index: int) -> int:
        """File offset of value character ``index`` (``index == length`` maps just past the end)."""
        if not self.runs:
            return 0
        index = max(0, min(index, self.length))
        k = bisect.bisect_right(self.runs, (index, float("inf"))) - 1
        k = max(k, 0)
        value_start, file_start = self.runs[k]
        return file_start + (index - value_start)

    def span(self, file: SourceFile, start: int, end: int) -> Span:
        """The file span of value characters ``[start, end)``."""
        if end <= start:
            o = self.offset(start)
            return Span(file, o, o)
        return Span(file, self.offset(start), self.offset(end - 1) + 1)
