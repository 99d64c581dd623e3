"""`recsys-ingest convert-log` end to end through the installed commands: a header-less Taobao-style log and a ratings
CSV written here, converted, trained on, predicted and scored; and the bad inputs that must write nothing."""

import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BIN = Path(sys.executable).parent
ENV = {**os.environ, 'RECSYS_QUIET': '1'}
pytestmark = pytest.mark.process  # every test runs the console scripts (the log and its conversion: tests/conftest.py)


def run(cmd, *args, ok=True):
    p = subprocess.run([str(BIN / cmd), *map(str, args)], capture_output=True, text=True, env=ENV, timeout=600)
    if ok:
        assert p.returncode == 0, (cmd, args, p.stdout, p.stderr)
    return p


def test_convert_writes_the_generators_layout(taobao):
    ds = taobao['ds']
    names = {p.name for p in ds.iterdir()}
    assert {
        'train.parquet',
        'test.parquet',
        'test_labels.parquet',
        'test_sessions.parquet',
        'products.parquet',
        'dataset.json',
    } <= names and not any(n.startswith('.') for n in names)
    meta = json.loads((ds / 'dataset.json').read_text())
    c = meta['counts']
    assert c['rows_read'] == c['rows'] == taobao['n'] and sum(c['events'].values()) == taobao['n']
    assert c['events']['purchase'] > 0 and c['events']['cart'] > 0 and c['users'] == 300
    assert meta['mapping']['columns'] == {'user': '1', 'item': '2', 'event': '4', 'time': '5', 'category': '3'}
    assert meta['days']['test'] == [meta['days']['last']] == ['2017-11-29']
    assert f"{c['rows']:,} events" in taobao['stdout'] and 'test (2017-11-29)' in taobao['stdout']
    from recsys.ingest import load_dataset, read_test, read_train

    train, test = read_train(ds / 'train.parquet'), read_test(ds / 'test.parquet')  # the Inditex validators pass
    assert 'event' in train.column_names and 'add_to_cart' not in test.column_names and 'event' not in test.column_names
    tr = train.to_pandas()
    assert (tr.add_to_cart == tr.event.isin(['cart', 'purchase']).astype(int)).all()
    log = pd.read_csv(taobao['log'], header=None, names=['u', 'i', 'c', 'b', 't'])
    assert (
        tr.date.max() == '2017-11-29' and (tr.date < '2017-11-29').mean() > 0.95
    )  # only returning sessions' first rows
    lab, ses = pd.read_parquet(ds / 'test_labels.parquet'), pd.read_parquet(ds / 'test_sessions.parquet')
    assert len(ses) == meta['test']['sessions'] > 20 and set(lab.session_id) == set(ses.session_id)
    assert (lab.groupby('session_id').size() >= 2).all() and (
        ~lab.shown
    ).mean() > 0.3  # --min-carts 2; labels mostly later
    assert set(test['session_id'].to_pylist()) == set(ses.session_id) and set(test['date'].to_pylist()) == {
        '2017-11-29'
    }
    prods = pd.read_parquet(ds / 'products.parquet')
    assert set(prods.partnumber) == set(log.i) and (prods.family == prods.partnumber // 1000).all()
    X = load_dataset(str(ds)).interactions()  # purchases counted from the event column
    assert X.purchases.sum() == (tr.event == 'purchase').sum() > 0 and X.views.sum() == len(tr)
    assert X.carts.sum() == tr.add_to_cart.sum()


def test_train_predict_score_on_the_converted_folder(taobao, tmp_path):
    ds = taobao['ds']
    run('recsys-train', '--data', ds, '--out', tmp_path / 'm')  # the defaults, tuning included
    p = run('recsys-predict', '--data', ds, '--model', tmp_path / 'm', '--out', tmp_path / 'p.json')
    assert 'validated' in p.stdout
    s = json.loads(run('recsys-score', '--data', ds, '--predictions', tmp_path / 'p.json', '--json').stdout)
    assert 0 <= s['ndcg@5 future'] <= s['hit@5 future'] <= 1 and 0 < s['ndcg@5'] <= s['hit@5'] <= 1
    assert (
        s['sessions'] == json.loads((ds / 'dataset.json').read_text())['test']['sessions']
        and s['missing_sessions'] == 0
    )
    table = run('recsys-score', '--data', ds, '--predictions', tmp_path / 'p.json').stdout
    assert 'NDCG@5' in table and 'future carts' in table and f"{s['ndcg@5']:.4f}" in table
    # a deliberately bad submission: every session gets the same five rarely seen products
    tgt = json.loads((tmp_path / 'p.json').read_text())['target']
    prods = pd.read_parquet(ds / 'products.parquet').partnumber.tolist()
    (tmp_path / 'bad.json').write_text(json.dumps({'target': {k: prods[-5:] for k in tgt}}))
    bad = json.loads(run('recsys-score', '--data', ds, '--predictions', tmp_path / 'bad.json', '--json').stdout)
    assert bad['ndcg@5'] < s['ndcg@5'] / 3
    # half the sessions left out score 0
    half = dict(list(tgt.items())[::2])
    (tmp_path / 'half.json').write_text(json.dumps({'target': half}))
    h = json.loads(run('recsys-score', '--data', ds, '--predictions', tmp_path / 'half.json', '--json').stdout)
    assert h['missing_sessions'] == len(tgt) - len(half) and h['ndcg@5'] < s['ndcg@5']
    # predictions for another test, or a folder without labels: one-line errors
    (tmp_path / 'foreign.json').write_text(json.dumps({'target': {'999999999': prods[:5]}}))
    f = run('recsys-score', '--data', ds, '--predictions', tmp_path / 'foreign.json', ok=False)
    assert f.returncode == 2 and 'labelled sessions' in f.stderr and 'Traceback' not in f.stderr
    nolab = tmp_path / 'nolab'
    nolab.mkdir()
    (nolab / 'train.parquet').write_bytes((ds / 'train.parquet').read_bytes())
    f = run('recsys-score', '--data', nolab, '--predictions', tmp_path / 'p.json', ok=False)
    assert f.returncode == 2 and 'no hidden labels' in f.stderr
    (tmp_path / 'junk.json').write_text('{"target": [1, 2]}')
    f = run('recsys-score', '--data', ds, '--predictions', tmp_path / 'junk.json', ok=False)
    assert f.returncode == 2 and "file '" in f.stderr and 'target' in f.stderr


def test_buckets_do_not_change_the_result(taobao, tmp_path):
    """Pass 1 spread over many buckets (as for a 100 M-row log) gives the same train rows, sessions and test as one
    bucket."""
    from recsys.convert import convert_log

    kw = dict(user=1, item=2, category=3, event=4, time=5, header=False, event_map=taobao['event_map'])
    one = convert_log(taobao['log'], tmp_path / 'one', **kw)
    many = convert_log(taobao['log'], tmp_path / 'many', **kw, batch_rows=5000, bucket_rows=2000)
    assert many['counts']['rows'] == one['counts']['rows'] and (tmp_path / 'many' / '.work').exists() is False
    for k in ('rows_read', 'sessions', 'users', 'items', 'events', 'train_sessions'):
        assert one['counts'][k] == many['counts'][k], k
    assert one['test']['sessions'] == many['test']['sessions'] and one['test']['eligible'] == many['test']['eligible']
    # only the returning sessions (whose first rows move to the train) are drawn differently: ids depend on the buckets
    assert (
        one['counts']['train_rows'] - one['test']['moved_rows']
        == many['counts']['train_rows'] - many['test']['moved_rows']
    )
    key = ['user_id', 'partnumber', 'timestamp_local', 'add_to_cart', 'event', 'date']
    a, b = (pd.read_parquet(tmp_path / n / 'train.parquet') for n in ('one', 'many'))
    a, b = (x[x.date < '2017-11-29'][key].sort_values(key).reset_index(drop=True) for x in (a, b))
    pd.testing.assert_frame_equal(a, b)


def _convert_ratings(csv: Path, out: Path):
    "recsys-ingest convert-log on a ratings CSV (columns user, item, time, rating), the rating kept with --value."
    return run(
        'recsys-ingest',
        'convert-log',
        csv,
        '--out',
        out,
        '--user',
        'user',
        '--item',
        'item',
        '--time',
        'time',
        '--value',
        'rating',
    )


def test_ratings_csv_converts_with_value(tmp_path):
    rng = np.random.default_rng(3)
    r = pd.DataFrame(
        {
            'user': np.repeat(np.arange(1, 41), 15),
            'item': rng.integers(1, 80, 600),
            'rating': rng.integers(1, 11, 600) / 2,
            'time': 964982703 + rng.integers(0, 10**7, 600),
        }
    )
    r = r.drop_duplicates(['user', 'item'])
    r.to_csv(tmp_path / 'ratings.csv', index=False)
    p = _convert_ratings(tmp_path / 'ratings.csv', tmp_path / 'ml')
    assert 'no test' in p.stdout
    ml = tmp_path / 'ml'
    assert not (ml / 'test.parquet').exists() and not (ml / 'test_labels.parquet').exists()
    tr = pd.read_parquet(ml / 'train.parquet')
    assert (
        len(tr) == len(r)
        and tr.add_to_cart.sum() == 0
        and 'event' not in tr
        and np.isclose(tr.rating.sum(), r.rating.sum())
    )
    from recsys.ingest import load_dataset

    U = load_dataset(str(ml)).interactions(key='user')
    assert U.views.shape == (40, r.item.nunique()) and np.isclose(U.ratings.sum(), r.rating.sum())
    assert json.loads((ml / 'dataset.json').read_text())['counts']['events'] == {
        'view': len(r),
        'cart': 0,
        'purchase': 0,
    }


def test_parquet_log_with_string_ids_and_sessions(tmp_path):
    "REES46-style: a parquet log with string users, UUID-like sessions, ISO times; ids re-coded and their maps written."
    rng = np.random.default_rng(5)
    rows = []
    for s in range(400):
        day = s % 5
        u = f'user-{s % 90}'
        n = int(rng.integers(3, 12))
        basket = s % 3 == 0
        for j in range(n):
            ev = (
                'cart'
                if basket and rng.random() < 0.5
                else ('purchase' if rng.random() < 0.03 else 'remove_from_cart' if rng.random() < 0.05 else 'view')
            )
            rows.append(
                (f'2019-10-0{day + 1} 10:{j:02d}:00 UTC', ev, int(rng.integers(100, 160)), u, f'sess-{s:05d}-x')
            )
    pd.DataFrame(rows, columns=['event_time', 'event_type', 'product_id', 'user_id', 'user_session']).to_parquet(
        tmp_path / 'log.parquet'
    )
    args = [
        'convert-log',
        tmp_path / 'log.parquet',
        '--out',
        tmp_path / 'rr',
        '--user',
        'user_id',
        '--item',
        'product_id',
        '--event',
        'event_type',
        '--time',
        'event_time',
        '--session',
        'user_session',
    ]
    f = run('recsys-ingest', *args, ok=False)
    assert f.returncode == 2 and "'remove_from_cart'" in f.stderr and '--drop-unmapped' in f.stderr
    assert not (tmp_path / 'rr').exists()
    run('recsys-ingest', *args, '--event-map', 'view=view,cart=cart,purchase=purchase,remove_from_cart=none')
    rr = tmp_path / 'rr'
    meta = json.loads((rr / 'dataset.json').read_text())
    assert meta['mapping']['encoded_ids'] == ['session', 'user'] and meta['counts']['sessions'] == 400
    assert meta['counts']['rows'] == sum(e != 'remove_from_cart' for _, e, *_ in rows)
    ids = pd.read_parquet(rr / 'ids_session.parquet')
    tr = pd.read_parquet(rr / 'train.parquet')
    orig = tr.session_id.map(ids.set_index('session_id').original)
    assert orig.str.startswith('sess-').all() and tr.groupby('session_id').user_id.nunique().max() == 1
    assert (tr.date < '2019-10-05').mean() > 0.9 and meta['test']['sessions'] > 5
    lab = pd.read_parquet(rr / 'test_labels.parquet')
    assert lab.session_id.map(ids.set_index('session_id').original).str.startswith('sess-').all()


@pytest.mark.parametrize(
    'case',
    [
        'missing column',
        'position out of range',
        'unparsable times',
        'wrong unit',
        'empty log',
        'no qualifying session',
        'header-less without --no-header',
        'foreign out',
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(taobao, tmp_path, case):
    log, out = taobao['log'], tmp_path / 'out'
    args = ['convert-log', log, '--out', out, *taobao['args']]
    want = {
        'missing column': ["column 'nope'", '--user nope: no such column', 'Fix:'],
        'position out of range': ["column '9'", 'position 1..5'],
        'unparsable times': ["column 'when'", 'cannot parse the times', "'soon'"],
        'wrong unit': ["column '5'", 'outside 1990-2099', '--time-unit'],
        'empty log': ['empty log'],
        'no qualifying session': ['no test session', '--min-carts', '2017-11-29'],
        'header-less without --no-header': ['add --no-header'],
        'foreign out': ['not a converted dataset folder', '--force'],
    }[case]
    if case == 'missing column':
        args[args.index('--user') + 1] = 'nope'
    if case == 'position out of range':
        args[args.index('--time') + 1] = '9'
    if case == 'unparsable times':
        pd.DataFrame(
            {'who': [1, 2], 'what': [3, 4], 'ev': ['pv', 'cart'], 'when': ['2017-11-24 10:00:00', 'soon']}
        ).to_csv(tmp_path / 'h.csv', index=False)
        args = [
            'convert-log',
            tmp_path / 'h.csv',
            '--out',
            out,
            '--user',
            'who',
            '--item',
            'what',
            '--event',
            'ev',
            '--time',
            'when',
            '--event-map',
            taobao['event_map'],
        ]
    if case == 'wrong unit':
        args += ['--time-unit', 'ms']
    if case == 'empty log':
        (tmp_path / 'e.csv').write_text('user,item,event,time\n')
        args = [
            'convert-log',
            tmp_path / 'e.csv',
            '--out',
            out,
            '--user',
            'user',
            '--item',
            'item',
            '--event',
            'event',
            '--time',
            'time',
        ]
    if case == 'no qualifying session':
        args += ['--min-carts', '60']
    if case == 'header-less without --no-header':
        args.remove('--no-header')
    if case == 'foreign out':
        out.mkdir()
        (out / 'notes.txt').write_text('mine')
    p = run('recsys-ingest', *args, ok=False)
    assert p.returncode == 2 and 'Traceback' not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    for w in want:
        assert w in p.stderr, (w, p.stderr)
    if case == 'foreign out':
        assert [q.name for q in out.iterdir()] == ['notes.txt']
    else:
        assert not out.exists()
    assert not [q for q in tmp_path.iterdir() if q.name.startswith('.out')]  # no temporary folder left


def test_convert_replaces_its_own_output(taobao, tmp_path):
    out = tmp_path / 'ds'
    run('recsys-ingest', 'convert-log', taobao['log'], '--out', out, *taobao['args'], '--test-days', '2')
    assert len(json.loads((out / 'dataset.json').read_text())['days']['test']) == 2
    run('recsys-ingest', 'convert-log', taobao['log'], '--out', out, *taobao['args'])  # its own folder: replaced
    assert json.loads((out / 'dataset.json').read_text())['days']['test'] == ['2017-11-29']
    h = run('recsys-ingest', 'convert-log', '--help').stdout
    assert '--event-map' in h and '--session-gap' in h and 'default: 30' in ' '.join(h.split())
    assert run('recsys-score', '--version').stdout.startswith('recsys-score')


@pytest.mark.reports
@pytest.mark.spark
def test_reports_on_the_converted_log(taobao_reports):
    """Every report on a converted event log ends ok or not applicable (taobao_reports asserts it); the session task
    runs and scores the model."""
    status = taobao_reports['status']
    assert status['06_recommend/default'] == 'ok' and status['02_eda/default'] == 'ok'
    res = json.loads((taobao_reports['run'] / '06_recommend' / 'default' / 'results.json').read_text())
    h = res['metrics']['headline']
    assert 0 < h['ndcg_all'] <= 1 and 0 <= h['ndcg_future'] <= 1 and res['metrics']['served'].startswith('two-stage')


@pytest.mark.reports
def test_ratings_log_through_05_evaluate(tmp_path, reports_cmd):
    "A ratings CSV converted with --value rating goes through 05_evaluate with the MovieLens protocol."
    rng = np.random.default_rng(5)
    n_users, n_items = 120, 150
    taste = rng.normal(size=(n_users, 4))
    look = rng.normal(size=(n_items, 4))
    rows = [
        (u + 1, i + 1, float(np.clip(np.round(3 + taste[u] @ look[i] + rng.normal(0, 0.5)), 1, 5)), 874965478 + k)
        for k, (u, i) in enumerate((u, i) for u in range(n_users) for i in rng.choice(n_items, 25, replace=False))
    ]
    pd.DataFrame(rows, columns=['user', 'item', 'rating', 'time']).to_csv(tmp_path / 'ratings.csv', index=False)
    _convert_ratings(tmp_path / 'ratings.csv', tmp_path / 'ml')
    status, _ = reports_cmd(tmp_path / 'ml', tmp_path, '--only', '05_evaluate')
    assert status['05_evaluate/default'] == 'ok'
    res = json.loads((tmp_path / 'run' / '05_evaluate' / 'default' / 'results.json').read_text())
    assert res['status'] == 'ok' and res['metrics']
