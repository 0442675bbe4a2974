"""Analysis: Image in, records out (numbers, not text). Never imports ``slimmer.reader``."""
