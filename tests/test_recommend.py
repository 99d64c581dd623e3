"""`recsys-train` and `recsys-predict` as a user runs them: two subprocesses from raw files to a validated
predictions_3.json on synthetic tiny data; unknown session items, empty sessions, unknown users; CSV input; errors."""

import json, os, shutil, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.recommend import (
    BASELINES,
    candidates,
    load_model,
    read_sessions,
    recommend_sessions,
    relevance,
    ndcg_by_kind,
    validate_predictions,
)
from recsys.ingest import read_test
from recsys.ranker import rank_sessions
from recsys.task import score
from recsys.core import RecsysDataError

pytestmark = pytest.mark.process  # recsys-train and recsys-predict as subprocesses, the module's fixture included
FAST = ['--factors', '8', '--iterations', '3', '--segments-k', '3']


def cli(name, *args):
    exe = shutil.which(name, path=str(Path(sys.executable).parent)) or name
    return subprocess.run(
        [exe, *map(str, args)], capture_output=True, text=True, timeout=600, env={**os.environ, 'RECSYS_QUIET': '1'}
    )


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    "A private copy of the tiny synthetic files (the tests edit the test file)."
    from recsys.synth import ensure_synthetic

    src = ensure_synthetic('tiny', 42)
    d = tmp_path_factory.mktemp('raw')
    for f in ('train.parquet', 'test.parquet', 'products.parquet', 'users.parquet', 'test_labels.parquet'):
        shutil.copy(src / f, d / f)
    return d


@pytest.fixture(scope='module')
def model_dir(data, tmp_path_factory):
    out = tmp_path_factory.mktemp('model') / 'm'
    r = cli('recsys-train', '--data', data, '--out', out, *FAST, '--val-sessions', '500')
    assert r.returncode == 0, r.stderr
    assert 'validation NDCG@5' in r.stdout and str(out) in r.stdout
    assert 'final fit' in r.stdout and 'peak_rss_mib' in r.stdout  # the table of stages
    return out


def test_two_commands_raw_files_to_valid_predictions(data, model_dir, tmp_path):
    man = json.loads((model_dir / 'manifest.json').read_text())
    assert man['format'] == 'recsys.session-model/2' and man['info']['validation']['split']['sessions'] > 0
    # the final fit continued from the validation model (a third of --iterations 3), and every stage was measured
    assert man['info']['final_fit']['warm_start'] and man['info']['final_fit']['iterations'] == 1
    assert man['params']['iterations'] == 3 and man['info']['final_fit']['rows_matched'] > 0.5
    stages = [s['stage'] for s in man['info']['stages']]
    assert stages[0] == 'read products and users' and stages[-2:] == ['warm start', 'final fit']
    assert {'validation candidate sources', 'validation candidates', 'ranker fit', 'first cut fit'} <= set(stages)
    assert man['stages'] == ['linear', 'lightgbm'] and man['params']['ranker'] == 'lightgbm'
    from recsys.candidates import SOURCES

    assert {p.name for p in (model_dir / 'sources').iterdir()} == {
        'sources.json',
        'items.npz',
        *(f'source_{n}.npz' for n in SOURCES if SOURCES[n].default),  # the default set (V-SKNN is opt-in)
    }
    assert {p.name for p in (model_dir / 'ranker').iterdir()} == {'ranker.txt', 'ranker.json'}
    assert all(s['wall_s'] >= 0 and s['peak_rss_mib'] > 0 for s in man['info']['stages'])
    assert not list(model_dir.rglob('*.pkl')) and not list(model_dir.rglob('*.pickle'))
    out = tmp_path / 'predictions_3.json'
    r = cli('recsys-predict', '--data', data, '--model', model_dir, '--out', out)
    assert r.returncode == 0, r.stderr
    assert 'validated' in r.stdout
    test = pd.read_parquet(data / 'test.parquet')
    target = json.loads(out.read_text())['target']
    assert set(target) == set(map(str, test.session_id.unique()))
    assert all(len(v) == 5 == len(set(v)) for v in target.values())
    assert (
        validate_predictions(out, data / 'test.parquet', data / 'products.parquet')['sessions']
        == test.session_id.nunique()
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]  # no temporary file left behind
    # the file is what the library's two stages recommend, and it beats popularity on the hidden labels
    m = load_model(model_dir)
    ev = read_test(data / 'test.parquet')
    s = read_sessions(ev)
    assert m.ranker is not None and m.sources is not None and m.ranker.features
    recs = rank_sessions(m, m.sources, m.ranker, s, ev)
    assert all(target[str(k)] == r_.tolist() for k, r_ in zip(s.session_id, recs))
    labels = pd.read_parquet(data / 'test_labels.parquet')
    pop = (s.session_id, recommend_sessions(m, s, weights=BASELINES['popularity']))
    assert score(target, labels)['ndcg@5'] > score(pop, labels)['ndcg@5']
    # --ranker linear: the first release's blend, from the same model folder
    lin = tmp_path / 'linear.json'
    r = cli('recsys-predict', '--data', data, '--model', model_dir, '--out', lin, '--ranker', 'linear')
    assert r.returncode == 0 and 'linear ranker' in r.stdout, r.stderr
    lt = json.loads(lin.read_text())['target']
    assert all(lt[str(k)] == r_.tolist() for k, r_ in zip(s.session_id, recommend_sessions(m, s)))
    c = candidates(m, s)
    rel = relevance(s, labels, m.cat_items)
    assert (
        ndcg_by_kind(c.top_k(m.weights), rel)['overall']
        > ndcg_by_kind(c.top_k(BASELINES['popularity']), rel)['overall']
    )


def test_linear_only_model(data, tmp_path):
    """`recsys-train --ranker linear` writes the first release's model: no sources, no ranker; asking it for one is an
    error."""
    out = tmp_path / 'lin'
    r = cli('recsys-train', '--data', data, '--out', out, *FAST, '--val-sessions', '500', '--ranker', 'linear')
    assert r.returncode == 0, r.stderr
    man = json.loads((out / 'manifest.json').read_text())
    assert man['stages'] == ['linear'] and not (out / 'ranker').exists() and not (out / 'sources').exists()
    assert 'ranker fit' not in [st['stage'] for st in man['info']['stages']]
    p = tmp_path / 'p.json'
    r = cli('recsys-predict', '--data', data, '--model', out, '--out', p)
    assert r.returncode == 0 and 'linear ranker' in r.stdout, r.stderr
    r = cli('recsys-predict', '--data', data, '--model', out, '--out', p, '--ranker', 'lightgbm')
    assert r.returncode == 2 and 'no LightGBM ranker' in r.stderr and '--ranker linear' in r.stderr
    # a model folder whose ranker lost a file is refused, naming the file
    m2 = tmp_path / 'm2'
    r = cli('recsys-train', '--data', data, '--out', m2, *FAST, '--val-sessions', '500', '--no-tune')
    assert r.returncode == 0, r.stderr
    (m2 / 'sources' / 'source_covis_view_cart.npz').unlink()
    r = cli('recsys-predict', '--data', data, '--model', m2, '--out', p)
    assert r.returncode == 2 and 'source_covis_view_cart.npz' in r.stderr
    # a model folder of the format before the sources' registry: refused, naming the file and the fix
    man = json.loads((m2 / 'manifest.json').read_text())
    (m2 / 'manifest.json').write_text(json.dumps(dict(man, format='recsys.session-model/1')))
    r = cli('recsys-predict', '--data', data, '--model', m2, '--out', p)
    assert r.returncode == 2 and 'manifest.json' in r.stderr and 'retrain' in r.stderr


def test_unknown_items_empty_sessions_unknown_users(data, model_dir, tmp_path):
    d = tmp_path / 'odd'
    d.mkdir()
    for f in ('train.parquet', 'products.parquet', 'users.parquet'):
        shutil.copy(data / f, d / f)
    test = pd.read_parquet(data / 'test.parquet')
    products = pd.read_parquet(data / 'products.parquet')
    row = test.iloc[[0]]
    known_item = int(products.partnumber.iloc[0])
    odd = pd.concat(
        [
            row.assign(session_id=900_001, partnumber=10**9, user_id=np.nan),  # only items nobody knows
            row.assign(session_id=900_001, partnumber=10**9 + 1, user_id=np.nan),
            row.assign(session_id=900_002, partnumber=known_item, user_id=10.0**9),  # a user nobody knows
            row.assign(session_id=900_003, partnumber=10**9 + 2, user_id=10.0**9, country=999),  # nothing known at all
        ]
    )
    pd.concat([test, odd]).to_parquet(d / 'test.parquet', index=False)
    out = tmp_path / 'predictions_3.json'
    r = cli('recsys-predict', '--data', d, '--model', model_dir, '--out', out)
    assert r.returncode == 0, r.stderr
    target = json.loads(out.read_text())['target']
    assert (
        validate_predictions(out, d / 'test.parquet', d / 'products.parquet')['sessions']
        == test.session_id.nunique() + 3
    )
    known = set(products.partnumber.tolist())
    for k in ('900001', '900002', '900003'):
        assert (
            len(set(target[k])) == 5 and set(target[k]) <= known and not {10**9, 10**9 + 1, 10**9 + 2} & set(target[k])
        )
    assert target['900002'][0] == known_item  # its one viewed product comes first
    # the library: a session id with no rows at all is served from popularity
    m = load_model(model_dir)
    s = read_sessions(d / 'test.parquet', session_ids=[900_004])
    recs = recommend_sessions(m, s)
    empty = recs[np.searchsorted(s.session_id, 900_004)]
    assert len(set(empty.tolist())) == 5 and set(empty.tolist()) <= known
    pop = recommend_sessions(m, s, weights=BASELINES['popularity'])
    assert (pop == pop[0]).all()  # popularity: one list for everyone


def test_csv_files_and_errors(data, model_dir, tmp_path):
    d = tmp_path / 'csv'
    d.mkdir()
    shutil.copy(data / 'products.parquet', d / 'products.parquet')
    pd.read_parquet(data / 'test.parquet').to_csv(d / 'test.csv', index=False)
    shutil.copy(data / 'train.parquet', d / 'train.parquet')
    out = tmp_path / 'p.json'
    r = cli('recsys-predict', '--data', d, '--model', model_dir, '--out', out)
    assert r.returncode == 0, r.stderr
    assert validate_predictions(out, d / 'test.csv', d / 'products.parquet')['K'] == 5
    # errors: one line on stderr, exit status 2
    r = cli('recsys-predict', '--data', d, '--model', tmp_path / 'nothing', '--out', out)
    assert r.returncode == 2 and 'manifest.json missing' in r.stderr and len(r.stderr.strip().splitlines()) == 1
    (d / 'test.csv').unlink()
    r = cli('recsys-predict', '--data', d, '--model', model_dir, '--out', out)
    assert r.returncode == 2 and 'no test file' in r.stderr
    r = cli('recsys-train', '--data', tmp_path / 'absent', '--out', tmp_path / 'm2')
    assert r.returncode == 2 and 'error:' in r.stderr
    r = cli('recsys-train', '--data', data, '--out', tmp_path / 'm3', '--design', 'nonsense', '--no-tune')
    assert r.returncode == 2 and 'bad confidence design' in r.stderr
    r = cli('recsys-train', '--data', data, '--out', tmp_path / 'm4', '--refit-iterations', '-1')
    assert r.returncode == 2 and '--refit-iterations must be >= 0' in r.stderr and not (tmp_path / 'm4').exists()
    r = cli('recsys-train', '--data', data, '--out', tmp_path / 'm5', '--no-tune', '--refit-iterations', '2')
    assert r.returncode == 2 and 'needs tuning' in r.stderr and not (tmp_path / 'm5').exists()
    ids = pd.read_parquet(data / 'test.parquet').session_id.unique()
    with pytest.raises(RecsysDataError, match='test sessions without predictions'):
        validate_predictions(out, np.r_[ids, 123_456_789], data / 'products.parquet')
    with pytest.raises(RecsysDataError, match='not in the catalogue'):
        validate_predictions(out, ids, pd.read_parquet(data / 'products.parquet').partnumber.to_numpy()[:50])


def test_cold_refit_fits_the_final_model_from_scratch(data, tmp_path):
    out = tmp_path / 'cold'
    r = cli('recsys-train', '--data', data, '--out', out, *FAST, '--val-sessions', '500', '--cold-refit')
    assert r.returncode == 0, r.stderr
    info = json.loads((out / 'manifest.json').read_text())['info']
    assert info['final_fit'] == {'warm_start': False, 'iterations': 3}
    assert 'warm start' not in [s['stage'] for s in info['stages']] and info['validation'] is not None
