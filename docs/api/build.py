"""Build probvae's API reference: static HTML, one page per public module, every name of every
``__all__`` on it, rendered from the docstrings by Sphinx (``conf.py`` beside this file says why
Sphinx).

    python docs/api/build.py [OUT] [--strict]      # `make docs`; OUT defaults to build/docs

then open ``OUT/index.html``. The pages are derived, not written: starting from
``probvae.__all__``, each public name that is a module gets a page (breadth first, so
``probvae.objectives`` rather than ``probvae.inference.objectives``), and each other name is an
entry on its module's page. An object exported under two public names (``pv.fit`` is
``probvae.inference.fit``) is documented once, where it is first met, and its second name is
an entry that links there. The reST sources are written into a temporary folder, so nothing but
OUT is written. Warnings (Sphinx's, and a public name without a docstring) are printed; with
``--strict`` any warning fails the build (exit status 1).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import io
import re
import sys
import tempfile
import types
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_OUT = ROOT / "build" / "docs"
PACKAGE = "probvae"
FAILED = "ERROR: sphinx-build exited"


@dataclass
class Entry:
    """One public name: ``path`` is how a user writes it (``probvae.diagnostics.khat``)."""
    name: str
    path: str
    kind: str                   # module, class, exception, function or data
    obj: object = field(repr=False)
    same_as: str | None = None  # where the object is documented, when that is another name


@dataclass
class Page:
    """One public module and the names of its ``__all__``, in that order."""
    path: str
    module: types.ModuleType = field(repr=False)
    entries: list[Entry] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.path


def kind_of(obj) -> str:
    """How Sphinx documents ``obj``: module, class, exception, function or data."""
    if isinstance(obj, types.ModuleType):
        return "module"
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if inspect.isroutine(obj):
        return "function"
    return "data"


def pages(package: str = PACKAGE) -> list[Page]:
    """The reference's pages, derived from ``__all__``: the package's, then (breadth first) each
    public module's. Classes, functions and modules exported under several names are
    documented at the first (``same_as`` on the others); data is documented where it is."""
    root = importlib.import_module(package)
    todo = [Page(package, root)]
    done: list[Page] = []
    documented: dict[int, str] = {id(root): package}
    while todo:
        page = todo.pop(0)
        for name in getattr(page.module, "__all__", ()):
            try:
                obj = getattr(page.module, name)
            except AttributeError:
                raise AttributeError(f"{page.path}.__all__ names {name!r}, which it does not have")
            path, kind = f"{page.path}.{name}", kind_of(obj)
            entry = Entry(name, path, kind, obj)
            if kind != "data":
                if id(obj) in documented:
                    entry.same_as = documented[id(obj)]
                else:
                    documented[id(obj)] = path
                    if kind == "module":
                        todo.append(Page(path, obj))
            page.entries.append(entry)
        done.append(page)
    return done


# --- the reST of each page ------------------------------------------------------------------

def _heading(text: str, char: str = "=") -> str:
    return f"{text}\n{char * len(text)}\n"


def _summary(obj) -> str:
    """The first paragraph of ``obj``'s docstring, on one line, its roles made literals (a
    summary stands on another page, where a relative ``:class:`X``` would not resolve)."""
    doc = inspect.getdoc(obj) or ""
    para = doc.split("\n\n")[0].replace("\n", " ").strip()
    return re.sub(r":[a-z]+:`~?(?:[^`<]*<)?([^`>]+)>?`", lambda m: f"``{m.group(1).split('.')[-1]}``",
                  para)


def _has_doc(obj) -> bool:
    """Whether ``obj`` has a docstring of its own (a dataclass's made-up ``Name(fields)`` is not)."""
    doc = (getattr(obj, "__doc__", None) or "").strip()
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj) and doc.startswith(obj.__name__ + "("):
        return False
    return bool(doc)


def _indent(text: str, n: int = 3) -> str:
    pad = " " * n
    return "\n".join(pad + line if line.strip() else "" for line in text.splitlines())


def _data_doc(module: types.ModuleType, name: str, obj) -> list[str] | None:
    """The ``#:`` comment or string documenting a module attribute, read from the source of the
    module that assigns it (the public module, or the submodule it re-exports it from)."""
    from sphinx.pycode import ModuleAnalyzer
    candidates = [module.__name__]
    prefix = module.__name__ + "."
    candidates += sorted(m for m, mod in list(sys.modules.items())
                         if m.startswith(prefix) and getattr(mod, name, None) is obj)
    for modname in candidates:
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except Exception:   # no source (a built-in or a module made at run time)
            continue
        if ("", name) in docs:
            return list(docs[("", name)])
    return None


def _value(obj) -> str | None:
    from sphinx.util.inspect import object_description
    text = object_description(obj)
    return text if len(text) <= 80 and "\n" not in text else None


def _role(kind: str) -> str:
    return {"module": "mod", "class": "class", "exception": "exc", "function": "func"}.get(kind, "data")


def _entry_rst(page: Page, e: Entry, notes: list[str]) -> str:
    if e.same_as is not None:
        # data, not a second class or function: a :class: or :func: reference then has one
        # target, the documented one
        return (f".. py:data:: {e.name}\n\n"
                f"   The {e.kind} :{_role(e.kind)}:`{e.same_as}`, documented there (the same "
                f"object under another name).\n")
    if e.kind == "module":   # its own page (and target: py:module); listed at the page's top
        return ""
    if e.kind in ("class", "exception"):
        if not _has_doc(e.obj):
            notes.append(f"{e.path}: public {e.kind} without a docstring")
        bases = "\n   :show-inheritance:" if e.obj.__bases__ != (object,) else ""
        return f".. auto{e.kind}:: {e.name}\n   :members:{bases}\n"
    if e.kind == "function":
        if not _has_doc(e.obj):
            notes.append(f"{e.path}: public function without a docstring")
        return f".. autofunction:: {e.name}\n"
    doc = _data_doc(page.module, e.name, e.obj)
    if not doc:
        notes.append(f"{e.path}: public data without a docstring (a ``#:`` comment above it)")
    value = _value(e.obj)
    lines = [f".. py:data:: {e.name}"] + ([f"   :value: {value}"] if value is not None else [])
    return "\n".join(lines) + "\n\n" + _indent("\n".join(doc or [])) + "\n"


def page_rst(page: Page, notes: list[str]) -> str:
    parts = [_heading(page.title), f".. automodule:: {page.path}\n",
             f".. currentmodule:: {page.path}\n"]
    if not hasattr(page.module, "__all__"):
        notes.append(f"{page.path}: public module without __all__ (its names are not shown)")
    if not _has_doc(page.module):
        notes.append(f"{page.path}: public module without a docstring")
    subpages = [e for e in page.entries if e.kind == "module" and e.same_as is None]
    if subpages:
        parts.append(_heading("Modules", "-"))
        parts.append("\n".join(f"- :mod:`{e.path}`: {_summary(e.obj)}" for e in subpages) + "\n")
        parts.append(_heading("Names", "-"))
    parts += [r for r in (_entry_rst(page, e, notes) for e in page.entries) if r]
    return "\n".join(parts)


def index_rst(all_pages: list[Page]) -> str:
    lines = [_heading("probvae API reference"),
             "Every public name of ``probvae``: the names of ``probvae.__all__`` and of each public "
             "module's ``__all__``, one page per module, rendered from the docstrings "
             "(NumPy style). Built by ``make docs`` (``docs/api/build.py``); the guides are the "
             "README and ``docs/*.md``.", ""]
    for p in all_pages:
        lines.append(f"- :doc:`{p.path}`: {_summary(p.module).rstrip('.')}")
    lines += ["", ".. toctree::", "   :hidden:", "   :maxdepth: 1", ""]
    lines += [f"   {p.path}" for p in all_pages]
    return "\n".join(lines) + "\n"


def write_sources(src: Path, all_pages: list[Page] | None = None) -> list[str]:
    """Write index.rst and one .rst per page into ``src``; returns the warnings found on the
    way (public names without a docstring)."""
    all_pages = pages() if all_pages is None else all_pages
    notes: list[str] = []
    src.mkdir(parents=True, exist_ok=True)
    (src / "index.rst").write_text(index_rst(all_pages), encoding="utf-8")
    for p in all_pages:
        (src / f"{p.path}.rst").write_text(page_rst(p, notes), encoding="utf-8")
    return [f"WARNING: {n}" for n in notes]


# --- the build ------------------------------------------------------------------------------

def build(out: Path = DEFAULT_OUT, quiet: bool = True) -> list[str]:
    """Build the HTML into ``out`` (``out/index.html``); returns every warning, one line each
    (empty: a clean build)."""
    from sphinx.cmd.build import build_main
    out = Path(out).resolve()
    with tempfile.TemporaryDirectory(prefix="probvae-api-") as tmp:
        src = Path(tmp) / "src"
        warnings = write_sources(src)
        warnfile = Path(tmp) / "warnings.txt"
        args = ["-b", "html", "-c", str(HERE), "-d", str(Path(tmp) / "doctrees"), "-E",
                "--keep-going", "-w", str(warnfile), str(src), str(out)]
        log = io.StringIO()
        with redirect_stdout(log if quiet else sys.stdout), redirect_stderr(log):
            status = build_main(args)
        text = warnfile.read_text(encoding="utf-8") if warnfile.exists() else ""
        warnings += _warning_lines(text)
        if status != 0:   # Sphinx itself failed (not a warning): what it said
            tail = log.getvalue()[-3000:].replace("\n", " | ")
            warnings.append(f"{FAILED} {status}: {tail}")
    return warnings


def _warning_lines(text: str) -> list[str]:
    """Sphinx's warnings file as one line per warning (a warning's continuation lines, indented
    or not starting with a location, are joined to it). Colour codes are dropped."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if lines and not re.search(r"(WARNING|ERROR|CRITICAL|SEVERE): ", line):
            lines[-1] += " " + line.strip()
        else:
            lines.append(line.strip())
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default=str(DEFAULT_OUT), help="output folder (build/docs)")
    ap.add_argument("--strict", action="store_true", help="fail (exit 1) on any warning")
    args = ap.parse_args(argv)
    warnings = build(Path(args.out))
    for w in warnings:
        print(w, file=sys.stderr)
    index = Path(args.out).resolve() / "index.html"
    print(f"API reference: {index} ({len(warnings)} warning(s))")
    failed = any(w.startswith(FAILED) for w in warnings)
    return 1 if failed or (args.strict and warnings) or not index.exists() else 0


if __name__ == "__main__":
    sys.exit(main())
