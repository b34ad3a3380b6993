"""Exports of a filtered list to CSV or XLSX, with the filters of the list it came from."""
