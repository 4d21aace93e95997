"""The VS Code extension in editors/vscode: its TextMate grammar, tokenised by Node with
vscode-textmate and vscode-oniguruma (editors/vscode/test/grammar.test.js asserts the scopes),
and the extension folder packaged with ``vsce package``.

Both need Node and the extension's npm packages (``npm ci`` in editors/vscode, which
``.ci/run`` does); without Node they are skipped, without the packages they fail and say so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

EXTENSION = Path(__file__).resolve().parents[2] / "editors" / "vscode"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="Node is not installed")


def _node(*args: str) -> subprocess.CompletedProcess[str]:
    assert NODE is not None
    if not (EXTENSION / "node_modules").is_dir():
        pytest.fail("the extension's npm packages are missing: run `npm ci` in editors/vscode")
    return subprocess.run(
        [NODE, *args],
        cwd=EXTENSION,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=240,
        check=False,
    )


def test_the_textmate_grammar_gives_the_expected_scopes() -> None:
    result = _node("--test", "test/grammar.test.js")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout


def test_the_grammar_is_the_one_the_extension_declares() -> None:
    manifest = json.loads((EXTENSION / "package.json").read_text())
    (grammar,) = manifest["contributes"]["grammars"]
    data = json.loads((EXTENSION / grammar["path"]).read_text())
    assert data["scopeName"] == grammar["scopeName"] == "source.dfc"
    assert manifest["contributes"]["languages"][0]["extensions"] == [".df"]


def test_the_extension_packages_with_vsce(tmp_path: Path) -> None:
    out = tmp_path / "dfc.vsix"
    result = _node(
        "node_modules/@vscode/vsce/vsce",
        "package",
        "--out",
        str(out),
        "--skip-license",
        "--allow-missing-repository",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    names = set(zipfile.ZipFile(out).namelist())
    assert {
        "extension/package.json",
        "extension/extension.js",
        "extension/language-configuration.json",
        "extension/syntaxes/df.tmLanguage.json",
        "extension/node_modules/vscode-languageclient/node.js",
    } <= names
    assert not any(n.startswith("extension/test/") for n in names)
