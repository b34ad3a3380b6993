"""Tasks: my to-dos, overdue, today and upcoming, done in one click."""
