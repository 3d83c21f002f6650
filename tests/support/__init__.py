"""Helpers shared by the test suites (importable as `support`: pytest's pythonpath has tests/)."""
