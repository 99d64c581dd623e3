"""recsys.als across processes: a saved model reloads elsewhere with identical recommendations; the benchmark runs."""

import json, subprocess, sys, textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _py(code: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, '-c', textwrap.dedent(code), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={'RECSYS_QUIET': '1', 'PATH': '/usr/bin:/bin'},
    )


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    from recsys.als import ALSModel, planted_events

    seen, _ = planted_events(seed=3)
    m = ALSModel(factors=8, regularization=0.1, iterations=5, num_threads=1).fit(seen, show_progress=False)
    d = tmp_path_factory.mktemp('model')
    m.save(d, meta={'id_hash': 'feedc0de', 'confidence': 'counts'})
    rows = np.arange(0, 300, 7)
    return d, seen, m, rows


@pytest.mark.process
def test_reload_in_a_fresh_process_recommends_identically(saved):
    d, seen, m, rows = saved
    code = '''
        import json, sys, numpy as np
        from recsys.als import ALSModel, planted_events
        seen, _ = planted_events(seed=3)
        m = ALSModel.load(sys.argv[1], id_hash='feedc0de')
        rows = np.arange(0, 300, 7)
        out = {fs: [a.tolist() for a in m.recommend(rows, seen, N=10, filter_seen=fs == 'y')] for fs in 'yn'}
        out['new'] = [a.tolist() for a in m.recommend_new(seen[:5], N=10)]
        out['similar'] = [a.tolist() for a in m.similar_items([0, 1, 2], N=5)]
        print(json.dumps(out))
    '''
    r = _py(code, d)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    for key, args in (('y', (rows, seen, 10, True)), ('n', (rows, seen, 10, False))):
        ids, scores = m.recommend(*args)
        assert got[key][0] == ids.tolist()
        assert got[key][1] == scores.tolist()  # bit-identical scores, through JSON's float repr
    ids, scores = m.recommend_new(seen[:5], N=10)
    assert got['new'][0] == ids.tolist() and got['new'][1] == scores.tolist()
    ids, scores = m.similar_items([0, 1, 2], N=5)
    assert got['similar'][0] == ids.tolist()


@pytest.mark.process
def test_a_model_for_other_id_maps_is_refused_with_the_fix(saved):
    d = saved[0]
    r = _py(
        '''
        import sys
        from recsys.als import ALSModel
        from recsys.core import RecsysDataError
        try: ALSModel.load(sys.argv[1], id_hash='0000beef')
        except RecsysDataError as e: print(e); sys.exit(3)
    ''',
        d,
    )
    assert r.returncode == 3, r.stderr
    msg = r.stdout.strip()
    assert 'model.json' in msg and "expected id_hash '0000beef'" in msg and "found 'feedc0de'" in msg
    assert 'Fix: retrain the model on this data' in msg


@pytest.mark.process
def test_a_fresh_process_fits_with_blas_limited_to_one_thread():
    # implicit warns when OpenBLAS may use more than one thread; the limit must also cover the BLAS that
    # importing implicit loads (threadpoolctl only limits libraries already loaded), so make that warning fatal
    r = _py('''
        import warnings
        warnings.filterwarnings('error', message='.*BLAS.*')
        from recsys.als import ALSModel, planted_events
        m = ALSModel(factors=4, iterations=2, num_threads=1).fit(planted_events(seed=1)[0], show_progress=False)
        m.recommend_new(planted_events(seed=2)[0][:3])
        print('ok')
    ''')
    assert r.returncode == 0 and r.stdout.strip() == 'ok', r.stderr


def test_saved_files_hold_no_pickle(saved):
    d = saved[0]
    with np.load(d / 'factors.npz', allow_pickle=False) as z:  # would raise if any array needed pickle
        assert sorted(z.files) == ['item_factors', 'user_factors']
    rec = json.loads((d / 'model.json').read_text())
    assert rec['format'] == 'recsys-als' and rec['id_hash'] == 'feedc0de' and rec['confidence'] == 'counts'
    assert rec['hyperparameters']['dtype'] == 'float32' and 'implicit' in rec['versions']


@pytest.mark.process
def test_benchmark_smoke(tmp_path):
    out = tmp_path / 'bench.json'
    r = subprocess.run(
        [sys.executable, str(ROOT / 'benchmarks' / 'bench_als.py'), '--tiny', '--out', str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(out.read_text())
    assert [(row['clock'], row['condition']) for row in res['rows']] == [
        ('wall', 'engine'),
        ('wall', 'with-loss'),
        ('cpu', 'engine'),
        ('cpu', 'with-loss'),
    ]
    assert all(row['ratio_of_medians'] > 0 for row in res['rows']) and res['nnz'] > 10_000
