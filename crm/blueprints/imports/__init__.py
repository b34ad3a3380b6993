"""CSV imports: upload, map the columns, choose what to do with duplicates, follow the worker, undo."""
