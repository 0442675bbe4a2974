"""`slimmer explore`: the layer explorer in the terminal.

``index`` (what one analysis tells about every version of every path), ``tree`` (the lazy
file tree of one layer: its own changes or the merged filesystem up to it) and ``filters``
are plain Python, tested without a terminal. ``app`` and ``widgets`` are the Textual screen;
only ``slimmer.cli.explore`` imports them, when the command runs, so that every other command
starts without loading Textual. Nothing here reads archives or interprets whiteouts: the
records come from ``slimmer.layers`` and ``slimmer.analyzer``.
"""
