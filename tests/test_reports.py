"""recsys-reports end to end on tiny fixture notebooks: failure isolation, resume, --force, reproducibility,
the index page in a real headless Chromium, and the console script."""

import json, os, subprocess, sys, time
from pathlib import Path

import pytest

from recsys import reports as R

# 10_downstream waits for 09_broken here, so that a failure has a dependent to skip
DEPS = {'01_ingest': [], '04_als': ['01_ingest'], '09_broken': ['01_ingest'], '10_downstream': ['09_broken']}
GRID = {'04_als': {'factors': [4, 8]}}


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp('reports')
    old = {k: os.environ.get(k) for k in ('RECSYS_DATA_DIR', 'RECSYS_REPORTS_DIR')}
    os.environ['RECSYS_DATA_DIR'] = str(d / 'data')  # never the repository's data/ or reports/
    os.environ['RECSYS_REPORTS_DIR'] = str(d / 'reports')
    R.demo_notebooks(d / 'nbs')
    (d / 'grid.json').write_text(json.dumps(GRID))
    yield d
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope='module')
def run1(env):
    t = time.time()
    s = R.run_reports(
        'synthetic',
        'tiny',
        42,
        jobs=2,
        out=env / 'run',
        nbs_dir=env / 'nbs',
        grid=GRID,
        depends=DEPS,
        prepare=False,
        screenshot=False,
    )
    s['_elapsed'] = time.time() - t
    return s


def _rec(summary, key):
    return next(r for r in summary['records'] if r['key'] == key)


@pytest.mark.reports
def test_failure_is_isolated_and_reported(env, run1):
    run = env / 'run'
    assert run1['counts'] == {'ok': 3, 'cached': 0, 'not applicable': 0, 'failed': 1, 'skipped': 1}
    assert not run1['ok']
    # the failing job: cell, source and error recorded; partial outputs kept
    err = json.loads((run / '09_broken/default/error.json').read_text())
    assert (err['where'], err['ename'], err['evalue']) == ('cell', 'ValueError', 'planted failure')
    assert err['source'] == "raise ValueError('planted failure')" and err['cell_index'] == 4 and err['exec_count'] == 5
    assert 'planted failure' in err['traceback']
    for f in ('notebook.ipynb', 'notebook.html', 'results.json'):
        assert (run / '09_broken/default' / f).exists(), f
    assert not (run / '09_broken/default/_done.json').exists()
    res = json.loads((run / '09_broken/default/results.json').read_text())
    assert res['status'] == 'failed' and res['error']['ename'] == 'ValueError' and res['duration_s'] > 0
    nb = json.loads((run / '09_broken/default/notebook.ipynb').read_text())
    assert "x = 1" in ''.join(''.join(c['source']) for c in nb['cells'])
    # its dependent is skipped with the reason; the independent jobs completed
    assert _rec(run1, '10_downstream/default')['status'] == 'skipped'
    assert '09_broken' in _rec(run1, '10_downstream/default')['reason']
    for key in ('01_ingest/default', '04_als/factors=4', '04_als/factors=8'):
        d = run / key
        assert _rec(run1, key)['status'] == 'ok'
        assert {'notebook.ipynb', 'notebook.html', 'results.json', '_done.json'} <= {p.name for p in d.iterdir()}
        res = json.loads((d / 'results.json').read_text())
        assert res['status'] == 'ok' and res['job']['slug'] == d.name and 'versions' in res and res['started']
    assert (run / '04_als/factors=8/convergence.png').stat().st_size > 1000
    # parameters injected: grid values and out_dir; K not passed -> the notebook's own default
    p = json.loads((run / '04_als/factors=8/results.json').read_text())['params']
    assert p['factors'] == 8 and p['K'] == 10 and p['seed'] == 42
    summary = R.format_summary(run1)
    assert 'FAILED  09_broken/default: ValueError: planted failure' in summary and str(run / 'index.html') in summary


@pytest.mark.reports
def test_index_page_content(env, run1):
    page = (env / 'run' / 'index.html').read_text()
    for needle in (
        'ours: 04_als/factors=8 · test / als',
        'ours: 04_als/factors=4 · test / popularity',
        'published: BiVAE',
        'published: Spark ALS (explicit)',
        '04_als: 2 configurations',
        'href="04_als/factors=4/notebook.html"',
        'planted failure',
        'dependency 09_broken did not complete',
        'data:image/png;base64,',
    ):
        assert needle in page, needle
    m4 = json.loads((env / 'run/04_als/factors=4/results.json').read_text())['metrics']['test']['als']['ndcg@10']
    assert f'{m4:.4f}' in page
    assert (env / 'run' / '_sweeps' / '04_als.png').exists()
    assert '<script' not in page.lower()
    # the page opens with the headline (none in these fixtures: said), then one card per completed report,
    # then the details
    assert (
        page.index('id="headline"') < page.index('id="reports"') < page.index('id="metrics"') < page.index('id="jobs"')
    )
    assert 'No report of this run records a headline' in page
    assert (
        page.count('class="card"') == 2
        and '<a href="04_als/factors=4/notebook.html"><img src="data:image/png;base64,' in page
    )


def _add_challenge_job(run: Path) -> None:
    """A completed job shaped like 06_recommend's (metrics.headline, metrics.baselines, table, figures) added to a run
    folder."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from recsys.core import save_figure, write_results

    jd = run / '06_recommend' / 'default'
    jd.mkdir(parents=True)
    row = lambda a, f: {'ndcg@5': a, 'hit@5': 0.6, 'ndcg@5 future': f, 'hit@5 future': 0.2}
    base = {
        'random order of shown items': row(0.277, 0.0),
        'global popularity': row(0.080, 0.037),
        'linear blend (tuned)': row(0.339, 0.061),
        'oracle (planted truth)': row(0.627, 0.524),
    }
    hl = {
        'ndcg_all': 0.36,
        'ndcg_future': 0.07,
        'best_in_session_all': 0.277,
        'best_in_session_future': 0.0,
        'x_best_in_session': 1.3,
        'x_oracle': 0.574,
        'best_order_of_shown_items': 0.345,
        'oracle': 0.627,
    }
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.barh(['model', 'random'], [0.36, 0.277])
    save_figure(fig, jd, 'ndcg_methods')
    plt.close(fig)
    write_results(
        jd,
        {'seed': 42},
        metrics={'ndcg@5': 0.36, 'headline': hl, 'baselines': base},
        table={**base, 'two-stage ranker': row(0.36, 0.07)},
        figures=['ndcg_methods.png'],
    )
    meta = json.loads((run / 'run.json').read_text())
    meta['records'].insert(
        0,
        {
            'notebook': '06_recommend',
            'slug': 'default',
            'key': '06_recommend/default',
            'dir': '06_recommend/default',
            'status': 'ok',
            'grid': {},
            'params': {'seed': 42},
            'wall_s': 1.0,
            'deps': [],
        },
    )
    meta['counts']['ok'] += 1
    (run / 'run.json').write_text(json.dumps(meta))


@pytest.mark.reports
@pytest.mark.browser
@pytest.mark.skipif(R.find_chromium() is None, reason='no chromium')
def test_index_opens_with_the_challenge_headline_and_thumbnails(env, run1, tmp_path):
    import shutil

    run = tmp_path / 'run'
    shutil.copytree(env / 'run', run)
    _add_challenge_job(run)
    page = R.build_index(run).read_text()
    head = page[page.index('id="headline"') : page.index('id="reports"')]
    rows = [r.split('</td>')[0] for r in head.split('<tr')[2:]]
    assert [r.split('<td>')[-1] for r in rows] == [
        'two-stage ranker',
        'linear blend (tuned)',
        'random order of shown items',
        'global popularity',
        'oracle (planted truth)',
    ]
    assert '1.30 × the best in-session baseline (0.277), 57% of the oracle (0.627)' in head
    chk = R.browser_check(run / 'index.html', screenshot=run / 'index.png', size=(1280, 1400))
    assert chk['checked'] and chk['broken'] == [] and chk['rendered'] == chk['images'] == 5  # 2 thumbnails + 3 figures
    text = chk['text']
    assert text.index('Headline') < text.index('two-stage ranker') < text.index('Reports') < text.index('Metrics')
    assert (run / 'index.png').stat().st_size > 10_000


def test_report_page_leaves_out_library_cells(tmp_path):
    """notebook_html on an executed-looking notebook: exports, hidden imports and test-only cells gone; prose,
    parameters, outputs kept."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    out = lambda t: [nbformat.v4.new_output('execute_result', {'text/plain': t}, execution_count=1)]
    nb.cells = [
        nbformat.v4.new_markdown_cell('# A report\n\nProse that stays.'),
        nbformat.v4.new_code_cell('#| export\ndef library_function(): return 1'),
        nbformat.v4.new_code_cell('#|hide\nfrom fastcore.test import *'),
        nbformat.v4.new_code_cell("test_eq(library_function(), 1)\ntest_fail(lambda: 1 / 0)\nassert True"),
        nbformat.v4.new_code_cell('seed = 42', metadata={'tags': ['parameters']}),
        nbformat.v4.new_code_cell('result_value = library_function() + seed', outputs=out('43')),
    ]
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}
    nbformat.write(nb, tmp_path / 'notebook.ipynb')
    page = R.notebook_html(tmp_path / 'notebook.ipynb', tmp_path / 'notebook.html').read_text()
    for gone in ('def library_function', 'fastcore.test', 'test_fail'):
        assert gone not in page, gone
    for kept in ('Prose that stays', 'seed', 'result_value', '43', 'leaves out 3 library cells'):
        assert kept in page, kept
    assert len(nbformat.read(tmp_path / 'notebook.ipynb', 4).cells) == 6  # the notebook itself stays complete


@pytest.mark.reports
@pytest.mark.browser
@pytest.mark.skipif(R.find_chromium() is None, reason='no chromium (install Debian\'s chromium package; .ci/run does)')
def test_index_page_renders_in_headless_chromium(env, run1):
    index = env / 'run' / 'index.html'
    shot = env / 'run' / 'index.png'
    chk = R.browser_check(index, screenshot=shot)
    assert chk['checked'], 'the page did not finish loading in Chromium'
    assert chk['images'] >= 2 and chk['broken'] == [] and chk['rendered'] == chk['images']
    assert chk['tables'] >= 5 and chk['rows'] >= 20
    for needle in ('published: BiVAE', 'ours: 04_als/factors=8', '09_broken/default'):
        assert needle in chk['text'], needle
    assert shot.exists() and shot.stat().st_size > 10_000  # kept with the run


@pytest.mark.reports
def test_resume_skips_done_jobs_and_force_reruns(env, run1):
    run = env / 'run'
    before = {
        k: (run / k / '_done.json').stat().st_mtime_ns
        for k in ('01_ingest/default', '04_als/factors=4', '04_als/factors=8')
    }
    # the CLI, default dependency table: 10_downstream now waits for 01_ingest only, so it runs; 09_broken fails again
    rc = R.reports_cli(
        [
            '--dataset',
            'synthetic',
            '--scale',
            'tiny',
            '--nbs',
            str(env / 'nbs'),
            '--out',
            str(run),
            '--grid',
            str(env / 'grid.json'),
            '--jobs',
            '2',
            '--no-screenshot',
            '--no-prepare',
        ]
    )
    assert rc == 1
    st = json.loads((run / 'run.json').read_text())
    status = {r['key']: r['status'] for r in st['records']}
    assert status == {
        '01_ingest/default': 'cached',
        '04_als/factors=4': 'cached',
        '04_als/factors=8': 'cached',
        '09_broken/default': 'failed',
        '10_downstream/default': 'ok',
    }
    assert before == {k: (run / k / '_done.json').stat().st_mtime_ns for k in before}
    # --force reruns (here only the selected notebook)
    rc = R.reports_cli(
        [
            '--scale',
            'tiny',
            '--nbs',
            str(env / 'nbs'),
            '--out',
            str(run),
            '--grid',
            str(env / 'grid.json'),
            '--only',
            '01',
            '--force',
            '--no-screenshot',
            '--no-prepare',
        ]
    )
    assert rc == 0
    st = json.loads((run / 'run.json').read_text())
    status = {r['key']: r['status'] for r in st['records']}
    assert status == {
        '01_ingest/default': 'ok',
        '04_als/factors=4': 'cached',
        '04_als/factors=8': 'cached',
        '10_downstream/default': 'cached',
    }  # the page still lists the other completed jobs
    assert (run / '01_ingest/default/_done.json').stat().st_mtime_ns > before['01_ingest/default']


@pytest.mark.reports
def test_same_parameters_and_seed_reproduce_the_metrics(env, run1):
    s = R.run_reports(
        'synthetic',
        'tiny',
        42,
        jobs=1,
        out=env / 'again',
        nbs_dir=env / 'nbs',
        grid={'04_als': {'factors': [4]}},
        only=['04_als'],
        prepare=False,
        screenshot=False,
    )
    assert s['ok']
    a = json.loads((env / 'run/04_als/factors=4/results.json').read_text())
    b = json.loads((env / 'again/04_als/factors=4/results.json').read_text())
    assert a['metrics'] == b['metrics'] and a['params'] == b['params']
    c = json.loads((env / 'run/04_als/factors=8/results.json').read_text())
    assert c['metrics'] != a['metrics']  # the metrics do depend on the parameters: the comparison can fail
    cmp = R.compare_runs(env / 'run', env / 'again')
    assert cmp['same'] == ['04_als/factors=4'] and cmp['different'] == {} and '04_als/factors=8' in cmp['only_a']


@pytest.mark.browser
def test_browser_check_detects_a_broken_image(tmp_path):
    if R.find_chromium() is None:
        pytest.skip('no chromium')
    p = tmp_path / 'index.html'
    p.write_text('<html><body><table><tr><td>x</td></tr></table><img src="missing.png" alt="gone"></body></html>')
    chk = R.browser_check(p)
    assert chk['checked'] and chk['broken'] == ['gone'] and chk['rows'] == 1


def test_kernel_start_errors_are_retried_once():
    import zmq

    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise zmq.error.ZMQError(98, 'Address already in use')

    assert R.retry_once(flaky, wait=0) == 1 and len(calls) == 2

    def bug():
        raise ValueError('x')

    with pytest.raises(ValueError):
        R.retry_once(bug, wait=0)


def test_kernels_use_the_ipc_transport(tmp_path):
    km = R.ipc_kernel_manager('python3', str(tmp_path), {})
    assert km.transport == 'ipc' and km.ip.startswith(str(tmp_path))


@pytest.mark.reports
@pytest.mark.process
def test_console_script_and_bad_input(env, tmp_path, capsys):
    assert R.reports_cli(['--scale', 'tiny', '--nbs', str(env / 'nbs'), '--out', str(tmp_path / 'x'), '--dry-run']) == 0
    out = capsys.readouterr().out
    assert '04_als/default' in out and 'waits for: 01_ingest' in out
    # the installed entry point, wrapped in cli_errors: bad input -> one line on stderr, exit status 2
    exe = Path(sys.executable).with_name('recsys-reports')
    assert exe.exists(), 'pip install -e . to create the console script'
    bad = tmp_path / 'grid.json'
    bad.write_text('{"04_als": {"alpha": [1, 2]}}')
    r = subprocess.run(
        [str(exe), '--scale', 'tiny', '--nbs', str(env / 'nbs'), '--grid', str(bad), '--dry-run'],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and 'does not declare' in r.stderr and 'Traceback' not in r.stderr


def test_a_second_run_on_the_same_folder_is_refused(env, tmp_path):
    from recsys.core import RecsysDataError

    with R.run_lock(tmp_path):
        with pytest.raises(RecsysDataError, match='another recsys-reports run'):
            R.run_reports('synthetic', 'tiny', out=tmp_path, nbs_dir=env / 'nbs', prepare=False, screenshot=False)


# ---------------------------------------------------------------- the real notebooks on other datasets (issue 18) ----
ROOT = Path(__file__).resolve().parents[1]
SHARED_ML100K = ROOT.parent / 'shared' / 'data' / 'ml-100k'


def _ml100k_home(tmp_path) -> dict:
    """RECSYS_DATA_HOME for MovieLens-100K: the cache when it holds u.data, else links to ../shared (never copied into
    the repo)."""
    from recsys.core import cache_dir

    if (cache_dir('ml-100k', create=False) / 'u.data').exists():
        return {}
    if not (SHARED_ML100K / 'u.data').exists():
        pytest.skip('MovieLens-100K is neither in the cache nor in ../shared/data')
    home = tmp_path / 'cache'
    (home / 'ml-100k').mkdir(parents=True)
    for f in SHARED_ML100K.iterdir():
        (home / 'ml-100k' / f.name).symlink_to(f)
    return {'RECSYS_DATA_HOME': str(home)}


@pytest.mark.reports
@pytest.mark.process
@pytest.mark.spark
def test_reports_on_movielens_are_ok_or_not_applicable(tmp_path, reports_cmd):
    status, out = reports_cmd('movielens-100k', tmp_path, env=_ml100k_home(tmp_path))
    assert status['06_recommend/default'] == 'not applicable'  # no sessions, carts or test: said, not failed
    assert status['08_spark/default'] == 'ok' and status['05_evaluate/default'] == 'ok'  # u.data read as MovieLens
    assert 'n/a     06_recommend/default: not applicable: the dataset has no sessions' in out
    res = json.loads((tmp_path / 'run' / '06_recommend' / 'default' / 'results.json').read_text())
    assert res['status'] == 'not applicable' and 'add-to-cart' in res['reason']
    page = (tmp_path / 'run' / 'index.html').read_text()
    assert 'st-not-applicable' in page and 'do not apply to this dataset' in page


@pytest.mark.reports
@pytest.mark.process
@pytest.mark.spark
def test_reports_on_a_generic_log_folder_are_ok_or_not_applicable(taobao, taobao_reports):
    """The reports on a generic event log: the converted Taobao-style log of tests/conftest.py (no users file, a null
    embedding column, no planted truth), run once for this test and tests/test_convert.py."""
    status = taobao_reports['status']
    assert status['06_recommend/default'] == 'ok' and status['05_evaluate/default'] == 'ok'
    feats = R.dataset_features(str(taobao['ds']))
    assert feats['sessions'] and feats['carts'] and not feats['users'] and not feats['embeddings']
