"""The ``sql`` task: text-to-SQL over the Chinook database.

* :mod:`.schema` — generic helpers for any SQLite database: the prompt's compact DDL, the prompt itself, table
  profiles for question generators;
* :mod:`.chinook` — the Chinook database (a pinned PyPI fixture) and the schema-driven question generator;
* :mod:`.grade` — the gold metric, execution accuracy (:class:`~.grade.SqlGrader`);
* :mod:`.task` — the registry entry; ``config.yaml`` — the default run settings.

The label-free scorers (``sql_exec``, ``majority_vote`` with ``mode: sql_result``) are builtins of
:mod:`opentao.score`; they and the grader run model SQL only through :mod:`opentao.sqlsafe`.
"""

from opentao.tasks.sql.grade import SqlGrader, grade
from opentao.tasks.sql.schema import (
    PROMPT_TEMPLATE, ColumnInfo, TableInfo, connect_readonly, foreign_keys_of, is_whole_table, is_whole_table_by,
    list_tables, plural, primary_key_of, quote_ident, read_schema, schema_ddl, sql_literal, sql_prompt_messages,
    tables_read, words,
)
from opentao.tasks.sql.task import TASK, prepare_sql_task

__all__ = ["PROMPT_TEMPLATE", "TASK", "ColumnInfo", "SqlGrader", "TableInfo", "connect_readonly", "foreign_keys_of",
           "grade", "is_whole_table", "is_whole_table_by", "list_tables", "plural", "prepare_sql_task",
           "primary_key_of", "quote_ident", "read_schema", "schema_ddl", "sql_literal", "sql_prompt_messages",
           "tables_read", "words"]
