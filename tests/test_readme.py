"""The README's test command is what CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Tests", 1)[1]
    command = re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci_lines
    assert "torch==2.13.0" in command


def _readme_commands(text: str) -> list[list[str]]:
    """Every ``emotion2vec ...`` command of the bash blocks of a Markdown text, as argv
    (continuations joined, comments dropped; ``a|b`` alternatives and ``<placeholders>`` become
    their first alternative and a dummy value)."""
    import shlex

    commands = []
    for block in re.findall(r"```bash\n(.+?)\n```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        loop_vars = dict(re.findall(r"for (\w+) in (\S+)", joined))  # $v -> its first value
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            for name, first in loop_vars.items():
                line = line.replace(f"${name}", first)
            if not line.startswith("emotion2vec "):
                continue
            line = re.sub(r"<[^>]+>", "X", line)
            line = re.sub(r"\s\|\s.*$", "", line)  # "--model A | --model B": keep the first
            argv = [tok.split("|", 1)[0] for tok in shlex.split(line)[1:]]
            commands.append(argv)
    return commands


def test_readme_and_docs_commands_parse():
    """Every documented command line names options that exist."""
    from emotion2vec.cli import build_parser

    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    seen = 0
    for path in texts:
        for argv in _readme_commands(path.read_text(encoding="utf-8")):
            try:
                build_parser().parse_args(argv)
            except SystemExit as exc:  # argparse's way of failing
                raise AssertionError(f"{path.name}: emotion2vec {' '.join(argv)}") from exc
            seen += 1
    assert seen >= 20
