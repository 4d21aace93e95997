"""``dfc lsp``: the language server for ``.df`` files (editors: docs/editors.md).

It reuses the front end as it is — the parser, the checker and the printer — so an editor shows
exactly what ``dfc check`` reports and formats as ``dfc fmt`` does:

- `document` — one analysed text: the compilation and an index of where each name (binding,
  param, template, import) is defined and used;
- `features` — the answers (diagnostics, definition, references, hover, completion, formatting,
  rename, symbols, folding, semantic tokens), computed from a document;
- `positions` — character offsets ↔ protocol positions;
- `server` — pygls wiring over stdio, with debounced checks in a worker thread.

pygls and lsprotocol are the optional extra ``dfc[lsp]``; nothing else imports this package.
"""
