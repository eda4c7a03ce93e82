"""`jobyard completion bash|zsh|fish`: the shell's completion script, from click's own
(commands, options, choices such as --state's), to source from the shell's startup file."""

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_JOBYARD_COMPLETE"  # what click's scripts set when they ask for completions


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash:  eval "$(jobyard completion bash)"   (in ~/.bashrc)
    zsh:   eval "$(jobyard completion zsh)"    (in ~/.zshrc)
    fish:  jobyard completion fish > ~/.config/fish/completions/jobyard.fish
    """
    root = ctx.find_root().command
    completer = get_completion_class(shell)
    assert completer is not None  # every name in SHELLS is one of click's
    click.echo(completer(root, {}, "jobyard", COMPLETE_VAR).source())
