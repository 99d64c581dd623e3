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


def _package_imports(path: Path, lazy: bool = False) -> dict[str, list[int]]:
    """The recsys modules `path` imports -> the line numbers: `from .x import`, `from recsys.x import`, `from . import x`,
    `import recsys.x`. Top-level statements only (also inside a top-level `if`/`try`), unless `lazy` (then every one)."""
    import ast

    out: dict[str, list[int]] = {}

    def add(mod, node):
        if mod and mod != '__init__':
            out.setdefault(mod.split('.')[0], []).append(node.lineno)

    def visit(nodes):
        for node in nodes:
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
            if lazy or not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit([c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)])

    visit(ast.parse(path.read_text(encoding='utf-8')).body)
    return out


def _module_graph(lazy: bool = False) -> dict[str, set[str]]:
    mods = {p.stem: p for p in (ROOT / 'recsys').glob('*.py') if p.stem not in ('__init__', '_modidx')}
    return {m: set(_package_imports(p, lazy)) & set(mods) - {m} for m, p in mods.items()}


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
    assert _find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']


def test_no_import_cycle_between_package_modules():
    g = _module_graph()
    assert 'evaluate' in g['experiments'] and 'core' in g['confidence']  # the parser sees the imports
    assert _find_cycle(g) is None, f'import cycle (top-level imports): {" -> ".join(_find_cycle(g))}'


def test_layers_confidence_imports_core_only():
    "Designs depend on core only; a lazy import elsewhere in the package is allowed only as a documented shim."
    path = ROOT / 'recsys' / 'confidence.py'
    lines = path.read_text(encoding='utf-8').splitlines()
    for mod, where in _package_imports(path, lazy=True).items():
        if mod == 'core':
            continue
        for ln in where:
            assert 'compatibility shim' in lines[ln - 1], f'recsys.confidence imports recsys.{mod} (line {ln})'
    assert not set(_package_imports(ROOT / 'recsys' / 'evaluate.py', lazy=True)) & {'experiments', 'reports'}


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
        ('_id_strings', 'interactions'),
        ('_parse_keys', 'interactions'),
    ):
        assert defined.get(name) == [home], (name, defined.get(name))


def test_issue_20_helpers_have_one_definition():
    """The helpers issue 20 found written several times, grepped over the whole package (nested definitions included):
    one CSR normaliser, one id lookup, one RFM rule, one users view, one KEYS, one ALS default; no hand-attached methods."""
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
