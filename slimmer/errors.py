"""Errors raised by the slimmer library.

Every failure the library can foresee is a SlimmerError subclass; the CLI turns one into a
single `slimmer: error: ...` line and exit status 2. This module imports nothing of slimmer.
"""


class SlimmerError(Exception):
    """Base class: something about the input or the request is wrong (not a slimmer bug)."""


class FormatError(SlimmerError):
    """Raised when an archive is not in any format slimmer reads, or breaks its format's rules
    (invalid JSON, a missing or out-of-archive blob, an unknown media type, a bad tar header)."""


class TruncatedError(FormatError):
    """Raised when an archive, a layer or a compressed stream ends before its format says it may."""


class DigestMismatchError(FormatError):
    """Raised when the sha256 of a blob or an uncompressed layer differs from the digest that the
    manifest or the config's rootfs.diff_ids promises."""


class ImageSelectionError(SlimmerError):
    """Raised when an archive holds several images (or platforms) and the request does not pick
    exactly one of them."""


class LimitError(SlimmerError):
    """Raised when an input exceeds a safety limit (e.g. --max-layer-size against
    decompression bombs, or a JSON document too large to be a manifest)."""


class OutputError(SlimmerError):
    """Raised when an output cannot be written (disk full, unwritable destination, a destination
    that would escape its root)."""


class InputError(SlimmerError):
    """Raised when an input cannot be opened or read (a missing archive, an I/O error on a layer
    blob), or is not a kind of file slimmer reads: a device, a pipe that would have to be read
    twice, a directory to audit that is not one."""


class NoSuchLayerError(SlimmerError):
    """Raised when a request names a layer the image does not have (``export --layer N`` past
    the last layer)."""


class ConfigError(SlimmerError):
    """Raised when a slimmer settings file cannot be read or holds an unknown key or a bad value
    (the message names the file and the key), or an option given on the command line in the same
    form is malformed (``--max-category``)."""


class SlimError(SlimmerError):
    """Raised when a slimming request cannot be carried out as asked (an unknown mode or output
    format, a bad --user value, a glob that cannot be read, a bad SOURCE_DATE_EPOCH)."""


class ElfError(FormatError):
    """Raised when a file starts with the ELF magic but its headers are truncated or point
    outside the file (a broken or hostile ELF file)."""


class DatabaseError(SlimmerError):
    """Raised when the audit database cannot be opened, migrated, read or written (a file that
    is not an SQLite database, a PostgreSQL server that refuses the connection, a schema newer
    than this slimmer knows)."""


class ClusterError(SlimmerError):
    """Raised when the Dask cluster given with --scheduler cannot be reached, has no workers,
    or its workers run a slimmer whose content policy differs from this one's."""


class TerminalError(SlimmerError):
    """Raised when `slimmer explore` has no terminal to draw on (standard output or error is
    not one, or no terminal to read keys from) or one smaller than it needs."""
