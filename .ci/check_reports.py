"""CI's check of the main job: the newest run under REPORTS_DIR has every job ok or not applicable, and its index page.

    .venv/bin/python .ci/check_reports.py reports

Exit 1 (with the failed or skipped jobs named) when any job of the run failed, was skipped or is missing.
"""

import json, sys
from pathlib import Path

OK = {'ok', 'cached', 'not applicable'}


def check(reports_dir: Path) -> list[str]:
    runs = sorted(reports_dir.glob('*/run.json'), key=lambda p: p.stat().st_mtime)
    if not runs:
        return [f'no run.json under {reports_dir}/: make reports did not record a run']
    run = json.loads(runs[-1].read_text())
    bad = [f'{r["key"]}: {r["status"]}' for r in run['records'] if r['status'] not in OK]
    if not run['records']:
        bad.append('the run has no jobs')
    if not (runs[-1].parent / 'index.html').exists():
        bad.append('index.html is missing')
    print(f'{runs[-1].parent}: {run["counts"]} in {run.get("wall_s")} s')
    return bad


if __name__ == '__main__':
    problems = check(Path(sys.argv[1] if len(sys.argv) > 1 else 'reports'))
    for p in problems:
        print(f'FAIL: {p}', file=sys.stderr)
    sys.exit(1 if problems else 0)
