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


class TerminalError(SlimmerError):
    """Raised when `slimmer explore` has no terminal to draw on (standard output or error is
    not one, or no terminal to read keys from) or one smaller than it needs."""
