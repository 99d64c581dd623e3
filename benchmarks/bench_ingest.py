"""Ingestion speed and memory: Inditex-format parquet -> CSR interactions.

Compares, on the same >= 10 M-row file and in separate processes (so that each peak RSS is its own):
  recsys        recsys.ingest.aggregate(path): streamed row groups, per-batch packed sort, timsort merge
  numpy-unique  the naive NumPy pipeline: read all, np.unique on keys and pairs, bincount / minimum.at
  pandas        pd.read_parquet + DataFrame.groupby([key, partnumber]).agg(size, sum, min, max)
All three produce the same matrices (views, carts, first/last time); the script checks that they agree.

    .venv/bin/python benchmarks/bench_ingest.py                  # 10 M rows, 3 repeats
    .venv/bin/python benchmarks/bench_ingest.py --rows 46551445 --only recsys --repeats 1   # full size: RSS check

The file is written once to benchmarks/out/ (git-ignored) and reused. Prints medians, events/s, ratios, peak RSS.
"""

import argparse, json, os, resource, statistics, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLS = ['session_id', 'user_id', 'partnumber', 'timestamp_local', 'add_to_cart', 'country']


def make_file(path: Path, n: int, seed: int = 0, n_items: int = 43_692, n_users: int = 557_006, chunk: int = 1 << 22):
    """An Inditex-format train parquet with the real file's marginals: sessions in file order with heavy-tailed
    lengths (rows inside a session unordered), ~15 % registered rows, power-law item popularity (rank^-0.9) with
    re-views inside a session (45 % of rows repeat the previous product), ~6 % add-to-cart,
    millisecond string timestamps; written in chunks so that even the full 46.5 M rows fit in memory."""
    import numpy as np, pyarrow as pa, pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    pop_cdf = np.cumsum(np.arange(1, n_items + 1) ** -0.9)
    pop_ids = rng.permutation(n_items).astype(np.int64) + 1
    tmp = path.with_suffix('.tmp')
    w = None
    done = 0
    next_sid = 1
    while done < n:
        m = min(chunk, n - done)
        L = np.minimum(rng.zipf(1.7, m).astype(np.int64), 6480)
        L = L[: np.searchsorted(np.cumsum(L), m) + 1]
        L[-1] -= L.sum() - m
        ns = len(L)
        sid_local = np.repeat(np.arange(ns), L)
        su = np.where(rng.random(ns) < 0.16, rng.integers(1, n_users + 1, ns), np.nan)
        start = rng.integers(0, 15 * 86400, ns) * 1000
        ts = np.datetime64('2024-06-01T00:00:00', 'ms') + (start[sid_local] + rng.integers(0, 1_800_000, m)).astype(
            'timedelta64[ms]'
        )
        uid = su[sid_local]
        item = pop_ids[np.searchsorted(pop_cdf, rng.random(m) * pop_cdf[-1])]  # power-law popularity
        again = rng.random(m) < 0.45  # re-views inside a session
        again[np.r_[0, np.cumsum(L)[:-1]]] = False
        item[again] = item[np.flatnonzero(again) - 1]
        t = pa.table(
            {
                'session_id': sid_local + next_sid,
                'date': pa.array(ts.astype('datetime64[D]')).cast(pa.string()),
                'timestamp_local': pa.array(ts).cast(pa.string()),
                'add_to_cart': (rng.random(m) < 0.059).astype(np.int64),
                'user_id': pa.array(uid, mask=np.isnan(uid)),
                'country': rng.choice([25, 29, 34, 57], m, p=[0.9, 0.04, 0.03, 0.03]),
                'partnumber': item,
                'device_type': rng.integers(1, 4, m),
                'pagetype': rng.choice([24.0, 8.0, np.nan], m, p=[0.99, 0.009, 0.001]),
            }
        )
        if w is None:
            w = pq.ParquetWriter(tmp, t.schema, compression='snappy')
        w.write_table(t, row_group_size=1 << 20)
        done += m
        next_sid += ns
    w.close()
    os.replace(tmp, path)


# --- the three pipelines (each run in its own process) -----------------------------------------------------------


def run_recsys(path):
    from recsys.ingest import aggregate

    X = aggregate(path)
    return X.views, X.carts, X.first_ts, X.last_ts


def run_numpy(path):
    import numpy as np, pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq, scipy.sparse as sp

    t = pq.read_table(path, columns=COLS)
    sid = t['session_id'].to_numpy()
    uid = t['user_id'].to_numpy(zero_copy_only=False)
    item = t['partnumber'].to_numpy()
    cart = t['add_to_cart'].to_numpy()
    ts = pc.cast(pc.cast(t['timestamp_local'], pa.timestamp('ms')), pa.int64()).to_numpy()
    reg = ~np.isnan(uid)
    key = np.where(reg, np.nan_to_num(uid).astype(np.int64), sid + (1 << 40))  # users first, then sessions
    keys, r = np.unique(key, return_inverse=True)
    items, c = np.unique(item, return_inverse=True)
    pairs, inv = np.unique(r * len(items) + c, return_inverse=True)
    views = np.bincount(inv).astype(np.float32)
    carts = np.bincount(inv, weights=cart).astype(np.float32)
    first = np.full(len(pairs), np.iinfo(np.int64).max)
    np.minimum.at(first, inv, ts)
    last = np.full(len(pairs), np.iinfo(np.int64).min)
    np.maximum.at(last, inv, ts)
    shape, rr, cc = (len(keys), len(items)), pairs // len(items), pairs % len(items)
    m = lambda d: sp.csr_matrix((d, (rr, cc)), shape=shape)
    carts_m = m(carts)
    carts_m.eliminate_zeros()
    return m(views), carts_m, m(first / 1e3), m(last / 1e3)


def run_pandas(path):
    import numpy as np, pandas as pd, scipy.sparse as sp

    df = pd.read_parquet(path, columns=COLS)
    df['ts'] = pd.to_datetime(df['timestamp_local'], format='%Y-%m-%d %H:%M:%S.%f')
    df['key'] = np.where(df['user_id'].notna(), df['user_id'].fillna(0).astype('int64'), df['session_id'] + (1 << 40))
    g = df.groupby(['key', 'partnumber'], sort=True).agg(
        views=('ts', 'size'), carts=('add_to_cart', 'sum'), first=('ts', 'min'), last=('ts', 'max')
    )
    rk, keys = pd.factorize(g.index.get_level_values(0), sort=True)
    ci, items = pd.factorize(g.index.get_level_values(1), sort=True)
    shape = (len(keys), len(items))
    m = lambda d: sp.csr_matrix((np.asarray(d), (rk, ci)), shape=shape)
    sec = lambda s: s.to_numpy().astype('datetime64[ms]').astype(np.int64) / 1e3
    carts_m = m(g['carts'].to_numpy(np.float32))
    carts_m.eliminate_zeros()
    return m(g['views'].to_numpy(np.float32)), carts_m, m(sec(g['first'])), m(sec(g['last']))


PIPELINES = {'recsys': run_recsys, 'numpy-unique': run_numpy, 'pandas': run_pandas}


def child(name, path):
    "Run one pipeline once; print wall, CPU, peak RSS and a fingerprint of the result as JSON."
    import numpy as np  # imports are not timed

    if name == 'recsys':
        pass
    t0, c0 = time.perf_counter(), time.process_time()
    views, carts, first, last = PIPELINES[name](path)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    print(
        json.dumps(
            {
                'wall_s': wall,
                'cpu_s': cpu,
                'peak_rss_mib': rss,
                'shape': list(views.shape),
                'nnz': int(views.nnz),
                'views': float(views.sum()),
                'carts': float(carts.sum()),
                'carts_nnz': int(carts.nnz),
                'first_sum': float(np.sum(first.data)),
                'last_sum': float(np.sum(last.data)),
            }
        )
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--rows', type=int, default=10_000_000)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--only', nargs='*', default=list(PIPELINES), choices=list(PIPELINES))
    ap.add_argument('--file', default=None, help='an existing Inditex-format train parquet to use instead')
    ap.add_argument('--out', default=str(HERE / 'out'))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = Path(a.file) if a.file else out / f'inditex-train-v2-{a.rows}.parquet'
    if not path.exists():
        t = time.perf_counter()
        make_file(path, a.rows)
        print(f'wrote {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.0f} s', flush=True)
    import pyarrow.parquet as pq

    n = pq.ParquetFile(path).metadata.num_rows
    print(f'file: {path}  rows: {n:,}  cpus: {os.cpu_count()}  load average: {os.getloadavg()[0]:.1f}', flush=True)
    runs = {k: [] for k in a.only}
    for rep in range(a.repeats):  # interleaved, so that load changes hit every pipeline alike
        for name in a.only:
            r = subprocess.run([sys.executable, __file__, '--child', name, str(path)], capture_output=True, text=True)
            if r.returncode:
                sys.exit(f'{name} failed:\n{r.stderr[-3000:]}')
            runs[name].append(json.loads(r.stdout.strip().splitlines()[-1]))
            x = runs[name][-1]
            print(
                f'  rep {rep + 1} {name:13s} wall {x["wall_s"]:6.2f} s  cpu {x["cpu_s"]:6.2f} s  '
                f'rss {x["peak_rss_mib"]:6.0f} MiB',
                flush=True,
            )
    res = {}
    for name, rs in runs.items():
        w = statistics.median(r['wall_s'] for r in rs)
        c = statistics.median(r['cpu_s'] for r in rs)
        res[name] = {
            'median_wall_s': w,
            'median_cpu_s': c,
            'events_per_s': n / w,
            'events_per_cpu_s': n / c,
            'peak_rss_mib': max(r['peak_rss_mib'] for r in rs),
            'result': {k: v for k, v in rs[0].items() if k not in ('wall_s', 'cpu_s', 'peak_rss_mib')},
        }
    ref = res[a.only[0]]['result']
    for name, r in res.items():  # every pipeline must compute the same thing
        for k, v in ref.items():
            same = v == r['result'][k] if not isinstance(v, float) else abs(v - r['result'][k]) <= 1e-6 * max(1, abs(v))
            assert same, f'{name} disagrees with {a.only[0]} on {k}: {r["result"][k]} vs {v}'
    print(
        f'\n{"pipeline":13s} {"median wall":>12s} {"events/s":>12s} '
        f'{"median CPU":>11s} {"events/CPU-s":>13s} {"peak RSS":>10s}'
    )
    for name, r in res.items():
        print(
            f'{name:13s} {r["median_wall_s"]:10.2f} s {r["events_per_s"] / 1e6:9.2f} M/s {r["median_cpu_s"]:9.2f} s '
            f'{r["events_per_cpu_s"] / 1e6:10.2f} M/s {r["peak_rss_mib"]:7.0f} MiB'
        )
    if 'recsys' in res:
        for name in res:
            if name != 'recsys':
                print(
                    f'recsys vs {name}: '
                    f'{res[name]["median_wall_s"] / res["recsys"]["median_wall_s"]:.1f}x faster (wall), '
                    f'{res[name]["median_cpu_s"] / res["recsys"]["median_cpu_s"]:.1f}x less CPU'
                )
    print(f'results agree: {ref["shape"][0]:,} rows x {ref["shape"][1]:,} items, {ref["nnz"]:,} pairs')
    (out / 'bench_ingest.json').write_text(json.dumps({'rows': n, 'cpus': os.cpu_count(), 'pipelines': res}, indent=1))


if __name__ == '__main__':
    if len(sys.argv) == 4 and sys.argv[1] == '--child':
        child(sys.argv[2], sys.argv[3])
    else:
        main()
