"""Every file the project's words point to exists: src/ (code, presets), docs/, README.md and the Makefile name
repository paths (docs/..., benchmarks/..., src/..., tests/...), and none may point outside the repository
(a design brief or reference table the user never sees)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# where paths are named; benchmarks/ is left out: its scripts name the files they are about to write
SOURCES = ["README.md", "Makefile", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")),
           *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "src" / "easydd").rglob("*")
                   if p.suffix in (".py", ".yaml") and "egg-info" not in str(p))]
PATH = re.compile(r"(?<![\w./-])((?:docs|benchmarks|src|tests)/[\w.*<>{}/-]*)")
# a bare file name (`methods/base.py`, `study.md`): some file of the repository must end with it
NAME = re.compile(r"(?<![\w./-])([\w./-]*[\w-]\.(?:py|md))\b")
OTHER_PROJECTS = {"buffer.py"}  # mtt-distillation's expert script, named where easydd explains what it replaces
BEING_WRITTEN: set[str] = set()  # files written in the same round of work as the references to them
OUTSIDE = re.compile(r"REFERENCE\.md|DESIGN(\.md| section)|DEVELOPERS\.md|\.\./shared")


def _exists(ref: str) -> bool:
    ref = ref.rstrip(".,;:)-/")
    cut = re.search(r"[<{]", ref)  # a placeholder (runs/<name>/, {a,b}): the folder before it must exist
    if cut:
        ref = ref[:cut.start()].rsplit("/", 1)[0]
    if ref in BEING_WRITTEN:
        return True
    if "*" in ref:
        return any(ROOT.glob(ref))
    return (ROOT / ref).exists()


def _mentions():
    for src in SOURCES:
        for n, line in enumerate((ROOT / src).read_text(errors="replace").splitlines(), 1):
            yield src, n, line


def test_every_named_repository_path_exists():
    missing = [f"{src}:{n}: {m}" for src, n, line in _mentions() for m in PATH.findall(line) if not _exists(m)]
    assert not missing, "paths named but not in the repository:\n" + "\n".join(missing)


def test_every_named_python_or_markdown_file_exists():
    files = [str(p.relative_to(ROOT)) for top in ("src", "docs", "tests", "benchmarks")
             for p in (ROOT / top).rglob("*") if p.suffix in (".py", ".md")]
    files += [p.name for p in ROOT.glob("*.md")] + list(BEING_WRITTEN)
    missing = [f"{src}:{n}: {m}" for src, n, line in _mentions() for m in NAME.findall(line)
               if m not in OTHER_PROJECTS and not any(f == m or f.endswith("/" + m) for f in files)]
    assert not missing, "files named but not in the repository:\n" + "\n".join(missing)


def test_nothing_points_outside_the_repository():
    bad = [f"{src}:{n}: {line.strip()[:120]}" for src, n, line in _mentions() if OUTSIDE.search(line)]
    assert not bad, "references a user cannot follow (write the fact into docs/ and point there):\n" + "\n".join(bad)


TOP = {"paper", "cli", "demo", "export"}  # easydd.paper (the paper's analyses) and the command line


def test_the_library_never_imports_the_paper_layer_or_the_cli():
    """No module below imports easydd.paper (or the CLI, the demo, export), at the top or inside a function."""
    import ast
    pkg = ROOT / "src" / "easydd"
    bad = []
    for p in sorted(pkg.rglob("*.py")):
        rel = p.relative_to(pkg)
        if rel.parts[0].removesuffix(".py") in TOP or rel.name == "__init__.py" and len(rel.parts) == 1:
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                if node.level == 0 and mod.startswith("easydd"):
                    names = [mod.split(".")[1]] if "." in mod else [a.name for a in node.names]
                elif node.level == 1 and len(rel.parts) == 1:  # from .x import y / from . import x
                    names = [mod.split(".")[0]] if mod else [a.name for a in node.names]
                elif node.level == 2:
                    names = [mod.split(".")[0]] if mod else [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name.split(".")[1] for a in node.names if a.name.startswith("easydd.")]
            bad += [f"src/easydd/{rel}:{node.lineno} imports {n}" for n in names if n in TOP]
    assert not bad, "a library module imports the layer above it:\n" + "\n".join(bad)


def _internal_imports() -> dict[str, set[str]]:
    """{module: the easydd modules it imports (at the top or inside a function)}, e.g. 'methods.base' -> {'sdc'}."""
    import ast
    pkg = ROOT / "src" / "easydd"
    mods = {".".join(p.relative_to(pkg).with_suffix("").parts).removesuffix(".__init__").removesuffix("__init__")
            or "easydd": p for p in pkg.rglob("*.py")}
    graph = {}
    for m, p in mods.items():
        parts = [] if m == "easydd" else m.split(".")
        here = parts if p.name == "__init__.py" else parts[:-1]  # the package a relative import starts from
        deps = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = here[:len(here) - node.level + 1] + (node.module.split(".") if node.module else [])
                for a in node.names:
                    full = ".".join(base + [a.name])
                    deps.add(full if full in mods else ".".join(base) or "easydd")
        graph[m] = {d for d in deps if d in mods and d != m}
    return graph


def test_no_import_circles():
    graph, state, path = _internal_imports(), {}, []

    def visit(m):
        state[m] = "open"
        path.append(m)
        for d in sorted(graph[m]):
            assert state.get(d) != "open", "import circle: " + " -> ".join(path[path.index(d):] + [d])
            if d not in state:
                visit(d)
        path.pop()
        state[m] = "done"
    for m in sorted(graph):
        if m not in state:
            visit(m)


def _cli_flags() -> dict[str, set[str]]:
    """Every --flag of every (sub)command -> the commands that take it."""
    import argparse
    from easydd.cli import build_parser

    def walk(p, path):
        for act in p._actions:
            if isinstance(act, argparse._SubParsersAction):
                for name, sp in act.choices.items():
                    yield from walk(sp, path + [name])
            for o in act.option_strings:
                if o.startswith("--") and o != "--help":
                    yield o, " ".join(path)
    out: dict[str, set[str]] = {}
    for flag, cmd in walk(build_parser(), []):
        out.setdefault(flag, set()).add(cmd)
    return out


def test_every_flag_is_a_config_key_or_listed_in_docs_cli():
    """docs/cli.md is the one table of flags: each flag of each command is in it with its commands, and nothing
    listed there is gone. A flag spelled like a run setting must mean that setting (it is listed as such)."""
    from easydd.config import RUN_KEYS
    table = {}
    for line in (ROOT / "docs" / "cli.md").read_text().splitlines():
        m = re.match(r"\| `(--[\w-]+)` \| ([^|]*) \| (.*) \|$", line)
        if m:
            table[m.group(1)] = ({c.strip() for c in m.group(2).split(",") if c.strip()}, m.group(3))
    flags = _cli_flags()
    missing = sorted(set(flags) - set(table))
    stale = sorted(set(table) - set(flags))
    assert not missing and not stale, f"docs/cli.md: missing {missing}, listed but gone {stale}"
    for flag, cmds in flags.items():
        listed = table[flag][0]
        assert cmds - {""} <= listed | ({"all (before the command)"} if "" in cmds else set()), (flag, cmds, listed)
        key = flag[2:].replace("-", "_")
        if key in RUN_KEYS:
            assert f"`{key}`" in table[flag][1], f"{flag} is spelled like the run setting {key}; say so in docs/cli.md"


MAX_MODULE_LINES = 600    # a module past this is split along its seams (docs/architecture.md)
MAX_FUNCTION_LINES = 60   # signature, docstring and body; a longer one says why on a line `# long: <reason>`
LONG_REASON = re.compile(r"#\s*long:\s*\S")


def _package_modules():
    pkg = ROOT / "src" / "easydd"
    return [(f"src/easydd/{p.relative_to(pkg)}", p.read_text()) for p in sorted(pkg.rglob("*.py"))]


def test_no_module_is_longer_than_600_lines():
    big = [f"{rel}: {n} lines" for rel, text in _package_modules()
           if (n := len(text.splitlines())) > MAX_MODULE_LINES]
    assert not big, f"modules over {MAX_MODULE_LINES} lines (split them along their seams):\n" + "\n".join(big)


def test_a_function_over_60_lines_says_why():
    """A function longer than 60 lines (the def to its last line) carries `# long: <reason>` on the line above
    it (above its decorators) or on its def line."""
    import ast
    bad = []
    for rel, text in _package_modules():
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            n = node.end_lineno - node.lineno + 1
            top = min([node.lineno] + [d.lineno for d in node.decorator_list])
            marked = LONG_REASON.search(lines[top - 2] if top >= 2 else "") or LONG_REASON.search(
                lines[node.lineno - 1])
            if n > MAX_FUNCTION_LINES and not marked:
                bad.append(f"{rel}:{node.lineno} {node.name}: {n} lines")
    assert not bad, (f"functions over {MAX_FUNCTION_LINES} lines: split them into named steps, or write "
                     "`# long: <why>` on the line above the def:\n" + "\n".join(bad))
