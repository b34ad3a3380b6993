"""The shared agenda: day, week, month and team views, and events."""
