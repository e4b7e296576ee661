"""A two-table SQLite database and one-line candidates for the SQL scorer tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from opentao.records import Candidate, Prompt


def make_db(path: Path) -> Path:
    """Two tables: customer (4 rows) and orders (5 rows)."""
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT, country TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customer(id), total REAL);
        INSERT INTO customer VALUES (1,'Ann','France'),(2,'Bob','Spain'),(3,'Cy','France'),(4,'Di','Peru');
        INSERT INTO orders VALUES (1,1,10.0),(2,1,5.5),(3,2,7.25),(4,3,1.0),(5,4,3.0);
        """
    )
    con.commit()
    con.close()
    return path


def cand(answer: str, response: str = "", cid: str = "c") -> Candidate:
    return Candidate("p", cid, "plain", [], response or answer, response or answer, answer)


PROMPT = Prompt("p", [{"role": "user", "content": "q"}])
