"""Forecasts against quotas, and the team's conversion."""
