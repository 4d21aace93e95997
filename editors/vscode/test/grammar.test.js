// Tokenises representative lines of .df text with the TextMate grammar, as VS Code does
// (vscode-textmate + vscode-oniguruma), and checks the scopes of their pieces.
// Run: node --test test/  (tests/lsp/test_grammar.py runs it from pytest).
"use strict";

const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const test = require("node:test");
const oniguruma = require("vscode-oniguruma");
const textmate = require("vscode-textmate");

const root = path.join(__dirname, "..");

async function loadGrammar() {
  const wasm = fs.readFileSync(path.join(root, "node_modules/vscode-oniguruma/release/onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new textmate.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (sources) => new oniguruma.OnigScanner(sources),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    // Only dfc's grammar: the embedded source.sql is VS Code's, absent here.
    loadGrammar: async (scopeName) => {
      if (scopeName !== "source.dfc") return null;
      const file = path.join(root, "syntaxes/df.tmLanguage.json");
      return textmate.parseRawGrammar(fs.readFileSync(file, "utf8"), file);
    },
  });
  return registry.loadGrammar("source.dfc");
}

// The scopes of each token of `lines`, as [text, scopes] pairs.
function tokenize(grammar, lines) {
  let state = textmate.INITIAL;
  const out = [];
  for (const line of lines) {
    const r = grammar.tokenizeLine(line, state);
    for (const t of r.tokens) out.push([line.slice(t.startIndex, t.endIndex), t.scopes]);
    state = r.ruleStack;
  }
  return out;
}

// The scopes of the first token whose text is `text`.
function scopesOf(tokens, text) {
  const found = tokens.find(([t]) => t === text);
  assert.ok(found, `no token ${JSON.stringify(text)} in ${JSON.stringify(tokens.map(([t]) => t))}`);
  return found[1];
}

function has(tokens, text, scope) {
  const scopes = scopesOf(tokens, text);
  assert.ok(scopes.includes(scope), `${JSON.stringify(text)} has ${scopes.join(" ")}, not ${scope}`);
}

test("grammar", async (t) => {
  const grammar = await loadGrammar();

  await t.test("declarations", () => {
    const tokens = tokenize(grammar, [
      "param batch_size int = 500;",
      "def with_backoff(step, n = 5) = df.retry(step, attempts => n);",
      "import 'std/batch';",
    ]);
    has(tokens, "param", "keyword.other.param.dfc");
    has(tokens, "batch_size", "variable.parameter.declaration.dfc");
    has(tokens, "int", "storage.type.dfc");
    has(tokens, "def", "keyword.other.def.dfc");
    has(tokens, "with_backoff", "entity.name.function.template.dfc");
    has(tokens, "retry", "support.function.builtin.dfc");
    has(tokens, "attempts", "variable.parameter.named-argument.dfc");
    has(tokens, "import", "keyword.other.import.dfc");
    has(tokens, "std/batch", "string.quoted.single.dfc");
    has(tokens, "500", "constant.numeric.dfc");
  });

  await t.test("SQL in a string literal is embedded SQL, with references", () => {
    const tokens = tokenize(grammar, [
      "'SELECT id FROM t WHERE n < {limit} AND id = $batch.id' |=> 'rows'",
    ]);
    has(tokens, "SELECT id FROM t WHERE n < ", "meta.embedded.sql.dfc");
    has(tokens, "SELECT id FROM t WHERE n < ", "string.quoted.single.sql.dfc");
    has(tokens, "{limit}", "variable.parameter.reference.dfc");
    has(tokens, "$batch.id", "variable.other.reference.dfc");
    has(tokens, "$batch.id", "meta.embedded.sql.dfc");
    has(tokens, "|=>", "keyword.operator.bind.dfc");
    has(tokens, "rows", "entity.name.variable.binding.dfc");
  });

  await t.test("dollar quotes hold embedded SQL over several lines", () => {
    const tokens = tokenize(grammar, [
      "~> $sql$",
      "UPDATE orders SET status = 'x' WHERE id = $order.id",
      "$sql$ ~> df.sleep(5)",
    ]);
    has(tokens, "~>", "keyword.operator.sequence.dfc");
    has(tokens, "$sql$", "punctuation.definition.string.begin.dfc");
    has(tokens, "$order.id", "variable.other.reference.dfc");
    const update = tokens.find(([text]) => text.startsWith("UPDATE"));
    assert.ok(update[1].includes("meta.embedded.sql.dfc"), update[1].join(" "));
    has(tokens, "sleep", "support.function.builtin.dfc");
    has(tokens, "5", "constant.numeric.dfc");
    // After the closing tag the line is dfc again.
    assert.ok(!scopesOf(tokens, "sleep").includes("meta.embedded.sql.dfc"));
  });

  await t.test("operators, constants, comments and template calls", () => {
    const tokens = tokenize(grammar, [
      "-- a comment",
      "('SELECT 1' & 'SELECT 2') | df.wait_for_signal('go', NULL) /* nested /* c */ */",
      "~> 'SELECT true' ?> drain('t') !> @> df.break()",
      "~> 'a' <-> 'b'",
    ]);
    has(tokens, "-- a comment", "comment.line.double-dash.dfc");
    has(tokens, "&", "keyword.operator.join.dfc");
    has(tokens, "|", "keyword.operator.race.dfc");
    has(tokens, "NULL", "constant.language.dfc");
    // Block comments nest, as in PostgreSQL: all of `/* nested /* c */ */` is comment.
    const from = tokens.findIndex(([text]) => text === "/*");
    const to = tokens.findIndex(([text]) => text === "~>");
    for (const [text, scopes] of tokens.slice(from, to)) {
      assert.ok(scopes.includes("comment.block.dfc"), `${JSON.stringify(text)}: ${scopes.join(" ")}`);
    }
    has(tokens, "?>", "keyword.operator.then.dfc");
    has(tokens, "!>", "keyword.operator.else.dfc");
    has(tokens, "@>", "keyword.operator.loop.dfc");
    has(tokens, "<->", "keyword.operator.undo.dfc");
    has(tokens, "drain", "entity.name.function.call.dfc");
    has(tokens, "go", "string.quoted.single.dfc");
  });

  await t.test("doubled quotes stay inside the literal", () => {
    const tokens = tokenize(grammar, ["'SELECT ''it''''s'' AS s' ~> df.sleep(1)"]);
    has(tokens, "sleep", "support.function.builtin.dfc");
    assert.ok(!scopesOf(tokens, "sleep").some((s) => s.startsWith("string")));
  });
});
