"""Runs a REAPER `ExecProcess` command line the way Windows would, on Linux, for the ReaScript tests.

`fake_cmd.py --exec FILE` reads the command line from FILE. A line that starts `cmd.exe ... /c`
runs the batch file it names with the rules of cmd.exe that the launcher relies on: `%%` and
`%ERRORLEVEL%` / `%~f0` expansion, `^` escapes outside double quotes (which toggle cmd's quote
state), redirections `>F`, `2>F`, `2>&1` outside quotes, `echo`, `move /y`, `@echo off` and the
self-deleting last line. Any other unescaped `&`, `|`, `<` or `>` is an error (cmd would split
the line there). The program of any other line, and of each batch line that runs one, gets its
arguments through CommandLineToArgvW's rules; a program that does not exist gives exit code
9009 and cmd's message, as on Windows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

NOT_FOUND = 9009  # cmd.exe's exit code for an unknown command
SELF_DELETE = '(goto) 2>nul & del "%~f0"'


def command_line_to_argv(line: str) -> list[str]:
    """CommandLineToArgvW's rules (2n backslashes + quote: n backslashes, toggle; 2n+1: n and a quote)."""
    args, cur, in_quotes, have, i = [], [], False, False, 0
    while i < len(line):
        c = line[i]
        if c == "\\":
            n = len(line[i:]) - len(line[i:].lstrip("\\"))
            if i + n < len(line) and line[i + n] == '"':
                cur.append("\\" * (n // 2))
                if n % 2:
                    cur.append('"')
                    i += n + 1
                else:
                    i += n
                continue
            cur.append("\\" * n)
            i += n
            continue
        if c == '"':
            in_quotes, have = not in_quotes, True
        elif c in " \t" and not in_quotes:
            if cur or have:
                args.append("".join(cur))
            cur, have = [], False
        else:
            cur.append(c)
        i += 1
    if cur or have:
        args.append("".join(cur))
    return args


def expand_percent(line: str, errorlevel: int, script: Path) -> str:
    def sub(m: re.Match) -> str:
        word = m.group(0)
        if word == "%%":
            return "%"
        if word.upper() == "%ERRORLEVEL%":
            return str(errorlevel)
        if word == "%~f0":
            return str(script)
        raise SystemExit(f"fake_cmd: unexpected variable {word} in {line!r}")

    return re.sub(r"%%|%~f0|%[A-Za-z_]+%", sub, line)


def parse_batch_line(line: str) -> tuple[str, dict[int, str]]:
    """The command text (carets removed outside quotes) and its redirections {handle: target}."""
    out, redirects, in_quotes, i = [], {}, False, 0
    while i < len(line):
        c = line[i]
        if in_quotes:
            out.append(c)
            in_quotes = c != '"'
            i += 1
            continue
        if c == "^":
            out.append(line[i + 1])
            i += 2
            continue
        if c == '"':
            in_quotes = True
            out.append(c)
            i += 1
            continue
        if c == ">":
            handle = 1
            if out and out[-1] in "12" and (len(out) == 1 or out[-2] == " "):
                handle = int(out.pop())
            i += 1
            while i < len(line) and line[i] == " ":
                i += 1
            if line[i] == "&":
                target, i = "&" + line[i + 1], i + 2
            elif line[i] == '"':
                end = line.index('"', i + 1)
                target, i = line[i + 1 : end], end + 1
            else:
                m = re.match(r"[^ ]+", line[i:])
                target, i = m.group(0), i + len(m.group(0))
            redirects[handle] = target
            continue
        if c in "&|<":
            raise SystemExit(f"fake_cmd: cmd would split the line at an unescaped {c!r}: {line!r}")
        out.append(c)
        i += 1
    return "".join(out).strip(), redirects


def open_target(target: str | None):
    if target is None or target.lower() == "nul":
        return subprocess.DEVNULL
    return open(target, "w", encoding="utf-8")


def run_program(text: str, stdout, stderr) -> int:
    argv = command_line_to_argv(text)
    if not Path(argv[0]).is_file():
        message = f"'{argv[0]}' is not recognized as an internal or external command,\n"
        if hasattr(stderr, "write"):
            stderr.write(message)
        return NOT_FOUND
    return subprocess.run(argv, stdout=stdout, stderr=stderr).returncode


def run_batch(script: Path) -> int:
    errorlevel = 0
    raw = script.read_bytes().decode("utf-8")
    assert raw.endswith("\r\n") and "\n" not in raw.replace("\r\n", ""), "a batch file uses CRLF line ends"
    for line in raw.split("\r\n"):
        if not line or line == "@echo off":
            continue
        if line == SELF_DELETE:
            script.unlink()
            break
        text, redirects = parse_batch_line(expand_percent(line, errorlevel, script))
        stdout = open_target(redirects.get(1))
        stderr = subprocess.STDOUT if redirects.get(2) == "&1" else open_target(redirects.get(2))
        try:
            if text.lower().startswith("echo "):
                assert hasattr(stdout, "write"), "echo to nowhere"
                stdout.write(text[5:] + "\n")
            elif text.lower().startswith("move /y "):
                src, dst = command_line_to_argv(text[8:])
                os.replace(src, dst)
                errorlevel = 0
            else:
                errorlevel = run_program(text, stdout, stderr)
        finally:
            for fh in (stdout, stderr):
                if hasattr(fh, "close"):
                    fh.close()
    return errorlevel


def main() -> int:
    line = Path(sys.argv[sys.argv.index("--exec") + 1]).read_text(encoding="utf-8")
    m = re.fullmatch(r'cmd\.exe /d /s /c ""(.+)""', line)
    if m:
        return run_batch(Path(m.group(1)))
    if line.lower().startswith("cmd"):
        raise SystemExit(f"fake_cmd: unexpected cmd.exe call {line!r}")
    return run_program(line, subprocess.DEVNULL, subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit(main())
