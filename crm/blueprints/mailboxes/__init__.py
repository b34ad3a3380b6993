"""Mailboxes: the shared ones (admins) and each user's own, with a connection check."""
