"""What ``--help`` shows beyond argparse's flags: the commands in groups, and examples.

Imported only when help is printed or a command is unknown, so that the commands git
runs on every checkout do not load it.
"""

from __future__ import annotations

__all__ = ["DOCS_URL", "EXAMPLES", "SECTIONS", "command_list"]

#: Where the full command reference lives.
DOCS_URL = "https://github.com/lfs-agent/lfs-agent/tree/main/docs/commands.md"

#: The command list of ``lfs-agent --help``: everyday commands first, then the rest by use.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "everyday commands",
        ("install", "track", "push", "pull", "fetch", "clone", "status", "ls-files"),
    ),
    ("set-up", ("uninstall", "untrack", "completion")),
    ("inspection and upkeep", ("checkout", "fsck", "prune")),
    ("the bucket", ("gc", "repos")),
    ("metrics", ("tag", "metrics")),
    (
        "plumbing (run by git and git-lfs)",
        (
            "filter-process",
            "smudge",
            "clean",
            "pre-push",
            "post-checkout",
            "pre-commit",
            "transfer",
            "global-filter-process",
        ),
    ),
)

#: One example per command, shown at the end of its ``--help``.
EXAMPLES = {
    "install": "lfs-agent install --remote s3://my-bucket/project",
    "track": "lfs-agent track '*.bin' 'data/**'",
    "push": "lfs-agent push origin main",
    "pull": "lfs-agent pull -I 'models/*'",
    "fetch": "lfs-agent fetch --all",
    "clone": "lfs-agent clone -I 'data/small/*' https://example.com/repo.git",
    "status": "lfs-agent status",
    "ls-files": "lfs-agent ls-files --size",
    "uninstall": "lfs-agent uninstall --recursive",
    "untrack": "lfs-agent untrack '*.bin'",
    "completion": 'eval "$(lfs-agent completion bash)"',
    "checkout": "lfs-agent checkout -I 'data/*'",
    "fsck": "lfs-agent fsck",
    "prune": "lfs-agent prune --dry-run",
    "gc": "lfs-agent gc --remote --dry-run",
    "repos": "lfs-agent repos list",
    "tag": "lfs-agent tag v1 --metrics metrics.json",
    "metrics": "lfs-agent metrics diff v1 v2",
    "filter-process": "git config filter.lfs-agent.process 'lfs-agent filter-process'",
    "smudge": "git cat-file blob HEAD:a.bin | lfs-agent smudge a.bin",
    "clean": "lfs-agent clean a.bin < a.bin",
    "pre-push": "echo 'git runs it from .git/hooks/pre-push'",
    "post-checkout": "echo 'git runs it from .git/hooks/post-checkout'",
    "pre-commit": "echo 'git runs it from .git/hooks/pre-commit'",
    "transfer": "git config lfs.customtransfer.lfs-agent.path lfs-agent",
    "global-filter-process": "lfs-agent install --global",
}


def command_list(helps: dict[str, str]) -> str:
    """The grouped command list, each command with its one-line help.

    Args:
        helps: Each command's one-line help; a command missing from ``SECTIONS`` is
            listed last, so none is hidden.
    """
    width = max(len(name) for name in helps) + 2
    lines: list[str] = []
    sections = list(SECTIONS)
    rest = tuple(name for name in helps if not any(name in names for _, names in SECTIONS))
    if rest:
        sections.append(("other", rest))
    for title, names in sections:
        lines.append(f"{title}:")
        for name in names:
            if name in helps:
                lines.append(f"  {name.ljust(width)}{helps[name]}")
        lines.append("")
    return "\n".join(lines).rstrip()
