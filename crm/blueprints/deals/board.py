"""The kanban board of a pipeline."""
