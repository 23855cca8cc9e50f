"""Sphinx configuration of probvae's API reference. ``make docs`` builds it (it runs
``docs/api/build.py``, which writes the pages from ``__all__`` and then runs Sphinx with this
file); open ``build/docs/index.html``.

Why Sphinx autodoc rather than MkDocs with mkdocstrings: probvae's docstrings are numpydoc's
format, written in reStructuredText. They cross-reference with roles (``:func:``, ``:class:``,
``:meth:``, ``:mod:``, ``:data:``, ``:attr:``: over 300 of them) and use ````literal```` spans
and ``.. math::``. Sphinx renders them as written, each role a link to the object, and
every reST mistake in a docstring is a warning that the test (tests/test_api_docs.py) fails
on. mkdocstrings renders docstrings as Markdown, where those roles print as ``:class:`` noise,
and its static reader (griffe) finds neither the sub-packages that ``pyproject.toml``'s
``package-dir`` maps from other folders (``models/``, ``inference/``, ``applications/``) nor
the attributes that ``probvae`` loads on first use (``pv.anomaly``, ``pv.features``,
``pv.impute``); autodoc imports the package, so it sees what a user sees. The price is that
import (torch, JAX, NumPyro, Pyro, scikit-learn): a few seconds of a ~10 s build. numpydoc
rather than Sphinx's napoleon: napoleon reads a property's docstring as ``type: text`` (a
colon in its first line makes the words before it a type) and skips its sections
(Examples), where numpydoc parses every docstring the same way.
"""
project = "probvae"
author = "probvae developers"
copyright = "probvae developers"

extensions = ["sphinx.ext.autodoc", "numpydoc", "sphinx.ext.mathjax"]

# the pages are written by build.py from __all__, one per public module
root_doc = "index"

# a class's methods and properties are autodoc's (:members:), not numpydoc's summary tables
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

autodoc_member_order = "bysource"
# each entry shows its own name; the page (and its title) is the module
add_module_names = False
# not nitpicky: types in docstrings (numpy.ndarray, pathlib.Path) have no target offline, and
# some references name private modules; a broken reST construct is still a warning
nitpicky = False

html_theme = "alabaster"
html_title = "probvae API reference"
html_copy_source = False
html_show_sourcelink = False
html_theme_options = {"description": "VAEs as Pyro and NumPyro programs", "fixed_sidebar": True,
                      "sidebar_width": "260px", "page_width": "1100px"}
