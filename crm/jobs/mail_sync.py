"""Email in: sync each mailbox over IMAP (crm/services/mail_sync.py does the work)."""


def sync_all_mailboxes() -> int:
    """Enqueue a sync of every active mailbox; return how many. (Filled in by the email work.)"""
    return 0
