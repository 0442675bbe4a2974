"""The click group every command registers on."""

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="slimmer")
def cli():
    """Analyze and slim container image archives offline: no daemon, no registry."""


