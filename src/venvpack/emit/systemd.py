"""systemd service units for packaged environments (shared by the deb and rpm emitters).

The unit comes from ``packaging-templates/systemd/app.service``. Every value placed in it
goes through one of the two escaping filters here, so no user text can add a directive or a
second command: ``systemd_exec`` quotes a command line for ``ExecStart=``, ``systemd_text``
makes a one-line value (``Description=``) literal.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from venvpack import templates
from venvpack.errors import ConfigError, EmitError
from venvpack.manifest import BuiltEnv
from venvpack.validate import control_character

__all__ = [
    "FILTERS",
    "ServiceUnit",
    "render_unit",
    "service_command",
    "systemd_exec",
    "systemd_text",
]

UNIT_DIR = "usr/lib/systemd/system"
"""Where both formats install units (``/usr/lib``, not ``/etc``: the administrator's place for
overrides), relative to ``/``."""

# Characters that never need quoting in an ExecStart= word.
_PLAIN_WORD_RE = re.compile(r"[A-Za-z0-9_./:=,+@-]+")


@dataclass(frozen=True)
class ServiceUnit:
    """A unit to install: its file name and its rendered text."""

    name: str
    """File name, ``<package>.service``."""
    text: str

    @property
    def path(self) -> str:
        """Path inside the package, relative to ``/``."""
        return f"{UNIT_DIR}/{self.name}"


def service_command(command: str, env: BuiltEnv) -> tuple[str, ...]:
    """``--service-command`` as the argv of ``ExecStart=``, with an absolute executable.

    A bare first word names a command in the environment's ``bin/`` (it must exist); an
    absolute path is used as given (and must exist if it points into the environment).
    """
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(f"--service-command {command!r}: {exc}") from None
    if not argv:
        raise ConfigError("--service-command is empty")
    for arg in argv:
        if control_character(arg):
            raise ConfigError(f"--service-command: control character in argument {arg!r}")
    prefix = env.manifest.prefix.rstrip("/")
    exe = argv[0]
    if "/" not in exe:
        if exe in (".", "..") or not (
            (env.root / "bin" / exe).is_file() or (env.root / "bin" / exe).is_symlink()
        ):
            raise ConfigError(
                f"--service-command: {exe!r} is not a command in the environment's bin/"
            )
        exe = f"{prefix}/bin/{exe}"
    elif exe.startswith("/"):
        exe = posixpath.normpath(exe)
        if exe.startswith(prefix + "/"):
            inside = env.root / exe[len(prefix) + 1 :]
            if not (inside.exists() or inside.is_symlink()):
                raise ConfigError(f"--service-command: {exe} is not in the environment")
    else:
        raise ConfigError(
            f"--service-command: {exe!r} must be a command name from the environment's bin/ "
            "or an absolute path"
        )
    return (exe, *argv[1:])


def systemd_exec(argv: Sequence[str]) -> str:
    """A command line for ``ExecStart=`` that systemd splits back into exactly ``argv``.

    systemd unquotes and C-unescapes each word, expands ``%`` specifiers and ``$VAR``
    references, and treats a lone ``;`` as a command separator; each is neutralised.
    """
    if not argv or not argv[0].startswith("/"):
        raise EmitError(f"ExecStart= needs an absolute executable, got {list(argv)!r}")
    return " ".join(_exec_word(arg) for arg in argv)


def _exec_word(arg: str) -> str:
    if control_character(arg):
        raise EmitError(f"control character in service argument {arg!r}")
    if arg == ";":
        return "\\;"
    literal = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN_WORD_RE.fullmatch(arg):
        return literal
    return '"' + literal.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_text(value: object) -> str:
    """A one-line, literal value for a directive such as ``Description=``."""
    text = str(value)
    if control_character(text):
        raise EmitError(f"line break or control character in systemd value {text!r}")
    # A trailing backslash would continue the directive on the next line.
    return text.replace("%", "%%").rstrip(" \\")


FILTERS = {"systemd_exec": systemd_exec, "systemd_text": systemd_text}
"""The escaping filters ``app.service`` needs; pass them to :func:`templates.render`."""


def render_unit(
    *,
    package: str,
    argv: Sequence[str],
    description: str,
    documentation: str = "",
    user: str = "",
) -> ServiceUnit:
    """The unit ``<package>.service`` that runs ``argv`` (from :func:`service_command`),
    sandboxed, with state and log directories; as ``user`` without capabilities when one is
    given, else as root."""
    name = f"{package}.service"
    text = templates.render(
        "systemd/app.service",
        filters=FILTERS,
        description=description,
        documentation=documentation,
        exec_start=tuple(argv),
        user=user,
        name=package,
    )
    return ServiceUnit(name=name, text=text)
