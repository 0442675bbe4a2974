"""The optional compiled part of slimmer: the tar header scanner's fast path (C, CPython API).

Everything else is in pyproject.toml. Without a C compiler (or Python's headers) the build
goes on without the extension and slimmer runs its pure-Python scanner, which gives the same
results (tests/test_compiled.py holds both to that).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("slimmer._ctar", ["slimmer/_ctar.c"], optional=True,
                             extra_compile_args=["-O2"])])
