"""``completion bash|zsh|fish``: a shell completion script, generated from the parsers.

Generated rather than written by hand so that a new command or flag is completed the
day it is declared; the scripts hold plain word lists, no call back into lfs-agent,
so completing costs no Python start-up.
"""

from __future__ import annotations

import argparse

from lfs_agent.cli.context import Command, Context

__all__ = ["COMMANDS", "SHELLS", "cmd_completion", "script", "words"]

#: The shells a script is written for.
SHELLS = ("bash", "zsh", "fish")


def add_completion(parser: argparse.ArgumentParser) -> None:
    """``completion SHELL``."""
    parser.add_argument("shell", metavar="SHELL", choices=SHELLS, help="bash, zsh or fish")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps no public list of subparsers
        if isinstance(action, argparse._SubParsersAction):
            choices: dict[str, argparse.ArgumentParser] = action.choices
            return choices
    return {}


def _flags(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(s for a in parser._actions for s in a.option_strings if s.startswith("--"))


def words(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Each command's completions: its flags, and for a group its subcommands.

    Returns:
        ``""`` maps to the command names and the main parser's flags.
    """
    commands = _subparsers(parser)
    table = {"": [*commands, *_flags(parser)]}
    for name, sub in commands.items():
        table[name] = [*_subparsers(sub), *_flags(sub)]
    return table


def _bash(table: dict[str, list[str]]) -> str:
    cases = "\n".join(
        f'        {name}) words="{" ".join(table[name])}" ;;' for name in table if name
    )
    return f"""# lfs-agent completion for bash: eval "$(lfs-agent completion bash)"
_lfs_agent() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" command="" words="" i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in
            -*) ;;
            *) command="${{COMP_WORDS[i]}}"; break ;;
        esac
    done
    case "$command" in
        "") words="{" ".join(table[""])}" ;;
{cases}
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -o default -F _lfs_agent lfs-agent
"""


def _zsh(table: dict[str, list[str]]) -> str:
    cases = "\n".join(
        f"        {name}) candidates=({' '.join(table[name])}) ;;" for name in table if name
    )
    return f"""#compdef lfs-agent
# lfs-agent completion for zsh: eval "$(lfs-agent completion zsh)"
_lfs_agent() {{
    # words and CURRENT are zsh's: the command line being completed, and the word's index.
    local command="" i
    local -a candidates
    for ((i = 2; i < CURRENT; i++)); do
        case "${{words[i]}}" in
            -*) ;;
            *) command="${{words[i]}}"; break ;;
        esac
    done
    case "$command" in
        "") candidates=({" ".join(table[""])}) ;;
{cases}
    esac
    compadd -- $candidates
    _files
}}
compdef _lfs_agent lfs-agent
"""


def _fish(table: dict[str, list[str]]) -> str:
    commands = " ".join(name for name in table if name)
    lines = [
        "# lfs-agent completion for fish: lfs-agent completion fish | source",
        "complete -c lfs-agent -f",
        f"complete -c lfs-agent -n 'not __fish_seen_subcommand_from {commands}' -a '{commands}'",
    ]
    for name, found in table.items():
        if not name:
            continue
        condition = f"__fish_seen_subcommand_from {name}"
        subcommands = " ".join(w for w in found if not w.startswith("-"))
        if subcommands:
            lines.append(f"complete -c lfs-agent -n '{condition}' -a '{subcommands}'")
        for flag in (w for w in found if w.startswith("--")):
            lines.append(f"complete -c lfs-agent -n '{condition}' -l {flag[2:]}")
    return "\n".join(lines) + "\n"


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script for ``shell`` covering ``parser``'s commands and flags."""
    table = words(parser)
    return {"bash": _bash, "zsh": _zsh, "fish": _fish}[shell](table)


def cmd_completion(ctx: Context) -> int:
    """``completion SHELL``: print the script; the shell's rc file sources it."""
    from lfs_agent.cli import build_parser

    print(script(ctx.args.shell, build_parser()), end="")
    return 0


COMMANDS = {
    "completion": Command(
        "print a shell completion script (bash, zsh or fish)", add_completion, cmd_completion
    ),
}
