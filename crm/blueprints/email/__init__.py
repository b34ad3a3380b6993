"""Email: write from the CRM, read a message, its attachments, and the open-tracking pixel."""
