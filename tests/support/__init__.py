"""What the tests share besides fixtures: row builders, API clients, recorded responses,
the fake upstream and the gateway under uvicorn. ``conftest.py`` files define fixtures
and hooks only and import their helpers from here."""
