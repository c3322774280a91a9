"""``install --global`` and ``uninstall --global``: lfs-agent's filter in the user's git config.

With the filter in the global config, every repository of the user, submodules included,
cleans and smudges through lfs-agent with the remote of its own committed ``.lfsagent``,
and gets its hooks at the filter's first run there (:func:`hooks.add_missing_hooks`).
Only the global config is read and written, so that the work is the same from any
directory. What is written is recorded in the global ``lfs-agent.installed``, and a
foreign value replaced is kept, so that ``uninstall --global`` leaves the file as it was.
"""

from __future__ import annotations

import sys

from lfs_agent.config import SECTION
from lfs_agent.errors import ConfigError
from lfs_agent.git import Git
from lfs_agent.install import (
    INSTALLED_KEY,
    InstallReport,
    agent_command,
    filter_settings,
    is_ours,
    merged_record,
    recorded_keys,
)

__all__ = [
    "GLOBAL_FILTER_COMMAND",
    "REPLACED_PREFIX",
    "global_filter_settings",
    "install_global",
    "uninstall_global",
]

#: The filter command ``install --global`` configures: :func:`hooks.add_missing_hooks`,
#: then ``filter-process``.
GLOBAL_FILTER_COMMAND = "global-filter-process"
#: Where ``install --global --force`` keeps the global values it replaced (another
#: filter's, git-lfs's), below this prefix and the key, for ``uninstall --global``.
REPLACED_PREFIX = "lfs-agent.replaced."


def global_filter_settings(python: str) -> dict[str, str]:
    """The keys ``install --global`` writes into the user's git config.

    The long-running filter is ``global-filter-process``, which adds the repository's
    hooks before it filters: a global install cannot visit every repository itself.

    Args:
        python: The interpreter the filter commands run.

    Returns:
        ``filter.lfs.*`` key -> value.
    """
    keys = filter_settings(python)
    keys["filter.lfs.process"] = f"{agent_command(python)} {GLOBAL_FILTER_COMMAND}"
    return keys


def _global_config(git: Git) -> dict[str, str]:
    """The user's global git config, key -> last value, in one read."""
    return {e.key: e.value for e in git.config_entries(["--global"])}


def _global_set(git: Git, key: str, value: str) -> None:
    """Set ``key`` in the global config, replacing every value it has.

    Replacing all values keeps a key single-valued, so that install run twice changes
    nothing.
    """
    git.run(["config", "--global", "--replace-all", key, value])


def _global_unset(git: Git, key: str) -> None:
    """Remove every value of ``key`` from the global config; an unset key is no error."""
    git.run(["config", "--global", "--unset-all", key], check=False)


def install_global(git: Git, *, force: bool = False, python: str | None = None) -> InstallReport:
    """Configure lfs-agent's filter in the user's global git config, as ``git lfs install``.

    A foreign value replaced with ``force`` is kept below :data:`REPLACED_PREFIX`, so
    that :func:`uninstall_global` puts everything back (see the module docstring).

    Args:
        git: Runs git (anywhere: only the global config is read and written).
        force: Replace another filter's global ``filter.lfs.*`` values (git-lfs's).
        python: Interpreter the written commands run; defaults to the running one.

    Returns:
        The lines to show the user (the foreign keys replaced).

    Raises:
        ConfigError: another tool's filter is configured globally and ``force`` is false.
    """
    values = global_filter_settings(python or sys.executable)
    current = _global_config(git)
    foreign = {
        key: current[key]
        for key in values
        if key in current and current[key] != values[key] and not is_ours(current[key])
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
    # not ours to remove at uninstall: only the keys written here join the record.
    written = [key for key in values if current.get(key) != values[key]]
    for key in written:
        _global_set(git, key, values[key])
    merged = merged_record(current.get(INSTALLED_KEY), written)
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

    A recorded key whose value is not lfs-agent's (someone set it after the install) is
    left alone, as is everything else in the global config: the user's own settings
    survive. Sections left empty go, so that the file reads as before the install.

    Args:
        git: Runs git (anywhere: only the global config is read and written).

    Returns:
        The lines to show the user (the keys restored).
    """
    report = InstallReport()
    current = _global_config(git)
    saved = {
        key[len(REPLACED_PREFIX) :]: value
        for key, value in current.items()
        if key.startswith(REPLACED_PREFIX)
    }
    for key in recorded_keys(current.get(INSTALLED_KEY)):
        value = current.get(key)
        required = (key, value) == ("filter.lfs.required", "true")
        if value is None or not (is_ours(value) or required):
            continue  # someone else's value: theirs to keep
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
