"""Helpers shared by the tests (no tests here): files, a small SQL database, the ``tao`` subprocess, runs."""
