"""The benchmark driver (benchmarks/run_all.py) and its measuring helper: fast checks, no benchmark at full size.

The figures RESULTS.md shows for bench_evaluate / bench_predict / bench_reports are parsed from what those scripts
print; the checks below run the real scripts at tiny sizes, so that a change of their output format fails here
rather than silently dropping figures from RESULTS.md.
"""

import json, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / 'benchmarks'
sys.path.insert(0, str(BENCH))

import run_all  # noqa: E402
from _common import machine_info, run_measured  # noqa: E402


@pytest.mark.process
def test_discovery_lists_every_benchmark_and_no_helper():
    b = run_all.discover()
    scripts = {s['script'] for s in b.values()}
    assert scripts == {f.name for f in BENCH.glob('bench_*.py')}
    assert 'run_all.py' not in scripts and '_common.py' not in scripts
    assert 'full' in b and b['full']['script'] == 'bench_full.py'
    out = subprocess.run(
        [sys.executable, BENCH / 'run_all.py', '--list', '--quick'], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert 'bench_full.py --scale small' in out.stdout


@pytest.mark.process
def test_run_measured_peak_rss_cpu_and_timeout(tmp_path):
    r = run_measured(
        [sys.executable, '-c', 'import numpy as np; a = np.ones(300 * 2**20 // 8); print(a.sum())'],
        log=tmp_path / 'log',
        echo=False,
    )
    assert r['returncode'] == 0 and not r['timed_out']
    assert r['peak_rss_mib'] >= 290, r['peak_rss_mib']  # the 300 MiB array is seen
    assert r['cpu_s'] > 0 and r['wall_s'] > 0
    assert '39321600.0' in r['output'] and (tmp_path / 'log').read_text() == r['output']
    t = run_measured([sys.executable, '-c', 'import time; time.sleep(60)'], timeout=1, echo=False)
    assert t['timed_out'] and t['returncode'] != 0 and t['wall_s'] < 30


def test_machine_info_names_what_results_need():
    m = machine_info()
    for k in ('date', 'host_cpu', 'cores', 'ram_gib', 'load_average', 'git'):
        assert m[k] is not None, k
    assert len(m['load_average']) == 3


def _run(script, *args):
    r = subprocess.run(
        [sys.executable, BENCH / script, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**__import__('os').environ, 'RECSYS_QUIET': '1'},
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r.stdout


@pytest.fixture(scope='module')
def evaluate_run(tmp_path_factory):
    """bench_evaluate.py at a tiny size, run once through the driver (run_all.run_one) for the two tests below: the
    figures parsed from its output, and the RESULTS.md written from its record. (record, records folder)"""
    rec = tmp_path_factory.mktemp('bench') / 'records'
    spec = dict(
        run_all.BENCHES['evaluate'],
        quick=['--users', '2000', '--items', '500', '--pandas-users', '200', '--runs', '3', '--pandas-runs', '1'],
    )
    return run_all.run_one('evaluate', spec, True, 300, rec), rec


@pytest.mark.process
def test_evaluate_figures_parse_from_the_real_script(evaluate_run):
    r, _ = evaluate_run
    assert r['returncode'] == 0, r['output'][-4000:]
    f = run_all.fig_evaluate(None, r['output'], [])
    assert f is not None
    labels = [k for k, _ in f['rows']]
    assert any(l.startswith('ranking_metrics, 2,000 users') for l in labels)
    assert any(l.startswith('pandas / ranking_metrics') for l in labels)
    assert f['verdict'].startswith('n/a')  # 2,000 users: the 100k target does not apply


@pytest.mark.process
@pytest.mark.skipif(not (ROOT / 'recsys' / 'recommend.py').exists(), reason='recsys.recommend not exported yet')
def test_predict_figures_parse_from_the_real_script():
    out = _run(
        'bench_predict.py', '--scale', 'tiny', '--sessions', 200, '--iterations', 1, '--repeats', 1, '--factors', 8
    )
    f = run_all.fig_predict(None, out, ['--repeats', '1'])
    assert f is not None and f['verdict'] in ('met', 'MISSED')
    assert any(k == 'median of 1: wall' for k, _ in f['rows'])


def test_reports_and_missing_figures():
    line = json.dumps(
        {
            'benchmark': 'reports --jobs 2 vs --jobs 1',
            'what': 'fixtures',
            'cores': 2,
            'load_avg_1min': 1.0,
            'jobs1_s': 20.0,
            'jobs2_s': 11.0,
            'speedup': 1.82,
        }
    )
    f = run_all.fig_reports(None, 'jobs=1: 20.0 s\njobs=2: 11.0 s\n' + line + '\n', ['--repeat', '3'])
    assert f['ratio'] == '1.82x' and ('--jobs 1: median of 3', '20.0 s') in f['rows']
    assert run_all.fig_reports(None, 'Traceback ...', []) is None
    assert run_all.fig_evaluate(None, '', []) is None and run_all.fig_predict(None, 'nothing', []) is None


@pytest.mark.process
def test_results_md_names_the_command_of_every_figure(evaluate_run, tmp_path):
    "One cheap benchmark through the whole driver: record, RESULTS.md with machine, command, figures and output."
    r, _ = evaluate_run
    res = tmp_path / 'RESULTS.md'
    assert r['status'] == 'ok' and run_all.figures(r) and not r['failed']
    run_all.write_results(res, [r], ['a test note'])
    md = res.read_text()
    cmd = (
        '.venv/bin/python benchmarks/bench_evaluate.py --users 2000'
        if sys.executable.startswith(str(ROOT))
        else 'bench_evaluate.py --users 2000'
    )
    assert cmd in md and md.count('bench_evaluate.py --users 2000') >= 2  # in the summary and in its section
    for s in (
        '## Machine',
        'git commit',
        'load average',
        '**Quick run**',
        'a test note',
        'median of 3',
        'Output of the command',
    ):
        assert s in md, s


def test_full_scale_says_clearly_when_it_cannot_run(tmp_path, monkeypatch, capsys):
    import bench_full

    monkeypatch.setattr(bench_full, '_tool', lambda name: None)  # as if the console scripts were not installed
    out = tmp_path / 'bench_full.json'
    assert bench_full.main(['--scale', 'tiny', '--work', str(tmp_path / 'w'), '--out', str(out)]) == 2
    err = capsys.readouterr().err
    assert 'cannot run' in err and 'recsys-train' in err
    j = json.loads(out.read_text())
    f = run_all.fig_full(j, '', [])
    assert f['verdict'] == 'FAILED' and 'recsys-train' in f['rows'][0][1]


def test_full_scale_verdicts():
    st = lambda w, rss: {
        'command': 'x',
        'wall_s': w,
        'cpu_s': w,
        'peak_rss_mib': rss,
        'peak_tree_rss_mib': rss,
        'returncode': 0,
        'load_start': [1, 1, 1],
        'load_end': [1, 1, 1],
    }
    j = {
        'scale': 'full',
        'seed': 42,
        'stages': {'generate': st(300, 5000), 'train': st(700, 9000), 'predict': st(100, 3000)},
        'totals': {
            'train_plus_predict_s': 800,
            'train_plus_predict_cpu_s': 800,
            'peak_rss_mib': 9000,
            'peak_rss_gb': 9000 * 2**20 / 1e9,
            'with_generation_s': 1100,
        },
        'verdict': {'time': 'met', 'memory': 'met'},
    }
    f = run_all.fig_full(j, '', [])
    assert f['verdict'] == 'time met, memory met' and f['headline'].startswith('13.3 min')
    assert any(k.startswith('train: `x`') for k, _ in f['rows'])


def test_full_scale_scores_with_the_hidden_labels_and_shows_the_trainer_stages():
    import bench_full, pandas as pd
    from recsys.synth import ensure_synthetic

    d = ensure_synthetic('tiny', 42)
    lab = pd.read_parquet(d / 'test_labels.parquet').groupby('session_id')['partnumber'].apply(list)
    pool = pd.read_parquet(d / 'products.parquet')['partnumber'].tolist()
    sids = pd.read_parquet(d / 'test.parquet')['session_id'].unique()

    def lists(hit_first):
        out = {}
        for s in sids:
            good = lab.get(s, [])[:5]
            bad = [p for p in pool if p not in good][:5]
            out[str(s)] = (good + bad)[:5] if hit_first else bad
        return out

    sb, sw = bench_full.score(lists(True), d), bench_full.score(lists(False), d)
    best, worst = sb['all'], sw['all']  # recsys.task.score: all carts and future carts
    assert best['overall'] == pytest.approx(1.0) and worst['overall'] == 0.0 and sw['future']['overall'] == 0.0
    assert 0 < sb['future']['overall'] <= 1 and set(sb['future']) == set(best)
    assert 'new_unknown' in best and set(best) - {'overall'} <= {
        'new_known',
        'new_unknown',
        'returning_known',
        'returning_unknown',
    }  # per kind, from test_sessions.parquet
    j = {
        'scale': 'full',
        'seed': 42,
        'stages': {},
        'ndcg@5': best,
        'ndcg@5 future': sb['future'],
        'validation_ndcg@5': 0.8,
        'compare': {'oracle (planted truth)': {'all': 0.56, 'future': 0.47}},
        'final_fit': {'warm_start': True, 'iterations': 5, 'rows_matched': 0.9, 'items_matched': 1.0},
        'train_stages': [
            {'stage': 'final fit', 'wall_s': 12.0, 'cpu_s': 20.0, 'peak_rss_mib': 900.0, 'rss_end_mib': 800.0}
        ],
    }
    rows = dict(run_all.fig_full(j, '', [])['rows'])
    assert rows['NDCG@5 against the hidden labels (all carts)'].startswith('1.0000 overall')
    assert rows['NDCG@5 on future carts only'].startswith(f"{sb['future']['overall']:.4f} overall")
    assert rows['same test: oracle (planted truth)'] == 'NDCG@5 0.5600 all carts, 0.4700 future carts'
    assert '5 iterations' in rows['final fit'] and 'peak RSS 900 MiB' in rows['train stage: final fit']


def test_full_scale_compares_with_the_otto_recipe():
    """bench_full's comparison holds the OTTO co-visitation recipe beside the trivial baselines and the oracle
    (issue 26)."""
    import bench_full
    from recsys.synth import ensure_synthetic

    b = bench_full.baselines(ensure_synthetic('tiny', 42))
    otto = b[bench_full.OTTO]
    assert {'random order of shown items', 'global popularity', 'oracle (planted truth)'} <= set(b)
    assert 0 < otto['all'] < b['oracle (planted truth)']['all'] and otto['all'] > b['global popularity']['all']
    assert otto['rows'] > 0 and otto['fit_s'] >= 0 and set(otto['matrices']) == {'carts', 'buy2buy'}
