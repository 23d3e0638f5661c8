"""The CLI's plugin side: ``-p no:NAME``, ``phasewise plugins``, ``phasewise executors``,
and plugin warnings as one line each on stderr.

``register(cli)`` adds them to the ``phasewise`` group. ``-p`` is a group option, as in
pytest (``phasewise -p no:ray run build.py``): it blocks plugins before any loads. A
plugin that fails (its import, or its ``phasewise_executors`` hook, raised) is reported
once, whatever the command, as ``phasewise: warning: plugin 'x' (dist 1.0) failed to
load: Type: message``; ``-v`` (which sets ``PHASEWISE_DEBUG``) adds its traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import textwrap
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any, TextIO

import click

__all__ = [
    "describe_executors",
    "describe_plugins",
    "executors",
    "plugin_warnings_to",
    "plugins",
    "register",
]

NONE = "-"


@contextlib.contextmanager
def plugin_warnings_to(stream: TextIO) -> Iterator[None]:
    """During the block, show each ``PluginWarning`` as one line on ``stream`` (with its
    plugin's traceback when ``PHASEWISE_DEBUG`` is set, as ``-v`` does). The plugin
    manager warns once per plugin, so every one is shown."""
    from phasewise.plugins.records import PluginWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("always", category=PluginWarning)
        shown = warnings.showwarning

        def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if not issubclass(category, PluginWarning):
                shown(message, category, *args, **kwargs)
                return
            stream.write(f"phasewise: warning: {message}\n")
            plugin = getattr(message, "plugin", None)
            if os.environ.get("PHASEWISE_DEBUG") and plugin is not None and plugin.traceback:
                stream.write(textwrap.indent(plugin.traceback.rstrip("\n"), "    ") + "\n")
            stream.flush()

        warnings.showwarning = show
        yield


def _block(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> None:
    """``-p no:NAME``, each: block plugin NAME; an unknown NAME is warned about."""
    from phasewise.plugins import manager

    ctx.with_resource(plugin_warnings_to(sys.stderr))
    names = []
    for value in values:
        prefix, _, name = value.partition(":")
        if prefix != "no" or not name.strip():
            raise click.BadParameter(
                f"expects no:NAME, to block the plugin NAME (`phasewise plugins` lists "
                f"them), got {value!r}", ctx, param)
        names.append(name.strip())
    manager.block_plugins(names)
    if names:
        manager.plugin_manager()  # load now: a name that blocks nothing is warned about


def _version_of(entry: Any) -> str:
    return entry.version or NONE


def describe_executors(registry: Any) -> str:
    """A table of executors: name, distribution, version, one-line description (or
    ``unavailable: pip install …``, or the clash), then a line on plugins that failed or
    are blocked, if any."""
    from phasewise.cli.report import format_table

    clashes = registry.clashes()
    rows = []
    for entry in registry.entries():
        providers = clashes.get(entry.name, [entry])
        for provider in providers:
            about = provider.description
            if len(providers) > 1:
                others = ", ".join(p.origin for p in providers if p is not provider)
                about = f"unusable, also registered by {others}: block one with -p no:NAME"
            rows.append((provider.name, provider.distribution or NONE, _version_of(provider),
                         about))
    text = format_table(("executor", "distribution", "version", "description"), rows) + "\n"
    from phasewise.plugins.manager import plugin_manager

    records = plugin_manager().all_records()
    failed = sum(r.status == "failed" for r in records)
    blocked = sum(r.status == "blocked" for r in records)
    if failed or blocked:
        counts = [f"{n} plugin{'s' if n != 1 else ''} {what}"
                  for n, what in ((failed, "failed to load"), (blocked, "blocked")) if n]
        text += f"\n{' and '.join(counts)}: `phasewise plugins` says why\n"
    return text


def describe_plugins(records: Sequence[Any], verbose: bool = False) -> str:
    """A table of plugins: entry point name, distribution, version, status, and the
    hooks it implements or why it failed or is blocked; with ``verbose``, each failed
    plugin's traceback after it."""
    from phasewise.cli.report import format_table

    rows = [(r.name, r.distribution or NONE, r.version or NONE, r.status,
             ", ".join(r.hooks) if r.status == "loaded" else r.reason)
            for r in records]
    text = format_table(("plugin", "distribution", "version", "status", "hooks / why"),
                        rows) + "\n"
    if verbose:
        for record in records:
            if record.status == "failed" and record.traceback:
                text += f"\n{record.origin}:\n{textwrap.indent(record.traceback, '    ')}"
    return text


@click.command()
def executors() -> None:
    """List the installed executors.

    For each: its name (for --executor), the distribution that provides it and its
    version, and what it does, or, for one whose backend is missing, "unavailable" and
    what to install. Plugins add executors through the `phasewise` entry-point group;
    `phasewise plugins` lists the plugins; see docs/plugins.md.
    """
    from phasewise.plugins.manager import executor_registry

    click.echo(describe_executors(executor_registry()), nl=False)


@click.command()
@click.option("-v", "--verbose", is_flag=True, default=False,
              help="Show the traceback of each plugin that failed to load.")
@click.option("--json", "as_json", is_flag=True, default=False,
              help="Print the plugins as a JSON list.")
def plugins(verbose: bool, as_json: bool) -> None:
    """List the plugins: loaded, failed or blocked.

    For each: its entry point name (for -p no:NAME), the distribution that provides
    it and its version, and the hooks it implements, or why it failed to load (its
    import or one of its hooks raised) or is blocked (-p no:NAME,
    PHASEWISE_DISABLE_PLUGINS).
    """
    from phasewise.plugins.manager import plugin_records

    records = plugin_records()
    if as_json:
        click.echo(json.dumps([asdict(r) for r in records], indent=2))
    else:
        click.echo(describe_plugins(records, verbose), nl=False)


def register(group: click.Group) -> None:
    """Add ``-p no:NAME``, ``plugins`` and ``executors`` to the ``phasewise`` group."""
    group.params.append(click.Option(
        ["-p", "plugin_switches"], multiple=True, metavar="no:NAME", expose_value=False,
        is_eager=True, callback=_block,
        help="Block the plugin NAME (its entry point name; `phasewise plugins` lists "
             "them), as pytest's -p no:NAME does; repeatable. `-p no:builtin` leaves "
             "only third-party executors. Also: PHASEWISE_DISABLE_PLUGINS=NAME,..."))
    group.add_command(executors)
    group.add_command(plugins)
