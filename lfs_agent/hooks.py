"""Git hook shims: render, install without clobbering, uninstall, and the handlers.

A hook is a short ``sh`` script that calls lfs-agent through an absolute interpreter path
(so it works when the shell running git lacks our venv), falls back to ``lfs-agent`` on
``PATH``, and says what to do when neither exists. A hook we did not write is never
overwritten: it is moved aside to ``<hook>.lfs-agent-chained`` and run first with the same
arguments and input; ``uninstall`` moves it back. The rendered shims in the repository's
``hooks/`` directory are produced from :data:`TEMPLATES` (a test keeps them in sync).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from pathlib import Path

from lfs_agent.errors import ConfigError
from lfs_agent.git import Git

__all__ = [
    "CHAINED_SUFFIX",
    "HOOK_NAMES",
    "MARKER",
    "hooks_dir",
    "install_hooks",
    "is_ours",
    "render_hook",
    "uninstall_hooks",
]

#: First comment line of every hook we write; how we recognise our own hooks.
MARKER = "# lfs-agent hook"
#: Suffix of a foreign hook moved aside so that ours can run it first.
CHAINED_SUFFIX = ".lfs-agent-chained"
#: The hooks we install. pre-push uploads objects before git sends the commits;
#: post-checkout fails a checkout whose downloads failed (git itself would say 0).
HOOK_NAMES = ("pre-push", "post-checkout")
#: What each hook runs, after the chained hook (``$@`` are git's arguments).
COMMANDS = {"pre-push": "pre-push", "post-checkout": "post-checkout"}
#: Which hooks receive input on stdin that a chained hook must see too.
READS_STDIN = frozenset({"pre-push"})

_TEMPLATE = """\
#!/bin/sh
{marker} ({name}, v1): {purpose}
# Installed by 'lfs-agent install'; 'lfs-agent uninstall' removes it.
lfs_agent() {{
  {direct}if command -v lfs-agent >/dev/null 2>&1; then
    lfs-agent "$@"
  else
    echo >&2 "This repository is set up for lfs-agent, but it was not found."
    echo >&2 "Install it (pip install lfs-agent), or remove this hook: $0"
    exit 2
  fi
}}
{body}
"""

_PURPOSES = {
    "pre-push": "uploads large files to the bucket before git pushes commits",
    "post-checkout": "fails a checkout when large files could not be downloaded",
}


def render_hook(name: str, python: str | None) -> str:
    """Return the shim for hook ``name``.

    Args:
        name: One of :data:`HOOK_NAMES`.
        python: Interpreter to run lfs-agent with, tried before ``lfs-agent`` on PATH;
            None for a shim that only uses PATH (the copy kept in ``hooks/``).
    """
    chained = f'"$0{CHAINED_SUFFIX}"'
    if name in READS_STDIN:
        body = (
            "input=$(cat; echo x)\ninput=${input%x}\n"
            f"if [ -x {chained} ]; then\n"
            f'  printf "%s" "$input" | {chained} "$@" || exit $?\n'
            "fi\n"
            f'printf "%s" "$input" | lfs_agent {COMMANDS[name]} "$@"'
        )
    else:
        body = (
            f'if [ -x {chained} ]; then {chained} "$@" || exit $?; fi\n'
            f'lfs_agent {COMMANDS[name]} "$@"'
        )
    direct = ""
    if python:
        quoted = shlex.quote(python)
        direct = f'if [ -x {quoted} ]; then\n    {quoted} -m lfs_agent "$@"\n  el'
    return _TEMPLATE.format(
        marker=MARKER, name=name, purpose=_PURPOSES[name], direct=direct, body=body
    )


def hooks_dir(git: Git) -> Path:
    """The directory git runs hooks from (honours ``core.hooksPath``)."""
    return Path(git.output(["rev-parse", "--path-format=absolute", "--git-path", "hooks"]))


def is_ours(path: Path) -> bool:
    """True when the hook file at ``path`` was written by lfs-agent."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(512)
    except FileNotFoundError:
        return False
    return MARKER in head


def install_hooks(git: Git, python: str | None = None) -> list[str]:
    """Install every hook; return messages about what was done.

    A foreign hook is moved aside and chained. When a chained hook already exists (from
    an earlier install) and a new foreign hook took our place, nothing is overwritten:
    the error says how to proceed.

    Raises:
        ConfigError: when installing would lose someone's hook.
    """
    directory = hooks_dir(git)
    directory.mkdir(parents=True, exist_ok=True)
    messages = []
    for name in HOOK_NAMES:
        path = directory / name
        chained = directory / (name + CHAINED_SUFFIX)
        if path.exists() and not is_ours(path):
            if chained.exists():
                raise ConfigError(
                    f"{path} is not lfs-agent's and {chained.name} already exists: merge "
                    f"them by hand (or remove one), then run 'lfs-agent install' again"
                )
            os.replace(path, chained)
            messages.append(f"kept your {name} hook: it now runs first, from {chained.name}")
        content = render_hook(name, python or sys.executable)
        if not path.exists() or path.read_text(errors="replace") != content:
            _write_hook(path, content)
    return messages


def _write_hook(path: Path, content: str) -> None:
    """Replace the hook at ``path`` through a new private temp file and a rename.

    ``core.hooksPath`` may name a directory of the work tree, where a cloned repository
    can commit a symbolic link at any fixed temp name: the temp file is created
    exclusively, under a random name, without following links.
    """
    import tempfile

    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".lfs-agent-tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(content)
            os.fchmod(file.fileno(), 0o755)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def uninstall_hooks(git: Git) -> list[str]:
    """Remove our hooks and restore chained ones; return messages."""
    directory = hooks_dir(git)
    messages = []
    for name in HOOK_NAMES:
        path = directory / name
        chained = directory / (name + CHAINED_SUFFIX)
        if is_ours(path):
            path.unlink()
            if chained.exists():
                os.replace(chained, path)
                messages.append(f"restored your {name} hook")
        elif path.exists():
            messages.append(f"left {name} alone: it is not lfs-agent's")
    return messages
