"""`pyramid completion bash|zsh`: a small static completion script, generated from the argument parser.

argparse has no completion of its own; the script lists the subcommands and each one's options, so it
stays in step with the parser whenever it is regenerated. Option values complete as file names.
"""

from __future__ import annotations

import argparse

SHELLS = ("bash", "zsh")


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for `shell`."""
    global_options, per_command, valued = _words(parser)
    if shell == "bash":
        return _bash(global_options, per_command, valued)
    return _zsh(global_options, per_command, valued)


def _words(parser: argparse.ArgumentParser) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """Global options; each subcommand's options (the global ones go anywhere); options that take a value."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parsers = [parser, *commands.choices.values()]
    global_options = _options(parser)
    per_command = {name: sorted(set(_options(sub)) | set(global_options)) for name, sub in commands.choices.items()}
    valued = sorted({s for p in parsers for a in p._actions if a.nargs != 0 for s in a.option_strings})
    return global_options, per_command, valued


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(s for action in parser._actions for s in action.option_strings if s.startswith("--"))


def _bash(global_options: list[str], per_command: dict[str, list[str]], valued: list[str]) -> str:
    cases = "\n".join(f'        {name}) opts="{" ".join(options)}" ;;' for name, options in per_command.items())
    top = " ".join([*per_command, *global_options])
    return f"""# bash completion for pyramid; load it with: eval "$(pyramid completion bash)"
_pyramid() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" command="" skip="" opts i w
    case " {" ".join(valued)} " in *" $prev "*) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;; esac
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        if [ -n "$skip" ]; then skip=""; continue; fi
        case " {" ".join(valued)} " in *" $w "*) skip=1; continue ;; esac
        case "$w" in -*) ;; *) [ -z "$command" ] && command="$w" ;; esac
    done
    case "$command" in
{cases}
        *) opts="{top}" ;;
    esac
    if [ "$command" = completion ] && [[ "$cur" != -* ]]; then opts="bash zsh"; fi
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    return 0
}}
complete -o default -F _pyramid pyramid
"""


def _zsh(global_options: list[str], per_command: dict[str, list[str]], valued: list[str]) -> str:
    cases = "\n".join(f"        {name}) opts=({' '.join(options)}) ;;" for name, options in per_command.items())
    top = " ".join([*per_command, *global_options])
    return f"""#compdef pyramid
# zsh completion for pyramid; load it with: eval "$(pyramid completion zsh)" (after compinit)
_pyramid() {{
    local command="" skip="" w
    local -a opts valued
    valued=({" ".join(valued)})
    if (( ${{valued[(Ie)${{words[CURRENT-1]}}]}} )); then _files; return; fi
    for w in "${{(@)words[2,CURRENT-1]}}"; do
        if [[ -n $skip ]]; then skip=""; continue; fi
        if (( ${{valued[(Ie)$w]}} )); then skip=1; continue; fi
        [[ $w != -* && -z $command ]] && command=$w
    done
    case $command in
{cases}
        *) opts=({top}) ;;
    esac
    [[ $command == completion && $PREFIX != -* ]] && opts=(bash zsh)
    compadd -a opts
}}
compdef _pyramid pyramid
"""
