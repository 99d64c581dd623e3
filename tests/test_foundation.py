"""The repository's own set-up: settings, setup.py, the lock file, entry points, CI wiring."""

import configparser, importlib, re, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def cfg():
    c = configparser.ConfigParser(delimiters=['='])
    c.read(ROOT / 'settings.ini')
    return c['DEFAULT']


def pins():
    out = {}
    for line in (ROOT / 'constraints.txt').read_text().splitlines():
        line = line.split('#')[0].strip()
        if line:
            name, _, ver = line.partition('==')
            assert ver, f'constraints.txt line is not an exact pin: {line!r}'
            out[re.sub(r'[-_.]+', '-', name).lower()] = ver
    return out


def test_settings_required_keys():
    c = cfg()
    assert c['lib_name'] == 'recsys' and c['nbs_path'] == 'nbs' and c['readme_nb'] == 'index.ipynb'
    assert c['tst_flags'].split() == ['slow', 'notest']
    assert c['allowed_cell_metadata_keys'].strip() == 'tags'


def test_setup_py_does_not_use_pkg_resources():
    assert 'pkg_resources' not in re.sub(r'""".*?"""', '', (ROOT / 'setup.py').read_text(), flags=re.S)


def test_every_direct_dependency_is_pinned():
    c, p = cfg(), pins()
    names = c['requirements'].split() + c['dev_requirements'].split() + c['spark_requirements'].split()
    missing = [n for n in names if re.sub(r'[-_.]+', '-', n).lower() not in p]
    assert not missing, f'not pinned in constraints.txt: {missing}'
    assert p['nbdev'] == '2.4.14' and p['execnb'] == '0.1.18' and p['fastcore'] == '1.14.5'


def test_installed_versions_match_the_lock_file():
    from importlib import metadata

    p = pins()
    wrong = {
        n: (v, metadata.version(n))
        for n, v in p.items()
        if n not in ('recsys',) and _installed(n) and metadata.version(n) != v
    }
    assert not wrong, f'installed versions differ from constraints.txt: {wrong}'


def _installed(n):
    from importlib import metadata

    try:
        metadata.version(n)
        return True
    except metadata.PackageNotFoundError:
        return False


def test_console_scripts_resolve():
    for spec in cfg().get('console_scripts', '').split():
        name, target = spec.split('=')
        mod, func = target.split(':')
        assert callable(getattr(importlib.import_module(mod), func)), spec


@pytest.mark.process
def test_pip_check_is_clean():
    r = subprocess.run([sys.executable, '-m', 'pip', 'check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / 'README.md').read_text()
    assert re.search(r'^make test\b', readme, re.M), 'README must state `make test`'
    assert re.search(r'^make reports\b', readme, re.M), 'README must state `make reports`'
    ci = [
        l.strip()
        for l in (ROOT / '.ci' / 'run').read_text().splitlines()
        if l.strip() and not l.strip().startswith('#')
    ]
    assert 'make test' in ci


def test_notebooks_have_titles_and_export_targets():
    import json

    for nb in sorted((ROOT / 'nbs').glob('*.ipynb')):
        cells = json.loads(nb.read_text())['cells']
        assert cells[0]['cell_type'] == 'markdown' and ''.join(cells[0]['source']).startswith('# '), (
            f'{nb.name}: no H1 title'
        )
        assert '> ' in ''.join(cells[0]['source']), f'{nb.name}: no one-line summary'
        params = [c for c in cells if 'parameters' in c.get('metadata', {}).get('tags', [])]
        assert len(params) <= 1, f'{nb.name}: more than one parameters cell'


# --- layering (issue 20): the package's modules import each other without a cycle ---------------------------------


def _package_imports(path: Path) -> dict[str, list[int]]:
    """The recsys modules `path` imports -> the line numbers: `from .x import`, `from recsys.x import`,
    `from . import x`, `import recsys.x`. Every import statement of the file (`ast.walk`): at the top, inside
    `if`/`try`, and inside functions, methods and classes: a lazy import is still a dependency, it only runs later."""
    import ast

    out: dict[str, list[int]] = {}

    def add(mod, node):
        if mod and mod != '__init__':
            out.setdefault(mod.split('.')[0], []).append(node.lineno)

    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 or (node.level == 0 and (node.module or '').startswith('recsys')):
                mod = node.module if node.level == 1 else (node.module or '').partition('.')[2]
                if mod:
                    add(mod, node)
                else:
                    for a in node.names:
                        add(a.name, node)  # from . import x / from recsys import x
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith('recsys.'):
                    add(a.name.partition('.')[2], node)
    return out


def _module_graph(package: Path = ROOT / 'recsys') -> dict[str, set[str]]:
    "Module -> the package modules it imports (every import, lazy ones included), for the modules of `package`."
    mods = {p.stem: p for p in package.glob('*.py') if p.stem not in ('__init__', '_modidx')}
    return {m: set(_package_imports(p)) & set(mods) - {m} for m, p in mods.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    "One import cycle of `graph` (a list of modules, first == last), or None."
    state, stack = {}, []

    def dfs(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state and (c := dfs(n)):
                return c
        state[m] = 2
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in state and (c := dfs(m)):
            return c
    return None


def test_cycle_finder_finds_cycles():
    assert _find_cycle({'a': {'b'}, 'b': {'c'}, 'c': set()}) is None
    assert _find_cycle({'a': {'b', 'c'}, 'b': {'c'}, 'c': set()}) is None  # a diamond is not a cycle
    assert _find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    # a cycle away from the first node
    assert _find_cycle({'a': set(), 'b': {'c'}, 'c': {'d'}, 'd': {'b'}}) == ['b', 'c', 'd', 'b']


def test_import_graph_counts_lazy_imports(tmp_path):
    "The graph sees imports inside functions, methods and `if` blocks, in every spelling: a cycle through them fails."
    files = {
        'a.py': 'from .b import x\n',
        'b.py': 'def f():\n    from recsys.c import y\n    return y\n',
        'c.py': 'class C:\n    def m(self):\n        import recsys.a\n',
        'd.py': 'if True:\n    from . import a\n',
        'e.py': 'import numpy\nfrom recsys import core\n',
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding='utf-8')
    g = _module_graph(tmp_path)
    assert g == {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}, 'e': set()}  # core is not in this package
    assert _find_cycle(g) == ['a', 'b', 'c', 'a']
    (tmp_path / 'c.py').write_text('def m():\n    return 1\n', encoding='utf-8')
    assert _find_cycle(_module_graph(tmp_path)) is None


def test_no_import_cycle_between_package_modules():
    """No cycle among recsys's modules, counting every import (lazy ones inside functions included), with no allow-list.
    Layers, imports pointing down: core <- arrays, metrics <- task <- data (readers, interactions, aggregation,
    datasets, synth, convert, users_api, ingest) <- method (confidence, als) <- evaluate <- session task <- runs
    (reports, spark)."""
    g = _module_graph()
    assert 'evaluate' in g['experiments'] and 'core' in g['confidence']  # the parser sees the imports
    assert 'synth' in g['datasets'] and 'evaluate' in g['spark']  # ... and the lazy ones (inside functions)
    assert g['metrics'] == {'core'} and 'metrics' in g['task'] and 'evaluate' not in g['task']
    assert _find_cycle(g) is None, f'import cycle: {" -> ".join(_find_cycle(g))}'


def test_layers_confidence_imports_core_only():
    "Designs depend on core only; a lazy import elsewhere in the package is allowed only as a documented shim."
    path = ROOT / 'recsys' / 'confidence.py'
    lines = path.read_text(encoding='utf-8').splitlines()
    for mod, where in _package_imports(path).items():
        if mod == 'core':
            continue
        for ln in where:
            assert 'compatibility shim' in lines[ln - 1], f'recsys.confidence imports recsys.{mod} (line {ln})'
    assert not set(_package_imports(ROOT / 'recsys' / 'evaluate.py')) & {'experiments', 'reports'}


def test_shared_helpers_are_defined_once():
    "Helpers with one home in recsys.core (issue 20): no module defines its own copy again."
    import ast

    defined: dict[str, list[str]] = {}
    for p in (ROOT / 'recsys').glob('*.py'):
        for node in ast.parse(p.read_text(encoding='utf-8')).body:
            if isinstance(node, ast.FunctionDef):
                defined.setdefault(node.name, []).append(p.stem)
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        defined.setdefault(t.id, []).append(p.stem)
    for name in ('json_ready', 'file_sha256', 'csr_positions', '_jsonable'):
        assert defined.get(name) == ['core'], (name, defined.get(name))
    for name in ('_sha256', '_nan_to_none', '_json_default'):
        assert name not in defined, (name, defined[name])
    assert defined.get('KEYS') == ['aggregation'], defined.get('KEYS')
    for name, home in (
        ('users_view', 'users_api'),
        ('_keys_user_id', 'interactions'),
        ('id_strings', 'interactions'),
        ('_parse_keys', 'interactions'),
    ):
        assert defined.get(name) == [home], (name, defined.get(name))


def test_issue_20_helpers_have_one_definition():
    """The helpers issue 20 found written several times, grepped over the whole package (nested definitions included):
    one CSR normaliser, one id lookup, one RFM rule, one users view, one KEYS, one ALS default; no hand-attached
    methods."""
    import ast

    defs: dict[str, list[str]] = {}
    source = ''
    for p in sorted((ROOT / 'recsys').glob('*.py')):
        if p.stem == '_modidx':
            continue
        text = p.read_text(encoding='utf-8')
        source += text
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defs.setdefault(node.name, []).append(p.stem)
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name) and t.id.isupper():
                        defs.setdefault(t.id, []).append(p.stem)
    one_home = {
        'canonical_csr': 'core',
        'csr_positions': 'core',
        'json_ready': 'core',
        'file_sha256': 'core',
        '_lookup': 'interactions',
        'users_view': 'users_api',
        'rfm_segments': 'sessions',
        'KEYS': 'aggregation',
        'DEFAULT_ALS': 'confidence',
        'DEFAULT_DESIGN': 'confidence',
    }
    for name, home in one_home.items():
        assert defs.get(name) == [home], (name, defs.get(name))
    for gone in ('_csr', '_canonical', '_keys', '_as_method', '_sha256', '_json_default', '_nan_to_none'):
        assert gone not in defs, (gone, defs[gone])
    assert source.count('range(2, min(9,') == 1, 'the RFM k-range rule is written more than once'
    assert '_as_method(' not in source


# --- public homes (issue 27): one definition per name, no private name borrowed across modules ---------------------


def _module_definitions(path: Path) -> dict[str, int]:
    """Names `path` defines at module level -> the line: `def`, `class`, assignment. Not definitions: imports (a
    re-export is an import), `@patch`ed methods (they define a method of a class), and an alias `old = new` (a second
    name for an object defined once, kept so an old import still works)."""
    import ast

    out: dict[str, int] = {}
    for node in ast.parse(path.read_text(encoding='utf-8')).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            patched = any(
                (d.func if isinstance(d, ast.Call) else d).__dict__.get('id') == 'patch' for d in node.decorator_list
            )
            if not patched:
                out.setdefault(node.name, node.lineno)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            if isinstance(node.value, ast.Name) or (
                isinstance(node.value, ast.Attribute) and isinstance(node.value.value, ast.Name)
            ):
                continue  # an alias: `old = new`, or `f = Class.f` (a @patch'ed method kept as a module function)
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in [t, *getattr(t, 'elts', ())]:
                    if isinstance(n, ast.Name):
                        out.setdefault(n.id, node.lineno)
    return out


def _private_imports(path: Path) -> list[tuple[str, str, int]]:
    "(module, private name, line) for each `from <recsys module> import _name` of `path`, lazy imports included."
    import ast

    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.ImportFrom) and (
            node.level == 1 or (node.level == 0 and (node.module or '').startswith('recsys.'))
        ):
            mod = node.module if node.level == 1 else node.module.partition('.')[2]
            out += [(mod, a.name, node.lineno) for a in node.names if mod and a.name.startswith('_')]
    return out


def _shared(name: str) -> bool:
    "A name the package's modules must not define twice: public, or an UPPER_CASE constant (private ones included)."
    return not name.startswith('_') or name.lstrip('_').isupper()


def test_definition_finder_sees_defs_not_imports(tmp_path):
    p = tmp_path / 'm.py'
    p.write_text(
        'from .x import A, _b\nimport numpy as np\nA2 = 1\n_C, D = 1, 2\nE: int = 3\nOLD = A2  # alias\n'
        'def f():\n    from recsys.y import _z\n    g = 1\n@patch\ndef meth(self: K): pass\nclass K: pass\n',
        encoding='utf-8',
    )
    assert sorted(_module_definitions(p)) == ['A2', 'D', 'E', 'K', '_C', 'f']  # not OLD (an alias), nor meth
    assert _private_imports(p) == [('x', '_b', 1), ('y', '_z', 8)]
    assert _shared('FOO') and _shared('_FOO') and _shared('foo') and not _shared('_foo')


def test_each_public_name_is_defined_in_one_module():
    """No public or UPPER_CASE name is defined (def, class, assignment at module level) in two modules: a constant
    lives in one place, and a name has one meaning across the package. Re-exports and `old = new` aliases are not
    definitions."""
    homes: dict[str, list[str]] = {}
    for p in sorted((ROOT / 'recsys').glob('*.py')):
        if p.stem in ('__init__', '_modidx'):
            continue
        for name in _module_definitions(p):
            if _shared(name):
                homes.setdefault(name, []).append(p.stem)
    assert 'KEYS' in homes and 'RecsysDataError' in homes  # the finder sees constants and classes
    twice = {n: ms for n, ms in homes.items() if len(ms) > 1}
    assert not twice, f'defined in more than one module: {twice}'


def test_no_module_imports_another_modules_private_name():
    """A helper another module needs is public (documented and tested) in its home, or in core: no module imports a
    private name from another module, except from core. Imports inside functions count."""
    borrowed = [
        f'{p.stem} imports {mod}.{name} (line {ln})'
        for p in sorted((ROOT / 'recsys').glob('*.py'))
        if p.stem not in ('__init__', '_modidx')
        for mod, name, ln in _private_imports(p)
        if mod != 'core'
    ]
    assert not borrowed, f'{len(borrowed)} private imports:\n' + '\n'.join(borrowed)


# --- house rules (issue 27 item 5): docments, line length, cell size, notebook order -------------------------------


def _undocumented(path: Path, min_params: int = 5) -> dict[str, list[str]]:
    """Public functions of `path` (module level, `@patch`ed methods included, and public methods of public classes)
    with `min_params` or more parameters (`self`/`cls` not counted) -> their parameters without a docment. A parameter
    is documented when a `#` comment follows it on its line, and no other parameter shares that line."""
    import ast, io, tokenize

    text = path.read_text(encoding='utf-8')
    comments = {t.start[0] for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type == tokenize.COMMENT}
    fns = []
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith('_'):
            fns.append((node.name, node))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith('_'):
            fns += [
                (f'{node.name}.{m.name}', m)
                for m in node.body
                if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)) and not m.name.startswith('_')
            ]
    out = {}
    for name, fn in fns:
        a = fn.args
        ps = [*a.posonlyargs, *a.args, *filter(None, [a.vararg]), *a.kwonlyargs, *filter(None, [a.kwarg])]
        ps = [p for p in ps if p.arg not in ('self', 'cls')]
        lines = [p.lineno for p in ps]
        missing = [p.arg for p in ps if p.lineno not in comments or lines.count(p.lineno) > 1]
        if len(ps) >= min_params and missing:
            out[name] = missing
    return out


def test_docments_finder_sees_undocumented_parameters(tmp_path):
    p = tmp_path / 'm.py'
    p.write_text(
        'def ok(\n    a,  # the a\n    b=1,  # the b\n    *c,  # more\n'
        '    d: int = 2,  # the d\n    **e,  # options\n):\n'
        '    pass\n'
        'def bad(a, b, c,  # three on a line\n    d,  # the d\n    e):\n    pass\n'
        'def few(a, b, c, d): pass\n'
        'def _private(a, b, c, d, e): pass\n'
        'class K:\n    def m(self, a, b, c, d, e): pass\n    def n(self, a, b, c, d): pass\n',
        encoding='utf-8',
    )
    assert _undocumented(p) == {'bad': ['a', 'b', 'c', 'e'], 'K.m': ['a', 'b', 'c', 'd', 'e']}


def test_public_functions_with_five_or_more_parameters_use_docments():
    "Every public function or method with five or more parameters documents each one with a comment on its own line."
    found = {
        f'{p.stem}.{name}': missing
        for p in sorted((ROOT / 'recsys').glob('*.py'))
        if p.stem not in ('__init__', '_modidx')
        for name, missing in _undocumented(p).items()
    }
    assert not found, f'{len(found)} functions without docments:\n' + '\n'.join(f'{k}: {v}' for k, v in found.items())


def _exported_cells(nb: Path) -> list[tuple[int, int]]:
    "(cell index, lines) of each exported code cell of `nb`: its lines except the `#|` directives."
    import json

    out = []
    for i, c in enumerate(json.loads(nb.read_text(encoding='utf-8'))['cells']):
        lines = ''.join(c['source']).splitlines()
        if c['cell_type'] == 'code' and any(re.match(r'#\|\s*export', l) for l in lines):
            out.append((i, sum(not l.startswith('#|') for l in lines)))
    return out


def test_exported_cell_counter(tmp_path):
    import json

    cells = [
        {'cell_type': 'code', 'source': ['#| export\n', 'x = 1\n', '\n', 'y = 2']},
        {'cell_type': 'code', 'source': ['z = 3\n' * 70]},  # not exported
        {'cell_type': 'code', 'source': ['#|export\n', '#| hide\n', 'a = 1\n' * 61]},
        {'cell_type': 'markdown', 'source': ['#| export\n', 'text\n' * 70]},
    ]
    (tmp_path / 'x.ipynb').write_text(json.dumps({'cells': cells}), encoding='utf-8')
    assert _exported_cells(tmp_path / 'x.ipynb') == [(0, 3), (2, 61)]


def test_exported_cells_are_at_most_60_lines():
    big = [
        f'{nb.name} cell {i}: {n} lines'
        for nb in sorted((ROOT / 'nbs').glob('*.ipynb'))
        for i, n in _exported_cells(nb)
        if n > 60
    ]
    assert not big, 'exported cells over 60 lines:\n' + '\n'.join(big)


def _notebook_of_module() -> dict[str, str]:
    "Package module -> the notebook (stem) that exports it (`#| default_exp`)."
    import json

    out = {}
    for nb in sorted((ROOT / 'nbs').glob('*.ipynb')):
        for c in json.loads(nb.read_text(encoding='utf-8'))['cells']:
            if m := re.search(r'^#\|\s*default_exp\s+(\S+)', ''.join(c['source']), re.M):
                out[m.group(1)] = nb.stem
    return out


def _order_breaks(graph: dict[str, set[str]], notebook: dict[str, str]) -> list[str]:
    """Lettered notebooks (`06c_name`) importing a notebook of the same number that does not come before them:
    within a number, a notebook's letter comes after the letters of those it imports. An unlettered notebook (`06_name`,
    a report) keeps its name and may import its lettered neighbours."""
    out = []
    for mod, deps in sorted(graph.items()):
        nb = notebook.get(mod, '')
        if not re.match(r'\d+[a-z]_', nb):
            continue
        for d in sorted(deps):
            other = notebook.get(d, '')
            if other and re.match(r'\d+', other).group() == re.match(r'\d+', nb).group() and other > nb:
                out.append(f'{nb} imports {other}')
    return out


def test_order_checker_finds_a_letter_before_its_import():
    nbs = {'t': '00a_task', 'm': '00b_metrics', 'c': '00_core', 'r': '01_ingest', 'x': '01b_readers'}
    assert _order_breaks({'t': {'m', 'c'}, 'm': {'c'}, 'c': set()}, nbs) == ['00a_task imports 00b_metrics']
    assert _order_breaks({'m': {'t'}, 't': {'c'}}, nbs) == []  # 00b imports 00a: in order
    assert _order_breaks({'r': {'x'}, 'x': {'m'}}, nbs) == []  # a report notebook, and another number


def test_lettered_notebooks_follow_their_imports():
    "Counting every import (lazy ones inside functions too), a lettered notebook's imports of its number come first."
    notebook = _notebook_of_module()
    assert notebook['metrics'] < notebook['task'] and notebook['readers'] < notebook['users_api']
    breaks = _order_breaks(_module_graph(), notebook)
    assert not breaks, 'notebooks out of dependency order:\n' + '\n'.join(breaks)


def _long_lines(path: Path, limit: int = 120) -> list[str]:
    """Lines of `path` over `limit` characters, except the first line of nbdev's own `__all__ = [...]` (nbdev wraps the
    names at 120 characters before it adds `__all__ = `, so that generated line may reach 130)."""
    lines = path.read_text(encoding='utf-8').splitlines()
    return [
        f'{path.name}:{i}: {len(l)}'
        for i, l in enumerate(lines, 1)
        if len(l) > limit and not l.startswith('__all__ = [')
    ]


def test_lines_are_at_most_120_characters(tmp_path):
    """E501 (line too long) is on at 120 characters: ruff holds tests, benchmarks and .ci to it; the exported package is
    held here, line by line, because nbdev writes one line of each module itself (`_long_lines`)."""
    import tomllib

    ruff = tomllib.loads((ROOT / 'pyproject.toml').read_text(encoding='utf-8'))['tool']['ruff']
    assert ruff['line-length'] == 120
    selected, ignored = ruff['lint']['select'], ruff['lint'].get('ignore', [])
    assert {'E501', 'E5', 'E'} & set(selected) and not {'E501', 'E5', 'E'} & set(ignored), (selected, ignored)
    assert ruff['lint'].get('per-file-ignores', {}) == {'recsys/*.py': ['E501']}
    p = tmp_path / 'm.py'
    p.write_text('x = 1\ny = "' + 'a' * 130 + '"\n__all__ = [' + "'name', " * 15 + ']\n')
    assert _long_lines(p) == ['m.py:2: 136']  # a long line is found; nbdev's __all__ line is not
    long = [x for f in sorted((ROOT / 'recsys').glob('*.py')) if f.name != '_modidx.py' for x in _long_lines(f)]
    assert not long, f'{len(long)} lines of the package over 120 characters: {long[:20]}'
