"""Ingestion end to end, on files on disk and through the installed command: round trips against a pandas reference
(CSV and parquet, every key), the messages bad files get on both the reading and the streamed path, pickle safety,
the on-disk cache, MovieLens without network, `recsys-ingest`. Unit checks live in the notebooks (01b, 01e-01g,
01_ingest)."""

import json, os, pickle, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.core import RecsysDataError
from recsys import datasets
from recsys.ingest import (
    DataUnavailableError,
    Interactions,
    aggregate,
    convert_products_pickle,
    load_dataset,
    load_movielens_100k,
    read_products,
    read_train,
)

ROOT = Path(__file__).resolve().parent.parent


def train_frame(n_sessions=60, seed=0):
    "A small train table in the exact Inditex schema: sorted by session, unsorted inside, ~30 % registered rows."
    rng = np.random.default_rng(seed)
    L = rng.integers(1, 12, n_sessions)
    sid = np.repeat(np.arange(100, 100 + n_sessions), L)
    n = len(sid)
    su = np.where(rng.random(n_sessions) < 0.3, rng.integers(1, 15, n_sessions), np.nan)
    ts = np.datetime64('2024-06-01T00:00:00', 'ms') + rng.integers(0, 14 * 86_400_000, n).astype('timedelta64[ms]')
    return pd.DataFrame(
        {
            'session_id': sid,
            'date': ts.astype('datetime64[D]').astype(str),
            'timestamp_local': pd.Series(ts).dt.strftime('%Y-%m-%d %H:%M:%S.%f').str[:-3],
            'add_to_cart': (rng.random(n) < 0.2).astype(int),
            'user_id': su[sid - 100],
            'country': rng.choice([25, 34], n).astype(float),
            'partnumber': rng.integers(1, 40, n),
            'device_type': rng.integers(1, 4, n),
            'pagetype': np.where(rng.random(n) < 0.05, np.nan, 24.0),
        }
    )


def direct_counts(df, key='user_or_session'):
    "The reference: pandas groupby over string keys (slow, obviously right)."
    reg = df.user_id.notna()
    if key == 'session':
        k = 's_' + df.session_id.astype(str)
    else:
        k = np.where(reg, 'u_' + df.user_id.fillna(0).astype('int64').astype(str), 's_' + df.session_id.astype(str))
    d = df.assign(k=k, ts=pd.to_datetime(df.timestamp_local).astype('datetime64[ms]').astype('int64') / 1e3)
    if key == 'user':
        d = d[reg]
    return d.groupby(['k', 'partnumber']).agg(
        v=('ts', 'size'), c=('add_to_cart', 'sum'), f=('ts', 'min'), l=('ts', 'max')
    )


def assert_matches(X: Interactions, g: pd.DataFrame):
    assert X.nnz == len(g)
    r = X.row_index(g.index.get_level_values(0))
    c = X.item_index(g.index.get_level_values(1).to_numpy())
    assert (r >= 0).all() and (c >= 0).all()
    np.testing.assert_array_equal(np.asarray(X.views[r, c]).ravel(), g.v.to_numpy())
    np.testing.assert_array_equal(np.asarray(X.carts[r, c]).ravel(), g.c.to_numpy())
    np.testing.assert_allclose(np.asarray(X.first_ts[r, c]).ravel(), g.f.to_numpy(), rtol=0, atol=1e-3)
    np.testing.assert_allclose(np.asarray(X.last_ts[r, c]).ravel(), g.l.to_numpy(), rtol=0, atol=1e-3)


@pytest.fixture
def data_dir(tmp_path):
    df = train_frame()
    df.to_csv(tmp_path / 'train.csv', index=False)
    return tmp_path, df


# --- round trips ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('fmt', ['csv', 'parquet'])
@pytest.mark.parametrize('key', ['user_or_session', 'session', 'user'])
def test_round_trip_counts_match_pandas(tmp_path, fmt, key):
    df = train_frame()
    p = tmp_path / f'train.{fmt}'
    if fmt == 'csv':
        df.to_csv(p, index=False)
    else:
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), p, row_group_size=97)  # many row groups
    read_train(p)  # validates
    X = aggregate(p, key=key, batch_rows=50)  # many small batches: exercises the cross-batch merge
    assert_matches(X, direct_counts(df, key))
    keys = X.keys.tolist()
    users = [k for k in keys if k.startswith('u_')]
    assert keys == users + [k for k in keys if k.startswith('s_')]  # users first, then sessions
    assert [int(k[2:]) for k in users] == sorted(int(k[2:]) for k in users)


def test_synthetic_round_trip(tmp_path):
    synth = pytest.importorskip('recsys.synth', reason='recsys.synth (01a_synth) is not exported yet')
    d = Path(synth.generate(tmp_path / 'tiny', scale='tiny', seed=3))
    ds = load_dataset(str(d))
    df = ds.train.to_pandas()
    X = ds.interactions()
    assert_matches(X, direct_counts(df))
    assert X.views.sum() == len(df) and X.carts.sum() == df.add_to_cart.sum()
    assert ds.products is not None and ds.products.partnumber.is_unique
    assert ds.test is not None and 'add_to_cart' not in ds.test.column_names


def test_load_dataset_caches_interactions_on_disk(data_dir):
    d, df = data_dir
    X = load_dataset(str(d)).interactions()
    caches = list((d / '_cache').glob('interactions-user_or_session-*'))
    assert len(caches) == 1 and (caches[0] / 'meta.json').exists()
    assert not list(caches[0].glob('*.pkl'))
    Y = load_dataset(str(d)).interactions()  # from the disk cache
    assert Y.id_hash() == X.id_hash() and (Y.views != X.views).nnz == 0
    df.iloc[:-3].to_csv(d / 'train.csv', index=False)  # a changed source invalidates the cache
    Z = load_dataset(str(d)).interactions()
    assert Z.views.sum() == len(df) - 3
    assert len(list((d / '_cache').glob('interactions-user_or_session-*'))) == 1  # the stale cache is gone


# --- bad input: each message names the file and the column ---------------------------------------------------------


def write(tmp_path, df, name='train.csv'):
    p = tmp_path / name
    if name.endswith('.csv'):
        df.to_csv(p, index=False)
    else:
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), p)
    return p


def expect(fn, file, column, *fragments):
    with pytest.raises(RecsysDataError) as e:
        fn()
    msg = str(e.value)
    assert f"file '{file}'" in msg, msg
    if column:
        assert f"column '{column}'" in msg, msg
    for f in fragments:
        assert f in msg, msg
    assert not isinstance(e.value, KeyError)
    return msg


@pytest.mark.parametrize('name', ['train.csv', 'train.parquet'])
def test_missing_column(tmp_path, name):
    p = write(tmp_path, train_frame().drop(columns='partnumber'), name)
    expect(lambda: read_train(p), p, 'partnumber', 'missing column')
    expect(lambda: aggregate(p), p, 'partnumber')  # the aggregation path too: never a KeyError


@pytest.mark.parametrize('name', ['train.csv', 'train.parquet'])
def test_wrong_dtype(tmp_path, name):
    df = train_frame()
    df['session_id'] = 'x' + df.session_id.astype(str)
    p = write(tmp_path, df, name)
    expect(lambda: read_train(p), p, 'session_id')
    expect(lambda: aggregate(p), p, 'session_id')


@pytest.mark.parametrize('name', ['train.csv', 'train.parquet'])
def test_nan_partnumber(tmp_path, name):
    df = train_frame()
    df['partnumber'] = df.partnumber.astype(float)
    df.loc[[3, 7], 'partnumber'] = np.nan
    p = write(tmp_path, df, name)
    expect(lambda: read_train(p), p, 'partnumber', 'missing', '(2 bad rows)')
    expect(lambda: aggregate(p), p, 'partnumber', 'missing')


@pytest.mark.parametrize(
    'column, value, fragment, streamed',
    [
        ('add_to_cart', 2, 'for example 2', True),
        ('device_type', 7, 'for example 7', False),  # aggregate does not read device_type
        ('timestamp_local', '06/01/2024 10:00', "'06/01/2024 10:00'", True),
    ],
)
def test_bad_value_in_a_csv(tmp_path, column, value, fragment, streamed):
    "One bad value in a CSV: read_train (lenient re-read, then the checks) and the streamed aggregation both name it."
    df = train_frame()
    df[column] = df[column].astype(object)
    df.loc[5, column] = value
    p = write(tmp_path, df)
    expect(lambda: read_train(p), p, column, '(1 bad row)', fragment, 'Fix:')
    if streamed:
        expect(lambda: aggregate(p), p, column, fragment)


@pytest.mark.parametrize('content', ['', 'header'])
def test_empty_file(tmp_path, content):
    p = tmp_path / 'train.csv'
    p.write_text(','.join(train_frame().columns) + '\n' if content else '')
    expect(lambda: read_train(p), p, None, 'empty file')
    expect(lambda: aggregate(p), p, None, 'empty file')


def test_empty_parquet(tmp_path):
    p = write(tmp_path, train_frame().iloc[:0], 'train.parquet')
    expect(lambda: read_train(p), p, None, 'empty file')
    expect(lambda: aggregate(p), p, None, 'empty file')


def products_frame(n=5, d=8):
    rng = np.random.default_rng(1)
    emb = [rng.random(d, dtype=np.float32) for _ in range(n)]
    emb[1] = None
    return pd.DataFrame(
        {
            'discount': pd.Series([0, 1] * (n // 2) + [0] * (n % 2), dtype=object),
            'embedding': emb,
            'partnumber': np.arange(1, n + 1, dtype=np.int32),
            'color_id': np.arange(n, dtype=np.int32),
            'cod_section': [1.0, np.nan] + [2.0] * (n - 2),
            'family': np.arange(n, dtype=np.int32) + 1,
        }
    )


def test_pickle_refused_without_trust(tmp_path):
    class Boom:  # would run on unpickling
        def __reduce__(self):
            return (os.system, (f'touch {tmp_path}/pwned',))

    p = tmp_path / 'products.pkl'
    p.write_bytes(pickle.dumps(Boom()))
    expect(lambda: read_products(p), p, None, 'refusing to unpickle', 'convert_products_pickle(')
    expect(lambda: convert_products_pickle(p, tmp_path / 'products.parquet'), p, None, 'refusing')
    assert not (tmp_path / 'pwned').exists()
    (tmp_path / 'train.csv').write_text(train_frame().to_csv(index=False))
    ds = load_dataset(str(tmp_path))  # the data set loads; only its products are refused
    with pytest.raises(RecsysDataError, match='refusing to unpickle'):
        _ = ds.products
    assert not (tmp_path / 'pwned').exists()


# --- MovieLens -------------------------------------------------------------------------------------------------------


def test_movielens_from_cache():
    try:
        ml = load_movielens_100k()
    except DataUnavailableError as e:
        pytest.skip(f'MovieLens-100K unavailable: {e}')
    assert ml.shape == (100_000, 4) and ml.user_id.nunique() == 943 and ml.item_id.nunique() == 1682
    ds = load_dataset('movielens-100k')
    X = ds.interactions()
    assert ds.kind == 'movielens' and X.shape == (943, 1682) and X.nnz == 100_000
    assert X.ratings.sum() == ml.rating.sum() and set(np.unique(X.ratings.data)) == {1, 2, 3, 4, 5}


def test_movielens_without_cache_or_network_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv('RECSYS_DATA_HOME', str(tmp_path))
    monkeypatch.setattr(datasets, 'ML100K_URL', 'http://127.0.0.1:9/ml-100k.zip')
    monkeypatch.setattr(datasets.download_movielens_100k, '__defaults__', (None, 'http://127.0.0.1:9/ml-100k.zip', 5))
    with pytest.raises(DataUnavailableError) as e:
        load_movielens_100k()
    assert 'u.data' in str(e.value) and 'could not be downloaded' in str(e.value) and 'Fix:' in str(e.value)


def test_movielens_checksum_mismatch(tmp_path, monkeypatch):
    monkeypatch.setenv('RECSYS_DATA_HOME', str(tmp_path))
    (tmp_path / 'ml-100k').mkdir()
    (tmp_path / 'ml-100k' / 'u.data').write_text('1\t2\t3\t4\n')
    with pytest.raises(RecsysDataError, match='checksum mismatch'):
        load_movielens_100k()


# --- the command line ------------------------------------------------------------------------------------------------


def cli(*args):
    exe = Path(sys.executable).parent / 'recsys-ingest'
    cmd = [str(exe)] if exe.exists() else [sys.executable, '-c', 'from recsys.ingest import ingest_main; ingest_main()']
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=120)


@pytest.mark.process
def test_cli_refuses_pickle_in_one_line(tmp_path):
    q = tmp_path / 'products.pkl'
    products_frame().to_pickle(q)
    r = cli('convert-products', str(q))
    assert (
        r.returncode == 2
        and r.stderr.count('\n') == 1
        and 'refusing to unpickle' in r.stderr
        and 'Traceback' not in r.stderr
    )
    r = cli('convert-products', str(q), '--trust')
    assert r.returncode == 0 and (tmp_path / 'products.parquet').exists()


@pytest.mark.process
def test_cli_check_and_aggregate(data_dir, tmp_path):
    d, df = data_dir
    r = cli('check', str(d))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)['train']['rows'] == len(df)
    r = cli('aggregate', str(d / 'train.csv'), '--out', str(tmp_path / 'X'))
    assert r.returncode == 0, r.stderr
    assert Interactions.load(tmp_path / 'X').views.sum() == len(df)
    bad = train_frame()
    bad.loc[0, 'add_to_cart'] = 2
    bad.to_csv(d / 'train.csv', index=False)
    r = cli('check', str(d))
    assert r.returncode == 2 and "column 'add_to_cart'" in r.stderr and 'Traceback' not in r.stderr
