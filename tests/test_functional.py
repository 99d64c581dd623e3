"""Functional tests of the reports, after Microsoft Recommenders' tests/functional/examples: run a report notebook with
papermill on small data (its own `parameters` cell, seed 42) and pin the headline numbers its results.json records.
A number the prose of a notebook or the README states should be one of these. Each runs in well under three minutes
on two cores; they are part of `make test` (deselect with -m "not functional").

Every tolerance comes from a measurement, `benchmarks/cpu_spread.py` (figures in benchmarks/CPU_SPREAD.md): each
report run under imitated CPUs (OpenBLAS's Haswell and Sandybridge kernels instead of SkylakeX, NumPy without its
AVX-512 dispatch) at seeds 42 and 0-3. Two kinds of figure came out of it:

* STABLE: the figure did not move at all across those CPUs, at any seed (spread 0.0000): the design comparison (03),
  every method of the session protocol (05) but the embedding baseline, and in 06 every trivial baseline, the oracle
  and the linear blend. Pinned to STABLE_TOL = 0.003: below one test session's worth on tiny data (40 sessions:
  one session's NDCG@5 moved by 0.1 moves the mean by 0.0025), so a pin that fails means the model changed, not the CPU.
* The two-stage model (06): its LightGBM ranker splits on features whose last bits depend on the BLAS kernel (the
  stage digests show ALS and PCA parting first), and on 40 sessions that moves NDCG@5 by up to 0.0105 (all carts) and
  0.0056 (future carts) across the imitated CPUs, and 0.0049 / 0.0074 on a real AMD EPYC (issue 25). So on tiny it
  gets a band of twice the largest measured move and an ordering that held at every seed and CPU; its tight pin is
  at small scale (1,000 test sessions), checked on the main job's run by .ci/check_reports.py. Issue 26's ranker
  (60 trees on every validation session, no early stopping, behind a first cut) did not move at seed 42 under any
  imitated CPU, but moved by 0.019 / 0.012 at seed 0 (benchmarks/cpu_spread.py, native / no-avx512 /
  openblas-haswell): the band is twice that now.

What each tolerance still catches (measured; CPU_SPREAD.md, "Regressions"): 05's ALS stopped after one iteration
moves its NDCG@5 by +0.0185; 06's blend left untuned moves the linear blend by -0.033 (future -0.038); 03's winning
design and the seed design are 0.032 apart on the test; dropping 06's co-visitation features moves the two-stage model
by -0.036 (measured on the earlier ranker; now at the edge of the wider band: the small-scale pin, +-0.0068, is what
catches it and an untuned blend's -0.008).
"""

import json, os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'
SHARED_ML100K = ROOT.parent / 'shared' / 'data' / 'ml-100k'
STABLE_TOL = 0.003  # figures with no measured cross-CPU spread (see the module docstring)
TWO_STAGE_BAND = {
    'ndcg@5': 0.038,
    'ndcg@5 future': 0.024,
}  # 2 x the largest measured cross-CPU move of the two-stage model (0.019 / 0.012, issue 26's ranker, seed 0)

pytestmark = pytest.mark.functional


def near(got: dict, want: dict, tol: float = STABLE_TOL):
    bad = {k: (got.get(k), v) for k, v in want.items() if got.get(k) is None or abs(got[k] - v) > tol}
    assert not bad, f'moved beyond ±{tol} (got, pinned): {bad}'


@pytest.mark.reports
def test_03_confidence_synthetic_tiny(report_03_tiny):
    """The design comparison on tiny synthetic data: the winning design, the seed design and popularity on the test
    window (the run tests/test_confidence.py checks too: tests/conftest.py makes it once)."""
    _, res = report_03_tiny
    near(res['metrics'], {'winner_test': 0.1320, 'seed_test': 0.0998, 'popularity_test': 0.0214})
    assert res['metrics']['winner_test'] > res['metrics']['popularity_test']


@pytest.mark.reports
def test_05_evaluate_synthetic_tiny(tmp_path, papermill_report):
    """The session protocol on tiny synthetic data (tune='tiny'): ALS, the strongest baselines and the oracle, NDCG@5 on
    the test."""
    res = papermill_report('05_evaluate', tmp_path, dataset='synthetic', scale='tiny')
    test = {k: v['ndcg@5'] for k, v in res['metrics']['test'].items()}
    near(
        test,
        {
            'als': 0.3275,
            'ease': 0.3706,
            'itemknn-cosine': 0.3408,
            'popularity': 0.3056,
            'random': 0.2671,
            'oracle': 0.6275,
        },
    )
    assert test['oracle'] > max(v for k, v in test.items() if k != 'oracle')
    # its page for readers leaves out the library cells; the executed notebook keeps them
    from recsys.reports import notebook_html

    page = notebook_html(tmp_path / 'notebook.ipynb', tmp_path / 'notebook.html').read_text()
    assert (
        '#| export' in (tmp_path / 'notebook.ipynb').read_text()
        and '#| export' not in page
        and 'def stratified_split' not in page
    )
    assert 'library cells' in page and 'compare_protocols' in page  # the note, and the parameters cell


@pytest.mark.reports
@pytest.mark.skipif(
    not (SHARED_ML100K / 'u.data').exists() and not os.environ.get('RECSYS_DATA_HOME'),
    reason='MovieLens-100K is not in ../shared/data (no download in tests)',
)
def test_05_evaluate_movielens_100k_default(tmp_path, monkeypatch, papermill_report):
    """MovieLens-100K, the benchmark's split (Recommenders 1.2.x rule), ALS_DEFAULTS['movielens'] with tune='none':
    the test numbers 05's search record quotes (nDCG@10 0.4906, MAP 0.1548, P@10 0.4269, R@10 0.2342), and the
    published targets."""
    from recsys.core import cache_dir

    if not (cache_dir('ml-100k', create=False) / 'u.data').exists():
        home = tmp_path / 'cache'
        (home / 'ml-100k').mkdir(parents=True)
        for f in SHARED_ML100K.iterdir():
            (home / 'ml-100k' / f.name).symlink_to(f)
        monkeypatch.setenv('RECSYS_DATA_HOME', str(home))
    res = papermill_report('05_evaluate', tmp_path / 'out', dataset='movielens-100k', tune='none')
    als = res['metrics']['test']['als']
    near(als, {'ndcg@10': 0.4906, 'map': 0.1548, 'precision@10': 0.4269, 'recall@10': 0.2342})
    assert als['ndcg@10'] >= 0.48 and als['map'] >= 0.15  # the targets 05 states


@pytest.mark.reports
def test_06_recommend_synthetic_tiny(tmp_path, papermill_report):
    """The challenge's task on tiny synthetic data: the trivial baselines, the oracle and the linear blend pinned to
    STABLE_TOL (no move across CPUs); the two-stage model within TWO_STAGE_BAND of its seed-42 figure on this CPU
    (0.3547 / 0.0643 since issue 26's first cut and 60-tree ranker; 0.3426 / 0.0602 with the registry, V-SKNN and 8 ALS
    iterations; before: 0.3496 / 0.0614 here, 0.3439 /
    0.0664 under OpenBLAS's Haswell kernel, 0.3545 / 0.0688 on an AMD EPYC) and above the best in-session baseline
    and popularity (held at seeds 42 and 0-3 under every imitated CPU)."""
    res = papermill_report('06_recommend', tmp_path, dataset='synthetic', scale='tiny')
    t = {f'{m} | {k}': v for m, r in res['table'].items() for k, v in r.items() if k in ('ndcg@5', 'ndcg@5 future')}
    near(
        t,
        {
            'linear blend (tuned) | ndcg@5': 0.3479,  # 8 ALS iterations since issue 26 (0.3386 with 15)
            'linear blend (tuned) | ndcg@5 future': 0.0633,
            'random order of shown items | ndcg@5': 0.2771,
            'shown items by views then recency | ndcg@5': 0.2701,
            'best order of shown items | ndcg@5': 0.3454,
            'global popularity | ndcg@5': 0.0801,
            'global popularity | ndcg@5 future': 0.0375,
            'oracle (planted truth) | ndcg@5': 0.6275,
            'oracle (planted truth) | ndcg@5 future': 0.5245,
            'OTTO co-visitation recipe (no learning) | ndcg@5': 0.3392,
            'OTTO co-visitation recipe (no learning) | ndcg@5 future': 0.0725,
        },
    )
    two = 'two-stage: candidates + LightGBM ranker'
    for k, want in {'ndcg@5': 0.3547, 'ndcg@5 future': 0.0643}.items():
        near({f'{two} | {k}': t[f'{two} | {k}']}, {f'{two} | {k}': want}, TWO_STAGE_BAND[k])
    h = res['metrics']['headline']
    assert h['over_otto_all'] == pytest.approx(h['ndcg_all'] - h['otto_all'])  # what the ranker adds over the peer
    assert h['ndcg_all'] > h['best_in_session_all'] and h['ndcg_future'] > h['best_in_session_future']
    assert t[f'{two} | ndcg@5'] > t['global popularity | ndcg@5'] and h['x_oracle'] < 1
    # where it ran and what each stage made travel with the numbers (issue 25)
    assert res['machine']['platform_id'] and res['machine']['blas'] and 'dispatch' in res['machine']['simd']
    stages = list(res['stage_hashes'])
    assert stages[0] == 'data' and stages[-1] == 'test predictions' and all(res['stage_hashes'][s] for s in stages)


def _prose_table(notebook: str, heading: str) -> dict[str, tuple[float, float]]:
    "The 'design | validation | test' table of the markdown cell of nbs/<notebook>.ipynb that starts with `heading`."
    import re

    cells = json.loads((NBS / f'{notebook}.ipynb').read_text())['cells']
    md = next(''.join(c['source']) for c in cells if c['cell_type'] == 'markdown' and heading in ''.join(c['source']))
    out = {}
    for line in md.splitlines():
        cols = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cols) != 3 or not re.search(r'\d\.\d{3}', cols[1]):
            continue
        name = re.search(r'`([^`]+)`', cols[0])
        out[name.group(1) if name else 'popularity'] = tuple(float(re.sub(r'[*]', '', c)) for c in cols[1:])
    return out


def test_prose_table_parser():
    "The parser reads 03's small-scale table: eight rows, the winner first (checked here without running anything)."
    t = _prose_table('03_confidence', 'What the small-scale run measured')
    assert len(t) == 8 and next(iter(t)) == 'bm25(alpha=1, by=row, w_cart=10)' and t['popularity'] == (0.009, 0.003)


@pytest.mark.reports
@pytest.mark.skipif(
    not os.environ.get('RECSYS_SLOW_TESTS'),
    reason='the full design grid on small synthetic data takes ~15 min on two cores: set RECSYS_SLOW_TESTS=1',
)
def test_03_confidence_small_full_grid_matches_prose(tmp_path, papermill_report):
    """03's prose states what the small-scale full-grid run measured (its table of designs, validation and test NDCG@5,
    and popularity): rerun exactly that command and check every number of the table, to its printed 3 decimals."""
    res = papermill_report(
        '03_confidence',
        tmp_path,
        dataset='synthetic',
        scale='small',
        grid='full',
        factors=32,
        iterations=10,
        n_seeds=2,
    )
    got = {r['design']: (r['validation_ndcg@5'], r['test_ndcg@5']) for r in res['table']}
    got['popularity'] = (res['summary']['popularity']['validation'], res['summary']['popularity']['test'])
    prose = _prose_table('03_confidence', 'What the small-scale run measured')
    bad = {
        d: (got.get(d), v)
        for d, v in prose.items()
        if d not in got or any(abs(g - p) > 6e-4 for g, p in zip(got[d], v))
    }
    assert not bad, f'prose and run disagree (run, prose): {bad}'
    assert res['summary']['winner_label'] == next(iter(prose))
