"""Build `reaper_scripts/index.xml`, the ReaPack repository index, from the ReaScripts' headers.

One source for everything ReaPack shows: the version, changelog and file list come from the
headers of `DARC/darc_generate_drums.lua`, the download URLs from the repository URL in
pyproject.toml (`[project.urls] Repository`), so they cannot drift apart (`--check` runs in the
tests). ReaPack on macOS shows a package's "about" only as RTF, so the `@about` text is written
as RTF. `--local FILE` writes an index whose URLs point at this checkout (`file://`), for
installing through ReaPack without a published repository.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import tomllib
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from darc_bridge.audio.io import atomic_write
from darc_bridge.errors import InputError

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "reaper_scripts"
CATEGORY = "DARC"
MAIN = "darc_generate_drums.lua"
INDEX = SCRIPTS / "index.xml"
PYPROJECT = ROOT / "pyproject.toml"
BRANCH = "main"


def headers(path: Path) -> dict[str, str | list[str]]:
    """`-- @tag value` headers; multi-line tags (`@about`, `@changelog`, `@provides`) as lists."""
    tags: dict[str, str | list[str]] = {}
    current: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("--"):
            break
        m = re.match(r"^-- @(\w+)\s*(.*)$", line)
        if m:
            current = m.group(1)
            tags[current] = m.group(2).strip() if m.group(2).strip() else []
        elif current and isinstance(tags[current], list) and line.startswith("--   "):
            tags[current].append(line[5:])  # type: ignore[union-attr]
        else:
            current = None
    return tags


def rtf(paragraph_lines: list[str]) -> str:
    """Plain-text paragraphs (blank lines between them) as a small RTF document."""
    def esc(text: str) -> str:
        out = []
        for ch in text.replace("`", ""):
            if ch in "\\{}":
                out.append("\\" + ch)
            elif ord(ch) > 127:
                code = ord(ch)
                out.append(f"\\u{code if code < 32768 else code - 65536}?")
            else:
                out.append(ch)
        return "".join(out)

    paragraphs, cur = [], []
    for line in [*paragraph_lines, ""]:
        if line.strip():
            cur.append(line.strip())
        elif cur:
            paragraphs.append(" ".join(cur))
            cur = []
    body = "\\par\\par ".join(esc(p) for p in paragraphs)
    return "{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0\\fswiss Helvetica;}}\\f0\\fs20 " + body + "\\par}"


def repository_url(pyproject: Path = PYPROJECT) -> str:
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    url = data.get("project", {}).get("urls", {}).get("Repository", "")
    if not re.match(r"^https://\S+[^/]$", url):
        raise InputError(f"{pyproject}: [project.urls] Repository must be the repository's https URL, got {url!r}")
    return url


def raw_url(repository: str, rel: str) -> str:
    """The download URL of a file in the repository (GitHub/GitLab/Codeberg style raw links)."""
    if "gitlab" in repository:
        return f"{repository}/-/raw/{BRANCH}/{rel}"
    return f"{repository}/raw/{BRANCH}/{rel}"


def build_index(repository: str, url_for=None) -> str:
    """The index XML text; `url_for(rel)` gives each file's download URL (default: raw links)."""
    url_for = url_for or (lambda rel: raw_url(repository, rel))
    main = SCRIPTS / CATEGORY / MAIN
    tags = headers(main)
    for required in ("description", "version", "author", "about", "provides", "changelog"):
        if required not in tags:
            raise InputError(f"{main}: the ReaPack header @{required} is missing")
    provided = [re.match(r"^\[(main|nomain)\] (\S+)$", p.strip()) for p in tags["provides"]]  # type: ignore[union-attr]
    if not all(provided):
        raise InputError(f"{main}: each @provides line must be '[main] FILE' or '[nomain] FILE'")
    files = [(None, MAIN, "main"), *((m.group(2), m.group(2), m.group(1)) for m in provided if m)]
    for _attr, name, _kind in files:
        if not (SCRIPTS / CATEGORY / name).is_file():
            raise InputError(f"{main}: @provides names {name}, which does not exist")
    sources = []
    for file_attr, name, kind in files:
        attrs = (' main="main"' if kind == "main" else "") + (f" file={quoteattr(file_attr)}" if file_attr else "")
        sources.append(f"        <source{attrs}>{escape(url_for(f'reaper_scripts/{CATEGORY}/{name}'))}</source>")
    changelog = "\n".join(tags["changelog"]) if isinstance(tags["changelog"], list) else tags["changelog"]
    about = tags["about"] if isinstance(tags["about"], list) else [tags["about"]]
    return "\n".join([
        '<?xml version="1.0" encoding="utf-8"?>',
        "<!-- ReaPack repository index for the DARC ReaScripts. Generated from the scripts' headers by",
        "     `python -m darc_bridge.daw.reapack`: do not edit by hand (tests/test_reaper.py checks it). -->",
        '<index version="1" name="darc-bridge">',
        f"  <category name={quoteattr(CATEGORY)}>",
        f'    <reapack name="{MAIN}" type="script" desc={quoteattr(str(tags["description"]))}>',
        "      <metadata>",
        f"        <description><![CDATA[{rtf(about)}]]></description>",
        f'        <link rel="website">{escape(repository)}</link>',
        "      </metadata>",
        f'      <version name={quoteattr(str(tags["version"]))} author={quoteattr(str(tags["author"]))}>',
        f"        <changelog><![CDATA[{changelog}]]></changelog>",
        *sources,
        "      </version>",
        "    </reapack>",
        "  </category>",
        "</index>",
        "",
    ])


def write(path: Path, text: str) -> Path:
    def _write(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    return atomic_write(path, _write, overwrite=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m darc_bridge.daw.reapack", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if index.xml does not match the scripts")
    parser.add_argument("--local", type=Path, metavar="FILE",
                        help="write an index with file:// URLs into this checkout (install without a published repository)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        repository = repository_url()
        if args.local:
            text = build_index(repository, lambda rel: (ROOT / rel).resolve().as_uri())
            log.info("wrote %s", write(args.local, text))
            return 0
        text = build_index(repository)
        if args.check:
            if INDEX.is_file() and INDEX.read_text(encoding="utf-8") == text:
                log.info("%s matches the scripts", INDEX)
                return 0
            log.error("%s is out of date: run `python -m darc_bridge.daw.reapack` and commit it", INDEX)
            return 1
        log.info("wrote %s", write(INDEX, text))
        return 0
    except InputError as exc:
        log.error("darc-bridge: error: %s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
