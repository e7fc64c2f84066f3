"""Every ``hgc`` command written in the README and the reports' READMEs parses with today's CLI.

Documentation rots when a flag is renamed; this parses each documented command line (fenced code blocks,
continuation lines joined, ``&&``/``;``/``|`` chains split, environment assignments dropped) with the real
parser, so a renamed or removed option fails here. What the commands do is tested by the modules they call.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from compress.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "reports").glob("*/README.md"))]
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)
ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")


def _tokens(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, "#"
    return list(lexer)


def documented_commands(text: str) -> list[str]:
    """``hgc …`` command lines in the fenced blocks of a markdown text."""
    found = []
    for block in FENCE.findall(text):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            if not re.search(r"(^|[\s;&|(])hgc\s", line):
                continue
            words: list[str] = []
            for token in [*_tokens(line), ";"]:
                if token in ("&&", "||", ";", "|", "&", "(", ")"):
                    while words and ENV.match(words[0]):
                        words = words[1:]
                    if words[:1] == ["hgc"] and not (len(words) > 1 and words[1].endswith(":")):  # not output
                        found.append(shlex.join(words))
                    words = []
                else:
                    words.append(token)
    return found


CASES = [(doc.relative_to(ROOT).as_posix(), cmd) for doc in DOCS for cmd in documented_commands(doc.read_text())]


def test_the_readme_documents_commands() -> None:
    assert sum(doc == "README.md" for doc, _ in CASES) >= 10


@pytest.mark.parametrize(("doc", "command"), CASES, ids=[f"{d}:{i}" for i, (d, _) in enumerate(CASES)])
def test_documented_command_parses(doc: str, command: str) -> None:
    parser = build_parser()
    try:
        args = parser.parse_args(shlex.split(command)[1:])
    except SystemExit as exc:
        pytest.fail(f"{doc}: `{command}` does not parse (exit {exc.code})")
    assert callable(args.run)


def test_extraction_joins_continuations_splits_chains_and_skips_output() -> None:
    text = ("```bash\nOMP_NUM_THREADS=1 hgc sweep a.yaml \\\n    b.yaml --jobs 2 && hgc report runs -o r  # note\n"
            "hgc run: error: something\npip install x | hgc nope\n```\n")
    assert documented_commands(text) == ["hgc sweep a.yaml b.yaml --jobs 2", "hgc report runs -o r", "hgc nope"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["nope"])
