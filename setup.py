"""The one compiled part of Labelscope: the CTC beam search (`core/formula/_beam.c`).

Everything else is configured in pyproject.toml. The extension is optional: without a C
compiler the install goes on and `decoding.beam_search` runs the same search in Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("core.formula._beam", sources=["core/formula/_beam.c"], optional=True),
    ]
)
