"""All SQL of private messages: threads, per-member state, messages and their events.

Per-member state (`thread_members`) is denormalised so that an inbox page and a thread page
cost a fixed number of indexed statements whatever the data size. Every write here keeps it
consistent inside the caller's transaction; see models.ThreadMember for the invariants.
"""

from dovecote.pm.repository.pages import (
    MESSAGE_COLUMNS,
    has_messages_before,
    inbox_page_of_caller,
    mark_read,
    snippets_of,
    thread_page,
    visible_message,
)
from dovecote.pm.repository.removal import (
    clear_thread,
    hide_message,
    is_participant,
    live_messages_of,
    message_for_delete,
    message_threads,
    unlist_message,
)
from dovecote.pm.repository.threads import (
    DELETED_MESSAGE,
    NEW_MESSAGE,
    CallerMembership,
    Membership,
    create_direct_threads,
    direct_threads,
    membership,
    membership_of_caller,
    membership_with,
    pair,
    people_by_id,
)
from dovecote.pm.repository.writes import (
    advance_members,
    append_events,
    change_inbox_counts,
    insert_message,
    list_in_threads,
)

__all__ = [
    "DELETED_MESSAGE",
    "MESSAGE_COLUMNS",
    "NEW_MESSAGE",
    "CallerMembership",
    "Membership",
    "advance_members",
    "append_events",
    "change_inbox_counts",
    "clear_thread",
    "create_direct_threads",
    "direct_threads",
    "has_messages_before",
    "hide_message",
    "inbox_page_of_caller",
    "insert_message",
    "is_participant",
    "list_in_threads",
    "live_messages_of",
    "mark_read",
    "membership",
    "membership_of_caller",
    "membership_with",
    "message_for_delete",
    "message_threads",
    "pair",
    "people_by_id",
    "snippets_of",
    "thread_page",
    "unlist_message",
    "visible_message",
]
