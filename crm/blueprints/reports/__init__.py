"""Reports: a dataset grouped by one or two dimensions, as a table, a chart and a CSV file."""
