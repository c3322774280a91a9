"""Per-repository set-up: git config keys, hooks, the remote, ``.lfsagent``.

Two modes:

* **filter mode** (``install``): our filter driver (``filter.lfs.*``) and hooks, so plain
  git works with no git-lfs installed;
* **git-lfs mode** (``install --with-git-lfs``): git-lfs keeps its filter and hooks; only
  its transfers go through our agent (``lfs.customtransfer.lfs-agent.*`` and
  ``lfs.standalonetransferagent``).

Every key install writes is recorded in ``lfs-agent.installed`` so that ``uninstall``
removes exactly those. Values are written with ``--replace-all``: running install twice
changes nothing. The user's global set-up (:mod:`lfs_agent.global_install`) shares the
filter keys and the record defined here; ``.gitattributes`` is :mod:`lfs_agent.tracking`'s.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from lfs_agent.attributes import work_tree
from lfs_agent.config import (
    FALLBACK_KEY,
    SECTION,
    SIDECAR_FILE,
    committed_remote,
    normalize_remote_url,
)
from lfs_agent.errors import ConfigError, UnsafePathError
from lfs_agent.git import Git
from lfs_agent.hooks import install_hooks, uninstall_hooks
from lfs_agent.redact import has_userinfo

__all__ = [
    "AGENT_NAME",
    "INSTALLED_KEY",
    "InstallReport",
    "agent_command",
    "clone_settings",
    "filter_settings",
    "install",
    "is_ours",
    "merged_record",
    "recorded_keys",
    "remember_remote",
    "submodule_repos",
    "uninstall",
]

#: The name git-lfs knows our transfer agent by.
AGENT_NAME = "lfs-agent"
#: Where install records the keys it wrote (comma-separated), in the config it wrote.
INSTALLED_KEY = "lfs-agent.installed"


@dataclass
class InstallReport:
    """What install or uninstall did, for the CLI to print.

    Attributes:
        messages: Lines for the user, in the order they happened.
    """

    messages: list[str] = field(default_factory=list)


def agent_command(python: str) -> str:
    """The shell command git config holds to run lfs-agent.

    The interpreter is named in full, so that git runs the lfs-agent installed with it
    whatever ``PATH`` the command finds.

    Args:
        python: The interpreter's path.

    Returns:
        ``python -m lfs_agent``, with ``python`` quoted for the shell.
    """
    return f"{shlex.quote(python)} -m lfs_agent"


def filter_settings(python: str) -> dict[str, str]:
    """The filter keys ``install`` writes, so that git cleans and smudges through lfs-agent.

    ``required`` makes git fail a command when the filter fails, rather than store or
    check out a file unfiltered.

    Args:
        python: The interpreter the filter commands run.

    Returns:
        ``filter.lfs.*`` key -> value.
    """
    cmd = agent_command(python)
    return {
        "filter.lfs.process": f"{cmd} filter-process",
        "filter.lfs.clean": f"{cmd} clean -- %f",
        "filter.lfs.smudge": f"{cmd} smudge -- %f",
        "filter.lfs.required": "true",
    }


def clone_settings(python: str) -> dict[str, str]:
    """The config ``install`` writes (no remote), with its record, for ``git clone -c``.

    A clone created with these holds what ``install`` would write, so ``install`` then
    only adds the hooks, and ``uninstall`` removes them as its own.

    Args:
        python: The interpreter the filter commands run.

    Returns:
        Key -> value, :data:`INSTALLED_KEY` included.
    """
    keys = filter_settings(python)
    return {**keys, INSTALLED_KEY: ",".join(keys)}


def is_ours(value: str | None) -> bool:
    """Whether a config value is one lfs-agent writes, which install may replace freely.

    Args:
        value: A config value, or None when the key is unset.

    Returns:
        True for ``python -m lfs_agent ...`` and ``lfs-agent ...`` commands.
    """
    return value is not None and ("lfs_agent" in value or "lfs-agent" in value)


def recorded_keys(record: str | None) -> list[str]:
    """The keys an ``lfs-agent.installed`` value lists, for uninstall to remove.

    Args:
        record: The value (comma-separated keys), or None when it is unset.

    Returns:
        The keys, in the order they were written.
    """
    return [k for k in (record or "").split(",") if k]


def merged_record(record: str | None, keys: list[str]) -> str:
    """The ``lfs-agent.installed`` value once ``keys`` join ``record``, each listed once.

    Args:
        record: The value as it is, or None when it is unset.
        keys: The keys just written.

    Returns:
        The comma-separated keys, old ones first.
    """
    return ",".join(dict.fromkeys(recorded_keys(record) + keys))


def _record(git: Git, local: dict[str, str], keys: list[str]) -> None:
    """Add ``keys`` to the local record, so that ``uninstall`` removes them.

    Args:
        git: Runs git in the repository.
        local: The local config as read before writing ``keys``.
        keys: The keys written.
    """
    current = local.get(INSTALLED_KEY, "")
    merged = merged_record(current, keys)
    if merged != current:
        git.config_set(INSTALLED_KEY, merged)


def _local_config(git: Git) -> dict[str, str]:
    """The repository's own config (``.git/config``), key -> last value, in one read."""
    return {e.key: e.value for e in git.config_entries(["--local"])}


def _set_keys(git: Git, local: dict[str, str], values: dict[str, str], force: bool) -> list[str]:
    """Write ``values`` into the local config, refusing to replace foreign values.

    Another tool's filter is the user's choice, so replacing it takes ``force``; a key
    that holds its value already is not written again.

    Args:
        git: Runs git in the repository.
        local: The local config as read before any write.
        values: Key -> value to write.
        force: Replace foreign values too.

    Returns:
        The keys, for the record.

    Raises:
        ConfigError: a key holds another tool's value and ``force`` is false.
    """
    for key, value in values.items():
        old = local.get(key)
        if old is not None and old != value and not is_ours(old) and not force:
            raise ConfigError(
                f"{key} is already set to {old!r} in this repository; run "
                "'lfs-agent install --force' to replace it"
            )
    for key, value in values.items():
        if local.get(key) != value:
            git.config_set(key, value)
    return list(values)


def install(
    git: Git,
    *,
    remote: str | None = None,
    local: bool = False,
    with_git_lfs: bool = False,
    scope_remote: str | None = None,
    force: bool = False,
    python: str | None = None,
) -> InstallReport:
    """Set the repository up for lfs-agent.

    Args:
        git: Runs git in the repository.
        remote: Bucket URL to record; in ``.lfsagent`` unless ``local``.
        local: Record the remote in ``.git/config`` instead of ``.lfsagent``.
        with_git_lfs: Configure git-lfs's transfers only (keep its filter and hooks).
        scope_remote: With ``with_git_lfs``: use the agent only for this git remote.
        force: Replace filter settings that another tool wrote in this repository.
        python: Interpreter the written commands run; defaults to the running one.

    Returns:
        The lines to show the user (a foreign hook kept and chained, where the
        remote went).

    Raises:
        ConfigError: for a bad remote or when install would overwrite foreign settings.
        GitError: outside a repository.
    """
    python = python or sys.executable
    paths = git.paths
    report = InstallReport()
    local_config = _local_config(git)
    if with_git_lfs:
        keys = {
            f"lfs.customtransfer.{AGENT_NAME}.path": python,
            f"lfs.customtransfer.{AGENT_NAME}.args": "-m lfs_agent transfer",
            f"lfs.customtransfer.{AGENT_NAME}.concurrent": "true",
        }
        if scope_remote:
            url = git.config_get(f"remote.{scope_remote}.url")
            if url is None:
                raise ConfigError(f"no git remote named {scope_remote!r}")
            endpoint = _without_userinfo(_lfs_endpoint(url, paths.work_tree))
            keys[f"lfs.{endpoint}.standalonetransferagent"] = AGENT_NAME
        else:
            keys["lfs.standalonetransferagent"] = AGENT_NAME
        written = _set_keys(git, local_config, keys, force)
    else:
        written = _set_keys(git, local_config, filter_settings(python), force)
        report.messages.extend(install_hooks(git, python))
    if remote:
        url = normalize_remote_url(remote, paths.work_tree)
        report.messages.extend(folder_remote_warnings(url, paths.work_tree))
        if local:
            git.config_set("lfs-agent.remote", url)
            written.append("lfs-agent.remote")
        else:
            if paths.work_tree is None:
                raise ConfigError(f"a bare repository has no work tree for {SIDECAR_FILE}")
            _check_committable(url, paths.work_tree)
            git.config_set("lfs-agent.remote", url, file=paths.work_tree / SIDECAR_FILE)
            report.messages.append(f"wrote the remote to {SIDECAR_FILE}: commit it for clones")
    fallback = committed_remote(git)
    if fallback is not None:
        written.append(_remember(git, local_config, fallback))
    _record(git, local_config, written)
    return report


def _remember(git: Git, local: dict[str, str], url: str) -> str:
    """Keep ``url`` as the remote of commits whose tree names none.

    Args:
        git: Runs git in the repository.
        local: The local config as read before.
        url: The remote.

    Returns:
        The key written, for the record.
    """
    key = f"{SECTION}.{FALLBACK_KEY}"
    if local.get(key) != url:
        git.config_set(key, url)
    return key


def remember_remote(git: Git, url: str) -> None:
    """Record ``url`` as this clone's remote at the lowest precedence.

    A commit whose tree has no ``.lfsagent`` (history from before a repository named its
    bucket, or from its git-lfs days) still finds a remote; ``uninstall`` removes it.

    Args:
        git: Runs git in the repository.
        url: The remote.
    """
    local = _local_config(git)
    _record(git, local, [_remember(git, local, url)])


def folder_remote_warnings(url: str, top: Path | None) -> list[str]:
    """Warnings about a folder remote a person just named: where it is, whether it exists.

    Args:
        url: The remote, normalized.
        top: The work tree's top; None in a bare repository.

    Returns:
        A warning when the folder lies inside the work tree (``git status`` would list
        every object) or does not exist (a typo is likelier than a new bucket).
    """
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return []
    folder = Path(unquote(parsed.path))
    if top is not None and folder.is_relative_to(top):
        return [
            f"warning: the remote folder {folder} is inside the work tree: git would see "
            "its objects as untracked files; choose a folder outside it, or add this one "
            "to .gitignore"
        ]
    if not folder.exists():
        return [
            f"warning: the remote folder {folder} does not exist: it is created at the "
            "first push; check the path if you meant an existing one"
        ]
    return []


def _check_committable(url: str, top: Path) -> None:
    """Refuse to write ``url`` into the committed ``.lfsagent`` when that is unsafe.

    Args:
        url: The remote, normalized.
        top: The work tree's top.

    Raises:
        ConfigError: the URL carries credentials, which a commit would publish.
        UnsafePathError: ``.lfsagent`` is a symbolic link, which git config would
            write through.
    """
    if has_userinfo(url):
        raise ConfigError(
            f"refusing to write credentials into {SIDECAR_FILE} (it is committed): give "
            f"the remote without user:password@ and keep credentials in a git credential "
            "helper, ~/.netrc, or 'git config lfs-agent.http.header'; or use --local"
        )
    try:
        st = os.lstat(top / SIDECAR_FILE)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePathError(f"refusing to write {SIDECAR_FILE}: it is not a regular file")


def _without_userinfo(url: str) -> str:
    """``url`` without ``user:password@``, for a URL-scoped config key.

    git-lfs, like git, lets a URL-scoped key without user-info match every user, so the
    key need not hold it; a password must not become part of a config key (nor of a
    git command line).

    Args:
        url: A remote's URL.

    Returns:
        The URL, its user-info dropped.
    """
    if not has_userinfo(url):
        return url
    parsed = urlparse(url)
    return parsed._replace(netloc=parsed.netloc.rpartition("@")[2]).geturl()


def _lfs_endpoint(url: str, base: Path | None) -> str:
    """The LFS endpoint git-lfs derives from a git remote URL (for URL-scoped keys).

    The key must name the endpoint git-lfs looks up, or git-lfs ignores it: an ssh or
    git remote's endpoint is https on the same host, without user or port.

    Args:
        url: The git remote's URL (a URL, scp-like, or a local path).
        base: Where a relative local path starts; the current directory when None.

    Returns:
        The endpoint URL.
    """
    if "://" not in url and ":" in url.split("/", 1)[0]:
        host, _, path = url.partition(":")  # scp-like ssh: user@host:path
        url = f"https://{host.split('@')[-1]}/{path}"
    if url.partition("://")[0] in ("ssh", "git+ssh", "ssh+git", "git"):
        parsed = urlparse(url)
        url = f"https://{parsed.hostname}{parsed.path}"

    if "://" not in url:
        local = Path(url)
        if not local.is_absolute():
            local = (base or Path.cwd()) / local
        return local.resolve().as_uri()
    if url.startswith("file://"):
        return url
    url = url.rstrip("/")
    return url + ("/info/lfs" if url.endswith(".git") else ".git/info/lfs")


def uninstall(git: Git) -> InstallReport:
    """Remove every key install recorded, and our hooks (restoring chained ones).

    Only recorded keys go, so that a value the user set beside ours survives; sections
    left empty go too, so that the config reads as before.

    Args:
        git: Runs git in the repository.

    Returns:
        The lines to show the user (a hook restored, or left alone as not ours).
    """
    report = InstallReport()
    for key in recorded_keys(git.config_get(INSTALLED_KEY)):
        git.config_unset(key)
    git.config_unset(INSTALLED_KEY)
    for section in ("filter.lfs", f"lfs.customtransfer.{AGENT_NAME}"):
        probe = git.run(
            ["config", "--local", "--get-regexp", "^" + section.replace(".", r"\.")], check=False
        )
        if probe.returncode != 0:
            git.run(["config", "--local", "--remove-section", section], check=False)
    report.messages.extend(uninstall_hooks(git))
    return report


def submodule_repos(git: Git) -> list[tuple[str, Path]]:
    """The initialized submodules below the repository, recursively, parents first.

    The order is ``git submodule foreach --recursive``'s, whose listing this is.

    Args:
        git: Runs git in the repository.

    Returns:
        For each, its path as shown from the repository's top and its directory.

    Raises:
        ConfigError: the repository is bare.
        GitError: when git fails (outside a work tree, a broken ``.gitmodules``).
    """
    top = work_tree(git)
    script = 'printf "%s\\0%s\\0" "$displaypath" "$toplevel/$sm_path"'
    out = Git(top, git.env).run(["submodule", "--quiet", "foreach", "--recursive", script]).stdout
    fields = out.decode("utf-8", "surrogateescape").split("\0")
    return [(shown, Path(path)) for shown, path in zip(fields[0::2], fields[1::2], strict=False)]
