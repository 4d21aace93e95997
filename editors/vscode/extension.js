// The dfc extension: .df files get the TextMate grammar (package.json) and the language
// server `dfc lsp`, started over stdio with the command of the setting `dfc.server.command`.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("dfc").get("server.command", ["dfc", "lsp"]);
  const serverOptions = {
    command: command[0],
    args: command.slice(1),
    transport: TransportKind.stdio,
  };
  const clientOptions = {
    documentSelector: [{ language: "dfc" }],
  };
  client = new LanguageClient("dfc", "dfc language server", serverOptions, clientOptions);
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
