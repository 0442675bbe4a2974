"""Rewriter: Image in, new Image out (prune, distroless closure), and the writers that turn an
Image back into archives (``slimmer.rewriter.writer``). Imports the model, never the analyzer.
"""
