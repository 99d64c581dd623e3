def pytest_configure(config):
    config.addinivalue_line(
        'markers',
        'functional: runs a report notebook with papermill on small data and pins its headline '
        'numbers (tests/test_functional.py); part of `make test`, deselect with -m "not functional"',
    )
