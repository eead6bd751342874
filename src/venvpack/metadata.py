"""What the application says about itself: its core metadata, read once at build time.

Package metadata (summary, license, homepage, people) belongs to the project, not to
venvpack's flags. Every build backend writes it to the ``METADATA`` file of the installed
``.dist-info`` directory (core metadata 1.0 to 2.4, e-mail header format), whether it came
from static ``[project]`` keys, dynamic ones or a ``setup.py``; so that file, not
``pyproject.toml``, is what is read here, into an :class:`AppMetadata` the manifest keeps.
The emitters decide how each format shows it; flags always win over it.

Values are cleaned when read (single-line fields have their folding and control characters
removed), but they stay untrusted text: every emitter still escapes them for its syntax.
"""

from __future__ import annotations

import csv
import email.message
import email.parser
import email.policy
import email.utils
import io
import logging
import re
import string
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Union

from packaging.utils import canonicalize_name

from venvpack.errors import ConfigError
from venvpack.manifest import AppMetadata
from venvpack.policy import load_json
from venvpack.validate import control_character, strip_control

__all__ = [
    "SpdxCompound",
    "SpdxLicense",
    "SpdxNode",
    "first_paragraph",
    "format_spdx",
    "homepage_of",
    "one_line",
    "parse_spdx",
    "read_app_metadata",
    "spdx_expression",
]

log = logging.getLogger("venvpack")


# ----------------------------------------------------------------------------- text


def one_line(value: object) -> str:
    """A value meant to be one line: folding, line breaks and control characters become
    single spaces (RFC 5322 unfolding, and then some)."""
    return " ".join(strip_control(str(value), replacement=" ").split())


# A block of a README that is not prose: a heading (Markdown "#", or a line underlined in
# reStructuredText), a badge or image, HTML, a directive or substitution, a code block, a
# list, a table or a quote.
_NOT_PROSE_RE = re.compile(r"(#|!\[|\[!\[|<|\.\.|\||```|~~~|>|[-*+] |[0-9]+[.)] |:|=|\+-)")
_RST_UNDERLINE_RE = re.compile(r"([=\-~^\"'`#*+.:_])\1{2,}")
_MD_IMAGE_RE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_MD_LINK_RE = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_RST_LINK_RE = re.compile(r"`([^`<]+?)\s*<[^`>]*>`__?")
_EMPHASIS_RE = re.compile(r"(\*\*|__|``|`)(\S(?:.*?\S)?)\1")
_LEAD_MAX = 600


def first_paragraph(description: str, summary: str = "") -> str:
    """The first block of plain prose of a long description, as one line of plain text.

    A README is made for a web page (headings, badges, code, links); a package manager
    shows plain text. Its first prose paragraph is usually what the project is, in the
    project's words: that is kept, with link and emphasis markup reduced to their text,
    at most about 600 characters, and skipped when it only repeats ``summary``.
    """
    blocks: list[list[str]] = [[]]
    fence = False
    for line in description.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
            blocks.append([])
            continue
        if fence or not line.strip():
            blocks.append([])
        else:
            blocks[-1].append(line)
    for lines in blocks:
        if not lines or lines[0][:1].isspace() or _NOT_PROSE_RE.match(lines[0]):
            continue
        if len(lines) > 1 and _RST_UNDERLINE_RE.fullmatch(lines[1].strip()):
            continue
        text = one_line(" ".join(lines))
        text = _MD_IMAGE_RE.sub("", text)
        text = _RST_LINK_RE.sub(r"\1", _MD_LINK_RE.sub(r"\1", text))
        text = one_line(_EMPHASIS_RE.sub(r"\2", text))
        if len(text.split()) < 3 or text.rstrip(".").lower() == summary.rstrip(".").lower():
            continue
        if len(text) > _LEAD_MAX:
            cut = text.rfind(". ", 0, _LEAD_MAX)
            text = text[: cut + 1] if cut > 0 else text[:_LEAD_MAX].rsplit(" ", 1)[0] + " ..."
        return text
    return ""


# ----------------------------------------------------------------------------- SPDX


@dataclass(frozen=True)
class SpdxLicense:
    """One license of an expression, with its exception: ``GPL-2.0-or-later WITH X``."""

    id: str
    exception: str | None = None


@dataclass(frozen=True)
class SpdxCompound:
    operator: str
    """``AND`` or ``OR``."""
    operands: tuple[SpdxNode, ...]


SpdxNode = Union[SpdxLicense, SpdxCompound]

# An SPDX short identifier, a LicenseRef- (optionally DocumentRef-x:), with "+" for "or later".
_SPDX_ID_RE = re.compile(
    r"(?:DocumentRef-[A-Za-z0-9.-]+:)?LicenseRef-[A-Za-z0-9.-]+|[A-Za-z0-9][A-Za-z0-9.-]*\+?"
)
_SPDX_TOKEN_RE = re.compile(r"\s*(\(|\)|[^\s()]+)")


def parse_spdx(text: str) -> SpdxNode:
    """The tree of an SPDX license expression (SPDX 2.3 annex D); ValueError if malformed.

    Only the syntax is checked: identifiers are not looked up in the SPDX list (PEP 639
    backends did that), so ``LicenseRef-`` names and new identifiers pass.
    """
    if "\n" in text or "\r" in text or control_character(text):
        raise ValueError("line break or control character")
    tokens = _SPDX_TOKEN_RE.findall(text)
    if "".join(tokens) != "".join(text.split()):
        raise ValueError("unexpected characters")
    pos = 0

    def peek() -> str:
        return tokens[pos] if pos < len(tokens) else ""

    def operator(word: str) -> str | None:
        # SPDX allows the operators in upper or lower case only.
        return word.upper() if word in ("AND", "OR", "WITH", "and", "or", "with") else None

    def expression(op: str) -> SpdxNode:
        nonlocal pos
        sub = "AND" if op == "OR" else None
        parts = [expression(sub) if sub else term()]
        while operator(peek()) == op:
            pos += 1
            parts.append(expression(sub) if sub else term())
        return parts[0] if len(parts) == 1 else SpdxCompound(op, tuple(parts))

    def term() -> SpdxNode:
        nonlocal pos
        word = peek()
        if word == "(":
            pos += 1
            inner = expression("OR")
            if peek() != ")":
                raise ValueError("unbalanced parenthesis")
            pos += 1
            return inner
        if not word or operator(word) or not _SPDX_ID_RE.fullmatch(word):
            raise ValueError(f"expected a license identifier, got {word!r}")
        pos += 1
        if operator(peek()) == "WITH":
            pos += 1
            exception = peek()
            if not exception or operator(exception) or not _SPDX_ID_RE.fullmatch(exception):
                raise ValueError(f"expected a license exception, got {exception!r}")
            pos += 1
            return SpdxLicense(word, exception)
        return SpdxLicense(word)

    node = expression("OR")
    if pos != len(tokens):
        raise ValueError(f"unexpected {tokens[pos]!r}")
    return node


def format_spdx(node: SpdxNode, *, inner: bool = False) -> str:
    """The canonical text of a parsed expression: upper-case operators, and parentheses
    around every nested compound, so no reader needs to know that AND binds tighter."""
    if isinstance(node, SpdxLicense):
        return f"{node.id} WITH {node.exception}" if node.exception else node.id
    text = f" {node.operator} ".join(format_spdx(part, inner=True) for part in node.operands)
    return f"({text})" if inner else text


def spdx_expression(text: str | None) -> str | None:
    """``text`` as a normalised SPDX expression, or None when it is not one."""
    if not text or not text.strip():
        return None
    try:
        return format_spdx(parse_spdx(text.strip()))
    except ValueError:
        return None


@dataclass(frozen=True)
class _LicensePolicy:
    classifiers: Mapping[str, str]
    identifiers: frozenset[str]


@cache
def _license_policy() -> _LicensePolicy:
    data = load_json("license-classifiers.json")
    table, ids = data.get("classifiers"), data.get("identifiers")
    if not isinstance(table, dict) or not isinstance(ids, list):
        raise ConfigError(
            "license-classifiers.json needs 'classifiers' (object) and 'identifiers' (list)"
        )
    for classifier, spdx in table.items():
        if not classifier.startswith("License :: ") or not isinstance(spdx, str):
            raise ConfigError(f"license-classifiers.json: invalid entry {classifier!r}")
        if spdx_expression(spdx) != spdx:
            raise ConfigError(f"license-classifiers.json: {spdx!r} is not an SPDX expression")
    for spdx in ids:
        if not isinstance(spdx, str) or not isinstance(parse_spdx(spdx), SpdxLicense):
            raise ConfigError(f"license-classifiers.json: invalid identifier {spdx!r}")
    return _LicensePolicy(classifiers=dict(table), identifiers=frozenset(ids))


def _license_ids(node: SpdxNode) -> Iterable[str]:
    if isinstance(node, SpdxLicense):
        yield node.id.removesuffix("+")
    else:
        for part in node.operands:
            yield from _license_ids(part)


def _choose_license(
    expression: str | None, legacy: str | None, classifiers: Iterable[str]
) -> str | None:
    """PEP 639's order: License-Expression; a legacy License: that is a plain SPDX
    expression of known identifiers (it often holds a whole license text instead); the one
    license the classifiers name. Several different classifiers are not combined: whether
    they mean "and" or "or" is a legal statement the metadata does not make."""
    if expression:
        found = spdx_expression(expression)
        if found is None:
            log.warning("ignoring License-Expression %r: not an SPDX expression", expression)
        return found
    policy = _license_policy()
    if legacy and "\n" not in legacy.strip():
        found = spdx_expression(legacy)
        if found and all(i in policy.identifiers for i in _license_ids(parse_spdx(found))):
            return found
    mapped = {policy.classifiers[c] for c in classifiers if c in policy.classifiers}
    return mapped.pop() if len(mapped) == 1 else None


# ----------------------------------------------------------------------------- URLs

# PEP 753's well-known labels that can stand for a homepage, best first.
_HOMEPAGE_LABELS = (
    ("homepage",),
    ("home",),
    ("source", "repository", "sourcecode", "github", "gitlab"),
    ("documentation", "docs"),
)
_LABEL_STRIP = str.maketrans("", "", string.punctuation + string.whitespace)


def _normalise_label(label: str) -> str:
    """PEP 753: punctuation and white space removed, lower case (``Home-Page`` → homepage)."""
    return label.translate(_LABEL_STRIP).lower()


def _is_web_url(url: str) -> bool:
    if control_character(url) or any(c.isspace() or c in "<>\"'\\" for c in url):
        return False
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def homepage_of(urls: Iterable[tuple[str, str]]) -> str | None:
    """The http(s) URL with the best homepage-like label (Homepage, Home, Source ...)."""
    by_label: dict[str, str] = {}
    for label, url in urls:
        by_label.setdefault(_normalise_label(label), url)
    for group in _HOMEPAGE_LABELS:
        for label in group:
            found = by_label.get(label)
            if found is not None and _is_web_url(found):
                return found
    return None


def _project_urls(message: email.message.Message) -> tuple[tuple[str, str], ...]:
    urls: list[tuple[str, str]] = []
    legacy = one_line(message.get("Home-page", ""))
    if legacy and legacy.upper() != "UNKNOWN":
        urls.append(("Homepage", legacy))
    for value in message.get_all("Project-URL", []):
        label, sep, url = one_line(value).partition(",")
        if sep and label.strip() and url.strip():
            urls.append((label.strip(), url.strip()))
    return tuple(dict.fromkeys(urls))


# ----------------------------------------------------------------------------- people


def _people(names: str, addresses: str) -> tuple[str, ...]:
    """``Name <mail>`` strings from ``Author``/``Author-email`` (or the Maintainer pair).

    ``Author-email`` is an RFC 5322 address list (``"Doe, Jane" <j@x.org>, b@x.org``);
    ``Author`` is free text, usually names only. A single name with a single bare address
    (what setuptools writes for ``author=``, ``author_email=``) are one person.
    """
    names = one_line(names)
    if names.upper() == "UNKNOWN":
        names = ""
    pairs = [
        (one_line(name), one_line(mail))
        for name, mail in email.utils.getaddresses([one_line(addresses)])
        if mail and "@" in mail
    ]
    if len(pairs) == 1 and not pairs[0][0] and names and "," not in names:
        pairs = [(names, pairs[0][1])]
        names = ""
    people = [f"{name} <{mail}>" if name else mail for name, mail in pairs]
    known = {name for name, _ in pairs}
    for name in (n.strip() for n in names.split(",")):
        if name and name not in known:
            people.append(name)
    return tuple(dict.fromkeys(people))


# ----------------------------------------------------------------------------- reading


def _find_dist_info(site_packages: Path, dist_name: str) -> Path | None:
    wanted = canonicalize_name(dist_name)
    for candidate in sorted(site_packages.glob("*.dist-info")):
        name = candidate.name[: -len(".dist-info")].rpartition("-")[0]
        if canonicalize_name(name) == wanted and (candidate / "METADATA").is_file():
            return candidate
    return None


def _license_files(dist_info: Path, entries: Iterable[str], root: Path) -> tuple[str, ...]:
    """Where each ``License-File`` is: PEP 639 puts it in ``licenses/<path>``; older
    backends (setuptools < 77, hatchling < 1.27 ...) at ``<path>`` or ``licenses/<name>``."""
    found: list[str] = []
    for entry in entries:
        rel = PurePosixPath(one_line(entry))
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            continue
        for candidate in (
            dist_info / "licenses" / rel,
            dist_info / rel,
            dist_info / "licenses" / rel.name,
            dist_info / rel.name,
        ):
            if candidate.is_file() and not candidate.is_symlink():
                found.append(candidate.relative_to(root).as_posix())
                break
        else:
            log.debug("License-File %s is not in %s", rel, dist_info.name)
    return tuple(dict.fromkeys(found))


def _distribution_paths(dist_info: Path, root: Path) -> tuple[str, ...]:
    """Top-level entries of site-packages that RECORD says belong to the distribution."""
    site_packages = dist_info.parent
    tops = {dist_info.name}
    try:
        rows = list(csv.reader(io.StringIO((dist_info / "RECORD").read_text(encoding="utf-8"))))
    except OSError:
        rows = []
    for row in rows:
        if not row:
            continue
        parts = PurePosixPath(row[0]).parts
        if parts and parts[0] not in ("..", "/") and not parts[0].endswith(".data"):
            tops.add(parts[0])
    return tuple(
        (site_packages / top).relative_to(root).as_posix()
        for top in sorted(tops)
        if top != "__pycache__" and (site_packages / top).exists()
    )


def _description(message: email.message.Message) -> str:
    body = message.get_payload()
    if isinstance(body, str) and body.strip():
        return body.strip("\n")
    legacy = message.get("Description", "")
    # Metadata < 2.1 folds the text into the header; setuptools prefixes lines with "|".
    lines = str(legacy).splitlines()
    out = [lines[0]] if lines else []
    for line in lines[1:]:
        stripped = line.lstrip(" \t")
        out.append(stripped[1:] if stripped.startswith("|") else line[8:] or stripped)
    text = "\n".join(out).strip("\n")
    return "" if text.strip().upper() == "UNKNOWN" else text


def read_app_metadata(site_packages: Path, dist_name: str, root: Path) -> AppMetadata | None:
    """The core metadata of ``dist_name`` installed in ``site_packages``; None if absent.

    ``root`` is the environment root that file paths are made relative to.
    """
    dist_info = _find_dist_info(site_packages, dist_name)
    if dist_info is None:
        return None
    raw = (dist_info / "METADATA").read_bytes().decode("utf-8", errors="replace")
    message = email.parser.Parser(policy=email.policy.compat32).parsestr(raw)

    def field(name: str) -> str:
        value = one_line(message.get(name, ""))
        return "" if value.upper() == "UNKNOWN" else value

    urls = _project_urls(message)
    return AppMetadata(
        name=field("Name") or dist_name,
        version=field("Version"),
        summary=field("Summary"),
        description=_description(message),
        description_content_type=field("Description-Content-Type"),
        license=_choose_license(
            message.get("License-Expression"),
            message.get("License"),
            [one_line(c) for c in message.get_all("Classifier", [])],
        ),
        license_files=_license_files(dist_info, message.get_all("License-File", []), root),
        urls=urls,
        homepage=homepage_of(urls),
        authors=_people(message.get("Author", ""), message.get("Author-email", "")),
        maintainers=_people(message.get("Maintainer", ""), message.get("Maintainer-email", "")),
        paths=_distribution_paths(dist_info, root),
    )
