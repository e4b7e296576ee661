"""Untrusted SQL, handled in one place: extraction from model text, parsing checks, read-only execution in a
sandboxed worker, result signatures and degenerate-result checks.

Both the SQL task (gold grading, :mod:`opentao.tasks.sql`) and the SQL scorers (``sql_exec``, the
``majority_vote`` ``sql_result`` mode) import from here, so model-written SQL only ever runs through
:func:`run_sql_readonly`.

* :mod:`.extract` — :func:`extract_sql`: one statement out of a response;
* :mod:`.parse` — :func:`tables_read`, :func:`is_whole_table_by`, :func:`quote_ident`;
* :mod:`.readonly` — :func:`run_sql_readonly` (statement check + sandbox), :class:`SqlResult`,
  :func:`result_signature` (order-insensitive result hash), :func:`selects_star`;
* :mod:`.sandbox` — the killable worker process with rlimits, read-only connection and authorizer;
* :mod:`.degenerate` — :class:`DegenerateChecker`: valid SQL whose result answers nothing.
"""

from opentao.sqlsafe.degenerate import DegenerateChecker, is_null_zero_row, literal_predicates
from opentao.sqlsafe.extract import extract_sql
from opentao.sqlsafe.parse import is_whole_table, is_whole_table_by, quote_ident, tables_read
from opentao.sqlsafe.readonly import (
    SqlResult, check_sqlite_file, quote_name, result_signature, run_sql_readonly, selects_star,
)

__all__ = [
    "DegenerateChecker", "SqlResult", "check_sqlite_file", "extract_sql", "is_null_zero_row", "is_whole_table",
    "is_whole_table_by", "literal_predicates", "quote_ident", "quote_name", "result_signature", "run_sql_readonly",
    "selects_star", "tables_read",
]
