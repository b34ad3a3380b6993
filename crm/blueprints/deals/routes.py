"""A deal's own page, quick-add, the list view."""
