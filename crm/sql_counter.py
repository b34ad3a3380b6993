"""Counts the SQL statements of each request (tests' N+1 guard, benchmark's figures)."""

from flask import Flask, g, has_request_context
from sqlalchemy import event


def install(app: Flask, engine) -> None:
    @event.listens_for(engine, "before_cursor_execute")
    def _count(conn, cursor, statement, parameters, context, executemany):
        if has_request_context():
            g.sql_queries = g.get("sql_queries", 0) + 1

    @app.after_request
    def _expose(response):
        response.headers["X-SQL-Queries"] = str(g.get("sql_queries", 0))
        return response
