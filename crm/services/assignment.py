"""Who gets an incident: chosen by hand, or round-robin among the available agents.

Interface used by the incident routes:
- assign_round_robin(incident, team=None) -> User | None: picks the agent, sets
  incident.assignee and incident.assignment_reason (why, in words a user reads).
"""


def assign_round_robin(incident, team=None):
    """Give `incident` to the next available support agent of `team`."""
    return None
