"""Speed of recsys.evaluate.ranking_metrics: every metric for 100k users at K=10 (target <= 1 s), side by side with a
straightforward per-user pandas implementation (merge the lists with the relevant pairs, then groupby-apply one
Python function per user). Medians of several runs; both must agree to 1e-9. The pandas version needs minutes
for 100k users, so the ratio is measured on the first `--pandas-users` users with both implementations.

Then the ranking every baseline goes through, `Recommender._rank`, on `--rank-users` rows x `--rank-items` items
(64-factor scores, seen items removed, top-K): the old way (each batch of 2,048 rows scored densely in float64 and
ranked by a full-width partition + cumulative tie count) against the new one (float32 blocks of at most
`Recommender.block_cells` scores, only the candidates at or above each row's K-th score sorted), same run, medians.

    .venv/bin/python benchmarks/bench_evaluate.py [--users 100000] [--items 20000] [--k 10] [--runs 5]
                                                  [--pandas-users 20000] [--pandas-runs 3]
                                                  [--rank-users 20000] [--rank-items 23000] [--rank-runs 3]
"""

import argparse, math, os, statistics, sys, time

os.environ.setdefault('RECSYS_QUIET', '1')
import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.core import blas_info
from recsys.evaluate import Recommender, ranking_metrics


def make_case(n_users, n_items, K, seed=0):
    """Relevance: 1-40 items per user (some users none); recommendations: K distinct items, popular items favoured,
    some lists short."""
    rng = np.random.default_rng(seed)
    pop = rng.permutation(np.arange(1, n_items + 1) ** -0.8)
    p = pop / pop.sum()  # a long tail, as in shop data
    n_rel = rng.integers(0, 41, n_users)
    n_rel[rng.random(n_users) < 0.05] = 0
    rows = np.repeat(np.arange(n_users), n_rel)
    cols = rng.choice(n_items, rows.size, p=p)
    rel = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n_users, n_items))
    rel.data[:] = 1
    cand = rng.choice(n_items, (n_users, 3 * K), p=p)
    recs = np.full((n_users, K), -1, np.int64)
    for k in range(3 * K):  # first K distinct candidates per row (vectorised over users)
        c = cand[:, k]
        dup = (recs == c[:, None]).any(1)
        slot = (recs >= 0).sum(1)
        ok = ~dup & (slot < K)
        recs[np.flatnonzero(ok), slot[ok]] = c[ok]
    short = rng.random(n_users) < 0.02
    recs[short, K // 2 :] = -1
    return recs, rel


def pandas_metrics(recs, rel, K):
    "The straightforward way: long frames, a merge, and one Python function per user (groupby-apply)."
    n = recs.shape[0]
    long = pd.DataFrame(
        {'user': np.repeat(np.arange(n), K), 'rank': np.tile(np.arange(1, K + 1), n), 'item': recs[:, :K].ravel()}
    )
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
        return pd.Series(
            {
                'ndcg': dcg / idcg,
                'map': ap / nr,
                'mapk': ap / min(nr, K),
                'p': h.sum() / K,
                'r': h.sum() / nr,
                'hr': float(h.sum() > 0),
                'mrr': 1 / first[0] if len(first) else 0.0,
            }
        )

    n_rel_map = n_rel.to_dict()
    per = long.groupby('user').apply(per_user, include_groups=False)
    # users with relevant items but no valid recommendation at all score 0 everywhere
    missing = n_rel.index.difference(per.index)
    per = pd.concat([per, pd.DataFrame(0.0, index=missing, columns=per.columns)])
    m = per.mean()
    items = long.loc[long['user'].isin(n_rel.index), 'item'].nunique()
    return {
        f'ndcg@{K}': m['ndcg'],
        'map': m['map'],
        f'map@{K}': m['mapk'],
        f'precision@{K}': m['p'],
        f'recall@{K}': m['r'],
        f'hit_rate@{K}': m['hr'],
        f'mrr@{K}': m['mrr'],
        f'coverage@{K}': items / rel.shape[1],
    }


def old_top_n(scores, N, exclude=None):
    "recsys.evaluate.top_n before issue 18: a float64 copy, a full-width partition and a cumulative tie count."
    S = np.array(scores, dtype=np.float64, copy=True)
    n, m = S.shape
    S[np.isnan(S)] = -np.inf
    if exclude is not None and exclude.nnz:
        ex = sp.csr_matrix(exclude)
        S[np.repeat(np.arange(n), np.diff(ex.indptr)), ex.indices] = -np.inf
    k = min(N, m)
    kth = -np.partition(-S, k - 1, axis=1)[:, k - 1 : k]
    gt = S > kth
    eq = (S == kth) & (np.cumsum(S == kth, axis=1) <= (k - gt.sum(1, keepdims=True)))
    rows, cols = np.nonzero(gt | eq)
    cols = cols.reshape(n, k)
    vals = S[rows, cols.ravel()].reshape(n, k)
    order = np.argsort(-vals, axis=1, kind='stable')
    ids = np.take_along_axis(cols, order, 1)
    sc = np.take_along_axis(vals, order, 1)
    return np.where(np.isneginf(sc), -1, ids).astype(np.int32), sc.astype(np.float32)


class FactorScores(Recommender):
    "Scores = U V^T from given factors: the shape of ALS's, and of every dense baseline's, ranking work."

    def __init__(self, U, V):
        self.U, self.V = U, V

    def _scores(self, X, rows, **side):
        return self.U[rows] @ self.V.T


def old_rank(model, X, rows, N, batch_rows=2048):
    "Recommender._rank before issue 18: batches of 2,048 rows, float64 scores, old_top_n."
    n = X.shape[0]
    ids = np.full((n, N), -1, np.int32)
    U64, V64 = model.U.astype(np.float64), model.V.astype(np.float64)
    for s in range(0, n, batch_rows):
        sl = slice(s, min(n, s + batch_rows))
        ids[sl] = old_top_n(U64[rows[sl]] @ V64.T, N, X[sl])[0]
    return ids


def rank_case(n_users, n_items, K, runs, factors=64, seed=1):
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((n_users, factors), dtype=np.float32) / 8
    V = rng.standard_normal((n_items, factors), dtype=np.float32) / 8
    per_row = 20
    cols = rng.integers(0, n_items, n_users * per_row)
    X = sp.csr_matrix(
        (np.ones(cols.size, np.float32), (np.repeat(np.arange(n_users), per_row), cols)), shape=(n_users, n_items)
    )
    X.sum_duplicates()
    m = FactorScores(U, V).fit(X)
    rows = np.arange(n_users)
    old, t_old, ts_old = timed(lambda: old_rank(m, X, rows, K), runs)
    new, t_new, ts_new = timed(lambda: m.recommend(rows, X, N=K)[0], runs)
    same = float((old == new).all(1).mean())
    print(
        f'Recommender._rank, {n_users:,} rows x {n_items:,} items, top-{K}, seen removed: old dense float64 median '
        f'{t_old:.3f} s ({", ".join(f"{t:.3f}" for t in ts_old)}); new blocked float32 median {t_new:.3f} s '
        f'({", ".join(f"{t:.3f}" for t in ts_new)}) over {runs} runs'
    )
    print(
        f'ratio (old dense float64 / new blocked float32, same run): {t_old / t_new:.1f}x; '
        f'identical top-{K} lists: {same:.2%}'
    )
    return t_old, t_new, same


def timed(f, runs):
    out, ts = None, []
    for _ in range(runs):
        t = time.perf_counter()
        out = f()
        ts.append(time.perf_counter() - t)
    return out, statistics.median(ts), ts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--users', type=int, default=100_000)
    ap.add_argument('--items', type=int, default=20_000)
    ap.add_argument('--k', type=int, default=10)
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--pandas-runs', type=int, default=3)
    ap.add_argument('--pandas-users', type=int, default=20_000)
    ap.add_argument('--rank-users', type=int, default=20_000)
    ap.add_argument('--rank-items', type=int, default=23_000)
    ap.add_argument('--rank-runs', type=int, default=3)
    a = ap.parse_args(argv)
    recs, rel = make_case(a.users, a.items, a.k)
    print(f'{a.users:,} users x {a.items:,} items, K={a.k}, {rel.nnz:,} relevant pairs; BLAS {blas_info()}')
    ours, t_ours, ts = timed(lambda: ranking_metrics(recs, rel, a.k), a.runs)
    print(
        f'ranking_metrics, {a.users:,} users: median {t_ours:.3f} s over {a.runs} runs '
        f'({", ".join(f"{t:.3f}" for t in ts)})'
    )
    n = min(a.pandas_users, a.users)
    r_sub, rel_sub = recs[:n], rel[:n]
    ours_sub, t_sub, ts = timed(lambda: ranking_metrics(r_sub, rel_sub, a.k), a.runs)
    print(
        f'ranking_metrics, {n:,} users: median {t_sub:.3f} s over {a.runs} runs ({", ".join(f"{t:.3f}" for t in ts)})'
    )
    theirs, t_pd, ts = timed(lambda: pandas_metrics(r_sub, rel_sub, a.k), a.pandas_runs)
    print(
        f'per-user pandas, {n:,} users: median {t_pd:.3f} s over {a.pandas_runs} runs '
        f'({", ".join(f"{t:.3f}" for t in ts)})'
    )
    worst = max(abs(ours_sub[k] - theirs[k]) for k in theirs)
    print(f'largest difference between the two over {len(theirs)} metrics: {worst:.2e}')
    print(
        f'ratio (pandas / vectorised, same {n:,} users): {t_pd / t_sub:.0f}x;  '
        f'{a.users:,} users at K={a.k} in {t_ours:.3f} s: target <= 1 s {"met" if t_ours <= 1.0 else "MISSED"}'
    )
    rank = rank_case(a.rank_users, a.rank_items, a.k, a.rank_runs) if a.rank_users > 0 else None
    if worst > 1e-9:
        sys.exit('the two implementations disagree')
    if rank is not None and rank[2] < 0.99:
        sys.exit('the old and new rankings disagree on more than 1 % of the lists')
    return t_ours, t_sub, t_pd


if __name__ == '__main__':
    main()
