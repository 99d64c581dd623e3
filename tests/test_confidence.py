"""Confidence designs against the real engines, in a process of their own: Spark MLlib's implicit ALS (needs Java)."""

import os, shutil

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.confidence import ConfidenceDesign, hu_half_step, random_counts, to_spark


def _java_ok() -> bool:
    return bool(shutil.which('java') or os.environ.get('JAVA_HOME'))


@pytest.fixture(scope='module')
def spark():
    pytest.importorskip('pyspark')
    if not _java_ok():
        pytest.skip('no Java runtime for Spark')
    from pyspark.sql import SparkSession

    s = (
        SparkSession.builder.master('local[1]')
        .appName('recsys-test-confidence')
        .config('spark.ui.enabled', 'false')
        .config('spark.sql.shuffle.partitions', '1')
        .config('spark.driver.memory', '1g')
        .getOrCreate()
    )
    s.sparkContext.setLogLevel('ERROR')
    yield s
    s.stop()


def _factors(df, n):
    out = np.zeros((n, len(df[0]['features'])))
    for row in df:
        out[row['id']] = row['features']
    return out


@pytest.mark.spark
@pytest.mark.parametrize('alpha', [7.0])
def test_spark_confidence_is_one_plus_alpha_r_with_als_wr_penalty(spark, alpha):
    """A real Spark fit on to_spark(C, alpha): its last half-step (users from the final item factors) equals the exact
    minimiser of Hu et al.'s objective with confidence C and penalty regParam·n_u, and not the uniform-penalty one."""
    from pyspark.ml.recommendation import ALS

    C = ConfidenceDesign('seed').apply(random_counts(25, 15, density=0.3, seed=5))
    si = to_spark(C, alpha=alpha)
    rows = [(int(u), int(i), float(r)) for u, i, r in si.ratings.itertuples(index=False)]
    df = spark.createDataFrame(rows, 'user int, item int, rating float')
    reg = 0.05
    model = ALS(
        rank=3,
        maxIter=3,
        regParam=reg,
        alpha=alpha,
        implicitPrefs=True,
        seed=1,
        numUserBlocks=1,
        numItemBlocks=1,
        userCol='user',
        itemCol='item',
        ratingCol='rating',
    ).fit(df)
    X = _factors(model.userFactors.collect(), C.shape[0])
    Y = _factors(model.itemFactors.collect(), C.shape[1])
    Xwr = hu_half_step(C, Y, reg, weighted=True)
    present = np.diff(C.indptr) > 0
    np.testing.assert_allclose(X[present], Xwr[present], rtol=2e-3, atol=2e-4)  # Spark's factors are float32
    Xuni = hu_half_step(C, Y, reg, weighted=False)
    assert np.abs(X[present] - Xuni[present]).max() > 1e-2
    # handing Spark the confidence itself (the implicit convention) is a different objective
    Cwrong = sp.csr_matrix((C.data * 0 + 1 + alpha * C.data, C.indices, C.indptr), shape=C.shape)
    assert np.abs(X[present] - hu_half_step(Cwrong, Y, reg, weighted=True)[present]).max() > 1e-2


@pytest.mark.reports
def test_report_runs_under_papermill(report_03_tiny):
    """The notebook is a report: a papermill run with its tiny defaults writes the comparison table and the plot (the
    run tests/test_functional.py pins too: tests/conftest.py makes it once)."""
    out, res = report_03_tiny
    assert (out / 'design_comparison.png').stat().st_size > 10_000
    assert len(res['table']) == 7 and {'design', 'validation_ndcg@5', 'test_ndcg@5'} <= set(res['table'][0])
    assert res['summary']['winner_label'] == res['table'][0]['design']  # best on validation, by construction
    assert res['default_design']['name'] in ('seed', 'linear', 'hu', 'hu_log', 'bm25', 'tfidf')
    assert set(res['splits']) == {'validation', 'test'} and res['params']['scale'] == 'tiny'
