"""Set-up: git config keys, hooks, ``.lfsagent``, ``.gitattributes``.

Three modes:

* **filter mode** (``install``): our filter driver (``filter.lfs.*``) and hooks, so plain
  git works with no git-lfs installed;
* **git-lfs mode** (``install --with-git-lfs``): git-lfs keeps its filter and hooks; only
  its transfers go through our agent (``lfs.customtransfer.lfs-agent.*`` and
  ``lfs.standalonetransferagent``);
* **global** (``install --global``): the filter in the user's git config, for every
  repository and submodule; each repository gets its hooks from the filter's first run
  there (:func:`hooks.add_missing_hooks`).

Every key install writes is recorded in ``lfs-agent.installed`` (of the config it wrote)
so that ``uninstall`` removes exactly those. Values are written with ``--replace-all``:
running install twice changes nothing. ``track`` and ``untrack`` edit the current
directory's ``.gitattributes`` as git-lfs 3.3 does.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

from lfs_agent import worktree
from lfs_agent.config import (
    FALLBACK_KEY,
    SECTION,
    SIDECAR_FILE,
    committed_remote,
    normalize_remote_url,
)
from lfs_agent.errors import ConfigError, UnsafePathError
from lfs_agent.git import Git, lfs_filtered
from lfs_agent.hooks import install_hooks, uninstall_hooks
from lfs_agent.redact import has_userinfo

__all__ = [
    "AGENT_NAME",
    "AttributePattern",
    "InstallReport",
    "TrackResult",
    "attribute_line",
    "attribute_patterns",
    "install",
    "install_global",
    "remember_remote",
    "submodule_repos",
    "track",
    "uninstall",
    "uninstall_global",
    "untrack",
]

#: The name git-lfs knows our transfer agent by.
AGENT_NAME = "lfs-agent"
#: Where install records the keys it wrote (comma-separated).
INSTALLED_KEY = "lfs-agent.installed"
#: The attributes ``git lfs track`` writes after a pattern.
LFS_ATTRIBUTES = "filter=lfs diff=lfs merge=lfs -text"
#: The attributes file ``track`` edits.
ATTRIBUTES_FILE = ".gitattributes"
#: The largest ``.gitattributes`` track reads (git itself reads at most 100 MiB).
MAX_ATTRIBUTES_SIZE = 100 * 1024 * 1024


@dataclass
class InstallReport:
    """What install or uninstall did, for the CLI to print."""

    messages: list[str] = field(default_factory=list)


def agent_command(python: str) -> str:
    """The shell command that runs lfs-agent with ``python``, as git config holds it."""
    return f"{shlex.quote(python)} -m lfs_agent"


def filter_settings(python: str) -> dict[str, str]:
    """The filter keys ``install`` writes: git's filter runs lfs-agent with ``python``."""
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
    """
    keys = filter_settings(python)
    return {**keys, INSTALLED_KEY: ",".join(keys)}


def _is_ours(value: str | None) -> bool:
    """True for values lfs-agent writes (``python -m lfs_agent ...``, ``lfs-agent ...``)."""
    return value is not None and ("lfs_agent" in value or "lfs-agent" in value)


def _record(git: Git, local: dict[str, str], keys: list[str]) -> None:
    current = local.get(INSTALLED_KEY, "")
    merged = ",".join(dict.fromkeys([k for k in current.split(",") if k] + keys))
    if merged != current:
        git.config_set(INSTALLED_KEY, merged)


def _local_config(git: Git) -> dict[str, str]:
    """The repository's own config (``.git/config``), key -> last value, in one read."""
    return {e.key: e.value for e in git.config_entries(["--local"])}


def _set_keys(git: Git, local: dict[str, str], values: dict[str, str], force: bool) -> list[str]:
    """Write ``values`` into the local config, refusing to replace foreign values.

    ``local`` is that config as read before; keys already holding their value are not
    written again.
    """
    for key, value in values.items():
        old = local.get(key)
        if old is not None and old != value and not _is_ours(old) and not force:
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
    """Keep ``url`` as the remote of commits whose tree names none; return the key."""
    key = f"{SECTION}.{FALLBACK_KEY}"
    if local.get(key) != url:
        git.config_set(key, url)
    return key


def remember_remote(git: Git, url: str) -> None:
    """Record ``url`` as this clone's remote at the lowest precedence (``uninstall`` removes it).

    Used by commits whose tree has no ``.lfsagent``: older history of a repository that
    moved from git-lfs, or set its bucket later.
    """
    local = _local_config(git)
    _record(git, local, [_remember(git, local, url)])


def _check_committable(url: str, top: Path) -> None:
    """Refuse to write ``url`` into the committed ``.lfsagent`` when that is unsafe.

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
    """``url`` without ``user:password@``.

    git-lfs, like git, lets a URL-scoped key without user-info match every user, so the
    key need not hold it; a password must not become part of a config key (nor of a
    git command line).
    """
    if not has_userinfo(url):
        return url
    parsed = urlparse(url)
    return parsed._replace(netloc=parsed.netloc.rpartition("@")[2]).geturl()


def _lfs_endpoint(url: str, base: Path | None) -> str:
    """The LFS endpoint git-lfs derives from a git remote URL (for URL-scoped keys).

    An ssh or git remote's endpoint is https on the same host, without user or port.
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
    """Remove every key install recorded, and our hooks (restoring chained ones)."""
    report = InstallReport()
    recorded = git.config_get(INSTALLED_KEY) or ""
    for key in [k for k in recorded.split(",") if k]:
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


#: The filter command ``install --global`` configures: :func:`hooks.add_missing_hooks`,
#: then ``filter-process``.
GLOBAL_FILTER_COMMAND = "global-filter-process"
#: Where ``install --global --force`` keeps the global values it replaced (another
#: filter's, git-lfs's), below this prefix and the key, for ``uninstall --global``.
REPLACED_PREFIX = "lfs-agent.replaced."


def global_filter_settings(python: str) -> dict[str, str]:
    """The keys ``install --global`` writes into the user's git config."""
    keys = filter_settings(python)
    keys["filter.lfs.process"] = f"{agent_command(python)} {GLOBAL_FILTER_COMMAND}"
    return keys


def _global_config(git: Git) -> dict[str, str]:
    """The user's global git config, key -> last value, in one read."""
    return {e.key: e.value for e in git.config_entries(["--global"])}


def _global_set(git: Git, key: str, value: str) -> None:
    git.run(["config", "--global", "--replace-all", key, value])


def _global_unset(git: Git, key: str) -> None:
    git.run(["config", "--global", "--unset-all", key], check=False)


def install_global(git: Git, *, force: bool = False, python: str | None = None) -> InstallReport:
    """Configure lfs-agent's filter in the user's global git config, as ``git lfs install``.

    Every repository of this user then cleans and smudges through lfs-agent, submodules
    included, each with the remote of its own committed ``.lfsagent``. The filter adds
    a repository's hooks at its first run there (:func:`hooks.add_missing_hooks`).
    What is written is recorded in the global ``lfs-agent.installed``; a foreign value
    replaced with ``force`` is kept below :data:`REPLACED_PREFIX`, so that
    :func:`uninstall_global` puts everything back.

    Args:
        git: Runs git (anywhere: only the global config is read and written).
        force: Replace another filter's global ``filter.lfs.*`` values (git-lfs's).
        python: Interpreter the written commands run; defaults to the running one.

    Raises:
        ConfigError: another tool's filter is configured globally and ``force`` is false.
    """
    values = global_filter_settings(python or sys.executable)
    current = _global_config(git)
    foreign = {
        key: current[key]
        for key in values
        if key in current and current[key] != values[key] and not _is_ours(current[key])
    }
    if foreign and not force:
        key, old = next(iter(foreign.items()))
        owner = "git-lfs's filter" if "git-lfs" in old or "git lfs" in old else "another filter"
        raise ConfigError(
            f"your global git config sets {key} to {old!r} ({owner}); run 'lfs-agent install "
            "--global --force' to replace it ('lfs-agent uninstall --global' puts it back)"
        )
    for key, old in foreign.items():
        _global_set(git, REPLACED_PREFIX + key, old)
    # A key that already held our value, as git-lfs's filter.lfs.required=true does, is
    # not ours to remove later: only the keys written now join the record.
    written = [key for key in values if current.get(key) != values[key]]
    for key in written:
        _global_set(git, key, values[key])
    recorded = [k for k in current.get(INSTALLED_KEY, "").split(",") if k]
    merged = ",".join(dict.fromkeys(recorded + written))
    if merged and merged != current.get(INSTALLED_KEY):
        _global_set(git, INSTALLED_KEY, merged)
    report = InstallReport()
    if foreign:
        report.messages.append(
            f"replaced {', '.join(sorted(foreign))} in your global git config "
            "('lfs-agent uninstall --global' puts them back)"
        )
    return report


def uninstall_global(git: Git) -> InstallReport:
    """Remove what :func:`install_global` wrote, and put back the values it replaced.

    A recorded key that no longer holds lfs-agent's value (someone set it since) is left
    alone; so is everything else in the global config. Sections left empty by this go.
    """
    report = InstallReport()
    current = _global_config(git)
    saved = {
        key[len(REPLACED_PREFIX) :]: value
        for key, value in current.items()
        if key.startswith(REPLACED_PREFIX)
    }
    for key in [k for k in current.get(INSTALLED_KEY, "").split(",") if k]:
        value = current.get(key)
        required = (key, value) == ("filter.lfs.required", "true")
        if value is None or not (_is_ours(value) or required):
            continue  # set by someone since: theirs
        if key in saved:  # replaced on its own line, so the file reads as it did
            _global_set(git, key, saved[key])
            report.messages.append(f"restored {key} in your global git config")
        else:
            _global_unset(git, key)
    for key in saved:
        _global_unset(git, REPLACED_PREFIX + key)
    _global_unset(git, INSTALLED_KEY)
    for section in ("filter.lfs", REPLACED_PREFIX + "filter.lfs", SECTION):
        pattern = "^" + section.replace(".", r"\.") + r"\.[^.]+$"
        probe = git.run(["config", "--global", "--get-regexp", pattern], check=False)
        if probe.returncode == 1:  # no key left in it (1: none found; other codes: errors)
            git.run(["config", "--global", "--remove-section", section], check=False)
    return report


def submodule_repos(git: Git) -> list[tuple[str, Path]]:
    """The initialized submodules below the repository, recursively, parents first.

    Returns:
        For each, its path as shown from the repository's top and its directory.

    Raises:
        GitError: when git fails (outside a work tree, a broken ``.gitmodules``).
    """
    top = _work_tree(git)
    script = 'printf "%s\\0%s\\0" "$displaypath" "$toplevel/$sm_path"'
    out = Git(top, git.env).run(["submodule", "--quiet", "foreach", "--recursive", script]).stdout
    fields = out.decode("utf-8", "surrogateescape").split("\0")
    return [(shown, Path(path)) for shown, path in zip(fields[0::2], fields[1::2], strict=False)]


def _quoted(pattern: str) -> str:
    """Quote a pattern for a message as git-lfs does (Go ``%q``)."""
    return json.dumps(pattern, ensure_ascii=False)


#: What ``git lfs track`` escapes in the patterns it writes, and how.
_ESCAPES = ((" ", "[[:space:]]"), ("#", "\\#"))


def escape_pattern(pattern: str) -> str:
    """Escape a pattern the way ``git lfs track`` does in ``.gitattributes``."""
    for plain, escaped in _ESCAPES:
        pattern = pattern.replace(plain, escaped)
    return pattern


def unescape_pattern(pattern: str) -> str:
    """Undo :func:`escape_pattern` (git-lfs compares and prints patterns so)."""
    for plain, escaped in _ESCAPES:
        pattern = pattern.replace(escaped, plain)
    return pattern


def attribute_line(pattern: str) -> str:
    """The ``.gitattributes`` line ``git lfs track PATTERN`` writes."""
    return f"{escape_pattern(pattern)} {LFS_ATTRIBUTES}"


def _trim_current(pattern: str) -> str:
    """``pattern`` without a leading ``./`` (or dot-backslash), as git-lfs compares patterns."""
    if pattern.startswith(".\\"):
        return pattern[2:]
    return pattern.removeprefix("./")


def _work_tree(git: Git) -> Path:
    top = git.paths.work_tree
    if top is None:
        raise ConfigError("track needs a work tree")
    return top


def _prefix(git: Git) -> str:
    """The current directory below the work tree's top: ``""`` or ``"a/b/"``."""
    return git.output(["rev-parse", "--show-prefix"])


def _read_attributes(top: Path, rel: str = ATTRIBUTES_FILE) -> str | None:
    """The attributes file ``rel`` of the work tree, or None when there is none.

    A symbolic link there is refused, as git itself does not follow one to read
    attributes: it could make ``track`` read, and then rewrite, any file of the user's.

    Raises:
        UnsafePathError: it, or a directory leading to it, is a symbolic link, or it is
            not a regular file.
    """
    try:
        with worktree.directory_of(top, rel) as (parent, name):
            try:
                st = parent.lstat(name)
            except FileNotFoundError:
                return None
            found = parent.read_regular(name, MAX_ATTRIBUTES_SIZE)
    except FileNotFoundError:
        return None
    if found is None:
        what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a small regular file"
        raise UnsafePathError(f"refusing to use {rel}: it is {what}")
    return found[0].decode("utf-8", "surrogateescape")


def _read_outside(path: Path) -> str | None:
    """An attributes file outside the work tree (the user's, the system's), if readable."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_ATTRIBUTES_SIZE + 1)
    except OSError:
        return None
    if len(data) > MAX_ATTRIBUTES_SIZE:
        return None
    return data.decode("utf-8", "surrogateescape")


def _scan_lines(text: str) -> list[str]:
    """The lines of ``text`` as git-lfs reads them: CR LF ends a line as LF does."""
    parts = text.split("\n")
    last = parts.pop()
    lines = [p[:-1] if p.endswith("\r") else p for p in parts]
    if last:
        lines.append(last)
    return lines


def _go_clean(path: str) -> str:
    """``path`` as Go's ``filepath.Clean`` makes it (git-lfs lists patterns so)."""
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts and parts[-1] != "..":
            parts.pop()
        elif part == ".." and rooted and not parts:
            continue
        else:
            parts.append(part)
    cleaned = "/".join(parts)
    return ("/" + cleaned) if rooted else (cleaned or ".")


class _Attr(NamedTuple):
    """One attribute of a line: ``key`` ``true``/``false``/a value, or unspecified."""

    key: str
    value: str
    unspecified: bool = False


class _Line(NamedTuple):
    """One line of an attributes file: a pattern's attributes or a macro's definition."""

    pattern: str | None
    macro: str
    attrs: tuple[_Attr, ...]


#: Escapes of a quoted pattern (Go's ``strconv.Unquote``).
_QUOTED_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}


def _unquote(quoted: str) -> str | None:
    """The pattern ``"..."`` stands for, or None when Go could not unquote it."""
    body = quoted[1:-1].encode("utf-8", "surrogateescape")
    out = bytearray()
    at = 0
    while at < len(body):
        c = body[at]
        if c in b'"\n':  # a bare quote or newline inside
            return None
        if c != ord("\\"):
            out.append(c)
            at += 1
            continue
        kind = chr(body[at + 1]) if at + 1 < len(body) else ""
        if kind and kind in _QUOTED_ESCAPES:
            out.append(_QUOTED_ESCAPES[kind])
            at += 2
            continue
        if kind and kind in "xuU":
            width, base, digits = {"x": 2, "u": 4, "U": 8}[kind], 16, "0123456789abcdefABCDEF"
            start = at + 2
        elif kind and kind in "01234567":
            width, base, digits, start = 3, 8, "01234567", at + 1
        else:
            return None
        text = body[start : start + width].decode("latin-1")
        if len(text) != width or any(d not in digits for d in text):
            return None
        number = int(text, base)
        at = start + width
        if kind in "uU":
            if number > 0x10FFFF or 0xD800 <= number < 0xE000:
                return None
            out += chr(number).encode()
        elif number > 255:
            return None
        else:
            out.append(number)
    return out.decode("utf-8", "surrogateescape")


def _parse_attributes(text: str) -> tuple[list[_Line], str] | None:
    """The lines of an attributes file, as git-lfs parses them, and its line ending.

    Like git-lfs (not git): the pattern ends at the first space, attributes are
    separated by spaces, a quoted pattern is unquoted as a Go string. A quoted pattern
    that does not unquote makes the whole file unusable (None), as it does git-lfs.
    """
    lf = crlf = 0
    lines = []
    parts = text.split("\n")
    last = parts.pop()
    raw_lines = []
    for part in parts:
        if part.endswith("\r"):
            crlf += 1
            raw_lines.append(part[:-1])
        else:
            lf += 1
            raw_lines.append(part)
    if last:
        raw_lines.append(last)
    for raw in raw_lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pattern: str | None = None
        macro = ""
        if line.startswith('"'):
            end = line.rfind('"')
            if end == 0:
                return None
            pattern = _unquote(line[: end + 1])
            if pattern is None:
                return None
            applied = line[end + 1 :].strip()
        else:
            first, _, applied = line.partition(" ")
            if first.startswith("[attr]"):
                macro = first[len("[attr]") :]
            else:
                pattern = first
        attrs = []
        for word in applied.split(" "):
            if not word:
                continue
            if word.startswith("-"):
                attrs.append(_Attr(word[1:], "false"))
            elif word.startswith("!"):
                attrs.append(_Attr(word[1:], "", unspecified=True))
            elif "=" in word:
                key, _, value = word.partition("=")
                attrs.append(_Attr(key, value))
            else:
                attrs.append(_Attr(word, "true"))
        lines.append(_Line(pattern or None, macro, tuple(attrs)))
    ending = "\r\n" if crlf > lf else ("" if lf == 0 else "\n")
    return lines, ending


class _Macros:
    """Attribute macros (``[attr]name ...``), expanded as git-lfs does: one level deep."""

    def __init__(self) -> None:
        self.macros: dict[str, tuple[_Attr, ...]] = {
            "binary": (_Attr("diff", "false"), _Attr("merge", "false"), _Attr("text", "false"))
        }

    def expand(self, lines: list[_Line], define: bool) -> list[tuple[str, list[_Attr]]]:
        """The patterns of ``lines`` with their attributes; ``define``: learn its macros."""
        result = []
        for line in lines:
            if line.pattern is None:
                if define:
                    self.macros[line.macro] = line.attrs
                continue
            attrs: list[_Attr] = []
            for attr in line.attrs:
                macro = self.macros.get(attr.key)
                if macro and attr.value == "true":
                    attrs.extend(macro)
                elif macro and attr.unspecified:
                    attrs.extend(_Attr(m.key, "", unspecified=True) for m in macro)
                attrs.append(attr)  # git keeps the macro's own name set too
            result.append((line.pattern, attrs))
        return result


class AttributePattern(NamedTuple):
    """A pattern of an attributes file that sets ``filter`` or ``lockable``.

    Attributes:
        path: The pattern joined to its file's directory, as ``git lfs track`` lists it.
        source: The file, relative to the work tree's top ("" for the user's and the
            system's files, as git-lfs shows them).
        tracked: Its filter is lfs.
        lockable: It sets ``lockable``.
        line_ending: Of its file (``""`` when the file has a single unterminated line).
    """

    path: str
    source: str
    tracked: bool
    lockable: bool
    line_ending: str


def _patterns_of(
    macros: _Macros, text: str | None, source: str, define: bool
) -> list[AttributePattern]:
    parsed = _parse_attributes(text) if text is not None else None
    if parsed is None:
        return []
    lines, ending = parsed
    directory = source.rpartition("/")[0] or "."
    found = []
    for pattern, attrs in macros.expand(lines, define):
        has_filter = tracked = lockable = False
        for attr in attrs:
            if attr.key == "filter":
                has_filter, tracked = True, attr.value == "lfs"
            elif attr.key == "lockable" and attr.value == "true":
                lockable = True
        if has_filter or lockable:
            path = _go_clean(f"{directory}/{pattern}")
            found.append(AttributePattern(path, source, tracked, lockable, ending))
    return found


def _work_tree_patterns(git: Git, top: Path, macros: _Macros) -> list[AttributePattern]:
    """The patterns of ``.git/info/attributes`` and of every ``.gitattributes``.

    The files are those git-lfs reads (tracked or untracked but not ignored), longest
    path first (its precedence order); only the top-level one and ``info/attributes``
    may define macros.
    """
    files: list[tuple[str, str, bool]] = []  # (full path, source, in the work tree)
    info = git.paths.git_dir / "info" / "attributes"
    if info.is_file():
        files.append((str(info), os.path.relpath(info, top), False))
    listing = Git(top, git.env).run(
        [
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            f":(top,glob)**/{ATTRIBUTES_FILE}",
        ]
    )
    names = listing.stdout.decode("utf-8", "surrogateescape").split("\0")
    for rel in dict.fromkeys(n for n in names if n):
        files.append((os.path.join(top, rel), _go_clean(rel), True))
    files.sort(key=lambda f: -len(f[0]))
    found = []
    for full, source, inside in files:
        text = _read_attributes(top, source) if inside else _read_outside(Path(full))
        define = source in (ATTRIBUTES_FILE,) or not inside
        found.extend(_patterns_of(macros, text, source, define))
    return found


def attribute_patterns(git: Git, outside: Sequence[Path] = ()) -> list[AttributePattern]:
    """Every pattern ``git lfs track`` lists, in its order.

    Args:
        git: Runs git in the repository.
        outside: The system's and then the user's attributes files (read first, for
            their macros, and listed last, the user's before the system's).

    Raises:
        UnsafePathError: a ``.gitattributes`` is a symbolic link.
    """
    top = _work_tree(git)
    macros = _Macros()
    groups = [_patterns_of(macros, _read_outside(path), "", True) for path in outside]
    found = _work_tree_patterns(git, top, macros)
    for group in reversed(groups):
        found.extend(group)
    return found


class TrackResult(NamedTuple):
    """What ``track`` did.

    Attributes:
        messages: git-lfs's lines (``Tracking "*.bin"`` ...).
        covered: For each new pattern, the files already in git that it now covers,
            relative to the work tree's top; each was marked modified (its time set to
            now), so that ``git add`` stores it through the filter.
    """

    messages: list[str]
    covered: dict[str, list[str]]


def _line_ending(git: Git, known: list[AttributePattern]) -> str:
    """The line ending ``track`` writes: the top-level file's, else git's own."""
    for found in known:
        if found.source == ATTRIBUTES_FILE and found.line_ending:
            return found.line_ending
    autocrlf = (git.config_get("core.autocrlf") or "").lower()
    return "\r\n" if autocrlf in ("true", "t", "1") else "\n"


def track(git: Git, patterns: list[str], outside: Sequence[Path] = ()) -> TrackResult:
    """Add ``patterns`` to the current directory's ``.gitattributes``, as ``git lfs track``.

    A pattern that any attributes file of the work tree already lists (joined to its
    directory) is "already supported". The file is rewritten as git-lfs rewrites it:
    blank lines dropped, every line ending as the top-level file's, an existing line of
    the same pattern replaced in place, new ones appended. Files already in git that a
    new pattern covers (``git ls-files`` of it, then the attributes git now gives them)
    have their time set to now, so that git sees them modified and ``git add`` stores
    them as pointers.

    Args:
        git: Runs git in the current directory.
        patterns: As given on the command line.
        outside: See :func:`attribute_patterns` (read for their macros only).

    Raises:
        UnsafePathError: an attributes file is a symbolic link.
    """
    top = _work_tree(git)
    prefix = _prefix(git)
    here = prefix.rstrip("/") or "."
    macros = _Macros()
    for path in outside:
        _patterns_of(macros, _read_outside(path), "", True)
    known = _work_tree_patterns(git, top, macros)
    ending = _line_ending(git, known)
    supported = {unescape_pattern(k.path) for k in known}
    messages = []
    changed: dict[str, str] = {}
    for given in patterns:
        pattern = _trim_current(given)
        if _go_clean(f"{here}/{pattern}") in supported:
            messages.append(f"{_quoted(pattern)} already supported")
            continue
        escaped = escape_pattern(pattern)
        changed[pattern] = f"{escaped} {LFS_ATTRIBUTES}{ending}"
        messages.append(f"Tracking {_quoted(unescape_pattern(escaped))}")
    rel = prefix + ATTRIBUTES_FILE
    out = []
    for line in _scan_lines(_read_attributes(top, rel) or ""):
        fields = line.split()
        if not fields:
            continue
        replaced = changed.pop(unescape_pattern(fields[0]), None)
        out.append(replaced if replaced is not None else line + ending)
    out.extend(changed.values())
    worktree.write_file(top, rel, "".join(out).encode("utf-8", "surrogateescape"))
    covered: dict[str, list[str]] = {}
    for pattern in changed:
        files = _files_matching(git, pattern)
        blocked = [f for f in files if f.rpartition("/")[2].startswith(_BLOCKED_NAMES)]
        for name in blocked:
            messages.append(
                f"Pattern '{pattern}' matches forbidden file '{name}'. If you would like to "
                f"track {name}, modify '.gitattributes' manually."
            )
        if not blocked:
            covered[pattern] = _mark_modified(git, top, prefix, files)
    return TrackResult(messages, covered)


#: Names git-lfs's ``track`` refuses to mark modified (a pattern that covers them is
#: written, and nothing is touched): ``git add`` would store ``.gitattributes`` itself
#: as a pointer.
_BLOCKED_NAMES = (".git", ".lfs")


def _files_matching(git: Git, pattern: str) -> list[str]:
    """Regular files in the index that ``git ls-files`` finds for ``pattern`` (as git-lfs).

    Names are relative to the current directory. A pattern with a leading slash that has
    a ``*`` matches only in this directory, as in ``.gitattributes``.
    """
    plain = pattern.removeprefix("/")
    if not plain:
        return []
    root_only = plain != pattern and "*" in plain
    out = git.run(["ls-files", "--cached", "-s", "-z", "--", plain]).stdout
    files = []
    for entry in out.decode("utf-8", "surrogateescape").split("\0"):
        meta, _, name = entry.partition("\t")
        if not name or meta.split(" ")[0] not in ("100644", "100755"):
            continue  # symbolic links and submodules are not filtered
        if root_only and "/" in name:
            continue
        files.append(name)
    return list(dict.fromkeys(files))


def _mark_modified(git: Git, top: Path, prefix: str, files: list[str]) -> list[str]:
    """Set the time of those of ``files`` whose filter is now lfs to now; return them.

    git then sees them changed and runs them through the filter at the next ``git add``
    or ``git status`` (git-lfs's ``track`` does the same). A file is touched through its
    directory's descriptor, following no symbolic link; one that is gone, or below a
    link, is left out.
    """
    if not files:
        return []
    lfs = lfs_filtered(git, files)
    now = time.time_ns()
    touched = []
    for name in lfs:
        rel = os.path.normpath(prefix + name)
        try:
            with worktree.directory_of(top, rel) as (parent, base):
                os.utime(base, ns=(now, now), dir_fd=parent.fd, follow_symlinks=False)
        except (OSError, UnsafePathError):
            continue
        touched.append(rel)
    return touched


def untrack(git: Git, patterns: list[str]) -> list[str]:
    """Remove ``patterns``' lfs lines from the current directory's ``.gitattributes``.

    As ``git lfs untrack``: a line naming ``filter=lfs`` goes when its first word (less a
    leading ``./``) is one of the patterns, escaped as ``track`` writes them; every other
    line is kept, ending in LF. Without such a file nothing is done.

    Returns:
        git-lfs's messages.
    """
    top = _work_tree(git)
    rel = _prefix(git) + ATTRIBUTES_FILE
    text = _read_attributes(top, rel)
    if text is None:
        return []
    wanted = {escape_pattern(_trim_current(p)) for p in patterns}
    kept = []
    messages = []
    for line in _scan_lines(text):
        if "filter=lfs" in line and _trim_current(line.split()[0]) in wanted:
            messages.append(f"Untracking {_quoted(unescape_pattern(line.split()[0]))}")
            continue
        kept.append(line + "\n")
    worktree.write_file(top, rel, "".join(kept).encode("utf-8", "surrogateescape"))
    return messages
