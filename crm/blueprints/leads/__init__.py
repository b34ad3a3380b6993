"""Leads: the hot list, scoring and routing rules, and the public web forms that capture leads."""
