"""Git hook shims: render, install without clobbering, uninstall, and the pre-commit check.

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
from lfs_agent.git import Git, lfs_filtered

__all__ = [
    "CHAINED_SUFFIX",
    "HOOK_NAMES",
    "MARKER",
    "add_missing_hooks",
    "hooks_dir",
    "install_hooks",
    "is_ours",
    "raw_staged",
    "render_hook",
    "uninstall_hooks",
]

#: First comment line of every hook we write; how we recognise our own hooks.
MARKER = "# lfs-agent hook"
#: Suffix of a foreign hook moved aside so that ours can run it first.
CHAINED_SUFFIX = ".lfs-agent-chained"
#: The hooks we install. pre-push uploads objects before git sends the commits;
#: post-checkout fails a checkout whose downloads failed (git itself would say 0);
#: pre-commit refuses raw content staged for a path that .gitattributes puts in LFS (a
#: repository where no lfs filter is configured, a file staged before it was tracked).
HOOK_NAMES = ("pre-push", "post-checkout", "pre-commit")
#: What each hook runs, after the chained hook (``$@`` are git's arguments).
COMMANDS = {"pre-push": "pre-push", "post-checkout": "post-checkout", "pre-commit": "pre-commit"}
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
    "pre-commit": "refuses raw content staged for a path that .gitattributes stores in LFS",
}

#: The pre-commit hook's test before it starts lfs-agent: it runs on every commit, and
#: two git commands cost far less than starting Python. Only when a
#: staged path (deletions aside) has ``filter=lfs`` does lfs-agent look at the content;
#: a name that merely contains the text searched for starts it too, which is harmless.
#: check-attr reads the C-quoted names git diff writes for unusual paths.
_PRE_COMMIT_TEST = (
    "case $(git diff --cached --name-only --no-renames --diff-filter=d | "
    "git check-attr --stdin filter) in\n"
    '*": filter: lfs"*) lfs_agent {command} "$@" ;;\n'
    "esac"
)

#: Staged blobs the pre-commit check reads: a pointer is under 1024 bytes, so anything
#: larger is raw content without reading it.
_POINTER_BOUND = 1024


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
        run = (
            _PRE_COMMIT_TEST.format(command=COMMANDS[name])
            if name == "pre-commit"
            else f'lfs_agent {COMMANDS[name]} "$@"'
        )
        body = f'if [ -x {chained} ]; then {chained} "$@" || exit $?; fi\n{run}'
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


def add_missing_hooks(git: Git, python: str | None = None) -> bool:
    """Install our hooks when the repository's own hooks directory lacks one of them.

    The filter ``install --global`` configures runs this first, so that every
    repository it works in (a fresh clone, a submodule) gets the pre-push upload, as
    git-lfs's filter installs its hooks. A ``core.hooksPath`` outside the git directory
    (a hook manager's, or one committed in the work tree) is left to ``lfs-agent
    install``: nothing is written there unasked.

    Args:
        git: Runs git in the repository.
        python: Interpreter the hooks run lfs-agent with; None: the running one.

    Returns:
        Whether hooks were written.

    Raises:
        ConfigError: as :func:`install_hooks`.
        GitError: outside a repository.
    """
    common = git.paths.common_dir
    if all(is_ours(common / "hooks" / name) for name in HOOK_NAMES):
        return False
    if hooks_dir(git) != common / "hooks":
        return False
    install_hooks(git, python)
    return True


def raw_staged(git: Git) -> list[str]:
    """Staged paths whose attributes say ``filter=lfs`` but whose blob is no pointer.

    Such a commit would store the file's bytes in git: no lfs filter was configured
    when it was staged, or it was staged before its pattern was tracked. Only blobs
    under :data:`_POINTER_BOUND` bytes are read; a larger one is raw content by size.
    Deletions, symbolic links and submodules are not files git filters.

    Raises:
        GitError: when git fails.
    """
    from lfs_agent.errors import NotAPointerError
    from lfs_agent.pointer import parse_pointer

    diff = git.run(
        ["diff", "--cached", "--raw", "-z", "--no-abbrev", "--no-renames", "--diff-filter=d"]
    ).stdout.split(b"\0")
    staged: dict[str, str] = {}
    for meta, raw_path in zip(diff[0::2], diff[1::2], strict=False):
        fields = meta.split()
        if len(fields) < 4 or fields[1] not in (b"100644", b"100755"):
            continue
        staged[raw_path.decode("utf-8", "surrogateescape")] = fields[3].decode()
    if not staged:
        return []
    tracked = lfs_filtered(git, staged)
    if not tracked:
        return []
    oids = sorted({staged[p] for p in tracked})
    sizes: dict[str, int] = {}
    listing = git.run(["cat-file", "--batch-check"], input="".join(o + "\n" for o in oids).encode())
    for line in listing.stdout.decode().splitlines():
        words = line.split()
        if len(words) == 3 and words[2].isdigit():  # else "<oid> missing": nothing to judge
            sizes[words[0]] = int(words[2])
    small = [o for o in oids if 0 < sizes.get(o, 0) < _POINTER_BOUND]
    raw = {o for o in oids if sizes.get(o, 0) >= _POINTER_BOUND}
    if small:
        out = git.run(["cat-file", "--batch"], input="".join(o + "\n" for o in small).encode())
        data, at = out.stdout, 0
        for oid in small:
            header_end = data.index(b"\n", at)
            size = int(data[at:header_end].split()[2])
            blob = data[header_end + 1 : header_end + 1 + size]
            at = header_end + 2 + size
            try:
                parse_pointer(blob)
            except NotAPointerError:
                raw.add(oid)
    return [p for p in tracked if staged[p] in raw]
