"""Speed of recsys.evaluate.ranking_metrics: every metric for 100k users at K=10 (target <= 1 s), side by side with a
straightforward per-user pandas implementation (merge the lists with the relevant pairs, then groupby-apply one
Python function per user). Medians of several runs; both must agree to 1e-9. The pandas version needs minutes
for 100k users, so the ratio is measured on the first `--pandas-users` users with both implementations.

    .venv/bin/python benchmarks/bench_evaluate.py [--users 100000] [--items 20000] [--k 10] [--runs 5]
                                                  [--pandas-users 20000] [--pandas-runs 3]
"""
import argparse, math, os, statistics, sys, time

os.environ.setdefault('RECSYS_QUIET', '1')
import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.core import blas_info
from recsys.evaluate import ranking_metrics


def make_case(n_users, n_items, K, seed=0):
    "Relevance: 1-40 items per user (some users none); recommendations: K distinct items, popular items favoured, some lists short."
    rng = np.random.default_rng(seed)
    pop = rng.permutation(np.arange(1, n_items + 1) ** -0.8); p = pop / pop.sum()   # a long tail, as in shop data
    n_rel = rng.integers(0, 41, n_users); n_rel[rng.random(n_users) < 0.05] = 0
    rows = np.repeat(np.arange(n_users), n_rel)
    cols = rng.choice(n_items, rows.size, p=p)
    rel = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n_users, n_items))
    rel.data[:] = 1
    cand = rng.choice(n_items, (n_users, 3 * K), p=p)
    recs = np.full((n_users, K), -1, np.int64)
    for k in range(3 * K):               # first K distinct candidates per row (vectorised over users)
        c = cand[:, k]
        dup = (recs == c[:, None]).any(1)
        slot = (recs >= 0).sum(1)
        ok = ~dup & (slot < K)
        recs[np.flatnonzero(ok), slot[ok]] = c[ok]
    short = rng.random(n_users) < 0.02
    recs[short, K // 2:] = -1
    return recs, rel


def pandas_metrics(recs, rel, K):
    "The straightforward way: long frames, a merge, and one Python function per user (groupby-apply)."
    n = recs.shape[0]
    long = pd.DataFrame({'user': np.repeat(np.arange(n), K), 'rank': np.tile(np.arange(1, K + 1), n), 'item': recs[:, :K].ravel()})
    long = long[long['item'] >= 0]
    coo = rel.tocoo()
    relf = pd.DataFrame({'user': coo.row, 'item': coo.col}).drop_duplicates()
    n_rel = relf.groupby('user').size().rename('n_rel')
    long = long.merge(relf.assign(hit=1), on=['user', 'item'], how='left').fillna({'hit': 0})
    long = long[long['user'].isin(n_rel.index)]

    def per_user(g):
        nr = n_rel_map[g.name]
        hits = g.sort_values('rank')
        h, ranks = hits['hit'].to_numpy(), hits['rank'].to_numpy()
        dcg = float((h / np.log2(ranks + 1)).sum())
        idcg = sum(1 / math.log2(i + 2) for i in range(min(nr, K)))
        cum = np.cumsum(h)
        ap = float((cum / ranks * h).sum())
        first = ranks[h > 0]
        return pd.Series({'ndcg': dcg / idcg, 'map': ap / nr, 'mapk': ap / min(nr, K), 'p': h.sum() / K, 'r': h.sum() / nr,
                          'hr': float(h.sum() > 0), 'mrr': 1 / first[0] if len(first) else 0.0})
    n_rel_map = n_rel.to_dict()
    per = long.groupby('user').apply(per_user, include_groups=False)
    # users with relevant items but no valid recommendation at all score 0 everywhere
    missing = n_rel.index.difference(per.index)
    per = pd.concat([per, pd.DataFrame(0.0, index=missing, columns=per.columns)])
    m = per.mean()
    items = long.loc[long['user'].isin(n_rel.index), 'item'].nunique()
    return {f'ndcg@{K}': m['ndcg'], 'map': m['map'], f'map@{K}': m['mapk'], f'precision@{K}': m['p'], f'recall@{K}': m['r'],
            f'hit_rate@{K}': m['hr'], f'mrr@{K}': m['mrr'], f'coverage@{K}': items / rel.shape[1]}


def timed(f, runs):
    out, ts = None, []
    for _ in range(runs):
        t = time.perf_counter(); out = f(); ts.append(time.perf_counter() - t)
    return out, statistics.median(ts), ts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--users', type=int, default=100_000); ap.add_argument('--items', type=int, default=20_000)
    ap.add_argument('--k', type=int, default=10); ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--pandas-runs', type=int, default=3); ap.add_argument('--pandas-users', type=int, default=20_000)
    a = ap.parse_args(argv)
    recs, rel = make_case(a.users, a.items, a.k)
    print(f'{a.users:,} users x {a.items:,} items, K={a.k}, {rel.nnz:,} relevant pairs; BLAS {blas_info()}')
    ours, t_ours, ts = timed(lambda: ranking_metrics(recs, rel, a.k), a.runs)
    print(f'ranking_metrics, {a.users:,} users: median {t_ours:.3f} s over {a.runs} runs ({", ".join(f"{t:.3f}" for t in ts)})')
    n = min(a.pandas_users, a.users)
    r_sub, rel_sub = recs[:n], rel[:n]
    ours_sub, t_sub, ts = timed(lambda: ranking_metrics(r_sub, rel_sub, a.k), a.runs)
    print(f'ranking_metrics, {n:,} users: median {t_sub:.3f} s over {a.runs} runs ({", ".join(f"{t:.3f}" for t in ts)})')
    theirs, t_pd, ts = timed(lambda: pandas_metrics(r_sub, rel_sub, a.k), a.pandas_runs)
    print(f'per-user pandas, {n:,} users: median {t_pd:.3f} s over {a.pandas_runs} runs ({", ".join(f"{t:.3f}" for t in ts)})')
    worst = max(abs(ours_sub[k] - theirs[k]) for k in theirs)
    print(f'largest difference between the two over {len(theirs)} metrics: {worst:.2e}')
    print(f'ratio (pandas / vectorised, same {n:,} users): {t_pd / t_sub:.0f}x;  '
          f'{a.users:,} users at K={a.k} in {t_ours:.3f} s: target <= 1 s {"met" if t_ours <= 1.0 else "MISSED"}')
    if worst > 1e-9: sys.exit('the two implementations disagree')
    return t_ours, t_sub, t_pd


if __name__ == '__main__':
    main()
