"""Support: the incident queue, an incident's page and conversation, support settings."""
