"""The docs cannot drift: every repository path and every ``airflow_provider_debitura.…`` name they mention exists.

Checked in README.md, docs/*.md, bench/*.md and the result logs beside the tests (tests/*.md, tests/*/*.md):

- relative Markdown links and images (``[x](docs/y.md#anchor)``, resolved from the doc's folder), and the
  anchor of a link to a Markdown file (a heading of that file, as GitHub names it);
- repository paths in the text (``airflow_provider_debitura/hooks/paging.py``, ``tests/...``, ``bench/...``,
  ``docs/...``, ``scripts/...``, ``example_dags/...``, ``constraints/``), with the function of a pytest node id
  (``tests/x.py::test_y``) looked up in that file; package-relative paths (``hooks/paging.py``) and
  ``helpers/x.py`` (``tests/helpers``) are accepted where they name a file there; a bare ``name.py`` must be the
  name of some file of the repository; a name given as an old one ("was `hitl_compat.py`") is history and
  not checked;
- every dotted ``airflow_provider_debitura.x.y`` name, and every name a snippet imports with
  ``from airflow_provider_debitura.x import A, B``: a module that exists, an attribute it defines;
- every ``Debitura…`` class name (``DebituraHandoffStillOpenError``): defined somewhere in the package.

Names are resolved statically (the module's file and its top-level definitions and imports), so the test needs no
Airflow import and runs in well under a second; a name the static pass cannot find in a module with a module-level
``__getattr__`` (a lazy re-export) is imported for real before it counts as missing.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "airflow_provider_debitura"
DOCS = sorted(
    {
        ROOT / "README.md",
        *ROOT.glob("docs/*.md"),
        *ROOT.glob("bench/*.md"),
        *ROOT.glob("tests/*.md"),
        *ROOT.glob("tests/*/*.md"),
    }
)
ROOTS = (PACKAGE, "tests", "bench", "docs", "scripts", "example_dags", "constraints")
PACKAGE_DIRS = tuple(p.name for p in (ROOT / PACKAGE).iterdir() if p.is_dir() and not p.name.startswith("__"))

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
# A path: a known top-level folder (or a package sub-folder, or tests' helpers/) then /segments, not inside a URL
# or an absolute path (no letter, digit, '/', '.', ':' or '-' right before it).
HEADS = "|".join(re.escape(head) for head in (*ROOTS, *PACKAGE_DIRS, "helpers"))
PATH = re.compile(rf"(?<![\w/.:~-])((?:{HEADS})/[\w./-]*)(::[\w\[\]-]+)?")
DOTTED = re.compile(rf"(?<![\w.]){PACKAGE}(?:\.\w+)+")
CLASS_NAME = re.compile(r"(?<![\w.])(Debitura[A-Z]\w*)")  # DebituraHandoffStillOpenError, DebituraHook, ...
FROM_IMPORT = re.compile(rf"from\s+({PACKAGE}(?:\.\w+)*)\s+import\s+\(?([\w\s,]+)\)?")
PLACEHOLDER = re.compile(r"[<>{}*…]")
BARE_FILE = re.compile(r"(?<![\w/.:~-])(\w+\.py)\b")  # gate.py: some file of the repository has that name
# "(was `hitl_compat.py`)", "formerly the root `handoff.py`": a name given as an old one is history, not checked
OLD_NAME = re.compile(r"\b(?:was|formerly|renamed from)\s+(?:the\s+\w+\s+)?`?[\w./:-]+`?")


@functools.cache
def _repo_file_names() -> frozenset[str]:
    return frozenset(p.name for head in ROOTS if (ROOT / head).is_dir() for p in (ROOT / head).rglob("*.py"))


@dataclass(frozen=True)
class Miss:
    doc: Path
    line: int
    what: str
    why: str

    def __str__(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}: {self.what} ({self.why})"


def _lines(doc: Path, text: str | None) -> list[tuple[int, str]]:
    return list(enumerate((doc.read_text(encoding="utf-8") if text is None else text).splitlines(), start=1))


@functools.cache
def _anchors(doc: Path) -> frozenset[str]:
    """GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped, spaces to '-', repeats
    numbered (code blocks skipped)."""
    anchors: set[str] = set()
    in_code = False
    for line in doc.read_text(encoding="utf-8").splitlines():
        in_code ^= line.startswith("```")
        heading = None if in_code else re.match(r"#{1,6}\s+(.*)", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            unique, n = slug, 0
            while unique in anchors:
                n += 1
                unique = f"{slug}-{n}"
            anchors.add(unique)
    return frozenset(anchors)


def _link_misses(doc: Path, text: str | None = None) -> list[Miss]:
    misses = []
    for number, line in _lines(doc, text):
        for target in LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue  # a URL (https:, mailto:)
            path, _, anchor = target.partition("#")
            resolved = (doc.parent / path).resolve() if path else doc
            if not resolved.exists():
                misses.append(Miss(doc, number, f"[...]({target})", "the link's target does not exist"))
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                misses.append(Miss(doc, number, f"[...]({target})", f"no heading with the anchor #{anchor}"))
    return misses


def _path_candidates(text: str) -> list[Path]:
    head = text.split("/", 1)[0]
    if head in ROOTS:
        bases = [ROOT]
    elif head == "helpers":
        bases = [ROOT / "tests"]
    else:  # hooks/paging.py, or a test module named from tests/ (triggers/test_new_tasks_e2e.py)
        bases = [ROOT / PACKAGE, ROOT / "tests"]
    paths = [base / text for base in bases]
    stem, dot, attr = text.rpartition(".")
    if dot and "/" not in attr and Path(text).suffix[1:] not in {"py", "md", "txt", "json", "png", "toml"}:
        # helpers/airflow_harness.migrated_template: a module's attribute, written with the path of its file
        paths += [base / f"{stem}.py" for base in bases if _defines(base / f"{stem}.py", attr)]
    return paths


def _defines(path: Path, name: str) -> bool:
    return (
        path.is_file()
        and re.search(
            rf"^\s*(?:def|class|async def) {re.escape(name)}\b|^{re.escape(name)}\s*[:=]",
            path.read_text(encoding="utf-8"),
            re.M,
        )
        is not None
    )


def _path_misses(doc: Path, text: str | None = None) -> list[Miss]:
    misses = []
    for number, line in _lines(doc, text):
        line = OLD_NAME.sub(" ", LINK.sub(" ", line))  # links are checked against the doc's folder, above
        for name in BARE_FILE.findall(PATH.sub(" ", line)):
            if name not in _repo_file_names():
                misses.append(Miss(doc, number, name, "no file of that name in the repository"))
        for match in PATH.finditer(line):
            path, node = match.group(1).rstrip(".-"), match.group(2) or ""
            if PLACEHOLDER.match(line, match.end(1)):
                continue  # constraints/airflow-<airflow>-python-<python>.txt and the like
            found = [p for p in _path_candidates(path) if p.exists()]
            if not found:
                misses.append(Miss(doc, number, path, "no such file or folder"))
                continue
            test_name = node[2:].split("[", 1)[0] if node else ""
            if test_name and found[0].is_file():
                wildcard = r"\w*" if line[match.end() : match.end() + 1] in "*…" and match.end() < len(line) else r"\b"
                pattern = rf"\b(?:def|class) {re.escape(test_name)}{wildcard}"
                if not re.search(pattern, found[0].read_text(encoding="utf-8")):
                    misses.append(Miss(doc, number, f"{path}{node}", f"no {test_name} in {path}"))
    return misses


@functools.cache
def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _static_names(module: str) -> frozenset[str]:
    """Top-level names a module defines, imports or lists in ``__all__`` (its submodules included)."""
    path = _module_file(module)
    assert path is not None
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for tgt in targets for t in ast.walk(tgt) if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    if path.name == "__init__.py":
        names.update(p.stem for p in path.parent.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file())
    return frozenset(names)


def _resolves_by_import(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    cut = max(i for i in range(1, len(parts) + 1) if _module_file(".".join(parts[:i])) is not None)
    module, rest = ".".join(parts[:cut]), parts[cut:]
    if not rest or (len(rest) == 1 and rest[0] in _static_names(module)):
        return True
    if len(rest) == 2 and rest[0] in _static_names(module) and _class_has(module, rest[0], rest[1]):
        return True
    # Only a module-level __getattr__ can make a name the static pass missed: import for real only then.
    return "__getattr__" in _static_names(module) and _resolves_by_import(dotted)


def _class_has(module: str, cls: str, attr: str) -> bool:
    path = _module_file(module)
    assert path is not None
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            return any(
                getattr(n, "name", None) == attr or (isinstance(n, ast.Name) and n.id == attr) for n in ast.walk(node)
            )
    return False


@functools.cache
def _package_names() -> frozenset[str]:
    """Every class, function and assigned name defined anywhere in the package."""
    names: set[str] = set()
    for path in (ROOT / PACKAGE).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(n.id for target in node.targets for n in ast.walk(target) if isinstance(n, ast.Name))
    return frozenset(names)


def _name_misses(doc: Path, text: str | None = None) -> list[Miss]:
    misses = []
    for number, line in _lines(doc, text):
        line = OLD_NAME.sub(" ", line)
        for name in sorted(set(CLASS_NAME.findall(line)) - _package_names()):
            misses.append(Miss(doc, number, name, "no class or name of the package is called that"))
        names = set(DOTTED.findall(line))
        for module, imported in FROM_IMPORT.findall(line):
            names.update(f"{module}.{name.split()[0]}" for name in imported.split(",") if name.strip())
        misses.extend(Miss(doc, number, name, "does not import") for name in sorted(names) if not _resolves(name))
    return misses


CODE_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _keywords_by_class(tree: ast.Module) -> list[tuple[str, str, int]]:
    """(class, keyword, line) for each keyword given to a class the snippet imports from the package: ``Cls(...)``,
    ``Cls.partial(...)`` and ``Cls.partial(...).expand(...)``."""
    classes: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE):
            classes.update({alias.asname or alias.name: f"{node.module}.{alias.name}" for alias in node.names})
    found: list[tuple[str, str, int]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func, target = node.func, None
        if isinstance(func, ast.Attribute) and func.attr == "expand" and isinstance(func.value, ast.Call):
            func = func.value.func
        if isinstance(func, ast.Attribute) and func.attr == "partial":
            func = func.value
        if isinstance(func, ast.Name):
            target = classes.get(func.id)
        if target:
            found.extend((target, kw.arg, kw.lineno) for kw in node.keywords if kw.arg)
    return found


def _accepted_keywords(dotted: str) -> set[str]:
    """The keywords a class takes: its ``__init__`` and, through each ``**kwargs``, its bases' (Airflow's included)."""
    module, _, name = dotted.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters.values()
        names.update(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def test_the_snippets_pass_parameters_the_classes_take() -> None:
    """Every keyword a Python snippet of the README or docs/ gives an operator, sensor, trigger or hook of the
    package is one it takes (imports Airflow: the one test here that does). README snippets must parse; a docs
    snippet that is not Python as written (an outline with ``...``) is skipped."""
    wrong, checked = [], 0
    for doc in (ROOT / "README.md", *sorted(ROOT.glob("docs/*.md"))):
        text = doc.read_text(encoding="utf-8")
        for block in CODE_BLOCK.finditer(text):
            first_line = text.count("\n", 0, block.start(1)) + 1
            try:
                tree = ast.parse(block.group(1))
            except SyntaxError as exc:
                assert doc.name != "README.md", f"README.md:{first_line + (exc.lineno or 1) - 1}: {exc.msg}"
                continue
            for dotted, keyword, line in _keywords_by_class(tree):
                checked += 1
                if keyword not in _accepted_keywords(dotted):
                    where = f"{doc.relative_to(ROOT)}:{first_line + line - 1}"
                    wrong.append(f"{where}: {dotted.rpartition('.')[2]} takes no {keyword}=")
    assert checked > 40, f"only {checked} keywords found in the snippets"
    snippet = f"from {PACKAGE}.operators.list_tasks import DebituraListTasksOperator as L\nL(task_id='a', shapee=1)"
    probe = _keywords_by_class(ast.parse(snippet))
    accepted = _accepted_keywords(probe[0][0])
    assert [k for _, k, _ in probe] == ["task_id", "shapee"] and {"task_id", "pool", "shape", "case_id"} <= accepted
    assert "shapee" not in accepted  # the negative control: a misspelt parameter is caught
    assert not wrong, "Snippets pass parameters the classes do not take:\n" + "\n".join(wrong)


def test_the_docs_are_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in DOCS}
    assert {"README.md", "docs/sandbox.md", "bench/README.md"} <= names, names


def test_every_path_and_link_in_the_docs_exists() -> None:
    misses = [miss for doc in DOCS for miss in (*_link_misses(doc), *_path_misses(doc))]
    assert not misses, "Paths the docs mention that do not exist:\n" + "\n".join(map(str, misses))


def test_every_package_name_in_the_docs_resolves() -> None:
    misses = [miss for doc in DOCS for miss in _name_misses(doc)]
    assert not misses, "Names the docs mention that do not resolve:\n" + "\n".join(map(str, misses))


def test_the_checker_catches_what_it_should() -> None:
    """A negative control: a moved module, a missing file, a renamed test and a broken link are each caught."""
    doc = ROOT / "docs" / "probe.md"  # never written: the text is given
    text = (
        "`airflow_provider_debitura.hooks.paging.NoSuchThing` and `airflow_provider_debitura.nosuchmodule`\n"
        "from airflow_provider_debitura.hooks.debitura import DebituraHook, NoSuchHook\n"
        "`airflow_provider_debitura/hooks/nosuch.py`, `hooks/nosuch.py`, `tests/nosuch/`\n"
        "`tests/test_docs_paths.py::test_no_such_test`, [x](nosuch.md#a), [ok](sandbox.md#security)\n"
        "[y](sandbox.md#no-such-heading), [ok](../README.md#tested-versions)\n"
        "fine: `airflow_provider_debitura.hooks.debitura.DebituraHook`, `tests/test_docs_paths.py`,\n"
        "`hooks/paging.py`, `helpers/airflow_harness.migrated_template`, `https://example.com/tests/nosuch.py`,\n"
        "`tests/sandbox/test_security.py::test_empty_*`, `/tmp/tests/x.py`, `constraints/airflow-<a>-python-<p>.txt`\n"
        "as documented in `gate.py`, `paging.py` (was `old_paging.py`, formerly the root `x.py`)\n"
        "`DebituraNoSuchError`, `DebituraHook.list_tasks`, `DebituraCaseUnblockedSensor`\n"
    )
    found = {m.what for m in (*_link_misses(doc, text), *_path_misses(doc, text), *_name_misses(doc, text))}
    assert found == {
        "airflow_provider_debitura.hooks.paging.NoSuchThing",
        "airflow_provider_debitura.nosuchmodule",
        "airflow_provider_debitura.hooks.debitura.NoSuchHook",
        "airflow_provider_debitura/hooks/nosuch.py",
        "hooks/nosuch.py",
        "tests/nosuch/",
        "tests/test_docs_paths.py::test_no_such_test",
        "[...](nosuch.md#a)",
        "[...](sandbox.md#no-such-heading)",
        "gate.py",
        "DebituraNoSuchError",
    }, found
