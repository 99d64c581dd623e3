"""The users API harvester against a real loopback server, in real processes: faults, SIGKILL and resume, failures."""

import json, os, re, signal, subprocess, sys, time
from pathlib import Path

import pandas as pd
import pytest

from recsys.users_api import (
    Faults,
    RetryPolicy,
    UsersServer,
    USER_COLUMNS,
    default_checkpoint,
    demo_users,
    harvest,
    output_paths,
)

BIN = Path(sys.executable).parent


def _cmd(script, func):
    "The installed console script when there is one, else the same entry point through this interpreter."
    exe = BIN / script
    return [str(exe)] if exe.exists() else [sys.executable, '-c', f'from recsys.users_api import {func}; {func}()']


USERS = _cmd('recsys-users', 'users_cli')
SERVE = _cmd('recsys-users-serve', 'serve_cli')
ENV = {**os.environ, 'RECSYS_QUIET': '1'}


def run_users(*args, timeout=90):
    return subprocess.run([*USERS, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=ENV)


def summary_counts(stdout):
    m = re.search(
        r'([\d,]+) users: ([\d,]+) fetched, ([\d,]+) from the checkpoint, ([\d,]+) retries, ([\d,]+) failed', stdout
    )
    assert m, stdout
    return [int(g.replace(',', '')) for g in m.groups()]


def assert_complete(out, users):
    "The outputs hold exactly the server's entries (and its first entries), each once."
    out, users_out, failed_out = output_paths(out)
    got = pd.read_parquet(out)
    assert not got.duplicated(['user_id', 'entry']).any()
    pd.testing.assert_frame_equal(got, users.sort_values(['user_id', 'entry']).reset_index(drop=True))
    one = pd.read_parquet(users_out)
    assert list(one.columns) == list(USER_COLUMNS) and one['user_id'].is_unique
    pd.testing.assert_frame_equal(one, users[users.entry == 0][list(USER_COLUMNS)].reset_index(drop=True))
    assert not failed_out.exists()


@pytest.mark.process
def test_harvest_with_faults_returns_exactly_the_servers_users(tmp_path):
    users = demo_users(1000, seed=11)
    (tmp_path / 'data').mkdir()
    users.to_parquet(tmp_path / 'data' / 'users_entries.parquet')
    srv = subprocess.Popen(
        [
            *SERVE,
            '--data',
            tmp_path / 'data',
            '--port',
            '0',
            '--seed',
            '5',
            '--p-429',
            '0.05',
            '--retry-after',
            '0.05',
            '--p-500',
            '0.05',
            '--p-drop',
            '0.03',
            '--p-malformed',
            '0.05',
            '--p-slow',
            '0.02',
            '--slow-s',
            '1.0',
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        line = srv.stdout.readline()
        url = re.search(r'http://127\.0\.0\.1:\d+', line).group(0)
        out = tmp_path / 'out' / 'users.parquet'
        r = run_users(
            '--base-url',
            url,
            '--out',
            out,
            '--concurrency',
            32,
            '--timeout',
            0.5,
            '--backoff-base',
            0.01,
            '--max-attempts',
            10,
            '--seed',
            0,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        requested, fetched, resumed, retries, failed = summary_counts(r.stdout)
        assert (requested, fetched, resumed, failed) == (1000, 1000, 0, 0)
        assert retries > 50  # the faults were really there...
        with __import__('urllib.request').request.urlopen(url + '/_stats', timeout=10) as resp:
            stats = json.load(resp)
        for kind in ('429', '500', 'drop', 'malformed', 'slow'):  # ...every kind of them
            assert stats.get(kind, 0) > 0, (kind, stats)
        assert_complete(out, users)
    finally:
        srv.terminate()
        srv.wait(10)
    assert srv.returncode == 0  # SIGTERM is a clean stop


@pytest.mark.process
def test_sigkill_mid_run_then_resume_loses_and_duplicates_nothing(tmp_path):
    users = demo_users(2000, seed=12)
    out = tmp_path / 'users.parquet'
    ckpt = default_checkpoint(out)
    with UsersServer(users, Faults(p_slow=1.0, slow_s=0.02)) as srv:  # slow: the run lasts long enough to be killed
        proc = subprocess.Popen(
            [*USERS, '--base-url', srv.url, '--out', out, '--concurrency', '8'],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=ENV,
        )
        deadline = time.time() + 60
        while time.time() < deadline and (not ckpt.exists() or ckpt.read_bytes().count(b'\n') < 300):
            assert proc.poll() is None, 'the harvester ended before it could be killed'
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        assert not out.exists()  # killed before writing outputs
        synced = ckpt.read_bytes().count(b'\n')
        assert 300 <= synced < 2000
        with open(ckpt, 'ab') as f:
            f.write(b'{"user_id":17,"values":{"coun')  # and a torn write, the worst case

        srv.faults = Faults()  # full speed for the rerun
        before = -1
        while before != srv.stats['requests']:  # let the killed run's last requests land
            before = srv.stats['requests']
            time.sleep(0.3)
        r = run_users('--base-url', srv.url, '--out', out, '--concurrency', '8')
        assert r.returncode == 0, r.stdout + r.stderr
        requested, fetched, resumed, retries, failed = summary_counts(r.stdout)
        assert resumed >= synced - 1 and resumed + fetched == requested == 2000 and failed == 0
        assert srv.stats['requests'] - before == 1 + fetched  # the id list + only the missing users
        assert 'torn' in r.stderr
    assert_complete(out, users)
    lines = [json.loads(l) for l in ckpt.read_text().splitlines()]
    assert len({l["user_id"] for l in lines}) == 2000  # every user reached the checkpoint


@pytest.mark.process
def test_users_that_always_fail_are_listed_and_the_exit_status_is_nonzero(tmp_path):
    users = demo_users(120, seed=13)
    ids = tmp_path / 'ids.txt'
    ids.write_text('\n'.join(map(str, [*range(1, 101), 10**9])) + '\n')  # 10**9: not a user (404)
    out = tmp_path / 'u.parquet'
    with UsersServer(users, Faults(poison_ids=[5, 6])) as srv:  # 5: bad JSON, 6: missing key, always
        args = ('--base-url', srv.url, '--out', out, '--ids', ids, '--max-attempts', 3, '--backoff-base', 0.001)
        r = run_users(*args)
        assert r.returncode == 1, r.stdout + r.stderr
        assert summary_counts(r.stdout) == [101, 98, 0, 4, 3]  # 2 poison ids x 2 retries, 404 not retried
        assert 'never succeeded' in r.stderr
        failed_out = output_paths(out)[2]
        assert failed_out.read_text().split() == ['5', '6', str(10**9)]
        errors = {
            l['user_id']: l for l in map(json.loads, default_checkpoint(out).read_text().splitlines()) if 'error' in l
        }
        assert errors[5]['error'].startswith('malformed: bad JSON') and errors[5]['attempts'] == 3
        assert errors[6]['error'].startswith('malformed: missing key') and errors[10**9] == {
            'user_id': 10**9,
            'error': 'http 404',
            'attempts': 1,
        }
        got = pd.read_parquet(out)  # the malformed answers are not data
        assert set(got.user_id) == set(range(1, 101)) - {5, 6}
        r2 = run_users(*args)  # a rerun retries only the failures
        assert r2.returncode == 1 and summary_counts(r2.stdout)[:3] == [101, 0, 98]


def test_retry_after_is_honoured(tmp_path):
    users = demo_users(20, seed=14)
    pol = RetryPolicy(base=0.001)
    with UsersServer(users, Faults(p_429=1.0, retry_after=1.0, fault_limit=1)) as srv:  # one 429 per user
        r = harvest(srv.url, tmp_path / 'a.parquet', ids=range(1, 21), policy=pol, show_progress=False)
    assert r.ok and r.retried == 20 and r.fetch_s >= 1.0
    with UsersServer(users, Faults(p_500=1.0, fault_limit=1)) as srv:  # the same without Retry-After
        r = harvest(srv.url, tmp_path / 'b.parquet', ids=range(1, 21), policy=pol, show_progress=False)
    assert r.ok and r.retried == 20 and r.fetch_s < 0.8


@pytest.mark.process
def test_bad_input_exits_2_with_one_line(tmp_path):
    ids = tmp_path / 'ids.txt'
    ids.write_text('1\n2\nabc\n')
    r = run_users('--base-url', 'http://127.0.0.1:9', '--out', tmp_path / 'u.parquet', '--ids', ids)
    assert r.returncode == 2 and r.stderr.startswith('error: file') and 'not an integer id' in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
