"""Dashboards: the rep's day, the manager's team and support, with server-drawn charts."""
