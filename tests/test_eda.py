"""The EDA notebook as a papermill report: synthetic Inditex-format data and MovieLens-100K each give figures,
results.json and saved customer segments."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NB = ROOT / 'nbs' / '02_eda.ipynb'

INDITEX_FIGURES = {
    'funnel',
    'cart_rate_by_context',
    'item_popularity',
    'activity_ccdf',
    'anonymous_share',
    'temporal',
    'sessions',
    'catalogue',
    'embedding_pca',
    'segments_elbow',
    'segments_scatter',
}
MOVIELENS_FIGURES = {'item_popularity', 'activity_ccdf', 'temporal', 'ratings', 'segments_elbow', 'segments_scatter'}
MOVIELENS_SKIPPED = {
    'funnel',
    'cart_rate_by_context',
    'anonymous_share',
    'sessions',
    'catalogue',
    'embedding_projection',
    'rfm_segmentation',
}


def run_report(tmp_path, **params) -> tuple[Path, dict]:
    import papermill as pm

    out = tmp_path / 'report'
    pm.execute_notebook(
        str(NB),
        str(tmp_path / '02_eda.ipynb'),
        parameters={'out_dir': str(out), **params},
        cwd=str(ROOT / 'nbs'),
        kernel_name='python3',
        progress_bar=False,
        log_output=False,
    )
    return out, json.loads((out / 'results.json').read_text())


def check_figures(out: Path, res: dict, expected: set):
    pngs = {p.stem for p in out.glob('*.png')}
    assert expected <= pngs, f'missing figures: {sorted(expected - pngs)}'
    assert {Path(f).stem for f in res['figures']} == pngs, 'results.json must list exactly the PNGs written'
    for p in out.glob('*.png'):
        assert p.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and p.stat().st_size > 5_000, f'{p.name} is not a real PNG'


@pytest.mark.reports
def test_report_on_synthetic_tiny(tmp_path):
    out, res = run_report(tmp_path, dataset='synthetic', scale='tiny', seed=42)
    check_figures(out, res, INDITEX_FIGURES)
    m = res['metrics']
    assert res['params']['dataset'] == 'synthetic' and res['seed'] == 42
    assert 0 < m['cart_rate'] < 0.5
    assert 0 < m['anonymous_row_share'] < 1 and 0 < m['anonymous_session_share'] < 1
    assert 0.5 < m['sparsity'] < 1
    assert 0 < m['gini_items'] < 1 and m['item_popularity']['top20pct_share'] > 0.2
    assert res['params']['k_min'] <= m['chosen_k'] <= res['params']['k_max']
    assert -1 <= m['silhouette'] <= 1
    assert set(res['skipped']) == {'ratings'}, res['skipped']
    # the saved segments label the users file again exactly as in the run (the cold-start fallback relies on it)
    from recsys.eda import assign_segments, load_segments
    from recsys.ingest import load_dataset

    seg = load_segments(out)
    assert seg.k == m['chosen_k'] and seg.features == ('R', 'F', 'M')
    users = load_dataset('synthetic', scale='tiny', seed=42).users.drop_duplicates('user_id')
    labels = assign_segments(out / 'segments.json', users)
    assert (labels == seg.labels).all() and (labels >= 0).any()
    assert list(seg.user_id) == list(users['user_id'])


@pytest.mark.reports
def test_report_on_movielens_100k(tmp_path):
    from recsys.core import RecsysDataError
    from recsys.ingest import load_movielens_100k

    try:
        ratings = load_movielens_100k()
    except RecsysDataError as e:
        pytest.skip(f'MovieLens-100K unavailable: {e}')
    out, res = run_report(tmp_path, dataset='movielens-100k', seed=42)
    check_figures(out, res, MOVIELENS_FIGURES)
    assert not {'funnel', 'anonymous_share', 'embedding_pca', 'catalogue'} & {p.stem for p in out.glob('*.png')}
    assert MOVIELENS_SKIPPED <= set(res['skipped']), res['skipped']
    assert all(isinstance(v, str) and v for v in res['skipped'].values())
    m = res['metrics']
    n_users, n_items = ratings.user_id.nunique(), ratings.item_id.nunique()
    assert m['sparsity'] == pytest.approx(1 - len(ratings) / (n_users * n_items))  # 93.7 % on ML-100K
    assert m['segments']['features'] == ['R', 'F'] and m['segments']['source'].startswith('activity')
    assert set(m['ratings']) == {'1', '2', '3', '4', '5'} and sum(m['ratings'].values()) == len(ratings)
    assert (out / 'segments.json').exists() and (out / 'segments.parquet').exists()
