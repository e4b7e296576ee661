"""The benchmark's reusable parts (statistics, resumable result files, the report); the runner that trains and
evaluates the arms is ``benchmarks/tao_table.py``."""
