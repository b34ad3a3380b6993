"""Which conversation a message belongs to (In-Reply-To, then References), and what it is about.

Owned by the inbound email work; outbound replies call it too.
"""

from crm.models import EmailMessage, EmailThread


def attach_to_thread(message: EmailMessage) -> EmailThread:
    """Put `message` in the thread of the message it answers (In-Reply-To, else the newest
    known of References, looked up by normalized Message-ID in any mailbox), or in a new
    thread. The thread keeps its incident/deal/contact; sets message.thread and returns it."""
    raise NotImplementedError
