"""CSV imports of contacts, companies and notes (issue 8): reading.py reads the file,
fields.py maps its columns, rows.py turns one row into records, runner.py runs the whole
import in batches, reports it and undoes it."""
