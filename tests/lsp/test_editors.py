"""The VS Code extension in editors/vscode: its TextMate grammar, tokenised by Node with
vscode-textmate and vscode-oniguruma (editors/vscode/test/grammar.test.js asserts the scopes),
and the extension folder packaged with ``vsce package``.

Both need Node and the extension's npm packages: the first test that needs them runs ``npm ci``
in editors/vscode when they are missing (from the committed lock file, so the README's test
command needs no step of its own); without Node the tests are skipped.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

EXTENSION = Path(__file__).resolve().parents[2] / "editors" / "vscode"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="Node is not installed")


def _npm_ci() -> None:
    """Install the extension's npm packages once (a lock keeps parallel test workers from
    installing them at the same time)."""
    with open(EXTENSION / ".npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (EXTENSION / "node_modules" / ".package-lock.json").is_file():
            return
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is missing: install Node with npm, or run `npm ci` in editors/vscode")
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=EXTENSION,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, f"npm ci in editors/vscode failed:\n{result.stderr}"


def _node(*args: str) -> subprocess.CompletedProcess[str]:
    assert NODE is not None
    _npm_ci()
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
