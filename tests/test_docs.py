"""The docs stay true: README.md and docs/*.md against the real program.

* Every ``livedance ...`` command line they show (fenced code and inline
  code) parses with the real argument parser (``livedance.cli.build_parser``).
  Synopsis lines (``[--flag X]``, ``a|b``, ``...``) are expanded: each
  optional group and each alternative is parsed on its own, placeholders
  (``SONG``, ``OUT.npz``, ``H:P``) get a sample value, and where ``...``
  stands for more arguments every flag named must still be one the
  command knows.
* Every setting named (``section.key`` in inline code, ``--set a.b=...``,
  keys of TOML snippets) exists in ``livedance config``'s output.
* Every relative link resolves, and its ``#anchor`` names a heading there.
* No tracked file holds an absolute path of the development machines.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import itertools
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from livedance.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: Sample values for the placeholders synopsis lines use.
PLACEHOLDERS = {
    "FILE": "song.wav",
    "SONG": "song.mp3",
    "DEV": "USB",
    "NAME_OR_INDEX": "USB",
    "S": "10",
    "N": "1",
    "K": "2",
    "MS": "80",
    "H:P": "127.0.0.1:9000",
    "HOST:PORT": "127.0.0.1:9000",
    "OUT": "out.npz",
    "OUT.npz": "out.npz",
    "OUT.mp4": "out.mp4",
    "P": "model.pt",
    "PATH": "model.pt",
    "CKPT": "model.pt",
    "DIR": "folder",
    "MOTION": "dance.npz",
    "NAME": "energy",
    "VALUE": "0.5",
    "WxH": "1920x1080",
    "COMMAND": "perform",
    "SCRATCH": "scratch.frames",
    "PORT": "port",
}
#: Inline ``a.b`` spans that are file names, not settings (``a.b`` where
#: ``a`` is an importable module, ``torch.load``, is Python, not a setting).
FILE_SUFFIXES = {
    "py", "pt", "npz", "bvh", "pkl", "toml", "json", "jsonl", "csv", "md", "mp4", "mp3", "wav", "ogg",
    "flac", "txt", "glsl", "frag", "vert", "state", "service", "sh", "png", "ini", "log", "frames",
}  # fmt: skip


@dataclass(frozen=True)
class Shown:
    """A piece of a page: where it is and what it says."""

    page: Path
    line: int
    text: str
    inline: bool = False  # inline code in a sentence, not a fenced block

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}: {self.text}"


# ---------------------------------------------------------------------------
# Reading the pages.


def fenced_blocks(page: Path) -> list[tuple[str, list[Shown]]]:
    """(language, lines) of each fenced code block."""
    blocks: list[tuple[str, list[Shown]]] = []
    lang, lines = None, []
    for i, line in enumerate(page.read_text().splitlines(), 1):
        if line.startswith("```"):
            if lang is None:
                lang, lines = line[3:].strip(), []
            else:
                blocks.append((lang, lines))
                lang = None
        elif lang is not None:
            lines.append(Shown(page, i, line))
    return blocks


def prose(page: Path) -> str:
    """The page with fenced blocks blanked out (line numbers kept)."""
    out, fenced = [], False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
            out.append("")
        else:
            out.append("" if fenced else line)
    return "\n".join(out)


def inline_code(page: Path) -> list[Shown]:
    """Inline code spans (they may wrap over lines), with ``\\|`` unescaped."""
    text = prose(page)
    spans = []
    for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", text):
        body = re.sub(r"\s+", " ", m.group(1)).strip().replace("\\|", "|")
        spans.append(Shown(page, text.count("\n", 0, m.start()) + 1, body, inline=True))
    return spans


def command_lines(pages: list[Path]) -> list[Shown]:
    """Every ``livedance`` command line shown, from its arguments on."""
    found = []
    for page in pages:
        for lang, lines in fenced_blocks(page):
            if lang not in ("", "sh", "bash", "console", "shell", "ini"):
                continue
            for line in lines:
                text = re.sub(r"^\s*\$ ", "", line.text)
                for cmd in _commands_in(text):
                    found.append(Shown(page, line.line, cmd))
        for span in inline_code(page):
            if span.text.startswith("livedance "):
                found.append(span)
    return found


def _commands_in(text: str) -> list[str]:
    """The livedance invocations on one shell line, cut at comments and pipes."""
    text = re.split(r"\s#", " " + text, maxsplit=1)[0]
    out = []
    for m in re.finditer(r"(?:(?:^|\s)(?:\S*/)?|=\S*/)livedance(?:\s+|$)|-m\s+livedance\.cli\s+", text):
        rest = text[m.end():]
        rest = re.split(r"\s(?:\||&&|;|>|<|--(?=\s|$))", " " + rest, maxsplit=1)[0]
        out.append("livedance " + rest.strip())
    return out


# ---------------------------------------------------------------------------
# Synopsis lines -> concrete lines.


def _groups(text: str) -> list[str | list]:
    """Parse ``[...]`` nesting into a tree: strings and lists (optional groups).

    Brackets inside quotes, or right after a word (``cuda[:N]``), are text."""
    stack: list[list] = [[]]
    token, quote, literal = "", "", 0
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "[" and re.search(r"[\w:]$", token):
            literal += 1
        elif ch == "]" and literal:
            literal -= 1
        elif ch in "[]":
            if token.strip():
                stack[-1].append(token)
            token = ""
            if ch == "[":
                stack.append([])
            else:
                group = stack.pop()
                stack[-1].append(group)
            continue
        token += ch
    if token.strip():
        stack[-1].append(token)
    assert len(stack) == 1, f"unbalanced brackets in {text!r}"
    return stack[0]


def _alternatives(text: str) -> list[str]:
    """``a | b`` at this level, and ``x|y`` inside one word, as separate choices."""
    choices = [c.strip() for c in re.split(r"\s\|\s", text)]
    out = []
    for choice in choices:
        words = [w.split("|") for w in choice.split()]
        out += [" ".join(ws) for ws in itertools.product(*words)]
    return out


def _variants(tree: list[str | list]) -> list[str]:
    """Concrete lines: the required part alone, then with each optional group."""

    def flat(items: list[str | list], include: list | None) -> list[str]:
        parts: list[list[str]] = []
        for item in items:
            if isinstance(item, str):
                parts.append([item])
            elif item is include:
                parts.append(_variants(item))
            else:
                parts.append([""])
        return [" ".join(p.strip() for p in combo if p.strip()) for combo in itertools.product(*parts)]

    optional = [item for item in tree if isinstance(item, list)]
    lines = flat(tree, None)
    for group in optional:
        lines += flat(tree, group)
    out = []
    for line in lines:
        out += _alternatives(line) if line else [""]
    return list(dict.fromkeys(out))


def concrete(line: str) -> list[list[str]]:
    """Argument lists to parse for one shown line (without the leading ``livedance``)."""
    args = line.split(" ", 1)[1] if " " in line else ""
    unquoted = re.sub(r"'[^']*'|\"[^\"]*\"", "", args)
    if "[" not in unquoted and "|" not in unquoted:
        return [[PLACEHOLDERS.get(t, t) for t in shlex.split(args)]]
    return [[PLACEHOLDERS.get(t, t) for t in shlex.split(v)] for v in _variants(_groups(args))]


# ---------------------------------------------------------------------------
# The parser.


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return build_parser()


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def parse_error(parser: argparse.ArgumentParser, args: list[str]) -> str | None:
    """None if ``args`` parse (``--help`` included), else argparse's message."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(args)
        except SystemExit as exc:
            return None if exc.code == 0 else err.getvalue().strip().splitlines()[-1]
    return None


def unknown_flags(parser: argparse.ArgumentParser, args: list[str]) -> list[str]:
    """Flags in ``args`` the command they belong to does not know (for ``...`` lines)."""
    current, known, bad = parser, _options(parser), []
    for tok in args:
        if tok in _subparsers(current):
            current = _subparsers(current)[tok]
            known |= _options(current)
        elif tok.startswith("-") and not re.fullmatch(r"-\d.*", tok) and tok.split("=")[0] not in known:
            bad.append(tok)
    if current is parser:
        bad.append(f"command: none of {args} is one")
    return bad


def check_command(parser: argparse.ArgumentParser, shown: Shown) -> list[str]:
    """Problems with one shown line. Inline code may name a command in a
    sentence ("`livedance eval` scores ...") and leave out its required
    arguments; a fenced line must parse whole."""
    problems = []
    for args in concrete(shown.text):
        if "..." in args:
            bad = unknown_flags(parser, [a for a in args if a != "..."])
            problems += [f"{shown}: unknown {b}" for b in bad]
        else:
            msg = parse_error(parser, args)
            if msg and shown.inline and "arguments are required" in msg:
                problems += [f"{shown}: unknown {b}" for b in unknown_flags(parser, args)]
            elif msg:
                problems.append(f"{shown}: `livedance {shlex.join(args)}` -> {msg}")
    return problems


def test_synopsis_expansion():
    """The expander itself: optional groups one at a time, alternatives apart."""
    got = _variants(_groups("perform [--input FILE | --device DEV] [--osc [H:P]] [--window | --no-window]"))
    assert got == [
        "perform",
        "perform --input FILE",
        "perform --device DEV",
        "perform --osc",
        "perform --osc H:P",
        "perform --window",
        "perform --no-window",
    ]
    assert _variants(_groups("bench beats|engine [--json]")) == [
        "bench beats", "bench engine", "bench beats --json", "bench engine --json",
    ]  # fmt: skip
    assert _commands_in('ExecStart=%h/x/.venv/bin/livedance --set a.b="c" perform --kiosk') == [
        'livedance --set a.b="c" perform --kiosk'
    ]
    assert _commands_in("xinit /p/.venv/bin/livedance perform --kiosk -- :0") == ["livedance perform --kiosk"]
    assert _commands_in("livedance config > my.toml   # every setting") == ["livedance config"]


def test_every_documented_command_line_parses(parser):
    shown = command_lines(PAGES)
    assert len(shown) > 50, "the pages show fewer livedance commands than expected: is the extraction broken?"
    problems = [p for s in shown for p in check_command(parser, s)]
    assert not problems, "documented command lines the parser refuses:\n" + "\n".join(problems)


def test_a_wrong_flag_in_the_docs_is_caught(parser):
    """The check can fail: the same machinery refuses what the parser refuses."""
    bad = [
        "livedance perform --fulscreen",
        "livedance perform [--seconds S] [--latencyy MS]",
        "livedance dance SONG --video OUT.mp4",  # -o is required
        "livedance bench beats|enigne --json",
        "livedance train units ... --outt CKPT",
        "livedance --set engine.fps=30 perfrom",
    ]
    for text in bad:
        assert check_command(parser, Shown(ROOT / "README.md", 0, text)), text


# ---------------------------------------------------------------------------
# Settings.


@pytest.fixture(scope="module")
def settings_keys() -> set[str]:
    """``section.key`` of every setting ``livedance config`` prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["config"]) == 0
    keys, section = set(), None
    for line in out.getvalue().splitlines():
        if m := re.fullmatch(r"\[(\w+)\]", line.strip()):
            section = m.group(1)
        elif m := re.match(r"#?\s*(\w+) = ", line):
            keys.add(f"{section}.{m.group(1)}")
    assert len(keys) > 50
    return keys


def named_settings(pages: list[Path]) -> list[Shown]:
    """Settings the pages name: ``--set a.b=``, TOML keys, ``a.b`` inline code."""
    found = []
    for page in pages:
        text = page.read_text()
        for m in re.finditer(r"--set\s+['\"]?([a-z_]+\.[a-z0-9_]+)=", text):
            found.append(Shown(page, text.count("\n", 0, m.start()) + 1, m.group(1)))
        for lang, lines in fenced_blocks(page):
            if lang != "toml":
                continue
            section = None
            for line in lines:
                if m := re.fullmatch(r"\[(\w+)\]", line.text.strip()):
                    section = m.group(1)
                elif (m := re.match(r"#?\s*(\w+)\s*=", line.text)) and section:
                    found.append(Shown(page, line.line, f"{section}.{m.group(1)}"))
        for span in inline_code(page):
            m = re.fullmatch(r"([a-z_]+)\.([a-z_][a-z0-9_]*)(?:\s*=.*)?", span.text)
            if m and m.group(2) not in FILE_SUFFIXES and importlib.util.find_spec(m.group(1)) is None:  # torch.load
                found.append(Shown(page, span.line, f"{m.group(1)}.{m.group(2)}"))
    return found


def test_every_named_setting_exists(settings_keys):
    named = named_settings(PAGES)
    assert len(named) > 20, "the pages name fewer settings than expected: is the extraction broken?"
    missing = [str(s) for s in named if s.text not in settings_keys]
    assert not missing, "settings named in the docs that `livedance config` does not have:\n" + "\n".join(missing)


def test_a_wrong_setting_in_the_docs_is_caught(settings_keys, tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Use `engine.fsp` or\n\n```sh\nlivedance --set osc.unit=cm perform\n```\n")
    named = named_settings([page])
    assert sorted(s.text for s in named if s.text not in settings_keys) == ["engine.fsp", "osc.unit"]


# ---------------------------------------------------------------------------
# Links.


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose(page).splitlines():
        if m := re.match(r"#{1,6}\s+(.*)", line):
            s = slug(m.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            out.add(s if n == 0 else f"{s}-{n}")
    return out


def broken_links(pages: list[Path]) -> list[str]:
    bad = []
    for page in pages:
        text = prose(page)
        for m in re.finditer(r"!?\[[^\]]*\]\(([^)\s]+)\)", text):
            target = m.group(1)
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            where = f"{page.name}:{text.count(chr(10), 0, m.start()) + 1}: {target}"
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                bad.append(f"{where} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                bad.append(f"{where} (no heading #{anchor} in {dest.name})")
    return bad


def test_every_relative_link_resolves():
    assert not (bad := broken_links(PAGES)), "broken links:\n" + "\n".join(bad)


def test_a_broken_link_is_caught(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## Start here\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#start-here) [a](missing.md) [b](other.md#nowhere) [c](#top)\n")
    assert len(broken_links([page])) == 3


# ---------------------------------------------------------------------------
# No development-machine paths in the repository.

#: Absolute paths of the machines livedance is developed on: home folders,
#: the work tree, scratch. Built from parts so this file does not match itself.
_ROOTS = ["work", "root", "tmp", "home/[^/\\s]+", "Users/[^/\\s]+"]
DEV_PATH = re.compile("(?<![\\w}{.~$%-])/(?:" + "|".join(_ROOTS) + ")/[\\w.-]+")


def test_no_development_machine_paths_in_tracked_files():
    try:
        files = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
        ).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout ({exc})")
    hits = []
    for name in filter(None, files):
        path = ROOT / name.decode()
        if not path.is_file():
            continue
        text = path.read_bytes().decode("latin-1")
        hits += [f"{name.decode()}: {m.group(0)}" for m in DEV_PATH.finditer(text)]
    assert not hits, "absolute paths of the development machines in tracked files:\n" + "\n".join(hits[:40])


def test_the_path_pattern_catches_them():
    bad = ["see /" + "work/shared/data", "'/" + "root/x'", "/" + "home/ana/dance", "(/" + "tmp/vae/full.pt)"]
    good = ["/livedance/d{k}/root/pos", "livedance/d0/root/pos1", "~/dance-data", "%h/livedance/.venv", "/run/x"]
    assert all(DEV_PATH.search(t) for t in bad)
    assert not any(DEV_PATH.search(t) for t in good)
