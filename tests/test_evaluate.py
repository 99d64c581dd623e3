"""recsys.evaluate: the vectorised metrics against an independent brute-force implementation and against ranx,
the Microsoft Recommenders split against a line-by-line pandas transcription, and the edge cases."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys.core import RecsysDataError
from recsys.evaluate import (
    ranking_metrics,
    per_user_metrics,
    top_n,
    stratified_split,
    leave_last_k,
    make_splits,
    metric_keys,
    PopularityRecommender,
    EASERecommender,
    OwnHistoryRecommender,
    GroupPopularityRecommender,
    RandomRecommender,
)

TOL = 1e-9


# ---------------------------------------------------------------- an independent, per-user reference -------------
def brute_force(recs, rel_sets, K, n_items, popularity=None):
    """Plain-Python metrics, one user at a time, from the textbook definitions (no code shared with recsys)."""
    per = {k: [] for k in ('ndcg', 'map', 'mapk', 'p', 'r', 'hr', 'mrr')}
    shown, nov = set(), []
    for u, rel in enumerate(rel_sets):
        if not rel:
            continue
        lst = [int(i) for i in list(recs[u])[:K] if i >= 0]
        dcg = sum(1 / math.log2(rank + 2) for rank, i in enumerate(lst) if i in rel)
        idcg = sum(1 / math.log2(rank + 2) for rank in range(min(len(rel), K)))
        hits, ap = 0, 0.0
        first = None
        for rank, i in enumerate(lst):
            if i in rel:
                hits += 1
                ap += hits / (rank + 1)
                if first is None:
                    first = rank + 1
        per['ndcg'].append(dcg / idcg)
        per['map'].append(ap / len(rel))
        per['mapk'].append(ap / min(len(rel), K))
        per['p'].append(hits / K)
        per['r'].append(hits / len(rel))
        per['hr'].append(1.0 if hits else 0.0)
        per['mrr'].append(1 / first if first else 0.0)
        shown.update(lst)
        if popularity is not None and lst:
            tot = sum(popularity) + n_items
            nov.append(sum(-math.log2((popularity[i] + 1) / tot) for i in lst) / len(lst))
    mean = lambda xs: sum(xs) / len(xs)
    out = {
        f'ndcg@{K}': mean(per['ndcg']),
        'map': mean(per['map']),
        f'map@{K}': mean(per['mapk']),
        f'precision@{K}': mean(per['p']),
        f'recall@{K}': mean(per['r']),
        f'hit_rate@{K}': mean(per['hr']),
        f'mrr@{K}': mean(per['mrr']),
        f'coverage@{K}': len(shown) / n_items,
    }
    if popularity is not None:
        out[f'novelty@{K}'] = mean(nov)
    return out


def random_case(seed, n_users=60, n_items=40, width=12):
    "Random recommendations (unique per row, some rows short / -1 padded) and random relevance (some rows empty)."
    rng = np.random.default_rng(seed)
    recs = np.full((n_users, width), -1, np.int64)
    rel_sets = []
    rows, cols = [], []
    for u in range(n_users):
        L = int(rng.integers(0, width + 1))
        recs[u, :L] = rng.choice(n_items, L, replace=False)
        n_rel = int(rng.choice([0, 1, 2, 5, 15, 30]))
        rel = set(rng.choice(n_items, n_rel, replace=False).tolist())
        rel_sets.append(rel)
        rows += [u] * len(rel)
        cols += sorted(rel)
    vals = rng.integers(1, 6, len(rows)).astype(np.float32)  # graded values: anything > 0 is relevant
    return recs, sp.csr_matrix((vals, (rows, cols)), shape=(n_users, n_items)), rel_sets


@pytest.mark.parametrize('seed', range(6))
@pytest.mark.parametrize('K', [1, 3, 10, 12])
def test_metrics_match_brute_force(seed, K):
    recs, rel, rel_sets = random_case(seed)
    pop = np.random.default_rng(seed + 100).integers(0, 50, rel.shape[1])
    got = ranking_metrics(recs, rel, K, item_popularity=pop)
    want = brute_force(recs, rel_sets, K, rel.shape[1], pop.tolist())
    assert list(got) == metric_keys(K, novelty=True)
    for k in want:
        assert abs(got[k] - want[k]) <= TOL, (k, got[k], want[k])


def test_conventions_and_padding():
    rel = sp.csr_matrix(np.ones((1, 20)))  # 20 relevant items, K = 5
    m = ranking_metrics(np.array([[0, 1, 2, 3, 4]]), rel, 5)
    assert m['map@5'] == pytest.approx(1.0) and m['map'] == pytest.approx(5 / 20)
    assert m['precision@5'] == pytest.approx(1.0) and m['recall@5'] == pytest.approx(5 / 20)
    # fewer than K items: precision still divides by K, recall/nDCG are unaffected by the padding itself
    m = ranking_metrics(np.array([[7, -1, -1, -1, -1]]), sp.csr_matrix(([1.0], ([0], [7])), shape=(1, 20)), 5)
    assert m['precision@5'] == pytest.approx(1 / 5) and m['ndcg@5'] == pytest.approx(1.0) and m['mrr@5'] == 1.0
    # a narrower recs matrix is padded, not rejected
    assert ranking_metrics(np.array([[7]]), sp.csr_matrix(([1.0], ([0], [7])), shape=(1, 20)), 5) == m


def test_users_without_relevant_items_are_excluded():
    rel = sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 0], [0, 0, 0]], dtype=float))
    recs = np.array([[0, 1], [1, 2], [2, 1]])
    m = ranking_metrics(recs, rel, 2)
    assert m['precision@2'] == pytest.approx(0.5) and m['hit_rate@2'] == 1.0
    assert m['coverage@2'] == pytest.approx(2 / 3)  # only rows that are evaluated count
    pu = per_user_metrics(recs, rel, 2)
    assert pu['n_relevant'].tolist() == [1, 0, 0] and pu['ndcg@2'].isna().tolist() == [False, True, True]
    # explicit zeros and negatives are not relevant
    rel0 = sp.csr_matrix((np.array([0.0, -1.0, 2.0]), (np.array([0, 1, 2]), np.array([0, 1, 2]))), shape=(3, 3))
    assert ranking_metrics(recs, rel0, 2)['hit_rate@2'] == 1.0 and per_user_metrics(recs, rel0, 2)[
        'n_relevant'
    ].tolist() == [0, 0, 1]
    nan = ranking_metrics(recs, sp.csr_matrix((3, 3)), 2)
    assert math.isnan(nan['ndcg@2'])


def test_metric_inputs_are_checked():
    rel = sp.csr_matrix(np.eye(3))
    with pytest.raises(RecsysDataError, match='appears twice'):
        ranking_metrics(np.array([[0, 0], [1, 2], [2, 1]]), rel, 2)
    with pytest.raises(RecsysDataError, match='rows'):
        ranking_metrics(np.array([[0, 1]]), rel, 2)
    with pytest.raises(RecsysDataError, match='columns'):
        ranking_metrics(np.array([[0, 5], [1, 2], [2, 1]]), rel, 2)
    with pytest.raises(RecsysDataError, match='integer'):
        ranking_metrics(np.array([[0.0, 1.0]] * 3), rel, 2)
    with pytest.raises(RecsysDataError, match='sparse'):
        ranking_metrics(np.array([[0, 1]] * 3), np.eye(3), 2)
    # -1 padding repeated is not a duplicate
    assert ranking_metrics(np.array([[0, -1, -1], [1, -1, -1], [2, -1, -1]]), rel, 3)['recall@3'] == 1.0


def test_ties_are_deterministic_and_positional():
    # metrics take the order given: the same items in another order score differently
    rel = sp.csr_matrix(([1.0], ([0], [3])), shape=(1, 5))
    assert ranking_metrics(np.array([[3, 0]]), rel, 2)['ndcg@2'] > ranking_metrics(np.array([[0, 3]]), rel, 2)['ndcg@2']
    # top_n breaks ties by the lower item index, every time, whatever the batch
    S = np.array([[1, 5, 5, 5, 0], [2, 2, 2, 2, 2]], float)
    assert top_n(S, 3)[0].tolist() == [[1, 2, 3], [0, 1, 2]]
    assert top_n(S[1:], 3)[0].tolist() == [[0, 1, 2]]
    big = np.random.default_rng(0).integers(0, 3, (50, 200)).astype(float)
    ids = top_n(big, 20)[0]
    ref = np.array([sorted(range(200), key=lambda i: (-row[i], i))[:20] for row in big])
    assert (ids == ref).all()
    # excluded items never appear; too few eligible items -> -1 padding
    ids, sc = top_n(np.array([[1.0, 2.0, 3.0]]), 3, exclude=sp.csr_matrix(np.array([[0, 0, 1]])))
    assert ids.tolist() == [[1, 0, -1]] and np.isneginf(sc[0, 2])


# ---------------------------------------------------------------- maintained IR evaluation libraries ------------
def _trec_inputs(recs, rel_sets, K):
    "qrels/run dicts for the users with relevant items; scores K - rank keep our order (no ties)."
    q, r = {}, {}
    for u, relu in enumerate(rel_sets):
        if not relu:
            continue
        q[f'q{u}'] = {f'd{i}': 1 for i in relu}
        lst = [int(i) for i in recs[u][:K] if i >= 0]
        r[f'q{u}'] = {f'd{i}': float(K - rank) for rank, i in enumerate(lst)} or {'dnone': 0.0}
    return q, r


@pytest.mark.parametrize('K', [5, 10])
def test_metrics_match_trec_eval(K):
    "pytrec_eval (the C trec_eval): ndcg_cut, map_cut (= our 'map'), P, recall, recip_rank, success."
    pytrec_eval = pytest.importorskip('pytrec_eval')
    recs, rel, rel_sets = random_case(11, n_users=300, n_items=80, width=K)
    q, r = _trec_inputs(recs, rel_sets, K)
    names = {
        f'ndcg@{K}': f'ndcg_cut_{K}',
        'map': f'map_cut_{K}',
        f'precision@{K}': f'P_{K}',
        f'recall@{K}': f'recall_{K}',
        f'mrr@{K}': 'recip_rank',
        f'hit_rate@{K}': f'success_{K}',
    }
    per_q = pytrec_eval.RelevanceEvaluator(
        q, {f'ndcg_cut.{K}', f'map_cut.{K}', f'P.{K}', f'recall.{K}', 'recip_rank', f'success.{K}'}
    ).evaluate(r)
    ours = ranking_metrics(recs, rel, K)
    for mine, their in names.items():
        theirs = float(np.mean([v[their] for v in per_q.values()]))
        assert abs(ours[mine] - theirs) <= TOL, (mine, ours[mine], theirs)
    # and per user, not only on average
    pu = per_user_metrics(recs, rel, K)
    for qid, v in per_q.items():
        assert abs(pu.loc[int(qid[1:]), f'ndcg@{K}'] - v[f'ndcg_cut_{K}']) <= TOL


@pytest.mark.skipif(
    not __import__('os').environ.get('RECSYS_RANX'), reason='ranx JIT-compiles for ~30 s: set RECSYS_RANX=1 to run'
)
def test_metrics_match_ranx():
    ranx = pytest.importorskip('ranx')
    K = 10
    recs, rel, rel_sets = random_case(7, n_users=120, n_items=60, width=10)
    q, r = _trec_inputs(recs, rel_sets, K)
    names = {
        f'ndcg@{K}': f'ndcg@{K}',
        'map': f'map@{K}',
        f'precision@{K}': f'precision@{K}',
        f'recall@{K}': f'recall@{K}',
        f'mrr@{K}': f'mrr@{K}',
        f'hit_rate@{K}': f'hit_rate@{K}',
    }
    theirs = ranx.evaluate(ranx.Qrels(q), ranx.Run(r), list(names.values()), make_comparable=True)
    ours = ranking_metrics(recs, rel, K)
    for mine, their in names.items():
        assert abs(ours[mine] - theirs[their]) <= TOL, (mine, ours[mine], theirs[their])


# ---------------------------------------------------------------- the Microsoft Recommenders split ------------------
def ms_stratified_split(data, ratio=0.75, filter_by='user', seed=42, col_user='user_id', col_item='item_id'):
    """The Microsoft Recommenders 1.2.x rule (recommenders/datasets/python_splitters.py, `_do_stratification`, random,
    two-way ratio), in plain pandas: one uniform per row in file order, sort by (group, random),
    train = rank <= round(ratio n)."""
    data = data.copy()
    split_by_column = col_user if filter_by == 'user' else col_item
    np.random.seed(seed)
    data['random'] = np.random.rand(data.shape[0])
    data = data.sort_values([split_by_column, 'random'])
    groups = data.groupby(split_by_column)
    data['count'] = groups[split_by_column].transform('count')
    data['rank'] = groups.cumcount() + 1
    train = data[data['rank'] <= round(ratio * data['count'])]
    test = data[(data['rank'] > round(ratio * data['count'])) & (data['rank'] <= round(1.0 * data['count']))]
    return train.drop(columns=['random', 'count', 'rank']), test.drop(columns=['random', 'count', 'rank'])


@pytest.mark.parametrize('by', ['user', 'item'])
@pytest.mark.parametrize('ratio', [0.75, 0.8])
def test_stratified_split_follows_recommenders_1_2(by, ratio):
    rng = np.random.default_rng(5)
    df = pd.DataFrame(
        {
            'user_id': rng.integers(1, 80, 3000),
            'item_id': rng.integers(1, 300, 3000),
            'rating': rng.integers(1, 6, 3000),
        }
    )
    df = df.drop_duplicates(['user_id', 'item_id']).reset_index(drop=True)
    tr, te = stratified_split(df, ratio, by=by, seed=42)
    mtr, mte = ms_stratified_split(df, ratio, filter_by=by, seed=42)
    assert sorted(tr.index) == sorted(mtr.index) and sorted(te.index) == sorted(mte.index)
    n = df.groupby(f'{by}_id').size()
    assert (np.round(ratio * n) != np.floor(ratio * n)).any()  # groups where round and floor differ are exercised


def test_stratified_split_group_sizes_by_hand():
    "round(0.75 n) with halves to even: 1 -> 1, 2 -> 2, 3 -> 2, 4 -> 3, 6 -> 4, 10 -> 8, 14 -> 10 in train."
    sizes = [1, 2, 3, 4, 6, 10, 14]
    df = pd.DataFrame({'user_id': np.repeat(np.arange(len(sizes)), sizes), 'item_id': np.arange(sum(sizes))})
    tr, te = stratified_split(df, 0.75, by='user', seed=3)
    assert tr.groupby('user_id').size().reindex(range(len(sizes)), fill_value=0).tolist() == [1, 2, 2, 3, 4, 8, 10]
    mtr, _ = ms_stratified_split(df, 0.75, filter_by='user', seed=3)
    assert sorted(tr.index) == sorted(mtr.index)


def test_make_splits_on_movielens_shape():
    "The validation split lives inside the training part of the test split and never overlaps its test part."
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {
            'user_id': rng.integers(0, 50, 2000),
            'item_id': rng.integers(0, 100, 2000),
            'rating': 1,
            'timestamp': rng.integers(0, 10**6, 2000),
        }
    ).drop_duplicates(['user_id', 'item_id'])
    for protocol in ('stratified-item', 'stratified-user', 'leave-last-k', 'random'):
        s = make_splits(df, protocol)
        te, va = s['test'], s['validation']
        assert te.train.nnz + te.test.nnz == len(df)
        assert va.train.nnz + va.test.nnz == te.train.nnz
        assert va.test.multiply(te.test).nnz == 0 and va.train.multiply(te.test).nnz == 0


def test_leave_last_k_takes_the_latest():
    df = pd.DataFrame({'user_id': [1] * 5 + [2] * 2, 'item_id': range(7), 'timestamp': [5, 1, 4, 2, 3, 9, 8]})
    tr, te = leave_last_k(df, k=2)
    assert sorted(te.item_id) == [0, 2] and len(tr) == 5  # user 2 has only 2 rows: stays in train


# ---------------------------------------------------------------- baselines -------------------------------------------
def test_baselines_behave():
    X = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [1, 0, 1, 0, 0], [1, 0, 0, 1, 0], [0, 0, 1, 0, 0]], dtype=np.float32))
    pop = PopularityRecommender().fit(X)
    ids, _ = pop.recommend([0, 3], N=3)
    assert ids.tolist() == [[2, 3, 4], [0, 1, 3]]  # seen items removed, ties to the lower index
    ids, _ = pop.recommend([3], N=2, filter_seen=False)
    assert ids.tolist() == [[0, 2]]
    own = OwnHistoryRecommender().fit(X)
    ids, _ = own.recommend_new(sp.csr_matrix(np.array([[0, 0, 0, 1, 3]], dtype=np.float32)), N=3, filter_seen=False)
    assert ids.tolist() == [[4, 3, 0]]  # own items by strength, then the most popular
    gp = GroupPopularityRecommender().fit(X, groups=np.array(['a', 'a', 'b', 'b']))
    ids, _ = gp.recommend_new(sp.csr_matrix((2, 5), dtype=np.float32), N=2, groups=np.array(['b', 'zz']))
    assert ids.tolist() == [[0, 2], [0, 2]]  # group b: items 0, 2, 3 once each; unknown group: global
    ids, _ = gp.recommend_new(sp.csr_matrix((1, 5), dtype=np.float32), N=2, groups=np.array(['a']))
    assert ids.tolist() == [[0, 2]]  # group a: 0 twice; 1 and 2 tie, global popularity prefers 2
    r1, r2 = (
        RandomRecommender(3).fit(X).recommend([0, 1], N=3)[0],
        RandomRecommender(3).fit(X).recommend([0, 1], N=3)[0],
    )
    assert (r1 == r2).all()
    ease = EASERecommender(l2=1.0).fit(X)
    ids, _ = ease.recommend([0], N=5)
    assert set(ids[0][ids[0] >= 0]) <= {2, 3, 4}


# ---------------------------------------------------------------- the challenge-like session protocol ----------------
def _events():
    "A hand-made log: days 1-3; user 7 (logged in) and anonymous sessions; the last day is the test day."
    rows = [  # session, date, user, country, partnumber, add_to_cart
        (1, '2024-06-01', 7.0, 25, 100, 1),
        (1, '2024-06-01', 7.0, 25, 101, 1),
        (1, '2024-06-01', 7.0, 25, 102, 1),
        (2, '2024-06-02', 7.0, 25, 103, 1),
        (2, '2024-06-02', 7.0, 25, 104, 0),
        (3, '2024-06-02', np.nan, 34, 100, 0),
        (3, '2024-06-03', np.nan, 34, 105, 1),  # anonymous, crosses midnight
        (4, '2024-06-03', 7.0, 25, 104, 1),
        (4, '2024-06-03', 7.0, 25, 106, 0),
        (4, '2024-06-03', 7.0, 25, 104, 0),
        (5, '2024-06-03', np.nan, 25, 101, 1),  # anonymous, 1 cart only
        (6, '2024-06-03', 9.0, 29, 102, 1),
        (6, '2024-06-03', 9.0, 29, 103, 1),  # user 9: new
    ]
    return pd.DataFrame(rows, columns=['session_id', 'date', 'user_id', 'country', 'partnumber', 'add_to_cart'])


def test_challenge_split_kinds_targets_and_filter():
    from recsys.evaluate import challenge_split

    ev = _events()
    ALL = [0] * 9 + [1]  # show every row (up to 10) of a session
    s = challenge_split(ev, test_date='2024-06-03', min_carts=1, returning_share=0, shown_rows=ALL)
    t = s.sessions.set_index('session_id')
    assert sorted(t.index) == [3, 4, 5, 6]
    assert (
        t.loc[4, 'kind'] == 'new_known'
        and t.loc[3, 'kind'] == 'returning_unknown'
        and t.loc[6, 'kind'] == 'new_unknown'
    )
    items = list(s.items)
    tgt = {sid: sorted(items[j] for j in s.target[i].indices) for i, sid in enumerate(s.sessions['session_id'])}
    assert tgt == {3: [105], 4: [104], 5: [101], 6: [102, 103]}
    # inputs are the shown rows (carts hidden): session 4 viewed 104 twice and 106 once
    i4 = int(np.flatnonzero(s.sessions['session_id'] == 4)[0])
    assert dict(zip([items[j] for j in s.session[i4].indices], s.session[i4].data)) == {104: 2.0, 106: 1.0}
    # the profile of session 4 is user 7's history row; of session 3, its own earlier part; session 6 has none
    keys = s.history_keys[s.sessions.set_index('session_id')['history_row'].reindex([4, 3]).to_numpy()]
    assert list(keys) == ['u_7', 's_3'] and t.loc[6, 'history_row'] == -1
    assert s.profile()[i4].sum() == 5  # user 7: 5 rows before the test day
    # only the first row shown: session 6 shows 102, and 103 is a target it never showed (a future cart)
    s1 = challenge_split(ev, test_date='2024-06-03', min_carts=1, returning_share=0, shown_rows=[1])
    i6 = int(np.flatnonzero(s1.sessions['session_id'] == 6)[0])
    assert [items[j] for j in s1.session[i6].indices] == [102] and s1.target[i6].nnz == 2
    # min_carts counts the session's own distinct carts after its cut (the rule: sessions that cart >= 5 products)
    s2 = challenge_split(ev, test_date='2024-06-03', min_carts=2, returning_share=0, shown_rows=ALL)
    assert sorted(s2.sessions['session_id']) == [6]
    # a returning session's first rows join the history (sessions of 4 rows or more): anonymous session 8 is cut
    # after its first row, which becomes its own history row; its carts after the cut are the targets
    ev8 = pd.concat(
        [
            ev,
            pd.DataFrame(
                [(8, '2024-06-03', np.nan, 25, p, c) for p, c in ((110, 0), (111, 0), (112, 1), (113, 1))],
                columns=ev.columns,
            ),
        ],
        ignore_index=True,
    )
    sr = challenge_split(ev8, test_date='2024-06-03', min_carts=1, returning_share=1, shown_rows=ALL)
    r8 = sr.sessions.set_index('session_id').loc[8]
    assert r8['kind'] == 'returning_unknown' and sr.history_keys[r8['history_row']] == 's_8'
    assert sr.history()[r8['history_row']].sum() == 1 and r8['n_targets'] == 2
    assert sr.sessions.set_index('session_id').loc[4, 'kind'] == 'new_known'  # 3 rows: too short to be cut
    with pytest.raises(RecsysDataError, match='no history'):
        challenge_split(ev, test_date='2024-06-01')


def test_candidates_first_reranks_the_session():
    from recsys.evaluate import challenge_split, evaluate_sessions

    ev = _events()
    s = challenge_split(ev, test_date='2024-06-03', min_carts=1, returning_share=0, shown_rows=[0] * 9 + [1])
    pop = PopularityRecommender().fit(s.history())
    ids, _ = pop.recommend_new(s.session, N=3, filter_seen=False, candidates=s.session)
    items = np.asarray(s.items)
    for i in range(len(s.sessions)):
        viewed = set(items[s.session[i].indices])
        top = [items[j] for j in ids[i][: len(viewed)]]
        assert set(top) == viewed  # the session's own products come first
    m, by_kind = evaluate_sessions(OwnHistoryRecommender().fit(s.history()), s, K=5, profile_weight=0.0)
    assert m['hit_rate@5'] == 1.0  # every target was viewed in its session
    assert set(by_kind.index) == {'new_known', 'new_unknown', 'returning_known', 'returning_unknown'}
    assert by_kind.loc['returning_known', 'sessions'] == 0


def test_synthetic_oracle_and_kinds_agree_with_the_generator(tmp_path, monkeypatch):
    "On the tiny synthetic data the computed kinds match the planted ones and the oracle beats popularity."
    monkeypatch.setenv('RECSYS_DATA_DIR', str(tmp_path))
    from recsys.ingest import load_dataset
    from recsys.evaluate import inditex_splits, oracle_session_metrics, evaluate_sessions

    ds = load_dataset('synthetic', scale='tiny', seed=3)
    s = inditex_splits(ds)
    planted = pd.read_parquet(ds.dir / 'test_sessions.parquet').set_index('session_id')['kind']
    assert (
        s['test'].sessions.set_index('session_id')['kind'] == planted.reindex(s['test'].sessions['session_id'])
    ).all()
    oracle, _ = oracle_session_metrics(ds.truth, s['test'], K=5)
    pop, _ = evaluate_sessions(PopularityRecommender().fit(s['test'].history()), s['test'], K=5, candidates_first=False)
    assert oracle['ndcg@5'] > pop['ndcg@5'] and oracle['hit_rate@5'] > pop['hit_rate@5']
    assert s['validation'].history_views.shape[1] == s['test'].history_views.shape[1]


def test_paired_bootstrap_separates_signal_from_noise():
    from recsys.evaluate import paired_bootstrap

    rng = np.random.default_rng(0)
    base = rng.random(2000)
    better = paired_bootstrap(base + 0.05 + 0.01 * rng.standard_normal(2000), base)
    assert better['lo'] > 0.04 and better['hi'] < 0.06 and better['n'] == 2000
    same = paired_bootstrap(base + 0.2 * rng.standard_normal(2000), base)
    assert same['lo'] < 0 < same['hi']
    assert math.isnan(paired_bootstrap([np.nan], [1.0])['diff'])


def test_inditex_splits_without_labels_carve_the_test_day(tmp_path, monkeypatch):
    "A folder with only a train file (real data: hidden labels): test and validation are both carved from it."
    import shutil

    monkeypatch.setenv('RECSYS_DATA_DIR', str(tmp_path / 'data'))
    from recsys.ingest import load_dataset
    from recsys.evaluate import inditex_splits

    src = load_dataset('synthetic', scale='tiny', seed=5).dir
    real = tmp_path / 'real'
    real.mkdir()
    shutil.copy(src / 'train.parquet', real / 'train.parquet')
    shutil.copy(src / 'products.parquet', real / 'products.parquet')
    s = inditex_splits(load_dataset(str(real)), min_carts=2)
    test_days, val_days = s['test'].info['test_dates'].split(), s['validation'].info['test_dates'].split()
    assert len(test_days) == 1 and max(val_days) < test_days[0]  # validation strictly before the test day
    assert s['validation'].info['history_to'] < val_days[0]
    assert len(s['test'].sessions) > 0 and (s['test'].sessions['n_views'] <= 10).all()
