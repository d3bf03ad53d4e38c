"""The ``npvae-cli`` directive: the command line reference, rendered from the parser itself.

In a MyST page::

    ```{npvae-cli}
    ```

renders ``npvae.app.cli.build_parser()``: the usage, description and options of ``npvae``,
the exit statuses as the module docstring of npvae/app/cli.py states them, then one
section per subcommand (``npvae train``, ...) with its usage, description, its
arguments grouped as argparse groups them (term: the flag as ``--help`` prints it; text:
its help, defaults included) and its epilog. Everything comes from the parser a user
runs, so the page cannot drift from the code; the page is rebuilt when npvae/app/cli.py,
config.py or npvae/settings.py (where the help texts and defaults come from) change.
"""
from __future__ import annotations

import argparse
import os
import re
from contextlib import contextmanager

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

WIDTH = "80"  # argparse wraps usage lines to $COLUMNS - 2
_CODE = re.compile(r"`([^`]+)`")


@contextmanager
def _columns(width):
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = width
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved


def _inline(text):
    """Text nodes, with `backticked` spans as inline literals."""
    out = []
    for i, part in enumerate(_CODE.split(text)):
        if part:
            out.append(nodes.literal(part, part) if i % 2 else nodes.Text(part))
    return out


def _paragraphs(text):
    """Paragraphs of a description: blank lines separate them, other line breaks are spaces."""
    return [nodes.paragraph("", "", *_inline(" ".join(block.split())))
            for block in re.split(r"\n\s*\n", text.strip()) if block.strip()]


def _literal(text):
    text = text.rstrip("\n")
    block = nodes.literal_block(text, text)
    block["language"] = "text"
    return block


def _raw_text(parser):
    return issubclass(parser.formatter_class, argparse.RawDescriptionHelpFormatter)


def _arguments(parser):
    """Each argparse group as a rubric and a definition list of its arguments."""
    out = []
    formatter = parser._get_formatter()
    for group in parser._action_groups:
        actions = [a for a in group._group_actions
                   if a.help is not argparse.SUPPRESS and not isinstance(a, argparse._SubParsersAction)]
        if not actions:
            continue
        items = nodes.definition_list(classes=["npvae-cli-options"])
        for action in actions:
            term = formatter._format_action_invocation(action)
            help_text = formatter._expand_help(action) if action.help else ""
            items += nodes.definition_list_item(
                "", nodes.term("", "", nodes.literal(term, term)),
                nodes.definition("", nodes.paragraph("", "", *_inline(help_text))))
        out += [nodes.rubric(group.title, group.title.capitalize()), items]
    return out


def _describe(parser):
    """Usage, description, arguments and epilog of one parser."""
    with _columns(WIDTH):
        usage = parser.format_usage()
    out = [_literal(usage.strip())]
    if parser.description:
        out += [_literal(parser.description)] if _raw_text(parser) and "\n" in parser.description \
            else _paragraphs(parser.description)
    out += _arguments(parser)
    if parser.epilog:
        out += [_literal(parser.epilog)] if _raw_text(parser) else _paragraphs(parser.epilog)
    return out


def _exit_statuses(docstring):
    """The paragraph of npvae/app/cli.py's docstring that starts "Exit statuses:"."""
    match = re.search(r"Exit statuses:(.*?)(?:\n\s*\n|$)", docstring, re.S)
    if not match:
        return []
    return [nodes.rubric("", "Exit statuses")] + _paragraphs(match.group(1).strip())


class NpvaeCli(SphinxDirective):
    has_content = False

    def run(self):
        from npvae.app import cli, config
        from npvae import settings

        for module in (cli, config, settings):
            self.env.note_dependency(module.__file__)
        parser = cli.build_parser()
        out = _describe(parser) + _exit_statuses(cli.__doc__ or "")
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        summaries = {a.dest: a.help for a in sub._choices_actions}
        for name, subparser in sub.choices.items():
            title = f"{parser.prog} {name}"
            section = nodes.section(ids=[nodes.make_id(title)], names=[nodes.fully_normalize_name(title)])
            section += nodes.title(title, "", nodes.literal(title, title))
            if summaries.get(name):
                section += nodes.paragraph("", "", nodes.emphasis("", summaries[name][:1].upper() + summaries[name][1:] + "."))
            section += _describe(subparser)
            self.state.document.note_implicit_target(section)
            out.append(section)
        return out


def setup(app):
    app.add_directive("npvae-cli", NpvaeCli)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
