"""Resolve lfs-agent's settings for one repository.

Sources, highest precedence first:

1. command-line flags (``overrides``, passed in by the CLI);
2. the environment (``env``, passed in by the CLI; ``LFS_AGENT_REMOTE`` ...);
3. the repository's own git config (``local``, ``worktree`` and ``-c`` scopes);
4. the committed ``.lfsagent`` file: work tree, else the index, else ``HEAD``, so that
   ``git clone --no-checkout`` followed by ``lfs-agent install`` works;
5. global and system git config.

Our keys live in the ``[lfs-agent]`` section. ``.lfsagent`` uses git-config syntax and
comes from whoever controls the repository, so only the keys of :data:`COMMITTED_KEYS`
are read from it; any other is ignored there with a warning naming it (git-lfs reads
only an allow-list from ``.lfsconfig`` for the same reason). git-lfs's own
keys are honoured where they mean the same thing: ``lfs.storage``, ``lfs.fetchinclude``,
``lfs.fetchexclude``, ``lfs.concurrenttransfers``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote, urlparse

from lfs_agent.errors import ConfigError, LfsAgentError
from lfs_agent.git import (
    REPO_SCOPES,
    ConfigEntry,
    Git,
    Started,
    config_list,
    config_list_args,
    failure_reason,
)

if TYPE_CHECKING:
    import subprocess

__all__ = [
    "ACCEPTED_REMOTE_FORMS",
    "FALLBACK_KEY",
    "SIDECAR_FILE",
    "Settings",
    "committed_remote",
    "normalize_remote_url",
    "read_committed",
    "resolve_settings",
]

#: The committed file naming the remote (git-config syntax).
SIDECAR_FILE = ".lfsagent"
#: git-lfs's committed config file, of which we read only the keys git-lfs allows there.
LFSCONFIG_FILE = ".lfsconfig"
#: The committed files settings are read from, lowest precedence first.
COMMITTED_FILES = (LFSCONFIG_FILE, SIDECAR_FILE)
#: ``lfs.*`` keys git-lfs honours in ``.lfsconfig`` and that mean something to us.
LFSCONFIG_KEYS = frozenset({"fetchinclude", "fetchexclude", "skipdownloaderrors"})
#: Our git-config section.
SECTION = "lfs-agent"
#: The remote recorded in a clone's own config, used only when nothing else names one.
FALLBACK_KEY = "fallback-remote"
#: Remote URL schemes and what each looks like, for error messages.
ACCEPTED_REMOTE_FORMS = (
    "/path/to/folder",
    "file:///path/to/folder",
    "s3://bucket/prefix",
    "gs://bucket/prefix",
    "http(s)://host/path",
)
#: Environment variables and the setting each overrides.
ENV_KEYS = {
    "LFS_AGENT_REMOTE": "remote",
    "LFS_AGENT_CACHE_DIR": "cachedir",
    "LFS_AGENT_CONCURRENCY": "concurrency",
}
#: The only ``lfs-agent.*`` keys read from a committed file, as git-lfs reads only its
#: ``safeKeys`` from ``.lfsconfig``: none of them chooses a place on this machine (a
#: cache directory), a program, a secret, a credential profile or a resource limit
#: (threads, retries, timeouts, part sizes). A committed remote may still name a folder
#: on this machine, as a team sharing a mounted folder commits it.
COMMITTED_KEYS = frozenset(
    {
        "remote",
        "fetchinclude",
        "fetchexclude",
        "skipdownloaderrors",
        "local.link",
        "s3.region",
        "s3.addressing-style",
        "s3.checksum",
        "s3.sse",
        "s3.storage-class",
        "gc.policy",
    }
)
#: Committed keys that name an endpoint: read only when it is https, so that no
#: request signed with the user's credentials goes out in clear text.
COMMITTED_ENDPOINT_KEYS = frozenset({"s3.endpoint-url"})
# ``host:path`` or ``user@host:path``: an ssh location, which is not a bucket.
_SCP_LIKE_RE = re.compile(r"[^/]+:")
#: A remote URL's scheme with its ``:`` or a ``/`` lost (``https//host``, ``s3:/bucket``):
#: left alone, the first would be taken for a folder inside the work tree.
_URL_TYPO_RE = re.compile(r"(?i)(s3|gs|https?)(:?)(/*)(.+)")
_TRUE = frozenset({"1", "true", "yes", "on"})


class Settings(NamedTuple):
    """Everything a command needs to know about this repository's setup.

    A named tuple rather than a pydantic model or a dataclass on purpose: git spawns
    lfs-agent for every filter run and hook, and importing pydantic costs ~150 ms there,
    more than all the rest of start-up; ``dataclasses`` costs ~15 ms (it imports
    ``inspect``). :func:`resolve_settings` validates every value it sets.

    Attributes:
        remote: Normalized remote URL (``file:///...``, ``s3://...``), or None.
        remote_origin: Where ``remote`` came from, for messages (``.lfsagent`` ...).
        lfs_dir: The ``lfs`` directory holding ``objects/`` and ``tmp/``.
        fetch_include: Patterns objects must match to be downloaded (empty: all).
        fetch_exclude: Patterns whose objects are never downloaded.
        concurrency: Parallel transfers.
        cache_dir: Shared object cache for CI runners, or None.
        skip_smudge: Leave pointers in the work tree instead of downloading.
        skip_download_errors: A failed download leaves the pointer instead of failing.
        options: Every other ``lfs-agent.*`` key, for backends (``s3.region`` ...).
        warnings: Things a person should hear about (ignored committed keys ...).
    """

    lfs_dir: Path
    remote: str | None = None
    remote_origin: str = ""
    fetch_include: tuple[str, ...] = ()
    fetch_exclude: tuple[str, ...] = ()
    concurrency: int = 8
    cache_dir: Path | None = None
    skip_smudge: bool = False
    skip_download_errors: bool = False
    options: Mapping[str, str] = MappingProxyType({})
    warnings: tuple[str, ...] = ()

    def require_remote(self) -> str:
        """Return the remote URL.

        Raises:
            ConfigError: when none is configured, saying how to set one.
        """
        if not self.remote:
            raise ConfigError(
                "no remote configured: run 'lfs-agent install --remote URL' "
                "or set lfs-agent.remote in .lfsagent"
            )
        return self.remote


def normalize_remote_url(url: str, base: Path | None = None) -> str:
    """Return ``url`` in canonical form: folders become ``file://`` URLs.

    Args:
        url: A path or URL in one of :data:`ACCEPTED_REMOTE_FORMS`.
        base: Directory a relative path is resolved against (the work tree's top).

    Raises:
        ConfigError: for any other form, listing the accepted ones.
    """
    url = url.strip()
    intended = _intended_url(url)
    if intended is not None:
        raise ConfigError(f"remote {url!r} looks like a mistyped URL: did you mean {intended!r}?")
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme in ("s3", "gs"):
        if not parsed.netloc:
            raise ConfigError(f"remote {url!r} names no bucket: use {scheme}://bucket/prefix")
        prefix = parsed.path.strip("/")
        return f"{scheme}://{parsed.netloc}" + (f"/{prefix}" if prefix else "")
    if scheme in ("http", "https"):
        if not parsed.netloc:
            raise ConfigError(f"remote {url!r} names no host")
        return url.rstrip("/")
    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"remote {url!r}: file:// URLs must name a local path")
        return Path(unquote(parsed.path)).resolve().as_uri()
    if url and not scheme and "://" not in url and not _SCP_LIKE_RE.match(url):
        path = Path(url).expanduser()
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        return path.resolve().as_uri()
    forms = ", ".join(ACCEPTED_REMOTE_FORMS)
    raise ConfigError(f"unsupported remote {url!r}: expected one of {forms}")


def _split_patterns(value: str) -> tuple[str, ...]:
    """git-lfs's list syntax: comma-separated, trimmed, one trailing slash dropped."""
    patterns = []
    for item in value.split(","):
        pattern = item.strip()
        if pattern.endswith(("/", "\\")) and len(pattern) > 1:
            pattern = pattern[:-1]
        if pattern:
            patterns.append(pattern)
    return tuple(patterns)


def _start_probe(git: Git, names: tuple[str, ...]) -> Started:
    """Start the ``git cat-file --batch-check`` that finds committed files.

    It asks for each of ``names`` in the index, then in ``HEAD``: two answer lines per
    name, in the order of ``names``.
    """
    query = "".join(f"{rev}:{name}\n" for name in names for rev in ("", "HEAD")).encode()
    return git.start(["cat-file", "--batch-check"], input=query)


def read_committed(
    git: Git,
    work_tree: Path | None,
    names: tuple[str, ...] = COMMITTED_FILES,
    probe: subprocess.CompletedProcess[bytes] | None = None,
    warnings: list[str] | None = None,
) -> dict[str, list[ConfigEntry]]:
    """Read committed config files, each from the work tree, else the index, else ``HEAD``.

    This is how git-lfs reads ``.lfsconfig``; ``.lfsagent`` is read the same way. One
    ``git cat-file --batch-check`` finds which of the index and ``HEAD`` hold the files
    missing from the work tree, so a repository without them costs one git process, not
    one per place and file: git runs this for every filter process and hook.

    Args:
        git: Runs git in the repository.
        work_tree: The work tree's top, or None in a bare repository.
        names: The files, by name.
        probe: The finished :func:`_start_probe` of ``names``, when the caller has
            already run it (:func:`resolve_settings` runs it beside its other git
            commands).
        warnings: Told of each file git cannot parse (it is then passed over, as
            git-lfs passes over a bad ``.lfsconfig``, so that checkouts still work).

    Returns:
        The entries of each file of ``names``; an empty list for a file found nowhere.
    """
    warnings = [] if warnings is None else warnings
    found: dict[str, list[ConfigEntry]] = {}
    missing = []
    for name in names:
        if work_tree is not None and (work_tree / name).is_file():
            found[name] = _committed_entries(git, name, ["-f", str(work_tree / name)], warnings)
        else:
            found[name] = []
            missing.append(name)
    if probe is None:
        if not missing:
            return found
        probe = _start_probe(git, names).wait()
    answers = probe.stdout.decode("utf-8", "surrogateescape").splitlines()
    for index, name in enumerate(names):
        if name not in missing:
            continue
        for answer in answers[2 * index : 2 * index + 2]:  # the index's, then HEAD's
            oid, _, kind = answer.partition(" ")
            if kind.startswith("blob "):
                found[name] = _committed_entries(git, name, ["--blob", oid], warnings)
                break
    return found


def _committed_entries(
    git: Git, name: str, where: list[str], warnings: list[str]
) -> list[ConfigEntry]:
    """The entries of the committed file ``name``, read from ``where``.

    One git cannot parse has none, and a warning naming git's reason: without it, a
    remote set there would seem to be missing for no reason.
    """
    proc = git.run(config_list_args(where), check=False)
    if proc.returncode != 0:
        warnings.append(f"ignored {name}: {failure_reason(proc)}")
    return config_list(proc)


def committed_remote(git: Git, rev: str | None = None) -> str | None:
    """The remote a committed ``.lfsagent`` names, normalized; None when it names none.

    Args:
        git: Runs git in the repository.
        rev: Read the file from this commit (``refs/remotes/origin/HEAD``); None: from
            the work tree, the index or ``HEAD``, as settings are.
    """
    if rev is None:
        try:
            settings = resolve_settings(git)
        except LfsAgentError:
            return None
        return settings.remote if settings.remote_origin == SIDECAR_FILE else None
    probe = git.run(["cat-file", "-e", f"{rev}:{SIDECAR_FILE}"], check=False)
    if probe.returncode != 0:
        return None
    top = git.paths.work_tree
    warnings: list[str] = []
    entries = _committed_entries(git, SIDECAR_FILE, ["--blob", f"{rev}:{SIDECAR_FILE}"], warnings)
    raw = [e.value.strip() for e in entries if e.key == f"{SECTION}.remote"]
    if not raw or _committed_path_remote(raw[-1], top) is not None:
        return None
    try:
        return normalize_remote_url(raw[-1], top)
    except ConfigError:
        return None


def _committed_key_refusal(name: str, value: str) -> str | None:
    """Why the committed ``lfs-agent.<name> = value`` is not read, or None to read it."""
    if name in COMMITTED_KEYS:
        return None
    if name in COMMITTED_ENDPOINT_KEYS:
        if urlparse(value.strip()).scheme.lower() == "https":
            return None
        return "a committed endpoint must be https"
    return (
        "only the remote, fetch patterns and bucket options that name no endpoint, "
        "program, secret, local path or limit are read from a committed file"
    )


def _intended_url(url: str) -> str | None:
    """The URL ``url`` probably meant, when it is one with ``:`` or a ``/`` lost; else None.

    ``s3/bucket`` (one slash, no colon) stays a folder: it may well be one.
    """
    found = _URL_TYPO_RE.fullmatch(url)
    if found is None:
        return None
    scheme, colon, slashes, rest = found.groups()
    if (colon and slashes == "//") or (not colon and slashes != "//"):
        return None
    return f"{scheme.lower()}://{rest}"


def _committed_path_remote(raw: str, top: Path | None) -> str | None:
    """Why a committed folder remote inside the work tree is refused, or None.

    The repository could commit a symbolic link on the way to it (``bucket -> ~``), so
    that uploads would write where it points: such a path is not followed.
    """
    parsed = urlparse(raw)
    if parsed.scheme.lower() == "file":
        raw = unquote(parsed.path)
    elif parsed.scheme or raw.startswith("~"):
        return None
    if top is None:
        return None
    path = Path(os.path.normpath(top / raw))
    try:
        inside = path.relative_to(top)
    except ValueError:
        return None
    current = top
    for part in inside.parts:
        current = current / part
        if current.is_symlink():
            return f"{current.relative_to(top)} is a symbolic link in the work tree"
    return None


def resolve_settings(
    git: Git,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Settings:
    """Build the :class:`Settings` for the repository ``git`` runs in.

    Args:
        git: Runs git in the repository.
        env: The environment to read ``LFS_AGENT_*`` and ``GIT_LFS_SKIP_SMUDGE`` from.
        overrides: ``lfs-agent`` keys (``remote`` ...) given on the command line.

    Raises:
        GitError: outside a repository.
        ConfigError: for a malformed value.
    """
    # Three git commands that do not depend on each other run side by side: most of
    # what each costs is git's own start, and git starts us for every filter run.
    listing = git.start(config_list_args())
    probe = _start_probe(git, COMMITTED_FILES)
    try:
        paths = git.paths
    finally:
        entries = config_list(listing.wait())
        probed = probe.wait()
    env = env or {}
    warnings: list[str] = []
    repo = [e for e in entries if e.scope in REPO_SCOPES]
    outer = [e for e in entries if e.scope not in REPO_SCOPES]

    # Layers from lowest to highest precedence; later values win.
    ours: dict[str, tuple[str, str]] = {}
    lfs: dict[str, str] = {}

    def take(layer: list[ConfigEntry], origin: str, committed: bool = False) -> None:
        for entry in layer:
            section, _, name = entry.key.partition(".")
            if section == SECTION:
                refusal = _committed_key_refusal(name, entry.value) if committed else None
                if refusal is None and committed and name == "remote":
                    refusal = _committed_path_remote(entry.value.strip(), paths.work_tree)
                if refusal is not None:
                    warnings.append(
                        f"ignored {SECTION}.{name} in {SIDECAR_FILE}: {refusal}; set it "
                        f"with 'git config {SECTION}.{name} VALUE'"
                    )
                    continue
                ours[name] = (entry.value, origin)
            elif section == "lfs" and not committed:
                lfs[name] = entry.value

    committed = read_committed(git, paths.work_tree, probe=probed, warnings=warnings)
    for entry in committed[LFSCONFIG_FILE]:
        section, _, name = entry.key.partition(".")
        if section == "lfs" and name in LFSCONFIG_KEYS:
            lfs[name] = entry.value  # lowest precedence: any git config overrides it
        elif section == "lfs" and (
            name.startswith("customtransfer.")
            or name in ("standalonetransferagent", "storage", "concurrenttransfers")
            or name.endswith(("standalonetransferagent", ".path", ".args"))
        ):
            warnings.append(
                f"ignored {entry.key} in {LFSCONFIG_FILE}: it may only be set in git config"
            )
    take(outer, "global git config")
    take(committed[SIDECAR_FILE], SIDECAR_FILE, committed=True)
    take(repo, "git config")
    for var, name in ENV_KEYS.items():
        if env.get(var):
            ours[name] = (env[var], f"${var}")
    for name, value in (overrides or {}).items():
        ours[name] = (value, "command line")

    remote = origin = None
    # The remote install or clone found committed: for commits from before .lfsagent
    # named it (a repository that moved from git-lfs, or set its bucket later).
    fallback = ours.pop(FALLBACK_KEY, None)
    if "remote" in ours:
        raw, origin = ours.pop("remote")
        remote = normalize_remote_url(raw, paths.work_tree)
    elif fallback is not None and fallback[1] == "git config":
        remote = normalize_remote_url(fallback[0], paths.work_tree)
        origin = f"git config ({SECTION}.{FALLBACK_KEY}, recorded by install)"

    storage = lfs.get("storage")
    lfs_dir = paths.common_dir / "lfs"
    if storage:
        lfs_dir = Path(storage) if Path(storage).is_absolute() else paths.common_dir / storage

    def integer(name: str, value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
        if number < 1:
            raise ConfigError(f"{name} must be at least 1, got {number}")
        return number

    concurrency = 8
    if "concurrenttransfers" in lfs:
        concurrency = integer("lfs.concurrenttransfers", lfs["concurrenttransfers"])
    if "concurrency" in ours:
        concurrency = integer(f"{SECTION}.concurrency", ours.pop("concurrency")[0])

    cache_dir = None
    if "cachedir" in ours:
        cache_dir = Path(ours.pop("cachedir")[0]).expanduser()

    include = _split_patterns(lfs.get("fetchinclude", ""))
    exclude = _split_patterns(lfs.get("fetchexclude", ""))
    if "fetchinclude" in ours:
        include = _split_patterns(ours.pop("fetchinclude")[0])
    if "fetchexclude" in ours:
        exclude = _split_patterns(ours.pop("fetchexclude")[0])

    if include or exclude:
        from lfs_agent.pathmatch import pattern_error

        for pattern in (*include, *exclude):
            reason = pattern_error(pattern)
            if reason is not None:
                warnings.append(f"ignored the fetch pattern {pattern!r}: {reason}")

    skip = env.get("GIT_LFS_SKIP_SMUDGE", "").strip().lower() in _TRUE
    skip_errors = (
        env.get("GIT_LFS_SKIP_DOWNLOAD_ERRORS", "").strip().lower() in _TRUE
        or lfs.get("skipdownloaderrors", "").strip().lower() in _TRUE
        or ours.pop("skipdownloaderrors", ("", ""))[0].strip().lower() in _TRUE
    )

    return Settings(
        remote=remote,
        remote_origin=origin or "",
        lfs_dir=lfs_dir,
        fetch_include=include,
        fetch_exclude=exclude,
        concurrency=concurrency,
        cache_dir=cache_dir,
        skip_smudge=skip,
        skip_download_errors=skip_errors,
        options={name: value for name, (value, _) in ours.items()},
        warnings=tuple(warnings),
    )
