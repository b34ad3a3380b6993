"""Domain operations shared by routes, jobs and the CLI. No flask.request here:
each function takes the acting user and plain values."""
